/* Checks of consumed events beyond their schema (cv/event.h): order ids, items, fields; and
 * the table dispatch of a service's consumer. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "cv/event.h"
#include "runner.h"

static char reason[256];

static struct cv_event event_of(const char *type, json_t *data)
{
    struct cv_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.data = data;
    return ev;
}

START_TEST(test_order_id)
{
    json_t *good = json_pack("{s:s}", "order_id", "0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70");
    json_t *bad = json_pack("{s:s}", "order_id", "not-a-uuid-0000000000000000000000000");
    json_t *none = json_pack("{s:i}", "order_id", 7);
    struct cv_event ev = event_of("StockReserved", good);
    ck_assert_str_eq(cv_event_order_id(&ev, reason, sizeof(reason)),
                     "0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70");
    ev = event_of("StockReserved", bad);
    ck_assert_ptr_null(cv_event_order_id(&ev, reason, sizeof(reason)));
    ck_assert_str_eq(reason, "StockReserved has a malformed order_id");
    ev = event_of("OrderPlaced", none);
    ck_assert_ptr_null(cv_event_order_id(&ev, reason, sizeof(reason)));
    ck_assert_str_eq(reason, "OrderPlaced without order_id");
    json_decref(good);
    json_decref(bad);
    json_decref(none);
}
END_TEST

/* 0 or -1 for items as JSON text, with the reason left in reason. */
static int items_check(const char *items_json, int nonempty)
{
    json_t *data = json_pack("{s:o}", "items", json_loads(items_json, JSON_ALLOW_NUL, NULL));
    struct cv_event ev = event_of("OrderPlaced", data);
    int rc = cv_event_items_valid(&ev, "items", nonempty, reason, sizeof(reason));
    json_decref(data);
    return rc;
}

START_TEST(test_items)
{
    ck_assert_int_eq(items_check("[{\"sku\": \"A-1\", \"quantity\": 1},"
                                 " {\"sku\": \"B.2_x\", \"quantity\": 1000000}]",
                                 1),
                     0);
    ck_assert_int_eq(items_check("[]", 0), 0);
    ck_assert_int_eq(items_check("[]", 1), -1);
    ck_assert_str_eq(reason, "OrderPlaced has no items");
    ck_assert_int_eq(items_check("[{\"sku\": \"A\", \"quantity\": -4}]", 1), -1);
    ck_assert_str_eq(reason, "OrderPlaced items[0].quantity must be 1 to 1000000");
    ck_assert_int_eq(items_check("[{\"sku\": \"A\", \"quantity\": 1}, {\"sku\": \"A\"}]", 1), -1);
    ck_assert_str_eq(reason, "OrderPlaced items[1].quantity must be 1 to 1000000");
    ck_assert_int_eq(items_check("[{\"sku\": \"A\", \"quantity\": 0}]", 1), -1);
    ck_assert_int_eq(items_check("[{\"sku\": \"A\", \"quantity\": 1000001}]", 1), -1);
    ck_assert_int_eq(items_check("[{\"sku\": \"A\", \"quantity\": 1.5}]", 1), -1);
    ck_assert_int_eq(items_check("[{\"sku\": \"has space\", \"quantity\": 1}]", 1), -1);
    ck_assert_str_eq(reason, "OrderPlaced items[0].sku is not a valid SKU");
    ck_assert_int_eq(items_check("[{\"sku\": \"\", \"quantity\": 1}]", 1), -1);
    ck_assert_int_eq(items_check("[{\"sku\": \"A\\u0000B\", \"quantity\": 1}]", 1), -1);
    ck_assert_str_eq(reason, "OrderPlaced items[0].sku is not a valid SKU");

    json_t *data = json_pack("{s:s}", "order_id", "x");
    struct cv_event ev = event_of("ShipmentDispatched", data);
    ck_assert_int_eq(cv_event_items_valid(&ev, "items", 1, reason, sizeof(reason)), -1);
    ck_assert_str_eq(reason, "ShipmentDispatched without items");
    json_decref(data);
}
END_TEST

