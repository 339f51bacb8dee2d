/* Shipping's reactions to orders and stock decisions. Events of the orders and inventory topics
 * come in any order (StockReserved can overtake the OrderPlaced that caused it), and with
 * replicas two of them can be applied at the same moment, so every handler first makes sure
 * the shipment row exists (INSERT ... ON CONFLICT DO NOTHING), locks it, and then changes it
 * only from the statuses it may leave (UPDATE ... WHERE status = ANY), emitting its event only
 * when a row really changed. Shipping decides cancellation requests: not dispatched -> the
 * shipment is cancelled; dispatched or delivered -> the request is refused with a reason. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/event.h"
#include "cv/log.h"
#include "shipping.h"

#define DELIVERY_DAYS 2

static const char *const carriers[] = {"DHL", "UPS", "FedEx", "PostNL"};

/* Records the order's items and address, once; the status is not OrderPlaced's to change. */
static enum cv_handler_result on_order_placed(PGconn *conn, const struct cv_event_call *call)
{
    char *items = json_dumps(json_object_get(call->ev->data, "items"), JSON_COMPACT);
    json_t *addr = json_object_get(call->ev->data, "shipping_address");
    char *address = json_is_object(addr) ? json_dumps(addr, JSON_COMPACT) : NULL;
    const char *params[] = {call->order_id, items, address};
    struct cv_db_err err;
    int rc = cv_db_exec_count(conn,
                              "UPDATE shipments SET items = $2, shipping_address = $3,"
                              " order_seen = true, updated_at = now()"
                              " WHERE order_id = $1 AND NOT order_seen",
                              3, params, &err);
    free(items);
    free(address);
    if (rc < 0)
        return cv_event_db_failure(call, &err);
    return CV_HANDLED;
}

/* Schedules a PENDING shipment: carrier, tracking number and ETA derive from the order id and
 * the reservation's time, the same whichever replica, whichever order the events came in. */
static enum cv_handler_result on_stock_reserved(PGconn *conn, const struct cv_event_call *call)
{
    const char *order_id = call->order_id;
    char carrier[16], tracking[32], eta[24];
    int h = isdigit((unsigned char)order_id[0]) ? order_id[0] - '0'
                                                : tolower((unsigned char)order_id[0]) - 'a' + 10;
    snprintf(carrier, sizeof(carrier), "%s", carriers[h % 4]);
    size_t t = (size_t)snprintf(tracking, sizeof(tracking), "CV");
    for (const char *p = order_id; *p && t < 14; p++)
        if (*p != '-')
            tracking[t++] = (char)toupper((unsigned char)*p);
    tracking[t] = '\0';
    json_int_t at = json_integer_value(
        json_object_get(json_object_get(call->ev->data, "metadata"), "occurred_at"));
    json_int_t eta_ms = at + DELIVERY_DAYS * 24LL * 3600 * 1000;
    snprintf(eta, sizeof(eta), "%lld", (long long)eta_ms);
    const char *params[] = {order_id, carrier, tracking, eta, call->route->to, call->route->from};
    struct cv_db_err err;
    int changed =
        cv_db_exec_count(conn,
                         "UPDATE shipments SET status = $5, carrier = $2,"
                         " tracking_number = $3, eta = to_timestamp($4::bigint / 1000.0),"
                         " updated_at = now() WHERE order_id = $1 AND status = ANY($6::text[])",
                         6, params, &err);
    if (changed < 0)
        return cv_event_db_failure(call, &err);
    if (!changed)
        return CV_HANDLED; /* cancelled before (request or rejection): never scheduled */
    json_t *event = json_pack("{s:s, s:s, s:s, s:I}", "order_id", order_id, "carrier", carrier,
                              "tracking_number", tracking, "eta", eta_ms);
    enum cv_handler_result r = cv_event_emit(conn, call, "ShipmentScheduled", event);
    if (r == CV_HANDLED)
        cv_log_info("shipment of order %s scheduled", order_id);
    return r;
}

/* Cancels the shipment if its status is one the route may leave, keeping carrier and tracking
 * number, and emits ShipmentCancelled. *changed says whether it did. */
