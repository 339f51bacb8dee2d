/* Unit tests of common/src/trace.c: W3C traceparent parsing, formatting, child spans. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cv/trace.h"
#include "runner.h"

#define VALID "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

START_TEST(test_parse_valid)
{
    struct cv_trace t;
    ck_assert_int_eq(cv_trace_parse(VALID, &t), 0);
    ck_assert_str_eq(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert_str_eq(t.span_id, "00f067aa0ba902b7");
    ck_assert_int_eq(t.flags, 1);
    char out[CV_TRACEPARENT_LEN + 1];
    cv_trace_format(&t, out);
    ck_assert_str_eq(out, VALID);
}
END_TEST

START_TEST(test_parse_invalid)
{
    static const char *const bad[] = {
        NULL,
        "",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* upper case */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* zero span id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", /* flags */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  /* short */
        VALID "0",                                                 /* long */
    };
    struct cv_trace t;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(cv_trace_parse(bad[i], &t) == -1, "accepted %s", bad[i] ? bad[i] : "NULL");
}
END_TEST

START_TEST(test_new_and_child)
{
    struct cv_trace a, b, child;
    cv_trace_new(&a);
    cv_trace_new(&b);
    ck_assert_str_ne(a.trace_id, b.trace_id);
    char text[CV_TRACEPARENT_LEN + 1];
    cv_trace_format(&a, text);
    struct cv_trace back;
    ck_assert_int_eq(cv_trace_parse(text, &back), 0);
    cv_trace_child(&a, &child);
    ck_assert_str_eq(child.trace_id, a.trace_id);
    ck_assert_str_ne(child.span_id, a.span_id);
    ck_assert_int_eq(child.flags, a.flags);
}
END_TEST

START_TEST(test_current_is_per_thread_state)
{
    ck_assert_ptr_null(cv_trace_current());
    struct cv_trace t;
    cv_trace_new(&t);
    cv_trace_set_current(&t);
    ck_assert_str_eq(cv_trace_current()->trace_id, t.trace_id);
    cv_trace_set_current(NULL);
    ck_assert_ptr_null(cv_trace_current());
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_parse_valid);
    tcase_add_test(tc, test_parse_invalid);
    tcase_add_test(tc, test_new_and_child);
    tcase_add_test(tc, test_current_is_per_thread_state);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(trace_suite());
}
