/* Shipping's state machine under every interleaving: the events of one order in random
 * permutations, applied by two concurrent appliers, end in the same shipment and emit each
 * outcome once (tests/services/statemachine.h). */
#include "events.c"
#include "store.c"

#include "services/statemachine.h"

#define SKU "SM-WIDGET"

static struct sm_event *placed(const char *oid)
{
    return sm_event_new("OrderPlaced", "orders", oid,
                        json_pack("{s:s, s:s, s:[{s:s, s:i, s:i}], s:i, s:{s:s}}", "order_id", oid,
                                  "customer_id", "sm", "items", "sku", SKU, "quantity", 2,
                                  "unit_price_cents", 100, "total_cents", 200, "shipping_address",
                                  "city", "Delft"));
}

static struct sm_event *reserved(const char *oid)
{
    return sm_event_new(
        "StockReserved", "inventory", oid,
        json_pack("{s:s, s:[{s:s, s:i}]}", "order_id", oid, "items", "sku", SKU, "quantity", 2));
}

static struct sm_event *rejected(const char *oid)
{
    return sm_event_new("StockRejected", "inventory", oid,
                        json_pack("{s:s, s:s, s:[{s:s, s:i, s:i}]}", "order_id", oid, "reason",
                                  "insufficient stock", "shortages", "sku", SKU, "requested", 2,
                                  "available", 0));
}

static struct sm_event *request(const char *oid, const char *type)
{
    return sm_event_new(
        type, "orders", oid,
        json_pack("{s:s, s:s}", "order_id", oid, "reason", "cancelled by customer"));
}

#define STATE_SQL                                                                                  \
    "SELECT concat_ws('|', status, order_seen, items::text, shipping_address::text,"               \
    " cancellation_refused) FROM shipments WHERE order_id = $1"

static size_t build_cancel(PGconn *conn, const char *oid, struct sm_event **e)
{
    e[0] = placed(oid);
    e[1] = reserved(oid);
    e[2] = request(oid, "OrderCancellationRequested");
    return 3;
}

START_TEST(test_cancel_request_against_reservation)
{
    /* The request wins whenever it comes: before StockReserved the shipment is never
     * scheduled, after it the scheduled shipment is cancelled. */
    static const struct sm_emits expect[] = {{"ShipmentCancelled", 1, 1},
                                             {"ShipmentScheduled", 0, 1},
                                             {"ShipmentCancellationRefused", 0, 0},
                                             {NULL, 0, 0}};
    sm_scenario(
        "placed+reserved+request", STATE_SQL, build_cancel,
        "CANCELLED|t|[{\"sku\": \"SM-WIDGET\", \"quantity\": 2, \"unit_price_cents\": 100}]|"
        "{\"city\": \"Delft\"}",
        expect, NULL);
}
END_TEST

static size_t build_rejected(PGconn *conn, const char *oid, struct sm_event **e)
{
    e[0] = placed(oid);
    e[1] = rejected(oid);
    e[2] = request(oid, "OrderCancellationRequested");
    e[3] = request(oid, "OrderCancelled"); /* release 1's request, from an old producer */
    return 4;
}

START_TEST(test_cancel_request_against_rejection)
{
    static const struct sm_emits expect[] = {{"ShipmentCancelled", 1, 1},
                                             {"ShipmentScheduled", 0, 0},
                                             {"ShipmentCancellationRefused", 0, 0},
                                             {NULL, 0, 0}};
    sm_scenario(
        "placed+rejected+requests", STATE_SQL, build_rejected,
        "CANCELLED|t|[{\"sku\": \"SM-WIDGET\", \"quantity\": 2, \"unit_price_cents\": 100}]|"
        "{\"city\": \"Delft\"}",
        expect, NULL);
}
END_TEST

static size_t build_scheduled(PGconn *conn, const char *oid, struct sm_event **e)
{
    e[0] = placed(oid);
    e[1] = reserved(oid);
    e[2] = reserved(oid); /* the same decision again under another id */
    e[3] = placed(oid);
    return 4;
}

START_TEST(test_schedule_once)
{
    static const struct sm_emits expect[] = {
        {"ShipmentScheduled", 1, 1}, {"ShipmentCancelled", 0, 0}, {NULL, 0, 0}};
    sm_scenario(
        "placed+reserved twice", STATE_SQL, build_scheduled,
        "SCHEDULED|t|[{\"sku\": \"SM-WIDGET\", \"quantity\": 2, \"unit_price_cents\": 100}]|"
        "{\"city\": \"Delft\"}",
        expect, NULL);
}
END_TEST

/* The shipment is dispatched first (as POST /shipments/{id}/dispatch does); then requests,
 * old and new, and redeliveries arrive in any order. */
static size_t build_dispatched(PGconn *conn, const char *oid, struct sm_event **e)
{
    struct sm_event *first[] = {placed(oid), reserved(oid)};
    char error[512] = "";
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(sm_apply(conn, &sm_svc, first[i], error, sizeof(error)) == 0, "%s", error);
        sm_event_free(first[i]);
    }
    const char *params[] = {oid};
    PGresult *res = PQexecParams(conn,
                                 "UPDATE shipments SET status = 'DISPATCHED'"
                                 " WHERE order_id = $1 AND status = 'SCHEDULED' AND order_seen",
                                 1, NULL, params, NULL, NULL, 0);
    ck_assert_str_eq(PQcmdTuples(res), "1");
    PQclear(res);
    e[0] = request(oid, "OrderCancellationRequested");
    e[1] = request(oid, "OrderCancelled");
    e[2] = reserved(oid);
    e[3] = placed(oid);
    e[4] = request(oid, "OrderCancellationRequested");
    return 5;
}

START_TEST(test_refused_once_after_dispatch)
{
    static const struct sm_emits expect[] = {{"ShipmentCancellationRefused", 1, 1},
                                             {"ShipmentCancelled", 0, 0},
                                             {"ShipmentScheduled", 1, 1},
                                             {NULL, 0, 0}};
    sm_scenario(
        "dispatched+requests", STATE_SQL, build_dispatched,
        "DISPATCHED|t|[{\"sku\": \"SM-WIDGET\", \"quantity\": 2, \"unit_price_cents\": 100}]|"
        "{\"city\": \"Delft\"}|already dispatched",
        expect, NULL);
}
END_TEST

int main(void)
{
    const TTest *tests[] = {test_cancel_request_against_reservation,
                            test_cancel_request_against_rejection, test_schedule_once,
                            test_refused_once_after_dispatch, NULL};
    return sm_main("shipping", "shipments", shipping_on_event, NULL, tests);
}
