/* SQL of the inventory service's stock table: reads, the operators' settings and adjustments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/log.h"
#include "inventory.h"

#define STOCK_JSON                                                                                 \
    "json_build_object('sku', sku, 'name', name, 'available', available, 'reserved', reserved,"    \
    " 'shipped', shipped)"

json_t *inventory_store_get(PGconn *conn, const char *sku, long long *version, int *found,
                            struct cv_db_err *err)
{
    const char *params[] = {sku};
    return cv_db_query_json(conn, "SELECT " STOCK_JSON "::text, version FROM stock WHERE sku = $1",
                            1, params, version, found, err);
}

int inventory_store_lock_version(PGconn *conn, const char *sku, long long *version,
                                 struct cv_db_err *err)
{
    const char *params[] = {sku};
    PGresult *res =
        cv_db_query(conn, "SELECT version FROM stock WHERE sku = $1 FOR UPDATE", 1, params, err);
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    if (found)
        *version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return found;
}

json_t *inventory_store_page(PGconn *conn, const void *query, int *found, struct cv_db_err *err)
{
    const struct inventory_page_query *q = query;
    const char *params[] = {q->after};
    return cv_service_page(conn,
                           "SELECT sku, " STOCK_JSON "::text FROM stock"
                           " WHERE $1::text IS NULL OR sku > $1 ORDER BY sku LIMIT $2::int",
                           1, params, q->limit, "items", found, err);
}

int inventory_store_set_available(struct cv_service *svc, PGconn *conn, const char *sku,
                                  const char *name, long available, struct cv_db_err *err)
{
    char avail[24];
    snprintf(avail, sizeof(avail), "%ld", available);
    /* Lock the row first: the previous figure and the change are then one atomic step against
     * concurrent reservations. (A FOR UPDATE CTE read in RETURNING sees no row: two
     * statements are simpler and right.) */
    const char *lock_params[] = {sku};
    PGresult *res = cv_db_query(conn, "SELECT available FROM stock WHERE sku = $1 FOR UPDATE", 1,
                                lock_params, err);
    if (!res)
        return -1;
    long previous = PQntuples(res) ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    const char *params[] = {sku, name, avail};
    res = cv_db_query(
        conn,
        "INSERT INTO stock (sku, name, available) VALUES ($1, COALESCE($2, $1), $3::int)"
        " ON CONFLICT (sku) DO UPDATE SET available = EXCLUDED.available,"
        " name = COALESCE($2, stock.name), updated_at = now()"
        " RETURNING name",
        3, params, err);
    if (!res)
        return -1;
    json_t *event = json_pack("{s:s, s:s, s:I, s:I, s:o}", "sku", sku, "name",
                              PQgetvalue(res, 0, 0), "available", (json_int_t)available,
                              "previous_available", (json_int_t)previous, "reason", json_null());
    PQclear(res);
    int rc = cv_service_emit(svc, conn, "StockAdjusted", sku, event, NULL, NULL, NULL, err);
    json_decref(event);
    if (rc == 0)
        cv_log_info("stock of %s set to %ld", sku, available);
    return rc;
}

/* Records the adjustment (the stock it left, under key when not NULL). 1, 0 when key was taken
 * already (by a transaction that committed meanwhile), -1 with err. */
static int record_adjustment(PGconn *conn, const char *sku, const char *delta, const char *reason,
                             const char *stock, const char *version, const char *key,
                             struct cv_db_err *err)
{
    const char *params[] = {sku, delta, reason, stock, version, key};
    return cv_db_exec_count(conn,
                            "INSERT INTO stock_adjustments"
                            " (sku, delta, reason, stock, version, idempotency_key)"
                            " VALUES ($1, $2::bigint, $3, $4::jsonb, $5::bigint, $6)"
                            " ON CONFLICT (idempotency_key) DO NOTHING",
                            6, params, err);
}

enum inventory_adjust_result inventory_store_adjust(struct cv_service *svc, PGconn *conn,
                                                    const char *sku, long delta, long max_available,
                                                    const char *reason, const char *key,
                                                    struct inventory_adjustment *out,
                                                    struct cv_db_err *err)
{
    char delta_text[24], max_text[24];
    snprintf(delta_text, sizeof(delta_text), "%ld", delta);
    snprintf(max_text, sizeof(max_text), "%ld", max_available);
    memset(out, 0, sizeof(*out));
    /* One conditional statement: concurrent adjustments and reservations queue on the row lock
     * and each re-checks the bounds against the figure the one before it left. */
    const char *params[] = {sku, delta_text, max_text};
    PGresult *res = cv_db_query(conn,
                                "UPDATE stock SET available = available + $2::bigint,"
                                " updated_at = now() WHERE sku = $1"
                                " AND available + $2::bigint BETWEEN 0 AND $3::bigint"
                                " RETURNING name, available, version, " STOCK_JSON "::text",
                                3, params, err);
    if (!res)
        return INVENTORY_ADJUST_FAILED;
    if (PQntuples(res) == 0) {
        PQclear(res);
        const char *sku_param[] = {sku};
        res = cv_db_query(conn, "SELECT available FROM stock WHERE sku = $1", 1, sku_param, err);
        if (!res)
            return INVENTORY_ADJUST_FAILED;
        int known = PQntuples(res) == 1;
        if (known)
            out->available = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        return known ? INVENTORY_ADJUST_OUT_OF_RANGE : INVENTORY_ADJUST_UNKNOWN_SKU;
    }
    out->available = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    out->version = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    int recorded = record_adjustment(conn, sku, delta_text, reason, PQgetvalue(res, 0, 3),
                                     PQgetvalue(res, 0, 2), key, err);
    if (recorded <= 0) {
        PQclear(res);
        return recorded < 0 ? INVENTORY_ADJUST_FAILED : INVENTORY_ADJUST_KEY_TAKEN;
    }
    out->stock = json_loads(PQgetvalue(res, 0, 3), 0, NULL);
    json_t *event =
        json_pack("{s:s, s:s, s:I, s:I, s:s}", "sku", sku, "name", PQgetvalue(res, 0, 0),
                  "available", (json_int_t)out->available, "previous_available",
                  (json_int_t)(out->available - delta), "reason", reason);
    PQclear(res);
    int rc = cv_service_emit(svc, conn, "StockAdjusted", sku, event, NULL, NULL, NULL, err);
    json_decref(event);
    if (rc < 0 || !out->stock) {
        if (rc == 0) {
            cv_db_err_client(err, 0, "out of memory");
        }
        json_decref(out->stock);
        out->stock = NULL;
        return INVENTORY_ADJUST_FAILED;
    }
    cv_log_info("stock of %s adjusted by %ld to %lld: %s", sku, delta, out->available, reason);
    return INVENTORY_ADJUSTED;
}

json_t *inventory_store_find_adjustment(PGconn *conn, const char *key, long long *version,
                                        int *found, struct cv_db_err *err)
{
    const char *params[] = {key};
    return cv_db_query_json(conn,
                            "SELECT json_build_object('sku', sku, 'delta', delta,"
                            " 'reason', reason, 'stock', stock)::text, version"
                            " FROM stock_adjustments WHERE idempotency_key = $1",
                            1, params, version, found, err);
}
