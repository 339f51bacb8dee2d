/* Shipping's reactions to orders and stock decisions. Events of the orders and inventory topics
 * come in any order (StockReserved can overtake the OrderPlaced that caused it), so each
 * handler works from whatever the shipment row holds, creating it when it is missing, and a
 * status only moves forward. The items stored are those of OrderPlaced whenever it has been
 * seen, so every interleaving ends in the same row. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/log.h"
#include "shipping.h"

#define DELIVERY_DAYS 2

static const char *const carriers[] = {"DHL", "UPS", "FedEx", "PostNL"};

static enum cv_handler_result on_order_placed(PGconn *conn, const struct cv_event *ev,
                                              const char *order_id, char *reason,
                                              size_t reason_size)
{
    char *items = json_dumps(json_object_get(ev->data, "items"), JSON_COMPACT);
    json_t *addr = json_object_get(ev->data, "shipping_address");
    char *address = json_is_object(addr) ? json_dumps(addr, JSON_COMPACT) : NULL;
    const char *params[] = {order_id, items, address};
    struct cv_db_err err;
    int rc = cv_db_exec(conn,
                        "INSERT INTO shipments (order_id, status, items, shipping_address,"
                        " order_seen) VALUES ($1, 'PENDING', $2, $3, true)"
                        " ON CONFLICT (order_id) DO UPDATE SET items = EXCLUDED.items,"
                        " shipping_address = EXCLUDED.shipping_address, order_seen = true,"
                        " updated_at = now()",
                        3, params, &err);
    free(items);
    free(address);
    if (rc < 0)
        return cv_service_db_failure(&err, reason, reason_size);
    return CV_HANDLED;
}

/* Writes the shipment's new status (creating the row if needed), with items from the event only
 * for a row created here, and emits the matching event. */
static enum cv_handler_result move_to(struct cv_service *svc, PGconn *conn,
                                      const struct cv_event *ev, const char *order_id,
                                      const char *status, const char *why, char *reason,
                                      size_t reason_size)
{
    struct cv_db_err err;
    int scheduled = strcmp(status, "SCHEDULED") == 0;
    char carrier[16] = "", tracking[32] = "", eta[24] = "";
    if (scheduled) {
        /* Derived from the order id and the reservation's time: the same whichever replica,
         * whichever order the events came in. */
        int h = isdigit((unsigned char)order_id[0]) ? order_id[0] - '0' : tolower(order_id[0]) - 'a' + 10;
        snprintf(carrier, sizeof(carrier), "%s", carriers[h % 4]);
        size_t t = snprintf(tracking, sizeof(tracking), "CV");
        for (const char *p = order_id; *p && t < 14; p++)
            if (*p != '-')
                tracking[t++] = (char)toupper((unsigned char)*p);
        tracking[t] = '\0';
        json_int_t at = json_integer_value(
            json_object_get(json_object_get(ev->data, "metadata"), "occurred_at"));
        snprintf(eta, sizeof(eta), "%lld",
                 (long long)(at + DELIVERY_DAYS * 24LL * 3600 * 1000));
    }
    const json_t *ev_items = json_object_get(ev->data, "items");
    char *items = ev_items ? json_dumps(ev_items, JSON_COMPACT) : strdup("[]");
    const char *params[] = {order_id, status, why, scheduled ? carrier : NULL,
                            scheduled ? tracking : NULL, scheduled ? eta : NULL, items};
    int rc = cv_db_exec(
        conn,
        "INSERT INTO shipments (order_id, status, reason, carrier, tracking_number, eta, items)"
        " VALUES ($1, $2, $3, $4, $5, to_timestamp($6::bigint / 1000.0), $7)"
        " ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status,"
        " reason = EXCLUDED.reason, carrier = EXCLUDED.carrier,"
        " tracking_number = EXCLUDED.tracking_number, eta = EXCLUDED.eta, updated_at = now()",
        7, params, &err);
    free(items);
    if (rc < 0)
        return cv_service_db_failure(&err, reason, reason_size);

    json_t *event;
    if (scheduled)
        event = json_pack("{s:s, s:s, s:s, s:I}", "order_id", order_id, "carrier", carrier,
                          "tracking_number", tracking, "eta", (json_int_t)atoll(eta));
    else
        event = json_pack("{s:s, s:s}", "order_id", order_id, "reason", why);
    rc = cv_service_emit(svc, conn, scheduled ? "ShipmentScheduled" : "ShipmentCancelled",
                         order_id, event, order_id, ev, NULL, &err);
    json_decref(event);
    if (rc < 0)
        return cv_service_db_failure(&err, reason, reason_size);
    cv_log_info("shipment of order %s %s", order_id, scheduled ? "scheduled" : "cancelled");
    return CV_HANDLED;
}

enum cv_handler_result shipping_on_event(struct cv_service *svc, PGconn *conn,
                                         const struct cv_event *ev, char *reason,
                                         size_t reason_size)
{
    int placed = strcmp(ev->type, "OrderPlaced") == 0;
    int order_cancelled = strcmp(ev->type, "OrderCancelled") == 0;
    int reserved = strcmp(ev->type, "StockReserved") == 0;
    int rejected = strcmp(ev->type, "StockRejected") == 0;
    if (!placed && !order_cancelled && !reserved && !rejected)
        return CV_HANDLED;
    const char *order_id = json_string_value(json_object_get(ev->data, "order_id"));
    if (!order_id) {
        snprintf(reason, reason_size, "%s without order_id", ev->type);
        return CV_REJECT;
    }
    cv_log_set_context(order_id, ev->event_id);
    if (placed)
        return on_order_placed(conn, ev, order_id, reason, reason_size);

    struct cv_db_err err;
    char status[16];
    if (shipment_status(conn, order_id, status, &err) < 0)
        return cv_service_db_failure(&err, reason, reason_size);
    int open = !status[0] || strcmp(status, "PENDING") == 0;
    if (reserved && open)
        return move_to(svc, conn, ev, order_id, "SCHEDULED", NULL, reason, reason_size);
    if (rejected && open)
        return move_to(svc, conn, ev, order_id, "CANCELLED", "stock rejected", reason,
                       reason_size);
    if (order_cancelled && (open || strcmp(status, "SCHEDULED") == 0))
        return move_to(svc, conn, ev, order_id, "CANCELLED", "order cancelled", reason,
                       reason_size);
    if (order_cancelled && strcmp(status, "CANCELLED") != 0)
        cv_log_warn("order %s cancelled while its shipment is %s: not cancelled", order_id,
                    status);
    return CV_HANDLED;
}
