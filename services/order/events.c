/* The order's status follows the inventory and shipping events. Status only moves forward:
 * each event names the statuses it may move the order from, so a late or repeated event (and
 * any event after REJECTED or CANCELLED) changes nothing. Events from the two topics can come
 * in any order; e.g. ShipmentScheduled may arrive before StockReserved, and then the order
 * goes straight to SHIPMENT_SCHEDULED and the later StockReserved finds nothing to do. */
#include <stdio.h>
#include <string.h>

#include "cv/log.h"
#include "order.h"

struct transition {
    const char *event_type;
    const char *to;
    const char *from; /* SQL array of the statuses it may leave */
};

static const struct transition transitions[] = {
    {"StockReserved", "CONFIRMED", "{PENDING}"},
    {"StockRejected", "REJECTED", "{PENDING}"},
    {"ShipmentScheduled", "SHIPMENT_SCHEDULED", "{PENDING,CONFIRMED}"},
    {"ShipmentDispatched", "DISPATCHED", "{PENDING,CONFIRMED,SHIPMENT_SCHEDULED}"},
    {"ShipmentDelivered", "DELIVERED", "{PENDING,CONFIRMED,SHIPMENT_SCHEDULED,DISPATCHED}"},
};

enum cv_handler_result order_on_event(struct cv_service *svc, PGconn *conn,
                                      const struct cv_event *ev, char *reason,
                                      size_t reason_size)
{
    const struct transition *t = NULL;
    for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++)
        if (strcmp(ev->type, transitions[i].event_type) == 0)
            t = &transitions[i];
    if (!t)
        return CV_HANDLED; /* StockReleased, StockAdjusted, ShipmentCancelled: no status */

    const char *order_id = json_string_value(json_object_get(ev->data, "order_id"));
    if (!order_id) {
        snprintf(reason, reason_size, "%s without order_id", ev->type);
        return CV_REJECT;
    }
    cv_log_set_context(order_id, ev->event_id);
    const char *why = json_string_value(json_object_get(ev->data, "reason"));
    struct cv_db_err err;
    int changed = order_store_advance(conn, order_id, t->to, t->from, why, &err);
    if (changed < 0)
        return cv_service_db_failure(&err, reason, reason_size);
    if (changed)
        cv_log_info("order %s is %s", order_id, t->to);
    else
        cv_log_debug("order %s: %s changes nothing", order_id, ev->type);
    return CV_HANDLED;
}
