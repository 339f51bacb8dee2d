/* Schema evolution: data written with one version of a schema read with another (defaults for
 * the reader's new fields, the writer's extra fields dropped, promotions, aliases, enum
 * defaults), and the guard of the wire contract: the current schemas/ must stay compatible, both
 * ways, with every released version under schemas/released/. This is the test that fails when a
 * schema change would break running consumers or producers. */
#include <check.h>
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

/* A schema from tests/unit/data/avro/, found beside this file. */
static struct cv_schema *data_schema(const char *name)
{
    char path[512];
    const char *slash = strrchr(__FILE__, '/');
    int dir = slash != NULL ? (int)(slash - __FILE__) : 1;
    struct cv_schema *s;
    json_error_t jerr;
    json_t *json;
    char *text;

    snprintf(path, sizeof(path), "%.*s/data/avro/%s", dir, slash != NULL ? __FILE__ : ".", name);
    json = json_load_file(path, 0, &jerr);
    ck_assert_msg(json != NULL, "%s: %s", path, jerr.text);
    text = json_dumps(json, 0);
    s = cv_avro_schema_new(text, errstr, sizeof(errstr));
    ck_assert_msg(s != NULL, "%s: %s", name, errstr);
    free(text);
    json_decref(json);
    return s;
}

static const char order_placed[] =
    "{\"metadata\": {\"event_id\": \"6f1c2a4e-8d3b-4f7a-9c1e-2b5d8e0f1a37\", \"occurred_at\": "
    "1717243200123, \"producer\": \"order-service\", \"correlation_id\": "
    "\"0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70\", \"causation_id\": null}, \"order_id\": "
    "\"0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70\", \"customer_id\": \"cust-0042\", \"items\": "
    "[{\"sku\": \"SKU-RED-MUG\", \"quantity\": 2, \"unit_price_cents\": 1299}], \"total_cents\": "
    "2598, \"shipping_address\": {\"city\": \"Lyon\", \"country\": \"FR\"}}";

static unsigned char *encode_with(const struct cv_schema *s, const json_t *event, size_t *len)
{
    unsigned char *buf = NULL;

    ck_assert_msg(
        cv_avro_encode(s, event, CV_AVRO_SINGLE_OBJECT, &buf, len, errstr, sizeof(errstr)) == 0,
        "%s", errstr);
    return buf;
}

START_TEST(test_v1_data_read_by_v2_gets_the_default)
{
    struct cv_schema *v2 = data_schema("OrderPlaced.v2.avsc");
    json_t *event = json_loads(order_placed, 0, NULL), *out = NULL;
    const struct cv_schema *writer = NULL;
    size_t len;
    unsigned char *buf = encode_with(cv_avro_schema_by_type("OrderPlaced"), event, &len);

    ck_assert_msg(cv_avro_decode(buf, len, v2, &out, &writer, errstr, sizeof(errstr)) == 0, "%s",
                  errstr);
    ck_assert_ptr_eq(writer, cv_avro_schema_by_type("OrderPlaced"));
    ck_assert_str_eq(json_string_value(json_object_get(out, "currency")), "EUR");
    json_object_del(out, "currency");
    ck_assert(json_equal(event, out));
    json_decref(out);
    json_decref(event);
    free(buf);
    cv_avro_schema_destroy(v2);
}
END_TEST

START_TEST(test_v2_data_read_by_v1_drops_the_field)
{
    struct cv_schema *v2 = data_schema("OrderPlaced.v2.avsc");
    const struct cv_schema *current = cv_avro_schema_by_type("OrderPlaced");
    json_t *event = json_loads(order_placed, 0, NULL), *out = NULL;
    const struct cv_schema *writer = NULL;
    unsigned char *buf;
    size_t len;

    json_object_set_new(event, "currency", json_string("USD"));
    buf = encode_with(v2, event, &len);
    /* A consumer that does not know v2's fingerprint cannot read it... */
    ck_assert_int_eq(cv_avro_decode(buf, len, NULL, &out, NULL, errstr, sizeof(errstr)), -1);
    ck_assert_ptr_nonnull(strstr(errstr, "unknown schema fingerprint"));
    /* ...given the writer's schema (a registry, or the bare body), it reads it as v1. */
    ck_assert_int_eq(cv_avro_decode_body(v2, buf + CV_AVRO_SINGLE_OBJECT_HEADER,
                                         len - CV_AVRO_SINGLE_OBJECT_HEADER, current, &out, errstr,
                                         sizeof(errstr)),
                     0);
    ck_assert_ptr_null(json_object_get(out, "currency"));
    json_decref(out);
    ck_assert_int_eq(cv_avro_catalog_add(v2, errstr, sizeof(errstr)), 0);
    ck_assert_msg(cv_avro_decode(buf, len, NULL, &out, &writer, errstr, sizeof(errstr)) == 0, "%s",
                  errstr);
    ck_assert_ptr_eq(writer, v2);
    ck_assert_str_eq(cv_avro_schema_origin(writer), "added");
    ck_assert_ptr_eq(cv_avro_schema_by_type("OrderPlaced"), current); /* still the current one */
    json_object_del(event, "currency");
    ck_assert(json_equal(event, out));
    json_decref(out);
    json_decref(event);
    free(buf);
}
END_TEST

