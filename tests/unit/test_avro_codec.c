/* The codec: every event type round-trips field for field in both framings, defaults are
 * written, bad events are refused naming the field, and decoding refuses bad input (truncated,
 * bad magic, unknown schema, lengths beyond the input, random garbage and mutations of valid
 * values) without crashing or leaking. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/avro.h"
#include "runner.h"

static char errstr[512];

static void setup(void)
{
    ck_assert_msg(cv_avro_catalog_load(errstr, sizeof(errstr)) == 0, "%s", errstr);
}

static void teardown(void)
{
    cv_avro_catalog_free();
}

/* JSON written with single quotes for readability. */
static json_t *J(const char *text)
{
    char *copy = strdup(text);
    json_error_t jerr;
    json_t *j;

    ck_assert_ptr_nonnull(copy);
    for (char *p = copy; *p != '\0'; p++)
        if (*p == '\'')
            *p = '"';
    j = json_loads(copy, 0, &jerr);
    ck_assert_msg(j != NULL, "bad test JSON: %s: %s", jerr.text, copy);
    free(copy);
    return j;
}

#define META(producer, causation)                                                                  \
    "'metadata': {'event_id': '6f1c2a4e-8d3b-4f7a-9c1e-2b5d8e0f1a37', "                            \
    "'occurred_at': 1717243200123, 'producer': '" producer "', "                                   \
    "'correlation_id': '0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70', 'causation_id': " causation "}, "
#define ORDER "'order_id': '0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70', "
#define CAUSE "'3e2d1c0b-a987-4654-8321-0fedcba98765'"

/* A realistic value of every event type, every field given. */
static const struct {
    const char *type;
    const char *json;
} samples[] = {
    {"OrderPlaced", "{" META("order-service", "null") ORDER
     "'customer_id': 'cust-0042', 'items': [{'sku': 'SKU-RED-MUG', 'quantity': 2, "
     "'unit_price_cents': 1299},{'sku': 'SKU-TEA-500G', 'quantity': 1, 'unit_price_cents': "
     "849},{'sku': 'SKU-SPOON-SET', 'quantity': 3, 'unit_price_cents': 450}],'total_cents': 4797, "
     "'shipping_address': {'street': '12 Rue des Lilas', 'city': 'Lyon','postal_code': '69003', "
     "'country': 'FR', 'name': 'Zoë Müller'}}"},
    {"OrderCancelled",
     "{" META("order-service", "null") ORDER "'reason': 'customer asked to cancel'}"},
    {"StockReserved", "{" META("inventory-service", CAUSE) ORDER
     "'items': [{'sku': 'SKU-RED-MUG', 'quantity': 2},{'sku': 'SKU-TEA-500G', 'quantity': 1}]}"},
    {"StockRejected", "{" META("inventory-service", CAUSE) ORDER
     "'reason': 'insufficient stock', 'shortages': [{'sku': 'SKU-SPOON-SET', 'requested': 3, "
     "'available': 1}]}"},
    {"StockReleased", "{" META("inventory-service", CAUSE) ORDER
     "'items': [{'sku': 'SKU-RED-MUG', 'quantity': 2}],'reason': 'order cancelled'}"},
    {"StockAdjusted",
     "{" META("inventory-service", "null") "'sku': 'SKU-RED-MUG', 'name': 'Red mug', 'available': "
                                           "40, 'previous_available': 12, "
                                           "'reason': 'received purchase order 4711'}"},
    {"ShipmentScheduled", "{" META("shipping-service", CAUSE) ORDER
     "'carrier': 'Colissimo', 'tracking_number': '6A12345678901', 'eta': 1717502400000}"},
    {"ShipmentCancelled", "{" META("shipping-service", CAUSE) ORDER "'reason': 'stock rejected'}"},
    {"ShipmentDispatched", "{" META("shipping-service", "null") ORDER
     "'tracking_number': '6A12345678901', 'items': [{'sku': 'SKU-RED-MUG', 'quantity': 2}, {'sku': "
     "'SKU-TEA-500G', 'quantity': 1}]}"},
    {"ShipmentDelivered",
     "{" META("shipping-service", "null") ORDER "'tracking_number': '6A12345678901'}"},
    {"OrderCancellationRequested",
     "{" META("order-service", "null") ORDER "'reason': 'cancelled by customer'}"},
    {"ShipmentCancellationRefused", "{" META("shipping-service", CAUSE) ORDER
     "'status': 'DISPATCHED', 'reason': 'already dispatched'}"},
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static unsigned char *encode_ok(const char *type, const json_t *event, enum cv_avro_framing framing,
                                size_t *len)
{
    const struct cv_schema *s = cv_avro_schema_by_type(type);
    unsigned char *buf = NULL;

    ck_assert_msg(s != NULL, "%s", type);
    ck_assert_msg(cv_avro_encode(s, event, framing, &buf, len, errstr, sizeof(errstr)) == 0,
                  "%s: %s", type, errstr);
    return buf;
}

/* Encoding fails with exactly this message. */
static void encode_fails(const char *type, json_t *event, const char *expected)
{
    unsigned char *buf = (unsigned char *)"untouched";
    size_t len = 99;

    ck_assert_int_eq(cv_avro_encode(cv_avro_schema_by_type(type), event, CV_AVRO_SINGLE_OBJECT,
                                    &buf, &len, errstr, sizeof(errstr)),
                     -1);
    ck_assert_ptr_null(buf);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(errstr, expected);
    json_decref(event);
}

/* Decoding fails with a message containing expected. */
static void decode_fails(const void *buf, size_t len, const char *expected)
{
    json_t *out = json_true();

    ck_assert_int_eq(cv_avro_decode(buf, len, NULL, &out, NULL, errstr, sizeof(errstr)), -1);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(errstr, expected) != NULL, "\"%s\" lacks \"%s\"", errstr, expected);
}

