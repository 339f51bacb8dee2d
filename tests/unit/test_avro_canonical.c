/* Schema identity: CRC-64-AVRO, Parsing Canonical Form (Apache Avro's own test vectors, from its
 * schema-tests.txt, and our namespace rules), and the fingerprints of the embedded catalogue. */
#include <check.h>
#include <stdint.h>
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

START_TEST(test_crc64_vectors)
{
    /* The specification: the fingerprint of empty input is the initial value. */
    ck_assert_uint_eq(cv_avro_crc64("", 0), UINT64_C(0xc15d213aa4d7a795));
    ck_assert_uint_eq(cv_avro_crc64("\"null\"", 6), UINT64_C(7195948357588979594));
    ck_assert_uint_eq(cv_avro_crc64("\"int\"", 5), UINT64_C(8247732601305521295));
    ck_assert_uint_eq(cv_avro_crc64("\"string\"", 8), (uint64_t)INT64_C(-8142146995180207161));
}
END_TEST

/* input, canonical form, fingerprint as Avro's test file writes it (signed), 0 if it gives none */
static const struct {
    const char *input;
    const char *canonical;
    int64_t fingerprint;
} vectors[] = {
    {"\"null\"", "\"null\"", INT64_C(7195948357588979594)},
    {"{\"type\":\"null\"}", "\"null\"", 0},
    {"\"boolean\"", "\"boolean\"", INT64_C(-6970731678124411036)},
    {"{\"type\":\"boolean\"}", "\"boolean\"", 0},
    {"\"int\"", "\"int\"", INT64_C(8247732601305521295)},
    {"{\"type\":\"int\"}", "\"int\"", 0},
    {"\"long\"", "\"long\"", INT64_C(-3434872931120570953)},
    {"{\"type\":\"long\"}", "\"long\"", 0},
    {"\"float\"", "\"float\"", INT64_C(5583340709985441680)},
    {"{\"type\":\"float\"}", "\"float\"", 0},
    {"\"double\"", "\"double\"", INT64_C(-8181574048448539266)},
    {"{\"type\":\"double\"}", "\"double\"", 0},
    {"\"bytes\"", "\"bytes\"", INT64_C(5746618253357095269)},
    {"{\"type\":\"bytes\"}", "\"bytes\"", 0},
    {"\"string\"", "\"string\"", INT64_C(-8142146995180207161)},
    {"{\"type\":\"string\"}", "\"string\"", 0},
    {"[  ]", "[]", INT64_C(-1241056759729112623)},
    {"[ \"int\"  ]", "[\"int\"]", INT64_C(-5232228896498058493)},
    {"[ \"int\" , {\"type\":\"boolean\"} ]", "[\"int\",\"boolean\"]", INT64_C(5392556393470105090)},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4824392279771201922)},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(5916914534497305771)},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
     "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4616218487480524110)},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"Useful info\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4824392279771201922)},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4824392279771201922)},
    {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"foo\", "
     "\"aliases\":[\"foo\",\"bar\"]}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4824392279771201922)},
    {"{\"fields\":[{\"type\":{\"type\":\"boolean\"}, \"name\":\"f1\"}], \"type\":\"record\", "
     "\"name\":\"foo\"}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"}]}",
     INT64_C(7843277075252814651)},
    {"{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", "
     "\"default\":\"true\"},\n            "
     "{\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}],\n  "
     "\"type\":\"record\", \"name\":\"foo\"\n}",
     "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},{"
     "\"name\":\"f2\",\"type\":\"int\"}]}",
     INT64_C(-4860222112080293046)},
    {"{\"type\":\"enum\", \"name\":\"foo\", \"symbols\":[\"A1\"]}",
     "{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}", INT64_C(-6342190197741309591)},
    {"{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", "
     "\"symbols\":[\"A1\", \"A2\"]}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}",
     INT64_C(-4448647247586288245)},
    {"{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
     "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}", INT64_C(1756455273707447556)},
    {"{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", "
     "\"size\":32}",
     "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}", INT64_C(-3064184465700546786)},
    {"{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}",
     "{\"type\":\"array\",\"items\":\"null\"}", INT64_C(-589620603366471059)},
    {"{ \"values\":\"string\", \"type\":\"map\"}", "{\"type\":\"map\",\"values\":\"string\"}",
     INT64_C(-8732877298790414990)},
    {"  {\"name\":\"PigValue\",\"type\":\"record\",\n   \"fields\":[{\"name\":\"value\", "
     "\"type\":[\"null\", \"int\", \"long\", \"PigValue\"]}]}",
     "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":["
     "\"null\",\"int\",\"long\",\"PigValue\"]}]}",
     INT64_C(-1759257747318642341)},
    /* Ours: nested names inherit the namespace, later references are full names, logical
     * types and defaults are stripped, \u escapes are decoded. */
    {"{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"n\",\"doc\":\"d\",\"fields\":[{\"name\":"
     "\"a\",\"type\":{\"type\":\"record\",\"name\":\"S\",\"fields\":[]}},{\"name\":\"b\",\"type\":"
     "\"S\",\"doc\":\"x\"},{\"name\":\"c\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}}"
     ",{\"name\":\"d\",\"type\":[\"null\",{\"type\":\"map\",\"values\":\"n.S\"}],\"default\":null},"
     "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"o.\\u0045\",\"symbols\":[\"X\"]}},{"
     "\"name\":\"f\",\"type\":{\"type\":\"array\",\"items\":\"o.E\"}}]}",
     "{\"name\":\"n.R\",\"type\":\"record\",\"fields\":[{\"name\":\"a\",\"type\":{\"name\":\"n.S\","
     "\"type\":\"record\",\"fields\":[]}},{\"name\":\"b\",\"type\":\"n.S\"},{\"name\":\"c\","
     "\"type\":\"string\"},{\"name\":\"d\",\"type\":[\"null\",{\"type\":\"map\",\"values\":\"n.S\"}"
     "]},{\"name\":\"e\",\"type\":{\"name\":\"o.E\",\"type\":\"enum\",\"symbols\":[\"X\"]}},{"
     "\"name\":\"f\",\"type\":{\"type\":\"array\",\"items\":\"o.E\"}}]}",
     0},
};

