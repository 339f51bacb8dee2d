/* Unit tests of http_server.c: daemon lifecycle, routing, the built-in /healthz and /metrics, body
 * limits, keep-alive, configuration errors and the probe port. */
#include "http_fixture.h"
#include "runner.h"

START_TEST(test_healthz)
{
    struct reply r;
    roundtrip("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(reply_header(&r, "Content-Type"), "application/json");
    ck_assert_str_eq(r.body, "{\"status\":\"ok\"}\n");
    reply_free(&r);

    roundtrip("HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(reply_header(&r, "Content-Length"), "16");
    reply_free(&r);
}
END_TEST

START_TEST(test_metrics_endpoint)
{
    /* One keep-alive connection: each request is counted (on completion) before the next is
     * read, so the figures are exact. */
    struct conn *c = conn_open();
    struct reply r;
    const char *reqs[] = {
        "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", "GET /orders/41 HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /orders/42 HTTP/1.1\r\nHost: t\r\n\r\n", "GET /missing/7 HTTP/1.1\r\nHost: t\r\n\r\n",
        "BREW /orders/42 HTTP/1.1\r\nHost: t\r\n\r\n"};
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        conn_send_str(c, reqs[i]);
        ck_assert_int_eq(read_reply(c, &r, 0), 0);
        reply_free(&r);
    }
    conn_send_str(c, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    conn_close(c);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(reply_header(&r, "Content-Type"), "text/plain; version=0.0.4");
    const char *expected[] = {
        "# TYPE http_requests_total counter\n",
        "# TYPE http_request_duration_seconds histogram\n",
        "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1\n",
        "http_requests_total{method=\"GET\",route=\"/orders/{id}\",status=\"200\"} 2\n",
        "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n",
        "http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"405\"} 1\n",
        "http_request_duration_seconds_count{route=\"/orders/{id}\"} 2\n",
        "http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 1\n",
        "http_request_duration_seconds_count{route=\"unmatched\"} 2\n",
        "http_requests_in_flight 1\n", /* this very request */
    };
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
        ck_assert_msg(strstr(r.body, expected[i]) != NULL, "missing %s in:\n%s", expected[i],
                      r.body);
    reply_free(&r);
}
END_TEST

START_TEST(test_not_found)
{
    struct reply r;
    roundtrip("GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    json_t *p = expect_problem(&r, 404);
    ck_assert_str_eq(jstr(p, "title"), "Not Found");
    json_decref(p);
    reply_free(&r);
    /* A parameter matches only a non-empty segment. */
    roundtrip("GET /orders/ HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 404);
    reply_free(&r);
    roundtrip("GET /orders/1/cancel/x HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 404);
    reply_free(&r);
}
END_TEST

START_TEST(test_method_not_allowed)
{
    struct reply r;
    roundtrip("PUT /orders/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
    json_t *p = expect_problem(&r, 405);
    ck_assert_str_eq(reply_header(&r, "Allow"), "GET, HEAD, DELETE");
    json_decref(p);
    reply_free(&r);
    roundtrip("POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(reply_header(&r, "Allow"), "GET, HEAD");
    reply_free(&r);
}
END_TEST

START_TEST(test_too_large_from_content_length)
{
    /* Announced too large: answered at once, before any body is sent, and the connection is
     * closed rather than the body read. */
    struct conn *c = conn_open();
    conn_send_str(c, "POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Content-Length: 5000\r\n\r\n");
    struct reply r;
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    json_t *p = expect_problem(&r, 413);
    ck_assert_str_eq(jstr(p, "detail"), "the request body exceeds 1024 bytes");
    ck_assert_str_eq(reply_header(&r, "Connection"), "close");
    ck_assert(conn_closed_by_peer(c));
    json_decref(p);
    reply_free(&r);
    conn_close(c);

    /* With Expect: 100-continue the client is refused without being invited to send. */
    c = conn_open();
    conn_send_str(c, "POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Content-Length: 999999999999\r\nExpect: 100-continue\r\n\r\n");
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    ck_assert_int_eq(r.status, 413);
    ck_assert_int_eq(r.saw_continue, 0);
    reply_free(&r);
    conn_close(c);

    /* Exactly the limit is fine. */
    char *body = malloc(MAX_BODY + 1);
    memset(body, 'x', MAX_BODY);
    body[MAX_BODY] = '\0';
    char head[256];
    snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
             MAX_BODY);
    c = conn_open();
    conn_send_str(c, head);
    conn_send_str(c, body);
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"length\":1024,\"head\":\"xxxxxxxx\"}\n");
    reply_free(&r);
    conn_close(c);
    free(body);
}
END_TEST

START_TEST(test_keep_alive)
{
    struct conn *c = conn_open();
    struct reply r;
    conn_send_str(c, "GET /orders/1 HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(reply_header(&r, "Connection"));
    reply_free(&r);
    conn_send_str(c, "POST /orders HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Content-Length: 26\r\n\r\n{\"sku\":\"B\",\"quantity\":100}");
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    ck_assert_int_eq(r.status, 201);
    reply_free(&r);
    /* Two pipelined requests in one write also both get answers, in order. */
    conn_send_str(c, "GET /orders/2 HTTP/1.1\r\nHost: t\r\n\r\n"
                     "GET /orders/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "\"id\":\"2\""));
    reply_free(&r);
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "\"id\":\"3\""));
    reply_free(&r);
    conn_close(c);
}
END_TEST

START_TEST(test_handler_without_status)
{
    struct reply r;
    roundtrip("DELETE /orders/5 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    json_t *p = expect_problem(&r, 500);
    json_decref(p);
    reply_free(&r);
}
END_TEST

START_TEST(test_expect_continue_and_large_headers)
{
    struct conn *c = conn_open();
    struct reply r;
    conn_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                     "Expect: 100-continue\r\n\r\n");
    /* Wait for the interim reply before sending the body, as a client would. */
    while (strstr(c->buf, "\r\n\r\n") == NULL)
        ck_assert_int_gt(conn_fill(c), 0);
    ck_assert_int_eq(strncmp(c->buf, "HTTP/1.1 100", 12), 0);
    conn_send_str(c, "abcd");
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    ck_assert_int_eq(r.saw_continue, 1);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    conn_close(c);

    /* 40 KiB of headers: over libmicrohttpd's 32 KiB default, within our 64 KiB. */
    size_t n = 40 * 1024;
    char *raw = malloc(n + 256);
    int len = snprintf(raw, 256, "GET /orders/1 HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(raw + len, 'h', n);
    strcpy(raw + len + n, "\r\n\r\n");
    roundtrip(raw, &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    free(raw);
}
END_TEST

START_TEST(test_destroy_waits_for_in_flight)
{
    struct conn *c = conn_open();
    conn_send_str(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    while (!atomic_load(&app.slow_entered)) {
        struct timespec tick = {0, 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    cv_http_server_destroy(srv); /* returns after the slow reply went out */
    srv = NULL;
    struct reply r;
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"slow\":true}\n");
    ck_assert_str_eq(reply_header(&r, "Connection"), "close");
    reply_free(&r);
    conn_close(c);
}
END_TEST

START_TEST(test_bad_configuration)
{
    char errstr[256];
    struct cv_http_config cfg = {.bind_address = "127.0.0.1"};
    static const struct cv_http_route broken[] = {{"GET", "/orders/{id", get_order, CV_HTTP_OPEN}};
    ck_assert_ptr_null(cv_http_server_new(&cfg, broken, 1, NULL, NULL, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "route /orders/{id: a parameter must be a whole segment like {id}");
    static const struct cv_http_route relative[] = {{"GET", "orders", get_order, CV_HTTP_OPEN}};
    ck_assert_ptr_null(cv_http_server_new(&cfg, relative, 1, NULL, NULL, errstr, sizeof(errstr)));
    /* A route must say who may call it: no access stated is not "open". */
    static const struct cv_http_route unstated[] = {{"GET", "/orders/{id}", get_order, 0}};
    ck_assert_ptr_null(cv_http_server_new(&cfg, unstated, 1, NULL, NULL, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr,
                     "http: route GET /orders/{id} states no access (CV_HTTP_OPEN or roles)");
    static const struct cv_http_route rate_only[] = {
        {"POST", "/orders", post_order, CV_HTTP_RATE_LIMITED}};
    ck_assert_ptr_null(cv_http_server_new(&cfg, rate_only, 1, NULL, NULL, errstr, sizeof(errstr)));

    cfg.bind_address = "::zz";
    ck_assert_ptr_null(cv_http_server_new(&cfg, routes, 1, NULL, NULL, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "http: invalid IPv6 bind address \"::zz\"");
    cfg.bind_address = "localhost";
    ck_assert_ptr_null(cv_http_server_new(&cfg, routes, 1, NULL, NULL, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "http: invalid IPv4 bind address \"localhost\"");

    /* The port of the running server is taken. */
    cfg.bind_address = "127.0.0.1";
    cfg.port = port;
    ck_assert_ptr_null(cv_http_server_new(&cfg, routes, 1, NULL, NULL, errstr, sizeof(errstr)));
    cv_http_server_destroy(NULL);
}
END_TEST

static int unused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd);
    return ntohs(sin.sin_port);
}

START_TEST(test_probe_port_and_per_ip_limit)
{
    int probe = unused_port();
    struct cv_http_config cfg = {.bind_address = "127.0.0.1",
                                 .threads = 2,
                                 .connection_limit = 16,
                                 .per_ip_limit = 2,
                                 .probe_port = probe,
                                 .shutdown_grace_s = 1};
    restart_with(&cfg);
    ck_assert_int_eq(cv_http_server_probe_port(srv), probe);

    /* Two connections from 127.0.0.1 are all the API port takes from it... */
    struct conn *a = conn_open(), *b = conn_open(), *c = conn_open();
    struct reply r;
    conn_send_str(a, "GET /orders/1 HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(read_reply(a, &r, 0), 0);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    conn_send(c, "GET /orders/1 HTTP/1.1\r\nHost: t\r\n\r\n", 34);
    ck_assert_int_eq(read_reply(c, &r, 0), -1); /* closed without a reply */
    conn_close(c);

    /* ...while the probe port, a daemon of its own, still answers, and only probes. */
    int api = port;
    port = probe;
    roundtrip("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    roundtrip("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    roundtrip("GET /orders/1 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 404);
    reply_free(&r);
    port = api;
    conn_close(a);
    conn_close(b);
}
END_TEST

static Suite *http_server_suite(void)
{
    Suite *s = suite_create("http_server");
    TCase *tc = tcase_create("server");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_healthz);
    tcase_add_test(tc, test_metrics_endpoint);
    tcase_add_test(tc, test_not_found);
    tcase_add_test(tc, test_method_not_allowed);
    tcase_add_test(tc, test_too_large_from_content_length);
    tcase_add_test(tc, test_keep_alive);
    tcase_add_test(tc, test_handler_without_status);
    tcase_add_test(tc, test_expect_continue_and_large_headers);
    tcase_add_test(tc, test_destroy_waits_for_in_flight);
    tcase_add_test(tc, test_bad_configuration);
    tcase_add_test(tc, test_probe_port_and_per_ip_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(http_server_suite());
}