START_TEST(test_every_type_has_a_sample)
{
    for (size_t i = 0; i < cv_avro_catalog_count(); i++) {
        const struct cv_schema *s = cv_avro_catalog_get(i);
        size_t k;
        for (k = 0; k < NSAMPLES; k++)
            if (strcmp(samples[k].type, cv_avro_schema_type(s)) == 0)
                break;
        ck_assert_msg(k < NSAMPLES, "no sample for %s", cv_avro_schema_type(s));
    }
}
END_TEST

START_TEST(test_round_trip_single_object)
{
    const struct cv_schema *s = cv_avro_schema_by_type(samples[_i].type);
    json_t *event = J(samples[_i].json), *out = NULL;
    const struct cv_schema *writer = NULL;
    size_t len;
    unsigned char *buf = encode_ok(samples[_i].type, event, CV_AVRO_SINGLE_OBJECT, &len);
    uint64_t fp = 0;

    ck_assert_uint_gt(len, CV_AVRO_SINGLE_OBJECT_HEADER);
    ck_assert_uint_eq(buf[0], 0xC3);
    ck_assert_uint_eq(buf[1], 0x01);
    for (int i = 7; i >= 0; i--)
        fp = fp << 8 | buf[2 + i];
    ck_assert_uint_eq(fp, cv_avro_schema_fingerprint(s));
    ck_assert_msg(cv_avro_decode(buf, len, NULL, &out, &writer, errstr, sizeof(errstr)) == 0,
                  "%s: %s", samples[_i].type, errstr);
    ck_assert_ptr_eq(writer, s);
    if (!json_equal(event, out)) {
        char *a = json_dumps(event, JSON_SORT_KEYS), *b = json_dumps(out, JSON_SORT_KEYS);
        ck_abort_msg("%s differs:\n  in  %s\n  out %s", samples[_i].type, a, b);
    }
    /* Given explicitly, the reader is the same. */
    json_decref(out);
    ck_assert_int_eq(cv_avro_decode(buf, len, s, &out, NULL, errstr, sizeof(errstr)), 0);
    ck_assert(json_equal(event, out));
    json_decref(out);
    json_decref(event);
    free(buf);
}
END_TEST