START_TEST(test_canonical_vectors)
{
    char *form = cv_avro_canonical_form(vectors[_i].input, errstr, sizeof(errstr));

    ck_assert_msg(form != NULL, "vector %d: %s", _i, errstr);
    ck_assert_str_eq(form, vectors[_i].canonical);
    if (vectors[_i].fingerprint != 0)
        ck_assert_uint_eq(cv_avro_crc64(form, strlen(form)), (uint64_t)vectors[_i].fingerprint);
    free(form);
}
END_TEST

START_TEST(test_canonical_errors)
{
    static const struct {
        const char *input;
        const char *error;
    } bad[] = {
        {"{\"type\":", "not JSON"},
        {"\"conveyor.Nope\"", "unknown type \"conveyor.Nope\""},
        {"{\"type\":\"record\",\"fields\":[]}", "record without a name"},
        {"{\"type\":\"record\",\"name\":\"R\"}", "no fields"},
        {"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},{"
         "\"name\":\"a\",\"type\":\"int\"}]}",
         "appears twice"},
        {"{\"type\":\"record\",\"name\":\"1R\",\"fields\":[]}", "invalid name"},
        {"{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"A\"]}", "appears twice"},
        {"{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}", "size"},
        {"[\"int\",\"int\"]", "two int branches"},
        {"[\"null\",[\"int\"]]", "union directly inside a union"},
        {"{\"type\":\"array\"}", "array without items"},
        {"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":{\"type\":"
         "\"record\",\"name\":\"R\",\"fields\":[]}}]}",
         "defined twice"},
        {"42", "a schema must be"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *form = cv_avro_canonical_form(bad[i].input, errstr, sizeof(errstr));
        ck_assert_msg(form == NULL, "accepted %s", bad[i].input);
        ck_assert_msg(strstr(errstr, bad[i].error) != NULL, "%s: \"%s\" lacks \"%s\"", bad[i].input,
                      errstr, bad[i].error);
    }
}
END_TEST

START_TEST(test_deep_nesting_refused)
{
    char json[8192] = "";

    for (int i = 0; i < 200; i++)
        strcat(json, "{\"type\":\"array\",\"items\":");
    strcat(json, "\"int\"");
    for (int i = 0; i < 200; i++)
        strcat(json, "}");
    ck_assert_ptr_null(cv_avro_canonical_form(json, errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "nested too deeply"));
}
END_TEST

/* Every catalogue schema: fingerprint = CRC-64-AVRO of its canonical form, and the canonical
 * form is a schema whose canonical form is itself. */
START_TEST(test_catalogue_fingerprints)
{
    size_t n = cv_avro_catalog_count();

    ck_assert_uint_ge(n, 10);
    for (size_t i = 0; i < n; i++) {
        const struct cv_schema *s = cv_avro_catalog_get(i);
        const char *canonical = cv_avro_schema_canonical(s);
        char *again = cv_avro_canonical_form(canonical, errstr, sizeof(errstr));
        struct cv_schema *copy;

        ck_assert_msg(again != NULL, "%s: %s", cv_avro_schema_full_name(s), errstr);
        ck_assert_str_eq(again, canonical);
        free(again);
        ck_assert_uint_eq(cv_avro_schema_fingerprint(s),
                          cv_avro_crc64(canonical, strlen(canonical)));
        ck_assert_ptr_null(strstr(canonical, "doc"));
        ck_assert_ptr_null(strstr(canonical, "logicalType"));
        copy = cv_avro_schema_new(cv_avro_schema_json(s), errstr, sizeof(errstr));
        ck_assert_msg(copy != NULL, "%s", errstr);
        ck_assert_uint_eq(cv_avro_schema_fingerprint(copy), cv_avro_schema_fingerprint(s));
        ck_assert_str_eq(cv_avro_schema_origin(copy), "added");
        cv_avro_schema_destroy(copy);
    }
    ck_assert_ptr_null(cv_avro_catalog_get(n));
}
END_TEST

START_TEST(test_catalogue_lookups)
{
    static const char *const types[] = {"OrderPlaced",
                                        "OrderCancelled",
                                        "StockReserved",
                                        "StockRejected",
                                        "StockReleased",
                                        "StockAdjusted",
                                        "ShipmentScheduled",
                                        "ShipmentCancelled",
                                        "ShipmentDispatched",
                                        "ShipmentDelivered",
                                        "OrderCancellationRequested",
                                        "ShipmentCancellationRefused"};
    const struct cv_schema *s;

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char full[64];
        s = cv_avro_schema_by_type(types[i]);
        ck_assert_msg(s != NULL, "%s", types[i]);
        snprintf(full, sizeof(full), "conveyor.%s", types[i]);
        ck_assert_ptr_eq(cv_avro_schema_by_type(full), s);
        ck_assert_str_eq(cv_avro_schema_type(s), types[i]);
        ck_assert_str_eq(cv_avro_schema_full_name(s), full);
        ck_assert_str_eq(cv_avro_schema_origin(s), "current");
        ck_assert_ptr_eq(cv_avro_schema_by_fingerprint(cv_avro_schema_fingerprint(s)), s);
        /* Every event starts with the shared metadata, inlined. */
        ck_assert_ptr_nonnull(strstr(
            cv_avro_schema_canonical(s),
            "\"fields\":[{\"name\":\"metadata\",\"type\":{\"name\":\"conveyor.EventMetadata\""));
    }
    /* Shared types are not events. */
    ck_assert_ptr_null(cv_avro_schema_by_type("EventMetadata"));
    ck_assert_ptr_null(cv_avro_schema_by_type("conveyor.OrderItem"));
    ck_assert_ptr_null(cv_avro_schema_by_type("Nope"));
    ck_assert_ptr_null(cv_avro_schema_by_type(NULL));
    ck_assert_ptr_null(cv_avro_schema_by_fingerprint(0));
    ck_assert_ptr_null(cv_avro_schema_by_id(12345));
    /* Release 1 is in the catalogue too. */
    s = NULL;
    for (size_t i = 0; i < cv_avro_catalog_count(); i++)
        if (strcmp(cv_avro_schema_origin(cv_avro_catalog_get(i)), "v1") == 0)
            s = cv_avro_catalog_get(i);
    ck_assert_ptr_nonnull(s);
}
END_TEST

START_TEST(test_registry_ids)
{
    const struct cv_schema *placed = cv_avro_schema_by_type("OrderPlaced");
    const struct cv_schema *cancelled = cv_avro_schema_by_type("OrderCancelled");
    uint32_t id = 0;

    ck_assert_int_eq(cv_avro_schema_get_id(placed, &id), -1);
    cv_avro_schema_set_id(placed, 7);
    cv_avro_schema_set_id(cancelled, 0);
    ck_assert_int_eq(cv_avro_schema_get_id(placed, &id), 0);
    ck_assert_uint_eq(id, 7);
    ck_assert_ptr_eq(cv_avro_schema_by_id(7), placed);
    ck_assert_ptr_eq(cv_avro_schema_by_id(0), cancelled);
    ck_assert_ptr_null(cv_avro_schema_by_id(8));
}
END_TEST

START_TEST(test_schema_new_errors)
{
    ck_assert_ptr_null(cv_avro_schema_new("{", errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "not JSON"));
    ck_assert_ptr_null(cv_avro_schema_new(NULL, errstr, sizeof(errstr)));
    /* A default of the wrong type is refused (it would be written as is). */
    ck_assert_ptr_null(cv_avro_schema_new("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{"
                                          "\"name\":\"a\",\"type\":\"int\",\"default\":\"x\"}]}",
                                          errstr, sizeof(errstr)));
    ck_assert_ptr_nonnull(strstr(errstr, "R.a: bad default"));
    /* A union's default belongs to its first branch. */
    ck_assert_ptr_null(
        cv_avro_schema_new("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\","
                           "\"type\":[\"null\",\"string\"],\"default\":\"x\"}]}",
                           errstr, sizeof(errstr)));
    cv_avro_schema_destroy(NULL);
}
END_TEST

/* A schema given to cv_avro_schema_new may use the catalogue's shared types. */
START_TEST(test_schema_new_shared_types)
{
    struct cv_schema *s = cv_avro_schema_new(
        "{\"type\":\"record\",\"name\":\"Probe\",\"namespace\":\"conveyor\",\"fields\":[{\"name\":"
        "\"metadata\",\"type\":\"EventMetadata\"},{\"name\":\"items\",\"type\":{\"type\":\"array\","
        "\"items\":\"conveyor.StockItem\"}},{\"name\":\"more\",\"type\":{\"type\":\"array\","
        "\"items\":\"conveyor.StockItem\"}}]}",
        errstr, sizeof(errstr));

    ck_assert_msg(s != NULL, "%s", errstr);
    /* Inlined once, then referred to by name. */
    ck_assert_ptr_nonnull(strstr(
        cv_avro_schema_canonical(s),
        "{\"name\":\"more\",\"type\":{\"type\":\"array\",\"items\":\"conveyor.StockItem\"}}"));
    ck_assert_str_eq(cv_avro_schema_type(s), "Probe");
    cv_avro_schema_destroy(s);
}
END_TEST

static Suite *avro_canonical_suite(void)
{
    Suite *s = suite_create("avro_canonical");
    TCase *tc = tcase_create("canonical");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_crc64_vectors);
    tcase_add_loop_test(tc, test_canonical_vectors, 0, (int)(sizeof(vectors) / sizeof(vectors[0])));
    tcase_add_test(tc, test_canonical_errors);
    tcase_add_test(tc, test_deep_nesting_refused);
    tcase_add_test(tc, test_catalogue_fingerprints);
    tcase_add_test(tc, test_catalogue_lookups);
    tcase_add_test(tc, test_registry_ids);
    tcase_add_test(tc, test_schema_new_errors);
    tcase_add_test(tc, test_schema_new_shared_types);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(avro_canonical_suite());
}
