/* The outbox, relay, consumer and idempotent-consumer helpers against a real Kafka broker and
 * a real PostgreSQL: events written to the outbox reach the topic and read back equal; a
 * redelivered event is applied once; with the broker stopped, accepted rows wait and are all
 * delivered, in per-key order, once it is back. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cv/avro.h"
#include "cv/db.h"
#include "cv/dedup.h"
#include "cv/embed.h"
#include "cv/kafka.h"
#include "cv/log.h"
#include "cv/outbox.h"
#include "cv/util.h"
#include "testutil.h"

static char conninfo[512];
static PGconn *conn;
static struct cv_kafka_producer *producer;
static char topic[96];

static void setup(void)
{
    cv_log_init("test", CV_LOG_WARN);
    char errstr[512];
    ck_assert_msg(cv_avro_catalog_load(errstr, sizeof(errstr)) == 0, "%s", errstr);
    tu_db_create("outbox", conninfo, sizeof(conninfo));
    struct cv_db_err err;
    conn = cv_db_connect(conninfo, &err);
    ck_assert_msg(conn != NULL, "%s", err.msg);
    ck_assert_msg(cv_db_migrate(conn, cv_common_migrations, &err) == 0, "%s", err.msg);
    producer = cv_kafka_producer_new(tu_brokers(), "test-relay", NULL, errstr, sizeof(errstr));
    ck_assert_msg(producer != NULL, "%s", errstr);
    tu_topic_name("outbox-test", topic, sizeof(topic));
    const char *topics[] = {topic, NULL};
    ck_assert_msg(cv_kafka_create_topics(cv_kafka_producer_handle(producer), topics, 3, 1, 10000,
                                         errstr, sizeof(errstr)) == 0,
                  "%s", errstr);
}

static void teardown(void)
{
    cv_kafka_producer_destroy(producer, 5000);
    PQfinish(conn);
    tu_db_drop("outbox");
    cv_avro_catalog_free();
}

/* An OrderPlaced event with realistic fields; seq goes into customer_id for ordering checks. */
static json_t *sample_event(const char *order_id, int seq)
{
    char event_id[37], customer[32];
    cv_uuid_v4(event_id);
    snprintf(customer, sizeof(customer), "customer-%d", seq);
    return json_pack("{s:{s:s, s:I, s:s, s:s, s:n}, s:s, s:s, s:[{s:s, s:i, s:I}], s:I, s:n}",
                     "metadata", "event_id", event_id, "occurred_at", (json_int_t)cv_now_ms(),
                     "producer", "test", "correlation_id", order_id, "causation_id", "order_id",
                     order_id, "customer_id", customer, "items", "sku", "WIDGET-1", "quantity", 2,
                     "unit_price_cents", (json_int_t)1999, "total_cents", (json_int_t)3998,
                     "shipping_address");
}

/* Encodes event and adds it to the outbox in its own transaction. */
static void add_to_outbox(const json_t *event, const char *key)
{
    unsigned char *value;
    size_t len;
    char errstr[256];
    ck_assert_msg(cv_avro_encode(cv_avro_schema_by_type("OrderPlaced"), event,
                                 CV_AVRO_SINGLE_OBJECT, &value, &len, errstr, sizeof(errstr)) == 0,
                  "%s", errstr);
    struct cv_kafka_header headers[] = {{"ce_type", "conveyor.OrderPlaced", 20}};
    struct cv_db_err err;
    ck_assert(cv_db_begin(conn, &err) == 0);
    ck_assert_msg(cv_outbox_add(conn, topic, key, strlen(key), value, len, headers, 1, &err) == 0,
                  "%s", err.msg);
    ck_assert_msg(cv_db_commit(conn, &err) == 0, "%s", err.msg);
    free(value);
}