START_TEST(test_round_trip_confluent)
{
    const struct cv_schema *s = cv_avro_schema_by_type(samples[_i].type);
    json_t *event = J(samples[_i].json), *out = NULL;
    const struct cv_schema *writer = NULL;
    uint32_t id = 100000 + (uint32_t)_i;
    unsigned char *buf, *single;
    size_t len, single_len;

    cv_avro_schema_set_id(s, id);
    buf = encode_ok(samples[_i].type, event, CV_AVRO_CONFLUENT, &len);
    ck_assert_uint_eq(buf[0], 0x00);
    ck_assert_uint_eq(
        (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4], id);
    /* The same body as in single-object framing. */
    single = encode_ok(samples[_i].type, event, CV_AVRO_SINGLE_OBJECT, &single_len);
    ck_assert_uint_eq(len - CV_AVRO_CONFLUENT_HEADER, single_len - CV_AVRO_SINGLE_OBJECT_HEADER);
    ck_assert_mem_eq(buf + CV_AVRO_CONFLUENT_HEADER, single + CV_AVRO_SINGLE_OBJECT_HEADER,
                     len - CV_AVRO_CONFLUENT_HEADER);
    ck_assert_msg(cv_avro_decode(buf, len, NULL, &out, &writer, errstr, sizeof(errstr)) == 0, "%s",
                  errstr);
    ck_assert_ptr_eq(writer, s);
    ck_assert(json_equal(event, out));
    json_decref(out);
    json_decref(event);
    free(buf);
    free(single);
}
END_TEST

START_TEST(test_confluent_needs_an_id)
{
    const struct cv_schema *s = cv_avro_schema_by_type("OrderCancelled");
    json_t *event = J(samples[1].json);
    unsigned char *buf = NULL;
    size_t len;

    ck_assert_int_eq(
        cv_avro_encode(s, event, CV_AVRO_CONFLUENT, &buf, &len, errstr, sizeof(errstr)), -1);
    ck_assert_str_eq(errstr, "conveyor.OrderCancelled has no schema registry id");
    json_decref(event);
}
END_TEST

START_TEST(test_defaults_applied_on_encode)
{
    json_t *event = J(samples[0].json), *out = NULL;
    unsigned char *buf;
    size_t len;

    json_object_del(event, "shipping_address");
    json_object_del(json_object_get(event, "metadata"), "causation_id");
    buf = encode_ok("OrderPlaced", event, CV_AVRO_SINGLE_OBJECT, &len);
    ck_assert_int_eq(cv_avro_decode(buf, len, NULL, &out, NULL, errstr, sizeof(errstr)), 0);
    ck_assert(json_is_null(json_object_get(out, "shipping_address")));
    ck_assert(json_is_null(json_object_get(json_object_get(out, "metadata"), "causation_id")));
    ck_assert_uint_eq(json_object_size(out), json_object_size(event) + 1);
    json_decref(out);
    json_decref(event);
    free(buf);
}
END_TEST

