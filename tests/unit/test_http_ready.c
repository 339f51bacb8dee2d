/* Unit tests of http_ready.c: /readyz answers the cached result of the readiness thread at once. */
#include "http_fixture.h"
#include "runner.h"

START_TEST(test_readyz_ready_not_ready_draining)
{
    struct reply r;
    roundtrip("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ready\"}\n");
    reply_free(&r);

    atomic_store(&app.ready, 0);
    roundtrip("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    json_t *p = expect_problem(&r, 503);
    ck_assert_str_eq(jstr(p, "detail"), "database unreachable");
    json_decref(p);
    reply_free(&r);

    atomic_store(&app.ready, 1);
    cv_http_server_set_draining(srv);
    struct conn *c = conn_open();
    conn_send_str(c, "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    p = expect_problem(&r, 503);
    ck_assert_str_eq(jstr(p, "detail"), "shutting down");
    ck_assert_str_eq(reply_header(&r, "Connection"), "close");
    ck_assert(conn_closed_by_peer(c));
    json_decref(p);
    reply_free(&r);
    conn_close(c);

    /* Still alive while draining. */
    roundtrip("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
}
END_TEST

START_TEST(test_readiness_cache)
{
    struct cv_http_config cfg = {.bind_address = "127.0.0.1",
                                 .threads = 2,
                                 .connection_limit = 16,
                                 .ready_cache_ms = 50,
                                 .shutdown_grace_s = 1};
    restart_with(&cfg);
    struct timespec pause = {0, 200 * 1000000L};
    nanosleep(&pause, NULL);
    struct reply r;
    roundtrip("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    atomic_store(&app.ready, 0);
    nanosleep(&pause, NULL); /* the checker has run again */
    roundtrip("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    json_t *p = expect_problem(&r, 503);
    ck_assert_str_eq(jstr(p, "detail"), "database unreachable");
    json_decref(p);
    reply_free(&r);
}
END_TEST

static Suite *http_ready_suite(void)
{
    Suite *s = suite_create("http_ready");
    TCase *tc = tcase_create("ready");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_readyz_ready_not_ready_draining);
    tcase_add_test(tc, test_readiness_cache);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(http_ready_suite());
}
