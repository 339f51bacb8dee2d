/* Unit tests of the HTTP server, driven by a small raw-socket HTTP/1.1 client against a server on
 * 127.0.0.1 (ephemeral port), so that malformed and oversized requests can be sent as-is. */
#include "cv/http.h"
#include "cv/json.h"
#include "cv/metrics.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY 1024

/* ---- the application under test ---- */

struct app {
    atomic_int ready;
    atomic_int slow_entered;
};

static int app_ready(void *arg, char *reason, size_t reason_size)
{
    struct app *app = arg;
    if (atomic_load(&app->ready))
        return 1;
    snprintf(reason, reason_size, "database unreachable");
    return 0;
}

static void get_order(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    cv_http_reply_json(resp, 200,
                       json_pack("{s:s, s:s?, s:s?, s:s?, s:s, s:s}", "id",
                                 cv_http_path_param(req, "id"), "verbose",
                                 cv_http_query(req, "verbose"), "x", cv_http_query(req, "x"),
                                 "trace", cv_http_header(req, "X-Trace"), "method",
                                 cv_http_method(req), "path", cv_http_path(req)));
}

static void post_order(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    json_t *body = cv_http_json_body(req, resp);
    if (body == NULL)
        return;
    struct cv_json_error err;
    const char *sku;
    long quantity;
    if (cv_json_get_string(body, "sku", 1, 16, 1, &sku, &err) < 0 ||
        cv_json_get_int(body, "quantity", 1, 100, 1, &quantity, &err) < 0) {
        cv_http_reply_problem(resp, 422, "Invalid order", err.detail, err.field);
    } else {
        cv_http_reply_json(resp, 201, json_pack("{s:s, s:i}", "sku", sku, "quantity", quantity));
        cv_http_reply_header(resp, "Location", "/orders/1");
    }
    json_decref(body);
}

static void cancel_order(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    cv_http_reply_json(resp, 202, json_pack("{s:s, s:b}", "id", cv_http_path_param(req, "id"),
                                            "cancelled", 1));
}

static void forgetful(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    /* Sets no status: the server must answer 500. */
}

static void echo_length(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    size_t len;
    const char *body = cv_http_body(req, &len);
    cv_http_reply_json(resp, 200, json_pack("{s:i, s:s#}", "length", (json_int_t)len, "head",
                                            body, len < 8 ? (int)len : 8));
}

static void slow(struct cv_http_request *req, struct cv_http_response *resp, void *arg)
{
    struct app *app = arg;
    atomic_store(&app->slow_entered, 1);
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    cv_http_reply_json(resp, 200, json_pack("{s:b}", "slow", 1));
}

/* ---- suspended requests ---- */

static atomic_int resumed_count;
static struct cv_http_request *_Atomic parked; /* suspended by /park, resumed by nobody */

static void on_resumed(struct cv_http_request *req, struct cv_http_response *resp, void *arg)
{
    atomic_fetch_add(&resumed_count, 1);
    if (cv_http_draining(req)) {
        cv_http_reply_problem(resp, 503, NULL, "shutting down", NULL);
        return;
    }
    cv_http_reply_json(resp, 200, json_pack("{s:b, s:s}", "resumed", 1, "state",
                                            (const char *)cv_http_state(req)));
}

struct later {
    struct cv_http_request *req;
    int ms;
};

static void *resume_later(void *arg)
{
    struct later *l = arg;
    struct timespec pause = {l->ms / 1000, (long)(l->ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    cv_http_resume(l->req);
    free(l);
    return NULL;
}

/* GET /wait/{ms}: suspends, and a thread resumes it after ms (0: before the handler returns). */
static void wait_ms(struct cv_http_request *req, struct cv_http_response *resp, void *arg)
{
    int ms = atoi(cv_http_path_param(req, "ms"));
    cv_http_set_state(req, strdup("kept"), free);
    cv_http_suspend(req, on_resumed);
    if (ms == 0) {
        cv_http_resume(req);
        return;
    }
    struct later *l = malloc(sizeof(*l));
    l->req = req;
    l->ms = ms;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, resume_later, l), 0);
    pthread_detach(t);
}

/* GET /hold: suspends until the test resumes it. */
static struct cv_http_request *_Atomic held[8];
static atomic_int nslots, nheld; /* slots taken, slots filled */

