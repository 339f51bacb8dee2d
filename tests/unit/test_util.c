/* Unit tests of common/src/util.c: UUIDs and time formatting/parsing. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cv/util.h"
#include "runner.h"

START_TEST(test_uuid_v4_form)
{
    char a[37], b[37];
    cv_uuid_v4(a);
    cv_uuid_v4(b);
    ck_assert_uint_eq(strlen(a), 36);
    ck_assert(cv_uuid_valid(a));
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(a[14], '4');             /* version */
    ck_assert(strchr("89ab", a[19]) != NULL); /* variant */
}
END_TEST

START_TEST(test_uuid_valid_rejects)
{
    ck_assert(cv_uuid_valid("123e4567-E89B-12d3-a456-426614174000"));
    ck_assert(!cv_uuid_valid(NULL));
    ck_assert(!cv_uuid_valid(""));
    ck_assert(!cv_uuid_valid("123e4567-e89b-12d3-a456-42661417400"));   /* short */
    ck_assert(!cv_uuid_valid("123e4567-e89b-12d3-a456-4266141740000")); /* long */
    ck_assert(!cv_uuid_valid("123e4567xe89b-12d3-a456-426614174000"));  /* dash */
    ck_assert(!cv_uuid_valid("123e4567-e89b-12d3-a456-42661417400g"));  /* hex */
}
END_TEST

START_TEST(test_sku_format)
{
    ck_assert(cv_sku_valid("WIDGET-1"));
    ck_assert(cv_sku_valid("a.b_c-9"));
    char longest[65];
    memset(longest, 'A', 64);
    longest[64] = '\0';
    ck_assert(cv_sku_valid(longest));
    ck_assert(!cv_sku_valid(NULL));
    ck_assert(!cv_sku_valid(""));
    ck_assert(!cv_sku_valid("bad sku"));
    ck_assert(!cv_sku_valid("slash/sku"));
    ck_assert(!cv_sku_valid("\xc3\xa9t\xc3\xa9"));
    char too_long[66];
    memset(too_long, 'A', 65);
    too_long[65] = '\0';
    ck_assert(!cv_sku_valid(too_long));
}
END_TEST

START_TEST(test_format_time)
{
    char out[25];
    cv_format_time(0, out);
    ck_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
    cv_format_time(1795703022123LL, out);
    ck_assert_str_eq(out, "2026-11-26T14:23:42.123Z");
    cv_format_time(-1, out);
    ck_assert_str_eq(out, "1969-12-31T23:59:59.999Z");
}
END_TEST

START_TEST(test_parse_time)
{
    int64_t ms;
    ck_assert_int_eq(cv_parse_time("2026-11-26T14:23:42Z", &ms), 0);
    ck_assert_int_eq(ms, 1795703022000LL);
    ck_assert_int_eq(cv_parse_time("2026-11-26T14:23:42.123Z", &ms), 0);
    ck_assert_int_eq(ms, 1795703022123LL);
    ck_assert_int_eq(cv_parse_time("2026-11-26T14:23:42.1Z", &ms), 0);
    ck_assert_int_eq(ms, 1795703022100LL);
    ck_assert_int_eq(cv_parse_time("2026-11-26T15:23:42+01:00", &ms), 0);
    ck_assert_int_eq(ms, 1795703022000LL);
    ck_assert_int_eq(cv_parse_time("2026-11-26T13:23:42-01:00", &ms), 0);
    ck_assert_int_eq(ms, 1795703022000LL);
    ck_assert_int_eq(cv_parse_time("2026-11-26", &ms), -1);
    ck_assert_int_eq(cv_parse_time("2026-11-26T14:23:42", &ms), -1); /* no zone */
    ck_assert_int_eq(cv_parse_time("2026-11-26T14:23:42.Z", &ms), -1);
    ck_assert_int_eq(cv_parse_time("2026-11-26T14:23:42Zjunk", &ms), -1);
    ck_assert_int_eq(cv_parse_time("yesterday", &ms), -1);
    /* Found by fuzzing: a short offset made the parser read past the end of the text. */
    ck_assert_int_eq(cv_parse_time("2026-01-31T12:00:00+1:2", &ms), -1);
    ck_assert_int_eq(cv_parse_time("2026-01-31T12:00:00+", &ms), -1);
    ck_assert_int_eq(cv_parse_time("2026-01-31T12:00:00+99:99", &ms), -1);
    ck_assert_int_eq(cv_parse_time("2026-01-31T12:00:00+-1:-1", &ms), -1);
    ck_assert_int_eq(cv_parse_time("2026-01-31T12:00:00+ 1: 2", &ms), -1);
    /* Strict RFC 3339: zero-padded fields, real dates. */
    ck_assert_int_eq(cv_parse_time("7-1-1T1:0:0Z", &ms), -1);
    ck_assert_int_eq(cv_parse_time(" 2026-01-31T12:00:00Z", &ms), -1);
    ck_assert_int_eq(cv_parse_time("2026-02-31T12:00:00Z", &ms), -1);
    ck_assert_int_eq(cv_parse_time("2026-01-31T24:00:00Z", &ms), -1);
    ck_assert_int_eq(cv_parse_time("2024-02-29T00:00:00Z", &ms), 0);
}
END_TEST