START_TEST(test_encode_errors_name_the_field)
{
    json_t *e;

    e = J(samples[0].json);
    json_object_del(json_array_get(json_object_get(e, "items"), 2), "quantity");
    encode_fails("OrderPlaced", e, "items[2].quantity: missing (expected int)");

    e = J(samples[0].json);
    json_object_set_new(json_array_get(json_object_get(e, "items"), 2), "quantity",
                        json_string("3"));
    encode_fails("OrderPlaced", e, "items[2].quantity: expected int");

    e = J(samples[0].json);
    json_object_set_new(json_array_get(json_object_get(e, "items"), 0), "quantity",
                        json_integer(INT64_C(3000000000)));
    encode_fails("OrderPlaced", e, "items[0].quantity: expected int (out of 32-bit range)");

    e = J(samples[0].json);
    json_object_del(e, "customer_id");
    encode_fails("OrderPlaced", e, "customer_id: missing (expected string)");

    e = J(samples[0].json);
    json_object_set_new(json_object_get(e, "metadata"), "event_id", json_string("42"));
    encode_fails("OrderPlaced", e, "metadata.event_id: expected uuid string");

    e = J(samples[0].json);
    json_object_set_new(json_object_get(e, "metadata"), "occurred_at",
                        json_string("2024-06-01T12:00:00Z"));
    encode_fails("OrderPlaced", e, "metadata.occurred_at: expected long");

    e = J(samples[0].json);
    json_object_set_new(json_object_get(e, "shipping_address"), "city", json_integer(5));
    encode_fails("OrderPlaced", e, "shipping_address[\"city\"]: expected string");

    e = J(samples[0].json);
    json_object_set_new(e, "shipping_address", json_string("12 Rue des Lilas"));
    encode_fails("OrderPlaced", e, "shipping_address: expected null or object");

    e = J(samples[0].json);
    json_object_set_new(e, "colour", json_string("red"));
    encode_fails("OrderPlaced", e, "colour: not a field of conveyor.OrderPlaced");

    e = J(samples[0].json);
    json_object_set_new(e, "items", json_object());
    encode_fails("OrderPlaced", e, "items: expected array");

    encode_fails("OrderPlaced", json_array(), "expected object");
    encode_fails("OrderPlaced", json_null(), "expected object");
}
END_TEST

START_TEST(test_encode_too_large)
{
    json_t *event = J(samples[1].json);
    char *big = malloc(CV_AVRO_MAX_VALUE + 1);
    unsigned char *buf = NULL;
    size_t len;

    memset(big, 'x', CV_AVRO_MAX_VALUE);
    big[CV_AVRO_MAX_VALUE] = '\0';
    json_object_set_new(event, "reason", json_string(big));
    ck_assert_int_eq(cv_avro_encode(cv_avro_schema_by_type("OrderCancelled"), event,
                                    CV_AVRO_SINGLE_OBJECT, &buf, &len, errstr, sizeof(errstr)),
                     -1);
    ck_assert_ptr_nonnull(strstr(errstr, "exceeds the limit"));
    free(big);
    json_decref(event);
}
END_TEST

START_TEST(test_decode_framing_errors)
{
    json_t *event = J(samples[1].json);
    size_t len;
    unsigned char *buf = encode_ok("OrderCancelled", event, CV_AVRO_SINGLE_OBJECT, &len);
    unsigned char copy[512];
    json_t *out = NULL;

    ck_assert_uint_lt(len, sizeof(copy) - 1);
    decode_fails("", 0, "too short");
    decode_fails("\xC3", 1, "too short");
    decode_fails("\xC3\x01\x00", 3, "too short");
    decode_fails("\x00\x00\x01", 3, "too short");
    decode_fails("{\"order_id\":1}", 14, "bad magic byte 0x7b");
    memcpy(copy, buf, len);
    copy[1] = 0x02;
    decode_fails(copy, len, "bad magic 0xc3 0x02");
    memcpy(copy, buf, len);
    copy[5] ^= 0x40;
    decode_fails(copy, len, "unknown schema fingerprint");
    decode_fails("\x00\x00\x00\x30\x39\x02", 6, "unknown schema id 12345");
    /* Every truncation, and a trailing byte. */
    for (size_t cut = CV_AVRO_SINGLE_OBJECT_HEADER; cut < len; cut++) {
        ck_assert_int_eq(cv_avro_decode(buf, cut, NULL, &out, NULL, errstr, sizeof(errstr)), -1);
        ck_assert_msg(strstr(errstr, "truncated input") != NULL ||
                          strstr(errstr, "bytes left") != NULL,
                      "%s", errstr);
    }
    memcpy(copy, buf, len);
    copy[len] = 0;
    decode_fails(copy, len + 1, "1 trailing bytes after the conveyor.OrderCancelled value");
    /* A NULL output is refused, not crashed on. */
    ck_assert_int_eq(cv_avro_decode(buf, len, NULL, NULL, NULL, errstr, sizeof(errstr)), -1);
    ck_assert_int_eq(cv_avro_decode(NULL, 10, NULL, &out, NULL, errstr, sizeof(errstr)), -1);
    json_decref(event);
    free(buf);
}
END_TEST