START_TEST(test_string_field)
{
    json_t *data = json_pack("{s:s, s:n}", "reason", "changed my mind", "other");
    struct cv_event ev = event_of("OrderCancellationRequested", data);
    ck_assert_str_eq(cv_event_string(&ev, "reason", reason, sizeof(reason)), "changed my mind");
    ck_assert_ptr_null(cv_event_string(&ev, "other", reason, sizeof(reason)));
    ck_assert_str_eq(reason, "OrderCancellationRequested without other");
    json_decref(data);
}
END_TEST

/* Table dispatch: what the handler of a row saw, and a lock standing in for a row lock. */
static const struct cv_event_route *seen_route;
static char seen_order[40], seen_status[16];

static enum cv_handler_result record_call(PGconn *conn, const struct cv_event_call *call)
{
    seen_route = call->route;
    snprintf(seen_order, sizeof(seen_order), "%s", call->order_id);
    snprintf(seen_status, sizeof(seen_status), "%s", call->status);
    return CV_RETRY; /* a result only the handler gives */
}

static int lock_ok(PGconn *conn, const char *order_id, char status[16], struct cv_db_err *err)
{
    snprintf(status, 16, "LOCKED");
    return 1;
}

static int lock_fails(PGconn *conn, const char *order_id, char status[16], struct cv_db_err *err)
{
    memset(err, 0, sizeof(*err));
    snprintf(err->msg, sizeof(err->msg), "no such table");
    return -1;
}

static const struct cv_event_route routes[] = {
    {"OrderPlaced", record_call, NULL, NULL, "items"},
    {"StockRejected", record_call, "REJECTED", "{PENDING}", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static enum cv_handler_result dispatch(const char *type, const char *data_json, cv_event_lock lock)
{
    json_t *data = json_loads(data_json, 0, NULL);
    struct cv_event ev = event_of(type, data);
    seen_route = NULL;
    seen_status[0] = '\0';
    enum cv_handler_result r =
        cv_event_dispatch(routes, lock, NULL, NULL, &ev, reason, sizeof(reason));
    json_decref(data);
    return r;
}

#define ORDER "\"order_id\": \"0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70\""

START_TEST(test_dispatch)
{
    /* A type without a row is handled, and no handler runs. */
    ck_assert_int_eq(dispatch("StockAdjusted", "{" ORDER "}", NULL), CV_HANDLED);
    ck_assert_ptr_null(seen_route);
    /* The row's handler decides, with the order id, the row and the status the lock read. */
    ck_assert_int_eq(dispatch("StockRejected", "{" ORDER "}", lock_ok), CV_RETRY);
    ck_assert_ptr_eq(seen_route, &routes[1]);
    ck_assert_str_eq(seen_order, "0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70");
    ck_assert_str_eq(seen_status, "LOCKED");
    ck_assert_int_eq(dispatch("StockRejected", "{" ORDER "}", NULL), CV_RETRY);
    ck_assert_str_eq(seen_status, "");
    /* Before the handler: the order id, then the items the row names. */
    ck_assert_int_eq(dispatch("StockRejected", "{\"order_id\": \"x\"}", lock_ok), CV_REJECT);
    ck_assert_str_eq(reason, "StockRejected has a malformed order_id");
    ck_assert_ptr_null(seen_route);
    ck_assert_int_eq(dispatch("OrderPlaced", "{" ORDER ", \"items\": []}", NULL), CV_REJECT);
    ck_assert_str_eq(reason, "OrderPlaced has no items");
    ck_assert_ptr_null(seen_route);
    ck_assert_int_eq(dispatch("OrderPlaced",
                              "{" ORDER ", \"items\": [{\"sku\": \"A\", \"quantity\": 1}]}", NULL),
                     CV_RETRY);
    ck_assert_ptr_eq(seen_route, &routes[0]);
    /* A lock that fails with a permanent error rejects the event, before the handler. */
    ck_assert_int_eq(dispatch("StockRejected", "{" ORDER "}", lock_fails), CV_REJECT);
    ck_assert_str_eq(reason, "database: no such table");
    ck_assert_ptr_null(seen_route);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("event checks");
    TCase *tc = tcase_create("event");
    tcase_add_test(tc, test_order_id);
    tcase_add_test(tc, test_items);
    tcase_add_test(tc, test_string_field);
    tcase_add_test(tc, test_dispatch);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
