/* Unit tests of the schema registry client's local behaviour: configuration checks, subject
 * names by TopicRecordNameStrategy, values that need no lookup, and an unreachable registry
 * reported as transient. Talking to a real registry is tested end to end
 * (tests/e2e/test_registry.py). */
#include "cv/avro_registry.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

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

START_TEST(test_new_checks_the_url)
{
    static const char *const bad[] = {"", "ftp://registry/", "registry:8081", "file:///etc"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cv_avro_registry_conf conf = {.url = bad[i]};
        errstr[0] = '\0';
        ck_assert_ptr_null(cv_avro_registry_new(&conf, errstr, sizeof(errstr)));
        ck_assert_msg(strstr(errstr, "http://") != NULL, "%s", errstr);
    }
    struct cv_avro_registry_conf null_url = {.url = NULL};
    ck_assert_ptr_null(cv_avro_registry_new(&null_url, errstr, sizeof(errstr)));
    struct cv_avro_registry_conf good = {.url = "https://registry.example:8081/apis/ccompat/v7/",
                                         .user = "u",
                                         .password = "p",
                                         .ca_file = "/nonexistent.pem",
                                         .timeout_ms = 100};
    struct cv_avro_registry *reg = cv_avro_registry_new(&good, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(reg);
    cv_avro_registry_destroy(reg);
    cv_avro_registry_destroy(NULL);
}
END_TEST

START_TEST(test_subject_is_topic_and_record_full_name)
{
    char buf[64];
    const struct cv_schema *s = cv_avro_schema_by_type("OrderPlaced");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(cv_avro_registry_subject("shop.orders", s, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "shop.orders-conveyor.OrderPlaced");
    /* Too small: refused, never cut. */
    ck_assert_int_eq(cv_avro_registry_subject("shop.orders", s, buf, 10), -1);
}
END_TEST

/* A registry on a loopback port nothing listens on. */
static struct cv_avro_registry *unreachable(void)
{
    struct cv_avro_registry_conf conf = {.url = "http://127.0.0.1:1", .timeout_ms = 2000};
    struct cv_avro_registry *reg = cv_avro_registry_new(&conf, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(reg);
    return reg;
}

START_TEST(test_prepare_needs_no_lookup_for_other_framings)
{
    struct cv_avro_registry *reg = unreachable();
    const unsigned char single[] = {0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0};
    const unsigned char short_confluent[] = {0x00, 0x00, 0x01};
    int transient = -1;
    ck_assert_int_eq(
        cv_avro_registry_prepare(reg, single, sizeof(single), &transient, errstr, sizeof(errstr)),
        0);
    ck_assert_int_eq(transient, 0);
    ck_assert_int_eq(cv_avro_registry_prepare(reg, short_confluent, sizeof(short_confluent),
                                              &transient, errstr, sizeof(errstr)),
                     0);
    ck_assert_int_eq(cv_avro_registry_prepare(reg, NULL, 0, NULL, errstr, sizeof(errstr)), 0);
    /* An id the catalogue knows already: no request. */
    cv_avro_schema_set_id(cv_avro_schema_by_type("OrderPlaced"), 77);
    const unsigned char known[] = {0x00, 0x00, 0x00, 0x00, 77, 0};
    ck_assert_int_eq(
        cv_avro_registry_prepare(reg, known, sizeof(known), &transient, errstr, sizeof(errstr)), 0);
    cv_avro_registry_destroy(reg);
}
END_TEST

START_TEST(test_unreachable_registry_is_transient)
{
    struct cv_avro_registry *reg = unreachable();
    const unsigned char unknown[] = {0x00, 0x00, 0x00, 0x30, 0x39, 0};
    int transient = 0;
    errstr[0] = '\0';
    ck_assert_int_eq(
        cv_avro_registry_prepare(reg, unknown, sizeof(unknown), &transient, errstr, sizeof(errstr)),
        -1);
    ck_assert_int_eq(transient, 1);
    ck_assert_msg(strstr(errstr, "127.0.0.1:1") != NULL, "%s", errstr);
    ck_assert_ptr_null(cv_avro_schema_by_id(12345));

    uint32_t id = 0;
    transient = 0;
    ck_assert_int_eq(cv_avro_registry_register(reg, "t-conveyor.OrderPlaced",
                                               cv_avro_schema_by_type("OrderPlaced"), &id,
                                               &transient, errstr, sizeof(errstr)),
                     -1);
    ck_assert_int_eq(transient, 1);
    cv_avro_registry_destroy(reg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("avro_registry");
    TCase *tc = tcase_create("client");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_new_checks_the_url);
    tcase_add_test(tc, test_subject_is_topic_and_record_full_name);
    tcase_add_test(tc, test_prepare_needs_no_lookup_for_other_framings);
    tcase_add_test(tc, test_unreachable_registry_is_transient);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
