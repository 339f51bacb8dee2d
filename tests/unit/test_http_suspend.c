/* Unit tests of http_suspend.c: suspended requests (long polls) hold no server thread, resume
 * safely from any thread at any moment, and are answered when the server stops. */
#include "http_fixture.h"
#include "runner.h"

START_TEST(test_suspended_requests_hold_no_thread)
{
    /* Two threads, six requests suspended until the test resumes them: a seventh is answered
     * meanwhile (a handler blocking its thread would leave it unanswered: read_reply times
     * out), and each suspended one is answered once resumed, from this thread. */
    struct conn *waiting[6];
    for (int i = 0; i < 6; i++) {
        waiting[i] = conn_open();
        conn_send_str(waiting[i], "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    while (atomic_load(&nheld) < 6) {
        struct timespec tick = {0, 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    struct reply r;
    roundtrip("GET /orders/7 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    ck_assert_int_eq(atomic_load(&resumed_count), 0);
    for (int i = 0; i < 6; i++)
        cv_http_resume(atomic_load(&held[i]));
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(read_reply(waiting[i], &r, 0), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.body, "{\"resumed\":true,\"state\":\"kept\"}\n");
        reply_free(&r);
        /* Keep-alive after a resumed reply: the connection serves the next request. */
        conn_send_str(waiting[i], "GET /orders/8 HTTP/1.1\r\nHost: t\r\n\r\n");
        ck_assert_int_eq(read_reply(waiting[i], &r, 0), 0);
        ck_assert_int_eq(r.status, 200);
        reply_free(&r);
        conn_close(waiting[i]);
    }
    ck_assert_int_eq(atomic_load(&resumed_count), 6);
}
END_TEST

/* request's handler is resumed with its state kept and answers 200. */
static void expect_resumed(const char *request)
{
    struct reply r;
    roundtrip(request, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"resumed\":true,\"state\":\"kept\"}\n");
    reply_free(&r);
}

START_TEST(test_resumed_from_another_thread_later)
{
    expect_resumed("GET /wait/100 HTTP/1.1\r\nHost: t\r\n\r\n");
}
END_TEST

START_TEST(test_resumed_before_the_handler_returned)
{
    expect_resumed("GET /wait/0 HTTP/1.1\r\nHost: t\r\n\r\n");
}
END_TEST

START_TEST(test_destroy_answers_a_request_left_suspended)
{
    struct cv_http_config cfg = {
        .bind_address = "127.0.0.1", .threads = 2, .connection_limit = 16, .shutdown_grace_s = 1};
    restart_with(&cfg);
    struct conn *c = conn_open();
    conn_send_str(c, "GET /park HTTP/1.1\r\nHost: t\r\n\r\n");
    while (atomic_load(&parked) == NULL) {
        struct timespec tick = {0, 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    /* Its owner never resumes it: destroy does, after the grace, instead of aborting. */
    cv_http_server_destroy(srv);
    srv = NULL;
    struct reply r;
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    json_t *p = expect_problem(&r, 503);
    ck_assert_str_eq(jstr(p, "detail"), "shutting down");
    json_decref(p);
    reply_free(&r);
    conn_close(c);
    ck_assert_int_eq(atomic_load(&resumed_count), 1);
}
END_TEST

static Suite *http_suspend_suite(void)
{
    Suite *s = suite_create("http_suspend");
    TCase *tc = tcase_create("suspend");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_suspended_requests_hold_no_thread);
    tcase_add_test(tc, test_resumed_from_another_thread_later);
    tcase_add_test(tc, test_resumed_before_the_handler_returned);
    tcase_add_test(tc, test_destroy_answers_a_request_left_suspended);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(http_suspend_suite());
}
