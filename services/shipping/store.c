/* SQL of the shipping service: reading shipments. Writes live with the handlers that make them. */
#include <stdio.h>

#include "shipping.h"

#define TIME_JSON(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

json_t *shipment_get(PGconn *conn, const char *order_id, int *found, struct cv_db_err *err)
{
    const char *params[] = {order_id};
    PGresult *res = cv_db_query(
        conn,
        "SELECT json_build_object('order_id', order_id, 'status', status, 'reason', reason,"
        " 'carrier', carrier, 'tracking_number', tracking_number, 'eta', " TIME_JSON("eta") ","
        " 'items', items, 'shipping_address', shipping_address,"
        " 'created_at', " TIME_JSON("created_at") ", 'updated_at', " TIME_JSON("updated_at") ")::text"
        " FROM shipments WHERE order_id = $1",
        1, params, err);
    if (!res) {
        *found = -1;
        return NULL;
    }
    json_t *shipment = PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    PQclear(res);
    *found = shipment != NULL;
    if (shipment && json_is_null(json_object_get(shipment, "reason")))
        json_object_del(shipment, "reason");
    return shipment;
}

int shipment_status(PGconn *conn, const char *order_id, char status[16], struct cv_db_err *err)
{
    const char *params[] = {order_id};
    PGresult *res = cv_db_query(
        conn, "SELECT status FROM shipments WHERE order_id = $1 FOR UPDATE", 1, params, err);
    if (!res)
        return -1;
    status[0] = '\0';
    if (PQntuples(res) == 1)
        snprintf(status, 16, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}
