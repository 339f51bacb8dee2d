/* SQL of the order service. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "order.h"

/* One order as JSON, built by PostgreSQL so that the representation lives in one place. */
#define ORDER_JSON                                                                                 \
    "json_strip_nulls(json_build_object('id', id, 'customer_id', customer_id, 'items', items,"     \
    " 'total_cents', total_cents, 'status', status, 'reason', reason,"                             \
    " 'shipping_address', shipping_address,"                                                       \
    " 'cancellation', CASE WHEN cancellation_status IS NOT NULL THEN json_build_object("           \
    "  'status', cancellation_status, 'reason', cancellation_reason, 'requested_at',"              \
    "  to_char(cancellation_requested_at AT TIME ZONE 'UTC', "                                     \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')) END,"                                                   \
    " 'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"  \
    " 'updated_at', to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')))"

static const char *const statuses[] = {"PENDING",    "CONFIRMED",  "SHIPMENT_SCHEDULED",
                                       "CANCELLING", "DISPATCHED", "DELIVERED",
                                       "REJECTED",   "CANCELLED",  NULL};

int order_status_valid(const char *status)
{
    for (int i = 0; statuses[i]; i++)
        if (strcmp(status, statuses[i]) == 0)
            return 1;
    return 0;
}

json_t *order_store_get(PGconn *conn, const char *id, int *found, struct cv_db_err *err)
{
    const char *params[] = {id};
    PGresult *res =
        cv_db_query(conn, "SELECT " ORDER_JSON "::text FROM orders WHERE id = $1", 1, params, err);
    if (!res) {
        *found = -1;
        return NULL;
    }
    json_t *order = NULL;
    if (PQntuples(res) == 1)
        order = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    *found = order != NULL;
    return order;
}

json_t *order_store_page(PGconn *conn, const char *status, const char *customer_id, long after,
                         long limit, struct cv_db_err *err)
{
    char after_text[24], limit_text[24];
    snprintf(after_text, sizeof(after_text), "%ld", after);
    snprintf(limit_text, sizeof(limit_text), "%ld", limit);
    const char *params[] = {status, customer_id, after_text, limit_text};
    return cv_service_page(conn,
                           "SELECT seq, " ORDER_JSON "::text FROM orders"
                           " WHERE ($1::text IS NULL OR status = $1)"
                           " AND ($2::text IS NULL OR customer_id = $2) AND seq > $3::bigint"
                           " ORDER BY seq LIMIT $4::int",
                           4, params, limit, "orders", err);
}

int order_store_advance(PGconn *conn, const char *id, const char *status, const char *from,
                        const char *reason, struct cv_db_err *err)
{
    const char *params[] = {id, status, from, reason};
    PGresult *res = cv_db_query(conn,
                                "UPDATE orders SET status = $2, reason = COALESCE($4, reason),"
                                " updated_at = now()"
                                " WHERE id = $1 AND status = ANY($3::text[])"
                                " RETURNING extract(epoch FROM clock_timestamp() - created_at)",
                                4, params, err);
    if (!res)
        return -1;
    int changed = atoi(PQcmdTuples(res));
    if (changed > 0)
        order_saga_observe(status, atof(PQgetvalue(res, 0, 0)));
    PQclear(res);
    return changed;
}

int order_store_request_cancel(PGconn *conn, const char *id, const char *reason,
                               struct cv_db_err *err)
{
    const char *params[] = {id, reason};
    PGresult *res = cv_db_query(
        conn,
        "UPDATE orders SET"
        " status = CASE WHEN shipment_cancelled THEN 'CANCELLED' ELSE 'CANCELLING' END,"
        " reason = CASE WHEN shipment_cancelled THEN $2 ELSE reason END,"
        " cancellation_status = CASE WHEN shipment_cancelled THEN 'accepted' ELSE 'requested' END,"
        " cancellation_requested_at = now(), updated_at = now()"
        " WHERE id = $1 AND status IN ('PENDING', 'CONFIRMED', 'SHIPMENT_SCHEDULED')"
        " RETURNING status, extract(epoch FROM clock_timestamp() - created_at)",
        2, params, err);
    if (!res)
        return -1;
    int changed = atoi(PQcmdTuples(res));
    if (changed > 0)
        order_saga_observe(PQgetvalue(res, 0, 0), atof(PQgetvalue(res, 0, 1)));
    PQclear(res);
    return changed;
}