START_TEST(test_v0_without_a_field)
{
    struct cv_schema *v0 = data_schema("OrderPlaced.v0.avsc");
    const struct cv_schema *current = cv_avro_schema_by_type("OrderPlaced");
    json_t *event = json_loads(order_placed, 0, NULL), *out = NULL;
    unsigned char *buf;
    size_t len;

    /* Current data read by v0: shipping_address dropped. */
    buf = encode_with(current, event, &len);
    ck_assert_int_eq(cv_avro_decode(buf, len, v0, &out, NULL, errstr, sizeof(errstr)), 0);
    ck_assert_ptr_null(json_object_get(out, "shipping_address"));
    ck_assert_uint_eq(json_object_size(out), json_object_size(event) - 1);
    json_decref(out);
    free(buf);
    /* v0 data read by the current version: shipping_address is its default, null. */
    json_object_del(event, "shipping_address");
    buf = encode_with(v0, event, &len);
    ck_assert_int_eq(cv_avro_decode_body(v0, buf + CV_AVRO_SINGLE_OBJECT_HEADER,
                                         len - CV_AVRO_SINGLE_OBJECT_HEADER, current, &out, errstr,
                                         sizeof(errstr)),
                     0);
    ck_assert(json_is_null(json_object_get(out, "shipping_address")));
    json_decref(out);
    free(buf);
    json_decref(event);
    cv_avro_schema_destroy(v0);
}
END_TEST

/* The guard: every released version and the current one read each other's data. */
START_TEST(test_current_compatible_with_every_release)
{
    size_t releases = 0;

    for (size_t i = 0; i < cv_avro_catalog_count(); i++) {
        const struct cv_schema *released = cv_avro_catalog_get(i);
        const char *origin = cv_avro_schema_origin(released);
        const struct cv_schema *current;

        if (strcmp(origin, "current") == 0 || strcmp(origin, "added") == 0)
            continue;
        releases++;
        current = cv_avro_schema_by_type(cv_avro_schema_type(released));
        ck_assert_msg(
            current != NULL,
            "%s of release %s has no current schema: removing an event type breaks its consumers",
            cv_avro_schema_full_name(released), origin);
        ck_assert_msg(cv_avro_schema_compatible(released, current, errstr, sizeof(errstr)),
                      "the current %s cannot read release %s's data: %s",
                      cv_avro_schema_type(current), origin, errstr);
        ck_assert_msg(cv_avro_schema_compatible(current, released, errstr, sizeof(errstr)),
                      "release %s of %s cannot read the current version's data: %s", origin,
                      cv_avro_schema_type(current), errstr);
    }
    ck_assert_uint_ge(releases, 10);
}
END_TEST

/* Release 2 added the cancellation saga's request and refusal; release 1's OrderCancelled
 * stays in the current set, so that events of release 1 producers are still read. */
START_TEST(test_release_2_adds_the_cancellation_events)
{
    static const char *const added[] = {"OrderCancellationRequested",
                                        "ShipmentCancellationRefused"};
    int in_v1 = 0, in_v2 = 0;

    for (size_t i = 0; i < cv_avro_catalog_count(); i++) {
        const struct cv_schema *s = cv_avro_catalog_get(i);
        for (size_t k = 0; k < 2; k++) {
            if (strcmp(cv_avro_schema_type(s), added[k]) != 0)
                continue;
            in_v1 += strcmp(cv_avro_schema_origin(s), "v1") == 0;
            in_v2 += strcmp(cv_avro_schema_origin(s), "v2") == 0;
        }
    }
    ck_assert_int_eq(in_v1, 0);
    ck_assert_int_eq(in_v2, 2);
    ck_assert_ptr_nonnull(cv_avro_schema_by_type("OrderCancelled"));
}
END_TEST

