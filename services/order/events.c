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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/event.h"
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
    {"ShipmentDispatched", "DISPATCHED", "{PENDING,CONFIRMED,SHIPMENT_SCHEDULED,CANCELLING}"},
    {"ShipmentDelivered", "DELIVERED",
     "{PENDING,CONFIRMED,SHIPMENT_SCHEDULED,CANCELLING,DISPATCHED}"},
};

/* Applies ShipmentCancelled or ShipmentCancellationRefused: returns rows changed or -1. */
static int apply_answer(PGconn *conn, const struct cv_event *ev, const char *order_id,
                        const char *why, struct cv_db_err *err)
{
    const char *params[] = {order_id, why};
    PGresult *res;
    if (strcmp(ev->type, "ShipmentCancelled") == 0)
        /* Recorded once; ends a requested cancellation. A shipment cancelled for rejected
         * stock leaves a PENDING order to StockRejected. */
        res = cv_db_query(conn,
                          "UPDATE orders SET shipment_cancelled = true,"
                          " status = CASE WHEN status = 'CANCELLING' THEN 'CANCELLED'"
                          "  ELSE status END,"
                          " reason = CASE WHEN status = 'CANCELLING' THEN $2 ELSE reason END,"
                          " cancellation_status = CASE WHEN status = 'CANCELLING'"
                          "  THEN 'accepted' ELSE cancellation_status END,"
                          " updated_at = now()"
                          " WHERE id = $1 AND NOT shipment_cancelled"
                          " RETURNING status,"
                          " extract(epoch FROM clock_timestamp() - created_at)",
                          2, params, err);
    else
        res = cv_db_query(conn,
                          "UPDATE orders SET cancellation_status = 'refused',"
                          " cancellation_reason = $2, updated_at = now()"
                          " WHERE id = $1 AND cancellation_status = 'requested'",
                          2, params, err);
    if (!res)
        return -1;
    int changed = atoi(PQcmdTuples(res));
    /* Only a CANCELLING order becomes CANCELLED here (the row was not shipment_cancelled). */
    if (changed > 0 && PQnfields(res) == 2 && strcmp(PQgetvalue(res, 0, 0), "CANCELLED") == 0)
        order_saga_observe("CANCELLED", atof(PQgetvalue(res, 0, 1)));
    PQclear(res);
    return changed;
}

enum cv_handler_result order_on_event(struct cv_service *svc, PGconn *conn,
                                      const struct cv_event *ev, char *reason, size_t reason_size)
{
    const struct transition *t = NULL;
    for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++)
        if (strcmp(ev->type, transitions[i].event_type) == 0)
            t = &transitions[i];
    int answer = strcmp(ev->type, "ShipmentCancelled") == 0 ||
                 strcmp(ev->type, "ShipmentCancellationRefused") == 0;
    if (!t && !answer)
        return CV_HANDLED; /* StockReleased, StockAdjusted: no status */

    const char *order_id = cv_event_order_id(ev, reason, reason_size);
    if (!order_id)
        return CV_REJECT;
    if ((strcmp(ev->type, "StockReserved") == 0 || strcmp(ev->type, "ShipmentDispatched") == 0) &&
        cv_event_items_valid(ev, "items", 1, reason, reason_size) < 0)
        return CV_REJECT;
    cv_log_set_context(order_id, ev->event_id);
    const char *why = json_string_value(json_object_get(ev->data, "reason"));
    if (answer && !why) {
        snprintf(reason, reason_size, "%s without reason", ev->type);
        return CV_REJECT;
    }
    struct cv_db_err err;
    int changed = answer ? apply_answer(conn, ev, order_id, why, &err)
                         : order_store_advance(conn, order_id, t->to, t->from, why, &err);
    if (changed < 0)
        return cv_service_db_failure(&err, reason, reason_size);
    if (changed)
        cv_log_info("order %s: %s applied", order_id, ev->type);
    else
        cv_log_debug("order %s: %s changes nothing", order_id, ev->type);
    return CV_HANDLED;
}