static enum cv_handler_result cancel(PGconn *conn, const struct cv_event_call *call,
                                     const char *why, int *changed)
{
    const char *order_id = call->order_id;
    const char *params[] = {order_id, call->route->from, why, call->route->to};
    struct cv_db_err err;
    *changed = cv_db_exec_count(conn,
                                "UPDATE shipments SET status = $4, reason = $3,"
                                " updated_at = now()"
                                " WHERE order_id = $1 AND status = ANY($2::text[])",
                                4, params, &err);
    if (*changed < 0)
        return cv_event_db_failure(call, &err);
    if (!*changed)
        return CV_HANDLED;
    json_t *event = json_pack("{s:s, s:s}", "order_id", order_id, "reason", why);
    enum cv_handler_result r = cv_event_emit(conn, call, "ShipmentCancelled", event);
    if (r == CV_HANDLED)
        cv_log_info("shipment of order %s cancelled: %s", order_id, why);
    return r;
}

/* A cancellation request (OrderCancellationRequested, or release 1's OrderCancelled), decided
 * under the row lock the caller holds: cancelled unless the goods left, else refused once. */
static enum cv_handler_result on_cancel_request(PGconn *conn, const struct cv_event_call *call)
{
    const char *order_id = call->order_id, *status = call->status;
    const char *why = cv_event_string(call->ev, "reason", call->reason, call->reason_size);
    if (!why)
        return CV_REJECT;
    int changed;
    enum cv_handler_result r = cancel(conn, call, why, &changed);
    if (r != CV_HANDLED || changed)
        return r;
    int delivered = strcmp(status, "DELIVERED") == 0;
    if (!delivered && strcmp(status, "DISPATCHED") != 0)
        return CV_HANDLED; /* cancelled already: that ShipmentCancelled is the answer */
    const char *refusal = delivered ? "already delivered" : "already dispatched";
    const char *params[] = {order_id, refusal};
    struct cv_db_err err;
    changed = cv_db_exec_count(conn,
                               "UPDATE shipments SET cancellation_refused = $2, updated_at = now()"
                               " WHERE order_id = $1 AND status IN ('DISPATCHED', 'DELIVERED')"
                               " AND cancellation_refused IS NULL",
                               2, params, &err);
    if (changed < 0)
        return cv_event_db_failure(call, &err);
    if (!changed)
        return CV_HANDLED;
    json_t *event =
        json_pack("{s:s, s:s, s:s}", "order_id", order_id, "status", status, "reason", refusal);
    r = cv_event_emit(conn, call, "ShipmentCancellationRefused", event);
    if (r == CV_HANDLED)
        cv_log_info("cancellation of order %s refused: %s", order_id, refusal);
    return r;
}

/* Stock rejected: a shipment not scheduled yet is cancelled (it never will be). */
static enum cv_handler_result on_stock_rejected(PGconn *conn, const struct cv_event_call *call)
{
    int changed;
    return cancel(conn, call, "stock rejected", &changed);
}

/* Every handler runs with the shipment row locked (created PENDING if new): see the top. */
static const struct cv_event_route routes[] = {
    {"OrderPlaced", on_order_placed, NULL, NULL, "items"},
    {"StockReserved", on_stock_reserved, "SCHEDULED", "{PENDING}", "items"},
    {"StockRejected", on_stock_rejected, "CANCELLED", "{PENDING}", NULL},
    {"OrderCancellationRequested", on_cancel_request, "CANCELLED", "{PENDING,SCHEDULED}", NULL},
    {"OrderCancelled", on_cancel_request, "CANCELLED", "{PENDING,SCHEDULED}", NULL}, /* release 1 */
    {NULL, NULL, NULL, NULL, NULL},
};

enum cv_handler_result shipping_on_event(struct cv_service *svc, PGconn *conn,
                                         const struct cv_event *ev, char *reason,
                                         size_t reason_size)
{
    return cv_event_dispatch(routes, shipping_store_lock, svc, conn, ev, reason, reason_size);
}
