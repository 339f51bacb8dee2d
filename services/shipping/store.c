/* SQL of the shipping service: reading shipments. Writes live with the handlers that make them. */
#include <stdio.h>

#include "shipping.h"

#define TIME_JSON(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* clang-format off */
#define SHIPMENT_JSON                                                                              \
    "json_build_object('order_id', order_id, 'status', status, 'reason', reason,"                 \
    " 'carrier', carrier, 'tracking_number', tracking_number, 'eta', " TIME_JSON("eta") ","       \
    " 'items', items, 'shipping_address', shipping_address,"                                      \
    " 'cancellation_refused', cancellation_refused,"                                              \
    " 'created_at', " TIME_JSON("created_at") ", 'updated_at', " TIME_JSON("updated_at") ")"
/* clang-format on */

json_t *shipping_store_get(PGconn *conn, const char *order_id, int *found, struct cv_db_err *err)
{
    const char *params[] = {order_id};
    return cv_db_query_json(conn,
                            "SELECT " SHIPMENT_JSON "::text FROM shipments WHERE order_id = $1", 1,
                            params, NULL, found, err);
}

json_t *shipping_store_page(PGconn *conn, const void *query, int *found, struct cv_db_err *err)
{
    const struct shipping_page_query *q = query;
    char after_text[24], limit_text[24];
    snprintf(after_text, sizeof(after_text), "%ld", q->after);
    snprintf(limit_text, sizeof(limit_text), "%ld", q->limit);
    const char *params[] = {q->status, after_text, limit_text};
    json_t *page = cv_service_page(conn,
                                   "SELECT seq, " SHIPMENT_JSON "::text FROM shipments"
                                   " WHERE ($1::text IS NULL OR status = $1) AND seq > $2::bigint"
                                   " ORDER BY seq LIMIT $3::int",
                                   3, params, q->limit, "shipments", err);
    *found = page ? 1 : -1;
    return page;
}

int shipping_store_status(PGconn *conn, const char *order_id, char status[16],
                          struct cv_db_err *err)
{
    const char *params[] = {order_id};
    PGresult *res = cv_db_query(conn, "SELECT status FROM shipments WHERE order_id = $1 FOR UPDATE",
                                1, params, err);
    if (!res)
        return -1;
    status[0] = '\0';
    if (PQntuples(res) == 1)
        snprintf(status, 16, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

int shipping_store_lock(PGconn *conn, const char *order_id, char status[16], struct cv_db_err *err)
{
    const char *params[] = {order_id};
    if (cv_db_exec(conn,
                   "INSERT INTO shipments (order_id, status) VALUES ($1, 'PENDING')"
                   " ON CONFLICT (order_id) DO NOTHING",
                   1, params, err) < 0)
        return -1;
    return shipping_store_status(conn, order_id, status, err);
}
