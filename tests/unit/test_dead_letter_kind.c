/* Unit tests of the dead-letter reason kinds: the label of consumer_dead_lettered_total must stay
 * within a small fixed set whatever text a reason carries. */
#include "cv/service.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

START_TEST(test_kinds)
{
    ck_assert_str_eq(cv_service_dead_letter_kind("undecodable: unknown schema fingerprint "
                                                 "0123456789abcdef"),
                     "unknown_schema");
    ck_assert_str_eq(cv_service_dead_letter_kind("undecodable: unknown schema id 42"),
                     "unknown_schema");
    ck_assert_str_eq(cv_service_dead_letter_kind("undecodable: schema id 42: HTTP 404"),
                     "unknown_schema");
    ck_assert_str_eq(cv_service_dead_letter_kind("undecodable: truncated record"), "undecodable");
    ck_assert_str_eq(cv_service_dead_letter_kind("held back: OrderPlaced is in "
                                                 "CONSUMER_DEAD_LETTER_TYPES"),
                     "held_back");
    ck_assert_str_eq(cv_service_dead_letter_kind("database: value too long"), "database");
    ck_assert_str_eq(cv_service_dead_letter_kind("OrderPlaced without order_id"), "rejected");
    ck_assert_str_eq(cv_service_dead_letter_kind(""), "other");
    ck_assert_str_eq(cv_service_dead_letter_kind(NULL), "other");
}
END_TEST

/* Texts that merely resemble a prefix are not misfiled. */
START_TEST(test_prefix_must_match_exactly)
{
    ck_assert_str_eq(cv_service_dead_letter_kind("undecodable"), "rejected");
    ck_assert_str_eq(cv_service_dead_letter_kind("Database: x"), "rejected");
    ck_assert_str_eq(cv_service_dead_letter_kind(" held back: x"), "rejected");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dead_letter_kind");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_kinds);
    tcase_add_test(tc, test_prefix_must_match_exactly);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