START_TEST(test_decode_oversized_lengths)
{
    json_t *event = J(samples[1].json);
    size_t len;
    unsigned char *buf = encode_ok("OrderCancelled", event, CV_AVRO_SINGLE_OBJECT, &len);
    unsigned char copy[512];
    unsigned char *huge;

    /* metadata.event_id's length (the body's first byte, 36 zig-zagged) made 2^31 - 1. */
    ck_assert_uint_eq(buf[CV_AVRO_SINGLE_OBJECT_HEADER], 72);
    memcpy(copy, buf, CV_AVRO_SINGLE_OBJECT_HEADER);
    memcpy(copy + CV_AVRO_SINGLE_OBJECT_HEADER, "\xFE\xFF\xFF\xFF\x0F", 5);
    memcpy(copy + CV_AVRO_SINGLE_OBJECT_HEADER + 5, buf + CV_AVRO_SINGLE_OBJECT_HEADER + 1,
           len - CV_AVRO_SINGLE_OBJECT_HEADER - 1);
    decode_fails(copy, len + 4, "metadata.event_id: length 2147483647 exceeds the");
    /* A negative length. */
    copy[CV_AVRO_SINGLE_OBJECT_HEADER] = 0x01;
    decode_fails(copy, len + 4, "metadata.event_id: length -1 exceeds");
    /* A varint longer than 10 bytes. */
    memset(copy + CV_AVRO_SINGLE_OBJECT_HEADER, 0xFF, 12);
    decode_fails(copy, CV_AVRO_SINGLE_OBJECT_HEADER + 12, "malformed long varint");
    /* A body over CV_AVRO_MAX_VALUE is refused before it is read. */
    huge = calloc(1, CV_AVRO_SINGLE_OBJECT_HEADER + CV_AVRO_MAX_VALUE + 1);
    memcpy(huge, buf, len);
    decode_fails(huge, CV_AVRO_SINGLE_OBJECT_HEADER + CV_AVRO_MAX_VALUE + 1, "exceeds the limit");
    free(huge);
    json_decref(event);
    free(buf);
}
END_TEST

/* Bodies for small schemas, through cv_avro_decode_body. */
static void body_fails(const char *schema_json, const void *body, size_t len, const char *expected)
{
    struct cv_schema *s = cv_avro_schema_new(schema_json, errstr, sizeof(errstr));
    json_t *out = NULL;

    ck_assert_msg(s != NULL, "%s", errstr);
    ck_assert_int_eq(cv_avro_decode_body(s, body, len, NULL, &out, errstr, sizeof(errstr)), -1);
    ck_assert_ptr_null(out);
    ck_assert_msg(strstr(errstr, expected) != NULL, "\"%s\" lacks \"%s\"", errstr, expected);
    cv_avro_schema_destroy(s);
}

static json_t *body_ok(const char *schema_json, const void *body, size_t len)
{
    struct cv_schema *s = cv_avro_schema_new(schema_json, errstr, sizeof(errstr));
    json_t *out = NULL;

    ck_assert_msg(s != NULL, "%s", errstr);
    ck_assert_msg(cv_avro_decode_body(s, body, len, NULL, &out, errstr, sizeof(errstr)) == 0, "%s",
                  errstr);
    cv_avro_schema_destroy(s);
    return out;
}