static void hold(struct cv_http_request *req, struct cv_http_response *resp, void *arg)
{
    cv_http_set_state(req, strdup("kept"), free);
    cv_http_suspend(req, on_resumed);
    atomic_store(&held[atomic_fetch_add(&nslots, 1)], req);
    atomic_fetch_add(&nheld, 1);
}

static void park(struct cv_http_request *req, struct cv_http_response *resp, void *arg)
{
    cv_http_set_state(req, strdup("parked"), free);
    cv_http_suspend(req, on_resumed);
    atomic_store(&parked, req);
}

static const struct cv_http_route routes[] = {
    {"GET", "/orders/{id}", get_order, CV_HTTP_OPEN},
    {"GET", "/wait/{ms}", wait_ms, CV_HTTP_OPEN},
    {"GET", "/park", park, CV_HTTP_OPEN},
    {"GET", "/hold", hold, CV_HTTP_OPEN},
    {"POST", "/orders", post_order, CV_HTTP_OPEN},
    {"POST", "/orders/{id}/cancel", cancel_order, CV_HTTP_OPEN},
    {"DELETE", "/orders/{id}", forgetful, CV_HTTP_OPEN},
    {"POST", "/echo", echo_length, CV_HTTP_OPEN},
    {"GET", "/slow", slow, CV_HTTP_OPEN},
};

static struct app app;
static struct cv_http_server *srv;
static int port;

static void setup(void)
{
    cv_metrics_reset();
    atomic_store(&resumed_count, 0);
    atomic_store(&parked, NULL);
    atomic_store(&nslots, 0);
    atomic_store(&nheld, 0);
    atomic_store(&app.ready, 1);
    atomic_store(&app.slow_entered, 0);
    struct cv_http_config cfg = {
        .bind_address = "127.0.0.1",
        .port = 0,
        .threads = 2,
        .connection_limit = 16,
        .connection_timeout_s = 10,
        .max_body_bytes = MAX_BODY,
        .shutdown_grace_s = 5,
    };
    char errstr[256];
    srv = cv_http_server_new(&cfg, routes, sizeof(routes) / sizeof(routes[0]), &app, app_ready,
                             errstr, sizeof(errstr));
    ck_assert_msg(srv != NULL, "%s", errstr);
    port = cv_http_server_port(srv);
    ck_assert_int_gt(port, 0);
}

static void teardown(void)
{
    cv_http_server_destroy(srv);
    srv = NULL;
    cv_metrics_reset();
}

/* ---- a minimal HTTP/1.1 client ---- */

struct conn {
    int fd;
    char buf[256 * 1024];
    size_t len;
};

struct reply {
    int status;
    int saw_continue; /* a "100 Continue" came first */
    char head[8192];  /* status line and headers */
    char *body;       /* NUL-terminated, freed by reply_free */
    size_t body_len;
};

static struct conn *conn_open(void)
{
    struct conn *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(c->fd, 0);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return c;
}

static void conn_close(struct conn *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c);
}

