/* HTTP API of the shipping service: read shipments, dispatch and deliver them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/log.h"
#include "cv/util.h"
#include "shipping.h"

static const char *const statuses[] = {"PENDING",   "SCHEDULED", "DISPATCHED",
                                       "DELIVERED", "CANCELLED", NULL};

void shipping_http_list(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct shipping_page_query q = {.status = cv_http_query(req, "status")};
    int known = !q.status;
    for (int i = 0; q.status && statuses[i]; i++)
        known |= strcmp(q.status, statuses[i]) == 0;
    if (!known) {
        cv_http_reply_problem(resp, 400, "Bad Request", "unknown shipment status", "status");
        return;
    }
    if (cv_service_query_page(req, resp, &q.after, &q.limit) == 0)
        cv_service_reply_read(app, resp, shipping_store_page, &q, NULL, NULL);
}

static json_t *read_shipment(PGconn *conn, const void *order_id, int *found, struct cv_db_err *err)
{
    return shipping_store_get(conn, order_id, found, err);
}

void shipping_http_get(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    const char *order_id = cv_service_path_key(req, resp, "order_id", cv_uuid_valid, "shipment");
    if (order_id)
        cv_service_reply_read(app, resp, read_shipment, order_id, "shipment", "order_id");
}

/* ShipmentDispatched and ShipmentDelivered: the order id and tracking number; a dispatch also
 * names the items (StockItem: sku and quantity). NULL when out of memory. */
static json_t *shipment_event(const json_t *shipment, const char *order_id, const char *type)
{
    json_t *event = json_pack("{s:s, s:O}", "order_id", order_id, "tracking_number",
                              json_object_get(shipment, "tracking_number"));
    if (!event || strcmp(type, "ShipmentDispatched") != 0)
        return event;
    json_t *items = json_array();
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(shipment, "items"), i, item)
        json_array_append_new(items, json_pack("{s:O, s:O}", "sku", json_object_get(item, "sku"),
                                               "quantity", json_object_get(item, "quantity")));
    json_object_set_new(event, "items", items);
    return event;
}

/* In the caller's transaction: moves the shipment of order_id from one status to the next,
 * emits the event and commits. Returns 0 after replying (200, 404, 409), or -1 with err and
 * nothing replied. */
static int advance_in(struct cv_http_response *resp, struct cv_service *svc, PGconn *conn,
                      const char *order_id, const char *from, const char *to,
                      const char *event_type, struct cv_db_err *err)
{
    char status[16];
    int found = shipping_store_status(conn, order_id, status, err);
    if (found <= 0) {
        if (found == 0)
            cv_http_reply_problem(resp, 404, "Not Found", "no such shipment", "order_id");
        return found;
    }
    /* Conditional on the status it leaves; a dispatch also needs the order (items, address),
     * so a shipment whose OrderPlaced has not arrived yet cannot leave. */
    const char *params[] = {order_id, to, from};
    int changed = cv_db_exec_count(conn,
                                   "UPDATE shipments SET status = $2, updated_at = now()"
                                   " WHERE order_id = $1 AND status = $3"
                                   " AND (order_seen OR $2 <> 'DISPATCHED')",
                                   3, params, err);
    if (changed < 0)
        return -1;
    if (!changed) {
        char detail[128];
        if (strcmp(status, from) == 0) {
            /* OrderPlaced is on its way (the orders topic lags the inventory topic): a
             * moment later the same call succeeds. */
            snprintf(detail, sizeof(detail), "the order of this shipment is not known yet");
            cv_http_reply_header(resp, "Retry-After", "1");
        } else
            snprintf(detail, sizeof(detail), "a shipment that is %s cannot become %s", status, to);
        cv_http_reply_problem(resp, 409, "Conflict", detail, "status");
        return 0;
    }
    json_t *s = shipping_store_get(conn, order_id, &found, err);
    json_t *event = s ? shipment_event(s, order_id, event_type) : NULL;
    int rc =
        event ? cv_service_emit(svc, conn, event_type, order_id, event, order_id, NULL, NULL, err)
              : -1;
    json_decref(event);
    if (rc < 0 || cv_db_commit(conn, err) < 0) {
        if (s && !event) {
            cv_db_err_client(err, 0, "out of memory");
        }
        json_decref(s);
        return -1;
    }
    json_object_set_new(s, "status", json_string(to));
    cv_log_info("shipment of order %s %s", order_id, to);
    cv_http_reply_json(resp, 200, s);
    return 0;
}

/* Moves a shipment from one status to the next and emits the event, in one transaction. */
static void advance(struct cv_http_request *req, struct cv_http_response *resp,
                    struct cv_service *svc, const char *from, const char *to,
                    const char *event_type)
{
    const char *order_id = cv_service_path_key(req, resp, "order_id", cv_uuid_valid, "shipment");
    if (!order_id)
        return;
    PGconn *conn = cv_service_db_acquire(svc, resp);
    if (!conn)
        return;
    cv_log_set_context(order_id, NULL);
    struct cv_db_err err;
    if (cv_db_begin(conn, &err) < 0 ||
        advance_in(resp, svc, conn, order_id, from, to, event_type, &err) < 0)
        cv_service_reply_db_error(resp, &err);
    cv_db_rollback(conn); /* what was not committed */
    cv_log_set_context(NULL, NULL);
    cv_service_db_release(svc, conn);
}

void shipping_http_dispatch(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    advance(req, resp, app, "SCHEDULED", "DISPATCHED", "ShipmentDispatched");
}

void shipping_http_deliver(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    advance(req, resp, app, "DISPATCHED", "DELIVERED", "ShipmentDelivered");
}
