/* The order's state machine under every interleaving: inventory's and shipping's events of one
 * order in random permutations, applied by two concurrent appliers, end in the same order
 * whatever the arrival order (tests/services/statemachine.h). The order emits nothing from
 * its consumer. */
#include "events.c"
#include "store.c"
#include "saga_metrics.c"

#include "services/statemachine.h"

static struct sm_event *ev(const char *type, const char *topic, const char *oid, json_t *data)
{
    json_object_set_new(data, "order_id", json_string(oid));
    return sm_event_new(type, topic, oid, data);
}

static struct sm_event *stock_reserved(const char *oid)
{
    return ev("StockReserved", "inventory", oid,
              json_pack("{s:[{s:s, s:i}]}", "items", "sku", "SM", "quantity", 1));
}

static struct sm_event *stock_rejected(const char *oid)
{
    return ev("StockRejected", "inventory", oid,
              json_pack("{s:s, s:[{s:s, s:i, s:i}]}", "reason", "insufficient stock: SM",
                        "shortages", "sku", "SM", "requested", 1, "available", 0));
}

static struct sm_event *scheduled(const char *oid)
{
    return ev("ShipmentScheduled", "shipments", oid,
              json_pack("{s:s, s:s, s:I}", "carrier", "DHL", "tracking_number", "CV1", "eta",
                        (json_int_t)1717243200123LL));
}

static struct sm_event *cancelled(const char *oid, const char *why)
{
    return ev("ShipmentCancelled", "shipments", oid, json_pack("{s:s}", "reason", why));
}

static struct sm_event *dispatched(const char *oid)
{
    return ev("ShipmentDispatched", "shipments", oid,
              json_pack("{s:s, s:[{s:s, s:i}]}", "tracking_number", "CV1", "items", "sku", "SM",
                        "quantity", 1));
}

static struct sm_event *delivered(const char *oid)
{
    return ev("ShipmentDelivered", "shipments", oid, json_pack("{s:s}", "tracking_number", "CV1"));
}

static struct sm_event *refused(const char *oid)
{
    return ev("ShipmentCancellationRefused", "shipments", oid,
              json_pack("{s:s, s:s}", "status", "DISPATCHED", "reason", "already dispatched"));
}

/* A PENDING order, CANCELLING when the customer asked to cancel it. */
static void prepare(PGconn *conn, const char *oid, int cancel)
{
    const char *params[] = {oid};
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO orders (id, customer_id, status, items, total_cents)"
                                 " VALUES ($1, 'sm', 'PENDING', '[]', 0)",
                                 1, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    struct cv_db_err err;
    if (cancel)
        ck_assert_int_eq(order_store_request_cancel(conn, oid, "cancelled by customer", &err), 1);
}

#define STATE_SQL                                                                                  \
    "SELECT concat_ws('|', status, reason, cancellation_status, cancellation_reason,"              \
    " shipment_cancelled) FROM orders WHERE id = $1"

static void scenario(const char *name, sm_builder build, const char *want)
{
    static const struct sm_emits nothing[] = {
        {"OrderCancellationRequested", 0, 0}, {"OrderPlaced", 0, 0}, {NULL, 0, 0}};
    sm_scenario(name, STATE_SQL, build, want, nothing, NULL);
}

static size_t build_delivered(PGconn *conn, const char *oid, struct sm_event **e)
{
    prepare(conn, oid, 0);
    e[0] = stock_reserved(oid);
    e[1] = scheduled(oid);
    e[2] = dispatched(oid);
    e[3] = delivered(oid);
    return 4;
}

START_TEST(test_forward_only)
{
    scenario("reserved+scheduled+dispatched+delivered", build_delivered, "DELIVERED|f");
}
END_TEST

static size_t build_cancelled(PGconn *conn, const char *oid, struct sm_event **e)
{
    prepare(conn, oid, 1);
    e[0] = stock_reserved(oid);
    e[1] = scheduled(oid);
    e[2] = cancelled(oid, "cancelled by customer");
    return 3;
}

START_TEST(test_cancelling_ends_cancelled)
{
    scenario("cancelling: reserved+scheduled+cancelled", build_cancelled,
             "CANCELLED|cancelled by customer|accepted|t");
}
END_TEST

static size_t build_rejected_cancelling(PGconn *conn, const char *oid, struct sm_event **e)
{
    prepare(conn, oid, 1);
    e[0] = stock_rejected(oid);
    e[1] = cancelled(oid, "stock rejected");
    return 2;
}

START_TEST(test_cancelling_and_rejected_ends_cancelled)
{
    /* Shipping always answers a CANCELLING order (its shipment is cancelled for the rejection
     * or for the request), so StockRejected does not race that answer. */
    scenario("cancelling: rejected+cancelled", build_rejected_cancelling,
             "CANCELLED|stock rejected|accepted|t");
}
END_TEST

static size_t build_rejected(PGconn *conn, const char *oid, struct sm_event **e)
{
    prepare(conn, oid, 0);
    e[0] = stock_rejected(oid);
    e[1] = cancelled(oid, "stock rejected");
    return 2;
}

START_TEST(test_rejected)
{
    scenario("rejected+cancelled", build_rejected, "REJECTED|insufficient stock: SM|t");
}
END_TEST

static size_t build_refused(PGconn *conn, const char *oid, struct sm_event **e)
{
    prepare(conn, oid, 1);
    e[0] = stock_reserved(oid);
    e[1] = scheduled(oid);
    e[2] = dispatched(oid);
    e[3] = refused(oid);
    e[4] = delivered(oid);
    return 5;
}

START_TEST(test_refused_follows_the_shipment)
{
    scenario("cancelling: dispatched+refused+delivered", build_refused,
             "DELIVERED|refused|already dispatched|f");
}
END_TEST

int main(void)
{
    const TTest *tests[] = {test_forward_only,
                            test_cancelling_ends_cancelled,
                            test_cancelling_and_rejected_ends_cancelled,
                            test_rejected,
                            test_refused_follows_the_shipment,
                            NULL};
    return sm_main("order", "orders", order_on_event, NULL, tests);
}
