/* SQL of the shipping service: reading shipments. Writes live with the handlers that make them. */
#include <stdio.h>

#include "shipping.h"

/* clang-format off */
#define SHIPMENT_JSON                                                                              \
    "json_build_object('order_id', order_id, 'status', status, 'reason', reason,"                  \
    " 'carrier', carrier, 'tracking_number', tracking_number,"                                     \
    " 'eta', " CV_DB_JSON_TIME("eta") ","                                                          \
    " 'items', items, 'shipping_address', shipping_address,"                                       \
    " 'cancellation_refused', cancellation_refused,"                                               \
    " 'created_at', " CV_DB_JSON_TIME("created_at") ","                                            \
    " 'updated_at', " CV_DB_JSON_TIME("updated_at") ")"
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
    char after_text[24];
    snprintf(after_text, sizeof(after_text), "%ld", q->after);
    const char *params[] = {q->status, after_text};
    return cv_service_page(conn,
                           "SELECT seq, " SHIPMENT_JSON "::text FROM shipments"
                           " WHERE ($1::text IS NULL OR status = $1) AND seq > $2::bigint"
                           " ORDER BY seq LIMIT $3::int",
                           2, params, q->limit, "shipments", found, err);
}

int shipping_store_status(PGconn *conn, const char *order_id, char status[16],
                          struct cv_db_err *err)
{
    const char *params[] = {order_id};
    return cv_db_query_text(conn, "SELECT status FROM shipments WHERE order_id = $1 FOR UPDATE", 1,
                            params, status, 16, err);
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