START_TEST(test_decode_body_checks)
{
    const char *longs = "{\"type\":\"array\",\"items\":\"long\"}";
    const char *nulls = "{\"type\":\"array\",\"items\":\"null\"}";
    json_t *out;

    body_fails(longs, "\xFE\xFF\xFF\xFF\x0F", 5, "2147483647 items exceed the input");
    body_fails(nulls, "\xFE\xFF\xFF\xFF\xFF\x0F", 6, "items exceed the input");
    body_fails(longs, "\x03\x7F\x02\x04\x00", 5, "bad block size");
    body_fails("\"int\"", "\xFF\xFF\xFF\xFF\x1F", 5, "malformed int varint");
    body_fails("\"boolean\"", "\x02", 1, "bad boolean");
    body_fails("\"string\"", "\x04\xC3\x28", 3, "string is not UTF-8");
    body_fails("\"string\"", "\x06\xED\xA0\x80", 4, "string is not UTF-8"); /* a surrogate */
    body_fails("[\"null\",\"int\"]", "\x04", 1, "union branch 2 out of range");
    body_fails("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}", "\x04", 1,
               "enum index 2 out of range");
    body_fails("{\"type\":\"map\",\"values\":\"int\"}", "\x02\x02\x00\x02\x00", 5,
               "map key holds a NUL byte");
    body_fails("\"double\"", "\x00\x00\x00\x00\x00\x00\xF0\x7F", 8, "not finite");
    /* A negative block count carries the block's size; both forms read the same. */
    out = body_ok(longs, "\x03\x04\x02\x04\x00", 5);
    ck_assert_int_eq(json_integer_value(json_array_get(out, 1)), 2);
    json_decref(out);
    out = body_ok("\"int\"", "\xFF\xFF\xFF\xFF\x0F", 5);
    ck_assert_int_eq(json_integer_value(out), INT32_MIN);
    json_decref(out);
    out = body_ok("\"long\"", "\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x01", 10);
    ck_assert_int_eq(json_integer_value(out), INT64_MIN);
    json_decref(out);
    out = body_ok(nulls, "\x06\x00", 2);
    ck_assert_uint_eq(json_array_size(out), 3);
    json_decref(out);
    out = body_ok("\"bytes\"", "\x06\x00\xFF\x41", 4);
    ck_assert_str_eq(json_string_value(out), "AP9B");
    json_decref(out);
}
END_TEST

/* A union takes the value of the first branch that accepts it whole. */
START_TEST(test_union_branch_choice)
{
    struct cv_schema *s = cv_avro_schema_new(
        "{\"type\":\"record\",\"name\":\"U\",\"fields\":["
        "{\"name\":\"x\",\"type\":[\"int\",\"double\",\"string\"]},"
        "{\"name\":\"y\",\"type\":[{\"type\":\"record\",\"name\":\"A\",\"fields\":"
        "[{\"name\":\"a\",\"type\":\"int\"}]},{\"type\":\"record\",\"name\":\"B\","
        "\"fields\":[{\"name\":\"b\",\"type\":\"string\"}]}]}]}",
        errstr, sizeof(errstr));
    static const char *const good[] = {"{'x': 3, 'y': {'b': 'hi'}}", "{'x': 2.5, 'y': {'a': 1}}",
                                       "{'x': 'three', 'y': {'a': -1}}"};
    static const char *const bad[][2] = {
        {"{'x': true, 'y': {'a': 1}}", "x: expected int or double or string"},
        {"{'x': 1, 'y': {'c': 1}}", "y: expected A or B"},
        {"{'x': 1, 'y': {'a': 'one'}}", "y: expected A or B"},
    };

    ck_assert_msg(s != NULL, "%s", errstr);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        json_t *value = J(good[i]), *out = NULL;
        unsigned char *buf = NULL;
        size_t len;
        ck_assert_msg(cv_avro_encode(s, value, CV_AVRO_SINGLE_OBJECT, &buf, &len, errstr,
                                     sizeof(errstr)) == 0,
                      "%s", errstr);
        ck_assert_int_eq(cv_avro_decode_body(s, buf + CV_AVRO_SINGLE_OBJECT_HEADER,
                                             len - CV_AVRO_SINGLE_OBJECT_HEADER, NULL, &out, errstr,
                                             sizeof(errstr)),
                         0);
        ck_assert(json_equal(value, out));
        json_decref(out);
        json_decref(value);
        free(buf);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *value = J(bad[i][0]);
        unsigned char *buf = NULL;
        size_t len;
        ck_assert_int_eq(
            cv_avro_encode(s, value, CV_AVRO_SINGLE_OBJECT, &buf, &len, errstr, sizeof(errstr)),
            -1);
        ck_assert_str_eq(errstr, bad[i][1]);
        json_decref(value);
    }
    cv_avro_schema_destroy(s);
}
END_TEST

