/* Inventory's state machine under every interleaving: the orders' and shipments' events of one
 * order in random permutations, applied by two concurrent appliers (each event with on_batch's
 * locks, as the runtime does), end in the same reservation and stock and emit each outcome
 * once: a reservation is released only if it was made, stock is shipped once, and
 * available + reserved + shipped never changes (tests/services/statemachine.h). */
#include "events.c"

#include "services/statemachine.h"

#define START 10

static char sku[40];

static struct sm_event *placed(const char *oid, int qty)
{
    return sm_event_new("OrderPlaced", "orders", oid,
                        json_pack("{s:s, s:s, s:[{s:s, s:i, s:i}], s:i, s:n}", "order_id", oid,
                                  "customer_id", "sm", "items", "sku", sku, "quantity", qty,
                                  "unit_price_cents", 1, "total_cents", qty, "shipping_address"));
}

static struct sm_event *shipment_cancelled(const char *oid)
{
    return sm_event_new(
        "ShipmentCancelled", "shipments", oid,
        json_pack("{s:s, s:s}", "order_id", oid, "reason", "cancelled by customer"));
}

static struct sm_event *shipment_dispatched(const char *oid, int qty)
{
    return sm_event_new("ShipmentDispatched", "shipments", oid,
                        json_pack("{s:s, s:s, s:[{s:s, s:i}]}", "order_id", oid, "tracking_number",
                                  "CV1", "items", "sku", sku, "quantity", qty));
}

static struct sm_event *order_cancelled_v1(const char *oid)
{
    return sm_event_new("OrderCancelled", "orders", oid,
                        json_pack("{s:s, s:s}", "order_id", oid, "reason", "old producer"));
}

/* A SKU of its own for each run, START units available. */
static void new_sku(PGconn *conn, const char *oid)
{
    snprintf(sku, sizeof(sku), "SM-%.8s", oid);
    const char *params[] = {sku};
    PGresult *res =
        PQexecParams(conn, "INSERT INTO stock (sku, name, available) VALUES ($1, $1, 10)", 1, NULL,
                     params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
}

#define STATE_SQL                                                                                  \
    "SELECT concat_ws('|', r.status, s.available, s.reserved, s.shipped)"                          \
    " FROM reservations r, stock s"                                                                \
    " WHERE r.order_id = $1::uuid AND s.sku = 'SM-' || left($1::text, 8)"

/* StockReleased is emitted exactly as often as StockReserved was. */
static void released_follows(PGconn *conn, const char *oid)
{
    ck_assert_int_eq(sm_emitted(conn, oid, "StockReleased"),
                     sm_emitted(conn, oid, "StockReserved"));
}

static size_t build_cancelled(PGconn *conn, const char *oid, struct sm_event **e)
{
    new_sku(conn, oid);
    e[0] = placed(oid, 3);
    e[1] = shipment_cancelled(oid);
    e[2] = placed(oid, 3); /* the same order again under another id */
    e[3] = order_cancelled_v1(oid);
    return 4;
}

START_TEST(test_cancelled_shipment_releases_once)
{
    /* Whether the shipment's cancellation comes before the order (never reserved) or after
     * (reserved, then released), nothing stays reserved. */
    static const struct sm_emits expect[] = {
        {"StockReserved", 0, 1}, {"StockReleased", 0, 1}, {"StockRejected", 0, 0}, {NULL, 0, 0}};
    sm_scenario("placed+shipment cancelled", STATE_SQL, build_cancelled, "RELEASED|10|0|0", expect,
                released_follows);
}
END_TEST

static size_t build_reserved(PGconn *conn, const char *oid, struct sm_event **e)
{
    new_sku(conn, oid);
    e[0] = placed(oid, 3);
    e[1] = placed(oid, 3);
    e[2] = order_cancelled_v1(oid); /* release 1: the release follows the shipment now */
    return 3;
}

START_TEST(test_reserved_once)
{
    static const struct sm_emits expect[] = {
        {"StockReserved", 1, 1}, {"StockReleased", 0, 0}, {NULL, 0, 0}};
    sm_scenario("placed twice+v1 cancel", STATE_SQL, build_reserved, "RESERVED|7|3|0", expect,
                NULL);
}
END_TEST

/* Reserved first (shipping only dispatches a scheduled shipment, so the reservation exists
 * before any ShipmentDispatched); then dispatches, redeliveries and an old cancel race. */
static size_t build_dispatched(PGconn *conn, const char *oid, struct sm_event **e)
{
    new_sku(conn, oid);
    struct sm_event *first = placed(oid, 3);
    char error[512] = "";
    ck_assert_msg(sm_apply(conn, &sm_svc, first, error, sizeof(error)) == 0, "%s", error);
    sm_event_free(first);
    e[0] = shipment_dispatched(oid, 3);
    e[1] = shipment_dispatched(oid, 3);
    e[2] = placed(oid, 3);
    e[3] = order_cancelled_v1(oid);
    return 4;
}

START_TEST(test_shipped_once)
{
    static const struct sm_emits expect[] = {
        {"StockReserved", 1, 1}, {"StockReleased", 0, 0}, {NULL, 0, 0}};
    sm_scenario("reserved+dispatched twice", STATE_SQL, build_dispatched, "SHIPPED|7|0|3", expect,
                NULL);
}
END_TEST

int main(void)
{
    const TTest *tests[] = {test_cancelled_shipment_releases_once, test_reserved_once,
                            test_shipped_once, NULL};
    return sm_main("inventory", "inventory", inventory_on_event, inventory_on_batch, tests);
}