START_TEST(test_evolution_files_compatibility)
{
    const struct cv_schema *current = cv_avro_schema_by_type("OrderPlaced");
    struct cv_schema *v0 = data_schema("OrderPlaced.v0.avsc");
    struct cv_schema *v2 = data_schema("OrderPlaced.v2.avsc");
    struct cv_schema *breaking = data_schema("OrderPlaced.breaking.avsc");
    json_t *event = json_loads(order_placed, 0, NULL), *out = NULL;
    unsigned char *buf;
    size_t len;

    ck_assert(cv_avro_schema_compatible(current, v2, errstr, sizeof(errstr)));
    ck_assert(cv_avro_schema_compatible(v2, current, errstr, sizeof(errstr)));
    ck_assert(cv_avro_schema_compatible(current, v0, errstr, sizeof(errstr)));
    ck_assert(cv_avro_schema_compatible(v0, current, errstr, sizeof(errstr)));
    ck_assert(!cv_avro_schema_compatible(current, breaking, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "total_cents: the writer's long cannot be read as string");
    ck_assert(!cv_avro_schema_compatible(breaking, current, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "total_cents: the writer's string cannot be read as long");
    /* Decoding current data with the breaking reader fails cleanly. */
    buf = encode_with(current, event, &len);
    ck_assert_int_eq(cv_avro_decode(buf, len, breaking, &out, NULL, errstr, sizeof(errstr)), -1);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(errstr, "total_cents: the writer's long cannot be read as string");
    /* And as another event type. */
    ck_assert_int_eq(cv_avro_decode(buf, len, cv_avro_schema_by_type("OrderCancelled"), &out, NULL,
                                    errstr, sizeof(errstr)),
                     -1);
    ck_assert_ptr_nonnull(
        strstr(errstr, "conveyor.OrderPlaced cannot be read as conveyor.OrderCancelled"));
    free(buf);
    json_decref(event);
    cv_avro_schema_destroy(v0);
    cv_avro_schema_destroy(v2);
    cv_avro_schema_destroy(breaking);
}
END_TEST

static const char writer_json[] =
    "{\"type\":\"record\",\"name\":\"w.Probe\",\"fields\":[{\"name\":\"i\",\"type\":\"int\"},{"
    "\"name\":\"l\",\"type\":\"long\"},{\"name\":\"f\",\"type\":\"float\"},{\"name\":\"s\","
    "\"type\":\"string\"},{\"name\":\"b\",\"type\":\"bytes\"},{\"name\":\"e\",\"type\":{\"type\":"
    "\"enum\",\"name\":\"Colour\",\"symbols\":[\"RED\",\"GREEN\",\"BLUE\"]}},{\"name\":\"u\","
    "\"type\":[\"null\",\"int\"]},{\"name\":\"n\",\"type\":\"int\"},{\"name\":\"gone\",\"type\":"
    "\"string\"},{\"name\":\"extra\",\"type\":{\"type\":\"map\",\"values\":\"long\"}}]}";
static const char reader_json[] =
    "{\"type\":\"record\",\"name\":\"r.Probe\",\"fields\":[{\"name\":\"i\",\"type\":\"long\"},{"
    "\"name\":\"l\",\"type\":\"double\"},{\"name\":\"f\",\"type\":\"double\"},{\"name\":\"s\","
    "\"type\":\"bytes\"},{\"name\":\"b\",\"type\":\"string\"},{\"name\":\"e\",\"type\":{\"type\":"
    "\"enum\",\"name\":\"Colour\",\"symbols\":[\"RED\",\"GREEN\"],\"default\":\"RED\"}},{\"name\":"
    "\"u\",\"type\":[\"null\",\"long\"]},{\"name\":\"n\",\"type\":[\"null\",\"int\"]},{\"name\":"
    "\"renamed\",\"aliases\":[\"gone\"],\"type\":\"string\"},{\"name\":\"added\",\"type\":{"
    "\"type\":\"array\",\"items\":\"int\"},\"default\":[1,2]},{\"name\":\"raw\",\"type\":\"bytes\","
    "\"default\":\"\\u00ff\\u0000\"}]}";

START_TEST(test_promotions_aliases_enum_default)
{
    struct cv_schema *w = cv_avro_schema_new(writer_json, errstr, sizeof(errstr));
    struct cv_schema *r = cv_avro_schema_new(reader_json, errstr, sizeof(errstr));
    json_t *value = json_pack("{s:i, s:I, s:f, s:s, s:s, s:s, s:i, s:i, s:s, s:{s:I}}", "i", 7, "l",
                              (json_int_t)1 << 40, "f", 1.5, "s", "hi", "b", "aGk=", "e", "BLUE",
                              "u", 5, "n", 3, "gone", "x", "extra", "k", (json_int_t)1);
    json_t *expected =
        json_pack("{s:i, s:f, s:f, s:s, s:s, s:s, s:i, s:i, s:s, s:[i,i], s:s}", "i", 7, "l",
                  1099511627776.0, "f", 1.5, "s", "aGk=", "b", "hi", "e", "RED", "u", 5, "n", 3,
                  "renamed", "x", "added", 1, 2, "raw", "/wA=");
    json_t *out = NULL;
    unsigned char *buf;
    size_t len;

    ck_assert_msg(w != NULL && r != NULL, "%s", errstr);
    ck_assert(cv_avro_schema_compatible(w, r, errstr, sizeof(errstr)));
    ck_assert(!cv_avro_schema_compatible(r, w, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "i: the writer's long cannot be read as int");
    buf = encode_with(w, value, &len);
    ck_assert_msg(cv_avro_decode_body(w, buf + CV_AVRO_SINGLE_OBJECT_HEADER,
                                      len - CV_AVRO_SINGLE_OBJECT_HEADER, r, &out, errstr,
                                      sizeof(errstr)) == 0,
                  "%s", errstr);
    if (!json_equal(expected, out)) {
        char *a = json_dumps(expected, JSON_SORT_KEYS), *b = json_dumps(out, JSON_SORT_KEYS);
        ck_abort_msg("expected %s\n     got %s", a, b);
    }
    json_decref(out);
    free(buf);
    json_decref(value);
    json_decref(expected);
    cv_avro_schema_destroy(w);
    cv_avro_schema_destroy(r);
}
END_TEST

START_TEST(test_enum_without_default)
{
    struct cv_schema *w = cv_avro_schema_new(
        "{\"type\":\"enum\",\"name\":\"C\",\"symbols\":[\"A\",\"B\"]}", errstr, sizeof(errstr));
    struct cv_schema *r = cv_avro_schema_new(
        "{\"type\":\"enum\",\"name\":\"C\",\"symbols\":[\"B\",\"A2\"]}", errstr, sizeof(errstr));
    json_t *out = NULL;

    ck_assert(!cv_avro_schema_compatible(w, r, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "symbol A is not in the reader's C, which has no default");
    /* B (index 1) reads; A (index 0) does not. */
    ck_assert_int_eq(cv_avro_decode_body(w, "\x02", 1, r, &out, errstr, sizeof(errstr)), 0);
    ck_assert_str_eq(json_string_value(out), "B");
    json_decref(out);
    ck_assert_int_eq(cv_avro_decode_body(w, "\x00", 1, r, &out, errstr, sizeof(errstr)), -1);
    ck_assert_str_eq(errstr, "symbol A is not in the reader's C");
    cv_avro_schema_destroy(w);
    cv_avro_schema_destroy(r);
}
END_TEST

START_TEST(test_unions_both_ways)
{
    struct cv_schema *opt = cv_avro_schema_new("[\"null\",\"string\"]", errstr, sizeof(errstr));
    struct cv_schema *str = cv_avro_schema_new("\"string\"", errstr, sizeof(errstr));
    struct cv_schema *num = cv_avro_schema_new("\"int\"", errstr, sizeof(errstr));
    json_t *out = NULL;

    /* Writer union -> reader non-union: fine while the data is in a readable branch. */
    ck_assert(!cv_avro_schema_compatible(opt, str, errstr, sizeof(errstr)));
    ck_assert_int_eq(cv_avro_decode_body(opt, "\x02\x02x", 3, str, &out, errstr, sizeof(errstr)),
                     0);
    ck_assert_str_eq(json_string_value(out), "x");
    json_decref(out);
    ck_assert_int_eq(cv_avro_decode_body(opt, "\x00", 1, str, &out, errstr, sizeof(errstr)), -1);
    ck_assert_str_eq(errstr, "the writer's null cannot be read as string");
    /* Writer non-union -> reader union. */
    ck_assert(cv_avro_schema_compatible(str, opt, errstr, sizeof(errstr)));
    ck_assert(!cv_avro_schema_compatible(num, opt, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "the writer's int is in no branch of the reader's union");
    cv_avro_schema_destroy(opt);
    cv_avro_schema_destroy(str);
    cv_avro_schema_destroy(num);
}
END_TEST

START_TEST(test_recursive_schema)
{
    const char *list = "{\"type\":\"record\",\"name\":\"Node\",\"fields\":[{\"name\":\"v\","
                       "\"type\":\"int\"},{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]}";
    struct cv_schema *s = cv_avro_schema_new(list, errstr, sizeof(errstr));
    json_t *value = json_loads("{\"v\":1,\"next\":{\"v\":2,\"next\":null}}", 0, NULL), *out = NULL;
    unsigned char deep[200];
    unsigned char *buf;
    size_t len;

    ck_assert_msg(s != NULL, "%s", errstr);
    ck_assert(cv_avro_schema_compatible(s, s, errstr, sizeof(errstr)));
    buf = encode_with(s, value, &len);
    ck_assert_int_eq(cv_avro_decode_body(s, buf + CV_AVRO_SINGLE_OBJECT_HEADER,
                                         len - CV_AVRO_SINGLE_OBJECT_HEADER, NULL, &out, errstr,
                                         sizeof(errstr)),
                     0);
    ck_assert(json_equal(value, out));
    json_decref(out);
    /* 100 nodes deep: refused, not a stack overflow. */
    for (int i = 0; i < 100; i++) {
        deep[2 * i] = 0x02;     /* v = 1 */
        deep[2 * i + 1] = 0x02; /* next: the Node branch */
    }
    ck_assert_int_eq(cv_avro_decode_body(s, deep, sizeof(deep), NULL, &out, errstr, sizeof(errstr)),
                     -1);
    ck_assert_ptr_nonnull(strstr(errstr, "nested too deeply"));
    free(buf);
    /* Nor is it encoded. */
    for (int i = 0; i < 100; i++)
        value = json_pack("{s:i, s:o}", "v", i, "next", value);
    ck_assert_int_eq(
        cv_avro_encode(s, value, CV_AVRO_SINGLE_OBJECT, &buf, &len, errstr, sizeof(errstr)), -1);
    ck_assert_ptr_nonnull(strstr(errstr, "value nested too deeply"));
    json_decref(value);
    cv_avro_schema_destroy(s);
}
END_TEST

START_TEST(test_catalog_add_errors)
{
    struct cv_schema *s = cv_avro_schema_new("\"int\"", errstr, sizeof(errstr));

    ck_assert_int_eq(cv_avro_catalog_add(NULL, errstr, sizeof(errstr)), -1);
    cv_avro_catalog_free();
    ck_assert_int_eq(cv_avro_catalog_add(s, errstr, sizeof(errstr)), -1); /* freed s */
    ck_assert_str_eq(errstr, "the catalogue is not loaded");
    ck_assert_ptr_null(cv_avro_schema_by_type("OrderPlaced"));
    ck_assert_uint_eq(cv_avro_catalog_count(), 0);
    ck_assert_int_eq(cv_avro_catalog_load(errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(cv_avro_catalog_load(errstr, sizeof(errstr)), 0);
    ck_assert_ptr_nonnull(cv_avro_schema_by_type("OrderPlaced"));
}
END_TEST

static Suite *avro_evolution_suite(void)
{
    Suite *s = suite_create("avro_evolution");
    TCase *tc = tcase_create("evolution");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_v1_data_read_by_v2_gets_the_default);
    tcase_add_test(tc, test_v2_data_read_by_v1_drops_the_field);
    tcase_add_test(tc, test_v0_without_a_field);
    tcase_add_test(tc, test_current_compatible_with_every_release);
    tcase_add_test(tc, test_release_2_adds_the_cancellation_events);
    tcase_add_test(tc, test_evolution_files_compatibility);
    tcase_add_test(tc, test_promotions_aliases_enum_default);
    tcase_add_test(tc, test_enum_without_default);
    tcase_add_test(tc, test_unions_both_ways);
    tcase_add_test(tc, test_recursive_schema);
    tcase_add_test(tc, test_catalog_add_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(avro_evolution_suite());
}
