/* SQL of the inventory service's stock table. */
#include <stdio.h>
#include <stdlib.h>

#include "cv/log.h"
#include "inventory.h"

#define STOCK_JSON                                                                                 \
    "json_build_object('sku', sku, 'name', name, 'available', available, 'reserved', reserved,"  \
    " 'shipped', shipped)"

json_t *inventory_get(PGconn *conn, const char *sku, int *found, struct cv_db_err *err)
{
    const char *params[] = {sku};
    PGresult *res =
        cv_db_query(conn, "SELECT " STOCK_JSON "::text FROM stock WHERE sku = $1", 1, params, err);
    if (!res) {
        *found = -1;
        return NULL;
    }
    json_t *item = PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    PQclear(res);
    *found = item != NULL;
    return item;
}

json_t *inventory_page(PGconn *conn, const char *after, long limit, struct cv_db_err *err)
{
    char limit_text[24];
    snprintf(limit_text, sizeof(limit_text), "%ld", limit);
    const char *params[] = {after, limit_text};
    return cv_service_page(conn,
                           "SELECT sku, " STOCK_JSON "::text FROM stock"
                           " WHERE $1::text IS NULL OR sku > $1 ORDER BY sku LIMIT $2::int",
                           2, params, limit, "items", err);
}

int inventory_set_available(struct cv_service *svc, PGconn *conn, const char *sku,
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
    res = cv_db_query(conn,
                      "INSERT INTO stock (sku, name, available) VALUES ($1, COALESCE($2, $1), $3::int)"
                      " ON CONFLICT (sku) DO UPDATE SET available = EXCLUDED.available,"
                      " name = COALESCE($2, stock.name), updated_at = now()"
                      " RETURNING name",
                      3, params, err);
    if (!res)
        return -1;
    json_t *event = json_pack("{s:s, s:s, s:I, s:I}", "sku", sku, "name", PQgetvalue(res, 0, 0),
                              "available", (json_int_t)available, "previous_available",
                              (json_int_t)previous);
    PQclear(res);
    int rc = cv_service_emit(svc, conn, "StockAdjusted", sku, event, NULL, NULL, NULL, err);
    json_decref(event);
    if (rc == 0)
        cv_log_info("stock of %s set to %ld", sku, available);
    return rc;
}