static long outbox_rows(void)
{
    struct cv_db_err err;
    PGresult *res = cv_db_query(conn, "SELECT count(*) FROM outbox", 0, NULL, &err);
    ck_assert_msg(res != NULL, "%s", err.msg);
    long n = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

/* Reads until n messages arrived or timeout_s passed; returns how many were read. */
static size_t consume(struct cv_kafka_consumer *c, rd_kafka_message_t **out, size_t n,
                      int timeout_s)
{
    size_t got = 0;
    int64_t deadline = cv_monotonic_ms() + timeout_s * 1000;
    while (got < n && cv_monotonic_ms() < deadline)
        got += cv_kafka_consumer_poll(c, out + got, n - got, 500);
    return got;
}

/* A relay publishing batches of up to batch rows with the shared producer. */
static struct cv_outbox_relay *relay_start(unsigned batch)
{
    char errstr[256];
    struct cv_outbox_relay *relay =
        cv_outbox_relay_start(conninfo, producer, batch, 0, errstr, sizeof(errstr));
    ck_assert_msg(relay != NULL, "%s", errstr);
    return relay;
}

/* Waits (at most 10 s) until relay holds the lock and publishes. */
static void await_active(struct cv_outbox_relay *relay)
{
    int64_t deadline = cv_monotonic_ms() + 10000;
    while (!cv_outbox_relay_active(relay) && cv_monotonic_ms() < deadline)
        cv_sleep_ms(50, NULL);
    ck_assert(cv_outbox_relay_active(relay));
}

static struct cv_kafka_consumer *new_consumer(void)
{
    char group[96], errstr[256];
    tu_topic_name("group", group, sizeof(group));
    const char *topics[] = {topic, NULL};
    struct cv_kafka_consumer *c = cv_kafka_consumer_new(tu_brokers(), group, "test-consumer",
                                                        topics, NULL, errstr, sizeof(errstr));
    ck_assert_msg(c != NULL, "%s", errstr);
    return c;
}

START_TEST(test_relayed_event_reads_back_equal)
{
    char errstr[256];
    char order_id[37];
    cv_uuid_v4(order_id);
    json_t *event = sample_event(order_id, 1);
    add_to_outbox(event, order_id);

    struct cv_outbox_relay *relay = relay_start(100);
    struct cv_kafka_consumer *c = new_consumer();
    rd_kafka_message_t *msg = NULL;
    ck_assert_uint_eq(consume(c, &msg, 1, 30), 1);

    json_t *decoded = NULL;
    const struct cv_schema *writer = NULL;
    ck_assert_msg(cv_avro_decode(msg->payload, msg->len, NULL, &decoded, &writer, errstr,
                                 sizeof(errstr)) == 0,
                  "%s", errstr);
    ck_assert_str_eq(cv_avro_schema_type(writer), "OrderPlaced");
    char *want = json_dumps(event, JSON_SORT_KEYS), *got = json_dumps(decoded, JSON_SORT_KEYS);
    ck_assert_msg(json_equal(event, decoded), "sent %s, read %s", want, got);
    free(want);
    free(got);
    ck_assert_int_eq((int)msg->key_len, 36);
    ck_assert(memcmp(msg->key, order_id, 36) == 0);
    rd_kafka_headers_t *hdrs;
    const void *hv;
    size_t hlen;
    ck_assert(rd_kafka_message_headers(msg, &hdrs) == 0);
    ck_assert(rd_kafka_header_get_last(hdrs, "ce_type", &hv, &hlen) == 0);
    ck_assert(hlen == 20 && memcmp(hv, "conveyor.OrderPlaced", 20) == 0);

    /* Deleted once acknowledged. */
    int64_t deadline = cv_monotonic_ms() + 10000;
    while (outbox_rows() > 0 && cv_monotonic_ms() < deadline)
        cv_sleep_ms(100, NULL);
    ck_assert_int_eq(outbox_rows(), 0);
    ck_assert_uint_eq(cv_outbox_relay_published(relay), 1);

    json_decref(decoded);
    json_decref(event);
    rd_kafka_message_destroy(msg);
    cv_kafka_consumer_destroy(c);
    cv_outbox_relay_stop(relay);
}
END_TEST

/* The effect of an event: one row per application. Applies ev once per claim. */
static void apply_with_dedup(const char *event_id)
{
    struct cv_db_err err;
    ck_assert(cv_db_begin(conn, &err) == 0);
    int claimed = cv_dedup_claim(conn, "test", event_id, &err);
    ck_assert_msg(claimed >= 0, "%s", err.msg);
    if (claimed) {
        const char *params[] = {event_id};
        ck_assert_msg(
            cv_db_exec(conn, "INSERT INTO effects (event_id) VALUES ($1)", 1, params, &err) == 0,
            "%s", err.msg);
    }
    ck_assert_msg(cv_db_commit(conn, &err) == 0, "%s", err.msg);
}

START_TEST(test_redelivered_event_applied_once)
{
    char errstr[256];
    struct cv_db_err err;
    ck_assert(cv_db_exec(conn, "CREATE TABLE effects (event_id text)", 0, NULL, &err) == 0);
    char order_id[37];
    cv_uuid_v4(order_id);
    json_t *event = sample_event(order_id, 1);
    add_to_outbox(event, order_id);
    struct cv_outbox_relay *relay = relay_start(100);

    /* Two consumer groups read the same record: the second is a redelivery. */
    for (int round = 0; round < 2; round++) {
        struct cv_kafka_consumer *c = new_consumer();
        rd_kafka_message_t *msg = NULL;
        ck_assert_uint_eq(consume(c, &msg, 1, 30), 1);
        json_t *decoded = NULL;
        ck_assert(cv_avro_decode(msg->payload, msg->len, NULL, &decoded, NULL, errstr,
                                 sizeof(errstr)) == 0);
        apply_with_dedup(
            json_string_value(json_object_get(json_object_get(decoded, "metadata"), "event_id")));
        json_decref(decoded);
        rd_kafka_message_destroy(msg);
        cv_kafka_consumer_destroy(c);
    }
    PGresult *res = cv_db_query(conn, "SELECT count(*) FROM effects", 0, NULL, &err);
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
    json_decref(event);
    cv_outbox_relay_stop(relay);
}
END_TEST

START_TEST(test_broker_down_nothing_lost_order_kept)
{
    char errstr[256];
    enum { KEYS = 8, PER_KEY = 25, TOTAL = KEYS * PER_KEY };
    struct cv_outbox_relay *relay = relay_start(50);
    ck_assert_int_eq(tu_kafka_sh("stop"), 0);

    /* Accepted while the broker is away: committed to the outbox, waiting. */
    char keys[KEYS][37];
    for (int k = 0; k < KEYS; k++)
        cv_uuid_v4(keys[k]);
    for (int i = 0; i < TOTAL; i++) {
        json_t *event = sample_event(keys[i % KEYS], i);
        add_to_outbox(event, keys[i % KEYS]);
        json_decref(event);
    }
    cv_sleep_ms(3000, NULL);
    ck_assert_int_eq(outbox_rows(), TOTAL);

    ck_assert_int_eq(tu_kafka_sh("start"), 0);
    int64_t deadline = cv_monotonic_ms() + 90000;
    while (outbox_rows() > 0 && cv_monotonic_ms() < deadline)
        cv_sleep_ms(200, NULL);
    ck_assert_int_eq(outbox_rows(), 0);

    /* All delivered; per key, in the order they were accepted. Duplicates are allowed (the
     * relay may resend after a failure) but never reordering of first occurrences. */
    struct cv_kafka_consumer *c = new_consumer();
    rd_kafka_message_t **msgs = calloc(TOTAL * 2, sizeof(*msgs));
    size_t got = consume(c, msgs, TOTAL, 60);
    ck_assert_uint_ge(got, TOTAL);
    int seen[TOTAL] = {0};
    int last[KEYS];
    for (int k = 0; k < KEYS; k++)
        last[k] = -1;
    for (size_t i = 0; i < got; i++) {
        json_t *decoded = NULL;
        ck_assert(cv_avro_decode(msgs[i]->payload, msgs[i]->len, NULL, &decoded, NULL, errstr,
                                 sizeof(errstr)) == 0);
        int seq = atoi(json_string_value(json_object_get(decoded, "customer_id")) + 9);
        int k = seq % KEYS;
        ck_assert(memcmp(msgs[i]->key, keys[k], 36) == 0);
        if (!seen[seq]) {
            ck_assert_msg(seq > last[k], "key %d: %d after %d", k, seq, last[k]);
            last[k] = seq;
        }
        seen[seq] = 1;
        json_decref(decoded);
        rd_kafka_message_destroy(msgs[i]);
    }
    for (int i = 0; i < TOTAL; i++)
        ck_assert_msg(seen[i], "event %d lost", i);
    free(msgs);
    cv_kafka_consumer_destroy(c);
    cv_outbox_relay_stop(relay);
}
END_TEST

START_TEST(test_one_active_relay)
{
    struct cv_outbox_relay *a = relay_start(10);
    await_active(a);
    struct cv_outbox_relay *b = relay_start(10);
    cv_sleep_ms(1500, NULL);
    ck_assert(!cv_outbox_relay_active(b)); /* standby while a holds the lock */
    cv_outbox_relay_stop(a);
    await_active(b); /* takes over */
    cv_outbox_relay_stop(b);
}
END_TEST

/* Adds a raw row of value_len zero bytes to the outbox, keyed by key, in its own transaction. */
static void add_raw_to_outbox(const char *key, size_t value_len)
{
    unsigned char *value = calloc(1, value_len);
    struct cv_db_err err;
    ck_assert(cv_db_begin(conn, &err) == 0);
    ck_assert_msg(cv_outbox_add(conn, topic, key, strlen(key), value, value_len, NULL, 0, &err) ==
                      0,
                  "%s", err.msg);
    ck_assert_msg(cv_db_commit(conn, &err) == 0, "%s", err.msg);
    free(value);
}

/* A row larger than the producer takes is quarantined with the reason; the rows before and
 * after it, of the same key, are published in order. */
START_TEST(test_oversized_row_quarantined_order_kept)
{
    char errstr[256];
    char order_id[37];
    cv_uuid_v4(order_id);
    json_t *first = sample_event(order_id, 1), *last = sample_event(order_id, 2);
    add_to_outbox(first, order_id);
    add_raw_to_outbox(order_id, CV_KAFKA_MESSAGE_MAX_BYTES + 1);
    add_to_outbox(last, order_id);
    struct cv_kafka_consumer *c = new_consumer();
    struct cv_outbox_relay *relay = relay_start(100);
    rd_kafka_message_t *msgs[2];
    size_t got = consume(c, msgs, 2, 60);
    ck_assert_uint_eq(got, 2);
    for (size_t i = 0; i < got; i++) {
        json_t *data = NULL;
        const struct cv_schema *writer;
        ck_assert(cv_avro_decode(msgs[i]->payload, msgs[i]->len, NULL, &data, &writer, errstr,
                                 sizeof(errstr)) == 0);
        ck_assert_str_eq(json_string_value(json_object_get(data, "customer_id")),
                         i == 0 ? "customer-1" : "customer-2");
        json_decref(data);
        rd_kafka_message_destroy(msgs[i]);
    }
    int64_t deadline = cv_monotonic_ms() + 10000;
    while (outbox_rows() > 0 && cv_monotonic_ms() < deadline)
        cv_sleep_ms(50, NULL);
    ck_assert_int_eq(outbox_rows(), 0);
    struct cv_db_err err;
    PGresult *res =
        cv_db_query(conn, "SELECT reason, length(value) FROM outbox_quarantine", 0, NULL, &err);
    ck_assert_msg(res != NULL, "%s", err.msg);
    ck_assert_int_eq(PQntuples(res), 1);
    ck_assert_msg(strstr(PQgetvalue(res, 0, 0), "too large") != NULL, "%s", PQgetvalue(res, 0, 0));
    ck_assert_int_eq(atol(PQgetvalue(res, 0, 1)), CV_KAFKA_MESSAGE_MAX_BYTES + 1);
    PQclear(res);
    ck_assert(!cv_outbox_relay_fatal(relay));
    cv_outbox_relay_stop(relay);
    cv_kafka_consumer_destroy(c);
    json_decref(first);
    json_decref(last);
}
END_TEST

/* A fatal producer error (idempotence broken) stops the relay and says so, so that the service
 * exits and its supervisor starts a new process. */
START_TEST(test_fatal_producer_error_stops_the_relay)
{
    struct cv_outbox_relay *relay = relay_start(10);
    await_active(relay);
    ck_assert(!cv_outbox_relay_fatal(relay));
    ck_assert_int_eq(rd_kafka_test_fatal_error(cv_kafka_producer_handle(producer),
                                               RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                               "injected by the test"),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    int64_t deadline = cv_monotonic_ms() + 10000;
    while (!cv_outbox_relay_fatal(relay) && cv_monotonic_ms() < deadline)
        cv_sleep_ms(50, NULL);
    ck_assert(cv_outbox_relay_fatal(relay));
    cv_outbox_relay_stop(relay);
}
END_TEST

static Suite *outbox_suite(void)
{
    Suite *s = suite_create("outbox_kafka");
    TCase *tc = tcase_create("real broker and database");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_relayed_event_reads_back_equal);
    tcase_add_test(tc, test_redelivered_event_applied_once);
    tcase_add_test(tc, test_one_active_relay);
    tcase_add_test(tc, test_broker_down_nothing_lost_order_kept);
    tcase_add_test(tc, test_oversized_row_quarantined_order_kept);
    tcase_add_test(tc, test_fatal_producer_error_stops_the_relay);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(outbox_suite());
}
