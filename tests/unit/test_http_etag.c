/* Unit tests of common/src/http_etag.c: If-Match / If-None-Match lists against an entity tag. */
#include <check.h>
#include <stdlib.h>

#include "cv/http.h"
#include "runner.h"

START_TEST(test_strong_match)
{
    ck_assert_int_eq(cv_http_etag_match("\"7\"", "\"7\"", 0), 1);
    ck_assert_int_eq(cv_http_etag_match("\"8\"", "\"7\"", 0), 0);
    ck_assert_int_eq(cv_http_etag_match("\"70\"", "\"7\"", 0), 0); /* no prefix match */
    ck_assert_int_eq(cv_http_etag_match("\"\"", "\"7\"", 0), 0);
    ck_assert_int_eq(cv_http_etag_match("\"1\", \"7\"", "\"7\"", 0), 1);
    ck_assert_int_eq(cv_http_etag_match("\"1\",\"2\"", "\"7\"", 0), 0);
    ck_assert_int_eq(cv_http_etag_match(" \t\"7\" ", "\"7\"", 0), 1);
    ck_assert_int_eq(cv_http_etag_match("\"1\", , \"7\",", "\"7\"", 0), 1); /* empty elements */
}
END_TEST

START_TEST(test_weak_tags)
{
    /* If-Match compares strongly: a weak tag never matches. */
    ck_assert_int_eq(cv_http_etag_match("W/\"7\"", "\"7\"", 0), 0);
    ck_assert_int_eq(cv_http_etag_match("W/\"7\", \"7\"", "\"7\"", 0), 1);
    /* If-None-Match compares weakly. */
    ck_assert_int_eq(cv_http_etag_match("W/\"7\"", "\"7\"", 1), 1);
    ck_assert_int_eq(cv_http_etag_match("\"7\"", "\"7\"", 1), 1);
    ck_assert_int_eq(cv_http_etag_match("W/\"6\"", "\"7\"", 1), 0);
}
END_TEST

START_TEST(test_star)
{
    ck_assert_int_eq(cv_http_etag_match("*", "\"7\"", 0), 1);
    ck_assert_int_eq(cv_http_etag_match(" * ", "\"7\"", 1), 1);
    ck_assert_int_eq(cv_http_etag_match("*, \"7\"", "\"7\"", 0), -1);
    ck_assert_int_eq(cv_http_etag_match("\"7\", *", "\"7\"", 0), -1);
}
END_TEST

START_TEST(test_malformed)
{
    ck_assert_int_eq(cv_http_etag_match(NULL, "\"7\"", 0), -1);
    ck_assert_int_eq(cv_http_etag_match("", "\"7\"", 0), -1);
    ck_assert_int_eq(cv_http_etag_match(" , ", "\"7\"", 0), -1);
    ck_assert_int_eq(cv_http_etag_match("7", "\"7\"", 0), -1);           /* unquoted */
    ck_assert_int_eq(cv_http_etag_match("\"7", "\"7\"", 0), -1);         /* unterminated */
    ck_assert_int_eq(cv_http_etag_match("\"7\"x", "\"7\"", 0), -1);      /* junk after */
    ck_assert_int_eq(cv_http_etag_match("\"7\" \"8\"", "\"7\"", 0), -1); /* no comma */
    ck_assert_int_eq(cv_http_etag_match("\"a b\"", "\"7\"", 0), -1);     /* space inside */
    ck_assert_int_eq(cv_http_etag_match("w/\"7\"", "\"7\"", 0), -1);     /* W is case-sensitive */
    ck_assert_int_eq(cv_http_etag_match("\"7\x01\"", "\"7\"", 0), -1);
    /* A malformed element after a matching one still makes the whole header invalid. */
    ck_assert_int_eq(cv_http_etag_match("\"7\", 8", "\"7\"", 0), -1);
}
END_TEST

static Suite *http_etag_suite(void)
{
    Suite *s = suite_create("http_etag");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_strong_match);
    tcase_add_test(tc, test_weak_tags);
    tcase_add_test(tc, test_star);
    tcase_add_test(tc, test_malformed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(http_etag_suite());
}
