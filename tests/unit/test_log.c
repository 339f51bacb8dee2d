/* Unit tests of common/src/log.c: each call writes one valid JSON object per line, with the
 * level filter applied before the arguments are evaluated. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cv/log.h"
#include "runner.h"

static int saved_stdout = -1;
static char path[] = "/tmp/cv-test-log-XXXXXX";

static void capture_start(void)
{
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    fflush(stdout);
    saved_stdout = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    close(fd);
}

/* Restores stdout and returns the captured lines as a JSON array of parsed objects. */
static json_t *capture_end(void)
{
    fflush(stdout);
    dup2(saved_stdout, STDOUT_FILENO);
    close(saved_stdout);
    FILE *f = fopen(path, "r");
    json_t *lines = json_array();
    char buf[8192];
    while (fgets(buf, sizeof(buf), f)) {
        json_error_t err;
        json_t *obj = json_loads(buf, 0, &err);
        ck_assert_msg(obj != NULL, "not JSON: %s (%s)", buf, err.text);
        json_array_append_new(lines, obj);
    }
    fclose(f);
    unlink(path);
    strcpy(path, "/tmp/cv-test-log-XXXXXX");
    return lines;
}

static int evaluated;
static const char *count_evaluation(void)
{
    evaluated++;
    return "x";
}

START_TEST(test_lines_are_json_with_context)
{
    cv_log_init("test-service", CV_LOG_INFO);
    capture_start();
    cv_log_info("plain %d", 42);
    cv_log_set_context("order-1", "event-2");
    cv_log_warn("quote \" backslash \\ newline \n tab \t ctrl \x01 done");
    cv_log_set_context(NULL, NULL);
    cv_log_error("after");
    json_t *lines = capture_end();
    ck_assert_uint_eq(json_array_size(lines), 3);
    json_t *a = json_array_get(lines, 0), *b = json_array_get(lines, 1),
           *c = json_array_get(lines, 2);
    ck_assert_str_eq(json_string_value(json_object_get(a, "msg")), "plain 42");
    ck_assert_str_eq(json_string_value(json_object_get(a, "level")), "info");
    ck_assert_str_eq(json_string_value(json_object_get(a, "service")), "test-service");
    ck_assert(json_object_get(a, "order_id") == NULL);
    ck_assert_str_eq(json_string_value(json_object_get(b, "msg")),
                     "quote \" backslash \\ newline \n tab \t ctrl \x01 done");
    ck_assert_str_eq(json_string_value(json_object_get(b, "order_id")), "order-1");
    ck_assert_str_eq(json_string_value(json_object_get(b, "event_id")), "event-2");
    ck_assert(json_object_get(c, "order_id") == NULL);
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(c, "time"))), 24);
    json_decref(lines);
}
END_TEST

START_TEST(test_level_filter_skips_arguments)
{
    cv_log_init("test-service", CV_LOG_WARN);
    evaluated = 0;
    capture_start();
    cv_log_debug("%s", count_evaluation());
    cv_log_info("%s", count_evaluation());
    cv_log_warn("%s", count_evaluation());
    json_t *lines = capture_end();
    ck_assert_int_eq(evaluated, 1);
    ck_assert_uint_eq(json_array_size(lines), 1);
    json_decref(lines);
}
END_TEST

START_TEST(test_long_message_still_one_json_line)
{
    cv_log_init("test-service", CV_LOG_INFO);
    char big[6000];
    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    capture_start();
    cv_log_info("%s", big);
    json_t *lines = capture_end();
    ck_assert_uint_eq(json_array_size(lines), 1);
    json_decref(lines);
}
END_TEST

START_TEST(test_bytes_that_are_not_utf8_become_replacement_characters)
{
    cv_log_init("test-service", CV_LOG_INFO);
    capture_start();
    cv_log_set_context("\xc0\xafid", NULL);
    cv_log_warn("key \xff\xfe end \xc3\xa9 ok \xed\xa0\x80 del \x7f cut \xe2\x82");
    cv_log_set_context(NULL, NULL);
    json_t *lines = capture_end();
    ck_assert_uint_eq(json_array_size(lines), 1);
    json_t *line = json_array_get(lines, 0);
    ck_assert_str_eq(json_string_value(json_object_get(line, "msg")),
                     "key \xef\xbf\xbd\xef\xbf\xbd end \xc3\xa9 ok "
                     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd del \x7f cut "
                     "\xef\xbf\xbd\xef\xbf\xbd");
    ck_assert_str_eq(json_string_value(json_object_get(line, "order_id")),
                     "\xef\xbf\xbd\xef\xbf\xbdid");
    json_decref(lines);
}
END_TEST

START_TEST(test_level_parse)
{
    enum cv_log_level level;
    ck_assert_int_eq(cv_log_level_parse("debug", &level), 0);
    ck_assert_int_eq(level, CV_LOG_DEBUG);
    ck_assert_int_eq(cv_log_level_parse("error", &level), 0);
    ck_assert_int_eq(level, CV_LOG_ERROR);
    ck_assert_int_eq(cv_log_level_parse("verbose", &level), -1);
    ck_assert_int_eq(cv_log_level_parse("", &level), -1);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_lines_are_json_with_context);
    tcase_add_test(tc, test_level_filter_skips_arguments);
    tcase_add_test(tc, test_long_message_still_one_json_line);
    tcase_add_test(tc, test_bytes_that_are_not_utf8_become_replacement_characters);
    tcase_add_test(tc, test_level_parse);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(log_suite());
}