/* Sends everything it can; returns 0, or -1 once the peer stops reading. */
static int conn_send(struct conn *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void conn_send_str(struct conn *c, const char *s)
{
    ck_assert_int_eq(conn_send(c, s, strlen(s)), 0);
}

/* Reads more into the buffer; returns bytes read, 0 at EOF, -1 on error or timeout. */
static ssize_t conn_fill(struct conn *c)
{
    ck_assert_uint_lt(c->len, sizeof(c->buf) - 1);
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static void conn_consume(struct conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* The value of header name in a reply head, copied to out; NULL if absent. */
static const char *head_value(const char *head, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            v += strspn(v, " ");
            size_t len = strcspn(v, "\r");
            snprintf(out, size, "%.*s", (int)len, v);
            return out;
        }
    }
    return NULL;
}

static const char *reply_header(const struct reply *r, const char *name)
{
    static char value[1024];
    return head_value(r->head, name, value, sizeof(value));
}

/* Reads one final reply (skipping 1xx). head_request: the reply has no body whatever its
 * Content-Length says. Returns 0, or -1 if the connection ended or timed out first. */
static int read_reply(struct conn *c, struct reply *r, int head_request)
{
    memset(r, 0, sizeof(*r));
    for (;;) {
        c->buf[c->len] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (end == NULL) {
            if (conn_fill(c) <= 0)
                return -1;
            continue;
        }
        size_t head_len = (size_t)(end - c->buf) + 4;
        ck_assert_uint_lt(head_len, sizeof(r->head));
        memcpy(r->head, c->buf, head_len);
        r->head[head_len] = '\0';
        conn_consume(c, head_len);
        ck_assert_int_eq(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
        if (r->status >= 100 && r->status < 200) {
            r->saw_continue = 1;
            continue;
        }
        break;
    }
    char value[64];
    size_t want = 0;
    if (!head_request && head_value(r->head, "Content-Length", value, sizeof(value)))
        want = strtoul(value, NULL, 10);
    while (c->len < want)
        if (conn_fill(c) <= 0)
            return -1;
    r->body = malloc(want + 1);
    ck_assert_ptr_nonnull(r->body);
    memcpy(r->body, c->buf, want);
    r->body[want] = '\0';
    r->body_len = want;
    conn_consume(c, want);
    return 0;
}

static void reply_free(struct reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* True if the server closed the connection (EOF or reset within a second). */
static int conn_closed_by_peer(struct conn *c)
{
    struct timeval tv = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char byte;
    ssize_t n = recv(c->fd, &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* One request on a fresh connection. */
static void roundtrip(const char *raw, struct reply *r)
{
    struct conn *c = conn_open();
    conn_send_str(c, raw);
    ck_assert_int_eq(read_reply(c, r, strncmp(raw, "HEAD ", 5) == 0), 0);
    conn_close(c);
}

/* POSTs body with that Content-Type (NULL: none) on a fresh connection. */
static void post(const char *path, const char *content_type, const char *body, struct reply *r)
{
    char raw[2048];
    int n = snprintf(raw, sizeof(raw),
                     "POST %s HTTP/1.1\r\nHost: t\r\n%s%s%sContent-Length: %zu\r\n\r\n%s", path,
                     content_type ? "Content-Type: " : "", content_type ? content_type : "",
                     content_type ? "\r\n" : "", strlen(body), body);
    ck_assert_int_lt(n, (int)sizeof(raw));
    roundtrip(raw, r);
}

/* Parses a reply body as JSON (caller decrefs). */
static json_t *reply_json(const struct reply *r)
{
    json_error_t jerr;
    json_t *v = json_loadb(r->body, r->body_len, 0, &jerr);
    ck_assert_msg(v != NULL, "not JSON (%s): %s", jerr.text, r->body);
    return v;
}

/* Checks an RFC 9457 problem reply and returns it (caller decrefs). */
static json_t *expect_problem(const struct reply *r, int status)
{
    ck_assert_int_eq(r->status, status);
    ck_assert_str_eq(reply_header(r, "Content-Type"), "application/problem+json");
    ck_assert_msg(r->body_len > 0 && r->body[r->body_len - 1] == '\n', "no trailing newline");
    json_t *p = reply_json(r);
    ck_assert_str_eq(json_string_value(json_object_get(p, "type")), "about:blank");
    ck_assert_int_eq(json_integer_value(json_object_get(p, "status")), status);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(p, "title")));
    return p;
}

static const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* ---- tests ---- */

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

START_TEST(test_metrics_endpoint)
{
    /* One keep-alive connection: each request is counted (on completion) before the next is
     * read, so the figures are exact. */
    struct conn *c = conn_open();
    struct reply r;
    const char *reqs[] = {"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
                          "GET /orders/41 HTTP/1.1\r\nHost: t\r\n\r\n",
                          "GET /orders/42 HTTP/1.1\r\nHost: t\r\n\r\n",
                          "GET /missing/7 HTTP/1.1\r\nHost: t\r\n\r\n",
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

/* Sends body as HTTP chunks of chunk bytes each, then the last chunk. */
static int send_chunked(struct conn *c, const char *body, size_t len, size_t chunk)
{
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        char size_line[32];
        snprintf(size_line, sizeof(size_line), "%zx\r\n", n);
        if (conn_send(c, size_line, strlen(size_line)) < 0 || conn_send(c, body + off, n) < 0 ||
            conn_send(c, "\r\n", 2) < 0)
            return -1;
    }
    return conn_send(c, "0\r\n\r\n", 5);
}

START_TEST(test_chunked_bodies)
{
    const char *hdr = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct reply r;

    /* Under the limit: accumulated across chunks. */
    char body[1600];
    memset(body, 'y', sizeof(body));
    struct conn *c = conn_open();
    conn_send_str(c, hdr);
    ck_assert_int_eq(send_chunked(c, body, 1000, 100), 0);
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"length\":1000,\"head\":\"yyyyyyyy\"}\n");
    reply_free(&r);
    conn_close(c);

    /* Over it without a Content-Length: 413 once the body has been read (and dropped). */
    c = conn_open();
    conn_send_str(c, hdr);
    ck_assert_int_eq(send_chunked(c, body, sizeof(body), 400), 0);
    ck_assert_int_eq(read_reply(c, &r, 0), 0);
    json_t *p = expect_problem(&r, 413);
    ck_assert_str_eq(reply_header(&r, "Connection"), "close");
    json_decref(p);
    reply_free(&r);
    conn_close(c);

    /* A body that goes on far past the limit: the connection is dropped without a reply. */
    size_t huge_len = 512 * 1024;
    char *huge = malloc(huge_len);
    memset(huge, 'z', huge_len);
    c = conn_open();
    conn_send_str(c, hdr);
    send_chunked(c, huge, huge_len, 16 * 1024); /* may fail midway: the server stops reading */
    ck_assert_int_eq(read_reply(c, &r, 0), -1);
    reply_free(&r);
    conn_close(c);
    free(huge);
}
END_TEST

START_TEST(test_json_body_errors)
{
    struct reply r;
    /* Wrong or missing media type. */
    post("/orders", "text/plain", "{}", &r);
    json_t *p = expect_problem(&r, 415);
    ck_assert_str_eq(jstr(p, "title"), "Unsupported Media Type");
    json_decref(p);
    reply_free(&r);
    post("/orders", NULL, "{}", &r);
    ck_assert_int_eq(r.status, 415);
    reply_free(&r);
    post("/orders", "application/jsonp", "{}", &r);
    ck_assert_int_eq(r.status, 415);
    reply_free(&r);

    /* Malformed: line and column. */
    post("/orders", "application/json", "{\"sku\": \"A\",\n  }", &r);
    p = expect_problem(&r, 400);
    ck_assert_str_eq(jstr(p, "title"), "Malformed JSON");
    ck_assert_int_eq(json_integer_value(json_object_get(p, "line")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "column")), 3);
    ck_assert_msg(strncmp(jstr(p, "detail"), "line 2, column 3: ", 18) == 0, "%s",
                  jstr(p, "detail"));
    json_decref(p);
    reply_free(&r);

    /* Valid JSON, not an object. */
    post("/orders", "application/json", "[1]", &r);
    p = expect_problem(&r, 400);
    ck_assert_str_eq(jstr(p, "detail"), "expected a JSON object, got an array");
    json_decref(p);
    reply_free(&r);

    /* Empty body. */
    post("/orders", "application/json", "", &r);
    p = expect_problem(&r, 400);
    ck_assert_str_eq(jstr(p, "detail"), "the request body is empty");
    json_decref(p);
    reply_free(&r);
}
END_TEST

START_TEST(test_json_body_ok_and_validation)
{
    struct reply r;
    post("/orders", "Application/JSON; charset=utf-8", "{\"sku\":\"A-1\",\"quantity\":3}", &r);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(reply_header(&r, "Content-Type"), "application/json");
    ck_assert_str_eq(reply_header(&r, "Location"), "/orders/1");
    ck_assert_str_eq(r.body, "{\"sku\":\"A-1\",\"quantity\":3}\n");
    reply_free(&r);

    post("/orders", "application/json", "{\"sku\":\"A-1\",\"quantity\":0}", &r);
    json_t *p = expect_problem(&r, 422);
    ck_assert_str_eq(jstr(p, "title"), "Invalid order");
    ck_assert_str_eq(jstr(p, "field"), "quantity");
    ck_assert_str_eq(jstr(p, "detail"), "expected an integer in 1..100, got 0");
    json_t *param = json_array_get(json_object_get(p, "invalid-params"), 0);
    ck_assert_str_eq(jstr(param, "name"), "quantity");
    ck_assert_str_eq(jstr(param, "reason"), "expected an integer in 1..100, got 0");
    json_decref(p);
    reply_free(&r);

    /* Duplicate keys are rejected as malformed. */
    post("/orders", "application/json", "{\"sku\":\"A\",\"sku\":\"B\",\"quantity\":1}", &r);
    ck_assert_int_eq(r.status, 400);
    reply_free(&r);
}
END_TEST

START_TEST(test_params_query_headers)
{
    struct reply r;
    roundtrip("GET /orders/abc-1?verbose=yes&x=a%20b+c HTTP/1.1\r\nHost: t\r\n"
              "x-trace: t-1\r\n\r\n",
              &r);
    ck_assert_int_eq(r.status, 200);
    json_t *v = reply_json(&r);
    ck_assert_str_eq(jstr(v, "id"), "abc-1");
    ck_assert_str_eq(jstr(v, "verbose"), "yes");
    ck_assert_str_eq(jstr(v, "x"), "a b c");
    ck_assert_str_eq(jstr(v, "trace"), "t-1"); /* looked up as X-Trace */
    ck_assert_str_eq(jstr(v, "method"), "GET");
    ck_assert_str_eq(jstr(v, "path"), "/orders/abc-1");
    json_decref(v);
    reply_free(&r);

    /* Absent query and header are NULL; a percent-encoded segment is decoded. */
    roundtrip("GET /orders/caf%C3%A9 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    v = reply_json(&r);
    ck_assert_str_eq(jstr(v, "id"), "caf\xc3\xa9");
    ck_assert(json_is_null(json_object_get(v, "verbose")));
    ck_assert(json_is_null(json_object_get(v, "trace")));
    json_decref(v);
    reply_free(&r);

    roundtrip("POST /orders/o-9/cancel HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(r.body, "{\"id\":\"o-9\",\"cancelled\":true}\n");
    reply_free(&r);
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

START_TEST(test_resumed_from_another_thread_later)
{
    struct reply r;
    roundtrip("GET /wait/100 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"resumed\":true,\"state\":\"kept\"}\n");
    reply_free(&r);
}
END_TEST

START_TEST(test_resumed_before_the_handler_returned)
{
    struct reply r;
    roundtrip("GET /wait/0 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"resumed\":true,\"state\":\"kept\"}\n");
    reply_free(&r);
}
END_TEST

/* A server of this test's own: replaces the fixture's (which teardown then destroys). */
static void restart_with(struct cv_http_config *cfg)
{
    cv_http_server_destroy(srv);
    char errstr[256];
    srv = cv_http_server_new(cfg, routes, sizeof(routes) / sizeof(routes[0]), &app, app_ready,
                             errstr, sizeof(errstr));
    ck_assert_msg(srv != NULL, "%s", errstr);
    port = cv_http_server_port(srv);
}

START_TEST(test_destroy_answers_a_request_left_suspended)
{
    struct cv_http_config cfg = {.bind_address = "127.0.0.1", .threads = 2,
                                 .connection_limit = 16, .shutdown_grace_s = 1};
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
    struct cv_http_config cfg = {.bind_address = "127.0.0.1", .threads = 2,
                                 .connection_limit = 16, .per_ip_limit = 2,
                                 .probe_port = probe, .shutdown_grace_s = 1};
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

START_TEST(test_readiness_cache)
{
    struct cv_http_config cfg = {.bind_address = "127.0.0.1", .threads = 2,
                                 .connection_limit = 16, .ready_cache_ms = 50,
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

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("server");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_healthz);
    tcase_add_test(tc, test_readyz_ready_not_ready_draining);
    tcase_add_test(tc, test_metrics_endpoint);
    tcase_add_test(tc, test_not_found);
    tcase_add_test(tc, test_method_not_allowed);
    tcase_add_test(tc, test_too_large_from_content_length);
    tcase_add_test(tc, test_chunked_bodies);
    tcase_add_test(tc, test_json_body_errors);
    tcase_add_test(tc, test_json_body_ok_and_validation);
    tcase_add_test(tc, test_params_query_headers);
    tcase_add_test(tc, test_keep_alive);
    tcase_add_test(tc, test_handler_without_status);
    tcase_add_test(tc, test_expect_continue_and_large_headers);
    tcase_add_test(tc, test_destroy_waits_for_in_flight);
    tcase_add_test(tc, test_bad_configuration);
    tcase_add_test(tc, test_suspended_requests_hold_no_thread);
    tcase_add_test(tc, test_resumed_before_the_handler_returned);
    tcase_add_test(tc, test_resumed_from_another_thread_later);
    tcase_add_test(tc, test_destroy_answers_a_request_left_suspended);
    tcase_add_test(tc, test_probe_port_and_per_ip_limit);
    tcase_add_test(tc, test_readiness_cache);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