START_TEST(test_format_parse_round_trip)
{
    for (int64_t ms = 0; ms < 4102444800000LL; ms += 987654321987LL / 7) {
        char out[25];
        int64_t back;
        cv_format_time(ms, out);
        ck_assert_int_eq(cv_parse_time(out, &back), 0);
        ck_assert_int_eq(back, ms);
    }
}
END_TEST

START_TEST(test_sleep_stops_early)
{
    volatile int stop = 1;
    int64_t start = cv_monotonic_ms();
    cv_sleep_ms(5000, &stop);
    ck_assert_int_lt(cv_monotonic_ms() - start, 1000);
}
END_TEST

/* Doubles from first_ms, lands exactly on max_ms (never past it), and starts over on reset. */
/* Each case: bytes, how many are available, the expected sequence length. */
START_TEST(test_utf8_sequence_length)
{
    static const struct {
        const char *bytes;
        size_t avail;
        size_t want;
    } cases[] = {
        {"a", 1, 1},
        {"\0", 1, 1},
        {"\xc3\xa9", 2, 2},
        {"\xc3\xa9", 1, 0},
        {"\xc1\xbf", 2, 0}, /* overlong */
        {"\x80", 1, 0},     /* stray continuation */
        {"\xe2\x82\xac", 3, 3},
        {"\xe0\x9f\xbf", 3, 0}, /* overlong */
        {"\xed\xa0\x80", 3, 0}, /* surrogate */
        {"\xef\xbf\xbd", 3, 3},
        {"\xf0\x9f\x98\x80", 4, 4},
        {"\xf0\x8f\xbf\xbf", 4, 0},
        {"\xf4\x8f\xbf\xbf", 4, 4}, /* U+10FFFF */
        {"\xf4\x90\x80\x80", 4, 0}, /* past U+10FFFF */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xe2\x28\xa1", 3, 0},
        {"x", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(cv_utf8_sequence_length((const unsigned char *)cases[i].bytes,
                                              cases[i].avail) == cases[i].want,
                      "case %zu", i);
}
END_TEST

START_TEST(test_backoff_doubles_caps_and_resets)
{
    struct cv_backoff b = CV_BACKOFF(500, 5000);
    const int want[] = {500, 1000, 2000, 4000, 5000, 5000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_int_eq(cv_backoff_next(&b), want[i]);
    cv_backoff_reset(&b);
    ck_assert_int_eq(cv_backoff_next(&b), 500);
    struct cv_backoff c = CV_BACKOFF(100, 800);
    const int want_c[] = {100, 200, 400, 800, 800};
    for (size_t i = 0; i < sizeof(want_c) / sizeof(want_c[0]); i++)
        ck_assert_int_eq(cv_backoff_next(&c), want_c[i]);
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_uuid_v4_form);
    tcase_add_test(tc, test_uuid_valid_rejects);
    tcase_add_test(tc, test_sku_format);
    tcase_add_test(tc, test_format_time);
    tcase_add_test(tc, test_parse_time);
    tcase_add_test(tc, test_format_parse_round_trip);
    tcase_add_test(tc, test_sleep_stops_early);
    tcase_add_test(tc, test_utf8_sequence_length);
    tcase_add_test(tc, test_backoff_doubles_caps_and_resets);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(util_suite());
}