/* Values laid end to end, as `kcat -f '%s'` prints them. */
START_TEST(test_decode_next_stream)
{
    unsigned char stream[4096];
    size_t off = 0, used, i;
    json_t *out;

    for (i = 0; i < NSAMPLES; i++) {
        json_t *event = J(samples[i].json);
        size_t len;
        unsigned char *buf = encode_ok(samples[i].type, event, CV_AVRO_SINGLE_OBJECT, &len);
        ck_assert_uint_lt(off + len, sizeof(stream));
        memcpy(stream + off, buf, len);
        off += len;
        free(buf);
        json_decref(event);
    }
    for (i = 0, used = 0; used < off; i++) {
        size_t n = 0;
        const struct cv_schema *writer;
        json_t *event = J(samples[i].json);
        ck_assert_msg(cv_avro_decode_next(stream + used, off - used, &n, NULL, &out, &writer,
                                          errstr, sizeof(errstr)) == 0,
                      "%s", errstr);
        ck_assert_str_eq(cv_avro_schema_type(writer), samples[i].type);
        ck_assert(json_equal(event, out));
        json_decref(out);
        json_decref(event);
        used += n;
    }
    ck_assert_uint_eq(i, NSAMPLES);
    ck_assert_uint_eq(used, off);
}
END_TEST

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* -1, or 0 with a JSON object; nothing else, and nothing leaked (ASan tells). */
static int decode_any(const unsigned char *buf, size_t len)
{
    json_t *out = NULL;
    int rc = cv_avro_decode(buf, len, NULL, &out, NULL, errstr, sizeof(errstr));

    if (rc == 0) {
        ck_assert(json_is_object(out));
        json_decref(out);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_ptr_null(out);
        ck_assert_uint_gt(strlen(errstr), 0);
    }
    return rc;
}

START_TEST(test_fuzz_random_buffers)
{
    unsigned char buf[512];
    size_t n = cv_avro_catalog_count();

    for (int round = 0; round < 5000; round++) {
        size_t len = rng() % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)rng();
        /* Mostly a valid header, so that bodies reach the walker. */
        if (len >= CV_AVRO_SINGLE_OBJECT_HEADER && rng() % 4 != 0) {
            uint64_t fp = cv_avro_schema_fingerprint(cv_avro_catalog_get(rng() % n));
            buf[0] = 0xC3;
            buf[1] = 0x01;
            for (int i = 0; i < 8; i++)
                buf[2 + i] = (unsigned char)(fp >> (8 * i));
            /* Small varints make plausible lengths and counts. */
            for (size_t i = CV_AVRO_SINGLE_OBJECT_HEADER; i < len; i++)
                if (rng() % 2)
                    buf[i] &= 0x3F;
        }
        decode_any(buf, len);
    }
}
END_TEST

