/* The order's status follows the inventory and shipping events. Status only moves forward:
 * each event names the statuses it may move the order from, so a late or repeated event (and
 * any event after REJECTED or CANCELLED) changes nothing. Events from the two topics can come
 * in any order; e.g. ShipmentScheduled may arrive before StockReserved, and then the order
 * goes straight to SHIPMENT_SCHEDULED and the later StockReserved finds nothing to do.
 *
 * A cancellation is decided by shipping: a CANCELLING order leaves that status only on
 * shipping's answer (ShipmentCancelled -> CANCELLED; or the goods left: ShipmentDispatched /
 * ShipmentDelivered, with ShipmentCancellationRefused recorded beside). StockRejected does not
 * leave CANCELLING: shipping always answers a CANCELLING order, since the shipment of a
 * rejected order is cancelled too, so every arrival order of the same events ends alike. */

#include "cv/event.h"
#include "cv/log.h"
#include "order.h"

/* Logs what a handler did to the order: changed rows, or -1 with err (the handler's result). */
static enum cv_handler_result applied(const struct cv_event_call *call, int changed,
                                      const struct cv_db_err *err)
{
    if (changed < 0)
        return cv_event_db_failure(call, err);
    if (changed)
        cv_log_info("order %s: %s applied", call->order_id, call->ev->type);
    else
        cv_log_debug("order %s: %s changes nothing", call->order_id, call->ev->type);
    return CV_HANDLED;
}

/* A status transition of the table: to the row's status from one of its statuses, with the
 * event's reason when it has one (StockRejected). */
static enum cv_handler_result on_transition(PGconn *conn, const struct cv_event_call *call)
{
    const char *why = json_string_value(json_object_get(call->ev->data, "reason"));
    struct cv_db_err err;
    int changed =
        order_store_advance(conn, call->order_id, call->route->to, call->route->from, why, &err);
    return applied(call, changed, &err);
}

/* Shipping's answer to a cancellation, which carries a reason, written by write. */
static enum cv_handler_result on_answer(PGconn *conn, const struct cv_event_call *call,
                                        int (*write)(PGconn *, const char *, const char *,
                                                     struct cv_db_err *))
{
    const char *why = cv_event_string(call->ev, "reason", call->reason, call->reason_size);
    if (!why)
        return CV_REJECT;
    struct cv_db_err err;
    return applied(call, write(conn, call->order_id, why, &err), &err);
}

static enum cv_handler_result on_shipment_cancelled(PGconn *conn, const struct cv_event_call *call)
{
    return on_answer(conn, call, order_store_shipment_cancelled);
}

static enum cv_handler_result on_cancellation_refused(PGconn *conn,
                                                      const struct cv_event_call *call)
{
    return on_answer(conn, call, order_store_cancellation_refused);
}

/* StockReleased and StockAdjusted move no order: they have no row. */
static const struct cv_event_route routes[] = {
    {"StockReserved", on_transition, "CONFIRMED", "{PENDING}", "items"},
    {"StockRejected", on_transition, "REJECTED", "{PENDING}", NULL},
    {"ShipmentScheduled", on_transition, "SHIPMENT_SCHEDULED", "{PENDING,CONFIRMED}", NULL},
    {"ShipmentDispatched", on_transition, "DISPATCHED",
     "{PENDING,CONFIRMED,SHIPMENT_SCHEDULED,CANCELLING}", "items"},
    {"ShipmentDelivered", on_transition, "DELIVERED",
     "{PENDING,CONFIRMED,SHIPMENT_SCHEDULED,CANCELLING,DISPATCHED}", NULL},
    {"ShipmentCancelled", on_shipment_cancelled, "CANCELLED", "{CANCELLING}", NULL},
    /* The cancellation (not the order) leaves 'requested' for 'refused'. */
    {"ShipmentCancellationRefused", on_cancellation_refused, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

enum cv_handler_result order_on_event(struct cv_service *svc, PGconn *conn,
                                      const struct cv_event *ev, char *reason, size_t reason_size)
{
    return cv_event_dispatch(routes, NULL, svc, conn, ev, reason, reason_size);
}