START_TEST(test_fuzz_mutations)
{
    int accepted = 0;

    for (size_t k = 0; k < NSAMPLES; k++) {
        json_t *event = J(samples[k].json);
        size_t len;
        unsigned char *valid = encode_ok(samples[k].type, event, CV_AVRO_SINGLE_OBJECT, &len);
        unsigned char buf[1024];

        ck_assert_uint_lt(len + 16, sizeof(buf));
        for (int round = 0; round < 600; round++) {
            size_t n = len, flips = 1 + rng() % 4;
            memcpy(buf, valid, len);
            for (size_t f = 0; f < flips && n > CV_AVRO_SINGLE_OBJECT_HEADER; f++) {
                size_t at =
                    CV_AVRO_SINGLE_OBJECT_HEADER + rng() % (n - CV_AVRO_SINGLE_OBJECT_HEADER);
                switch (rng() % 4) {
                case 0: /* flip bits */
                    buf[at] ^= (unsigned char)(1u << (rng() % 8));
                    break;
                case 1: /* a random byte */
                    buf[at] = (unsigned char)rng();
                    break;
                case 2: /* cut short */
                    n = at;
                    break;
                default: /* insert a byte */
                    if (n < sizeof(buf) - 1) {
                        memmove(buf + at + 1, buf + at, n - at);
                        buf[at] = (unsigned char)rng();
                        n++;
                    }
                    break;
                }
            }
            if (decode_any(buf, n) == 0)
                accepted++;
        }
        free(valid);
        json_decref(event);
    }
    /* Some mutations only change a character or a number, and still decode. */
    ck_assert_int_gt(accepted, 0);
}
END_TEST

static void *codec_thread(void *arg)
{
    const char *json = arg;
    char err[256];
    int failures = 0;

    if (cv_avro_catalog_load(err, sizeof(err)) != 0)
        return (void *)1;
    for (int i = 0; i < 200; i++) {
        json_t *event = json_loads(json, 0, NULL), *out = NULL;
        unsigned char *buf = NULL;
        size_t len;
        if (cv_avro_encode(cv_avro_schema_by_type("StockReserved"), event, CV_AVRO_SINGLE_OBJECT,
                           &buf, &len, err, sizeof(err)) != 0 ||
            cv_avro_decode(buf, len, NULL, &out, NULL, err, sizeof(err)) != 0 ||
            !json_equal(event, out))
            failures++;
        json_decref(out);
        json_decref(event);
        free(buf);
    }
    return failures ? (void *)1 : NULL;
}

START_TEST(test_threads_share_the_catalogue)
{
    json_t *event = J(samples[2].json);
    char *json = json_dumps(event, 0);
    pthread_t threads[4];

    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, codec_thread, json), 0);
    for (int i = 0; i < 4; i++) {
        void *result;
        ck_assert_int_eq(pthread_join(threads[i], &result), 0);
        ck_assert_ptr_null(result);
    }
    free(json);
    json_decref(event);
}
END_TEST

static Suite *avro_codec_suite(void)
{
    Suite *s = suite_create("avro_codec");
    TCase *tc = tcase_create("codec");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_every_type_has_a_sample);
    tcase_add_loop_test(tc, test_round_trip_single_object, 0, (int)NSAMPLES);
    tcase_add_loop_test(tc, test_round_trip_confluent, 0, (int)NSAMPLES);
    tcase_add_test(tc, test_confluent_needs_an_id);
    tcase_add_test(tc, test_defaults_applied_on_encode);
    tcase_add_test(tc, test_encode_errors_name_the_field);
    tcase_add_test(tc, test_encode_too_large);
    tcase_add_test(tc, test_decode_framing_errors);
    tcase_add_test(tc, test_decode_oversized_lengths);
    tcase_add_test(tc, test_decode_body_checks);
    tcase_add_test(tc, test_union_branch_choice);
    tcase_add_test(tc, test_decode_next_stream);
    tcase_add_test(tc, test_fuzz_random_buffers);
    tcase_add_test(tc, test_fuzz_mutations);
    tcase_add_test(tc, test_threads_share_the_catalogue);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(avro_codec_suite());
}
