/* The HTTP server fixture shared by the test_http_*.c unit tests: a small application (routes
 * that answer, suspend, hold or forget to answer), a server on 127.0.0.1 (ephemeral port) set up
 * and torn down around each test, and a minimal raw-socket HTTP/1.1 client so that malformed and
 * oversized requests can be sent as-is. Header-only: each test file is one program. */
#ifndef CV_HTTP_FIXTURE_H
#define CV_HTTP_FIXTURE_H

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

static inline int app_ready(void *arg, char *reason, size_t reason_size)
{
    struct app *app = arg;
    if (atomic_load(&app->ready))
        return 1;
    snprintf(reason, reason_size, "database unreachable");
    return 0;
}

static inline void get_order(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    cv_http_reply_json(resp, 200,
                       json_pack("{s:s, s:s?, s:s?, s:s?, s:s, s:s}", "id",
                                 cv_http_path_param(req, "id"), "verbose",
                                 cv_http_query(req, "verbose"), "x", cv_http_query(req, "x"),
                                 "trace", cv_http_header(req, "X-Trace"), "method",
                                 cv_http_method(req), "path", cv_http_path(req)));
}

static inline void post_order(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    json_t *body = cv_http_json_body(req, resp);
    if (body == NULL)
        return;
    struct cv_json_err err;
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

static inline void cancel_order(struct cv_http_request *req, struct cv_http_response *resp,
                                void *app)
{
    cv_http_reply_json(
        resp, 202, json_pack("{s:s, s:b}", "id", cv_http_path_param(req, "id"), "cancelled", 1));
}

static inline void forgetful(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    /* Sets no status: the server must answer 500. */
}

static inline void echo_length(struct cv_http_request *req, struct cv_http_response *resp,
                               void *app)
{
    size_t len;
    const char *body = cv_http_body(req, &len);
    cv_http_reply_json(
        resp, 200,
        json_pack("{s:i, s:s#}", "length", (json_int_t)len, "head", body, len < 8 ? (int)len : 8));
}

static inline void slow(struct cv_http_request *req, struct cv_http_response *resp, void *arg)
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

static inline void on_resumed(struct cv_http_request *req, struct cv_http_response *resp, void *arg)
{
    atomic_fetch_add(&resumed_count, 1);
    if (cv_http_draining(req)) {
        cv_http_reply_problem(resp, 503, NULL, "shutting down", NULL);
        return;
    }
    cv_http_reply_json(
        resp, 200,
        json_pack("{s:b, s:s}", "resumed", 1, "state", (const char *)cv_http_state(req)));
}

struct later {
    struct cv_http_request *req;
    int ms;
};

static inline void *resume_later(void *arg)
{
    struct later *l = arg;
    struct timespec pause = {l->ms / 1000, (long)(l->ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    cv_http_resume(l->req);
    free(l);
    return NULL;
}

/* GET /wait/{ms}: suspends, and a thread resumes it after ms (0: before the handler returns). */
static inline void wait_ms(struct cv_http_request *req, struct cv_http_response *resp, void *arg)
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

static inline void hold(struct cv_http_request *req, struct cv_http_response *resp, void *arg)
{
    cv_http_set_state(req, strdup("kept"), free);
    cv_http_suspend(req, on_resumed);
    atomic_store(&held[atomic_fetch_add(&nslots, 1)], req);
    atomic_fetch_add(&nheld, 1);
}

static inline void park(struct cv_http_request *req, struct cv_http_response *resp, void *arg)
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

static inline void setup(void)
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

static inline void teardown(void)
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

static inline struct conn *conn_open(void)
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

static inline void conn_close(struct conn *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c);
}

/* Sends everything it can; returns 0, or -1 once the peer stops reading. */
static inline int conn_send(struct conn *c, const char *data, size_t len)
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

static inline void conn_send_str(struct conn *c, const char *s)
{
    ck_assert_int_eq(conn_send(c, s, strlen(s)), 0);
}

/* Reads more into the buffer; returns bytes read, 0 at EOF, -1 on error or timeout. */
static inline ssize_t conn_fill(struct conn *c)
{
    ck_assert_uint_lt(c->len, sizeof(c->buf) - 1);
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static inline void conn_consume(struct conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* The value of header name in a reply head, copied to out; NULL if absent. */
static inline const char *head_value(const char *head, const char *name, char *out, size_t size)
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

static inline const char *reply_header(const struct reply *r, const char *name)
{
    static char value[1024];
    return head_value(r->head, name, value, sizeof(value));
}

/* Reads one final reply (skipping 1xx). head_request: the reply has no body whatever its
 * Content-Length says. Returns 0, or -1 if the connection ended or timed out first. */
static inline int read_reply(struct conn *c, struct reply *r, int head_request)
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

static inline void reply_free(struct reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* True if the server closed the connection (EOF or reset within a second). */
static inline int conn_closed_by_peer(struct conn *c)
{
    struct timeval tv = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char byte;
    ssize_t n = recv(c->fd, &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* One request on a fresh connection. */
static inline void roundtrip(const char *raw, struct reply *r)
{
    struct conn *c = conn_open();
    conn_send_str(c, raw);
    ck_assert_int_eq(read_reply(c, r, strncmp(raw, "HEAD ", 5) == 0), 0);
    conn_close(c);
}

/* POSTs body with that Content-Type (NULL: none) on a fresh connection. */
static inline void post(const char *path, const char *content_type, const char *body,
                        struct reply *r)
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
static inline json_t *reply_json(const struct reply *r)
{
    json_error_t jerr;
    json_t *v = json_loadb(r->body, r->body_len, 0, &jerr);
    ck_assert_msg(v != NULL, "not JSON (%s): %s", jerr.text, r->body);
    return v;
}

/* Checks an RFC 9457 problem reply and returns it (caller decrefs). */
static inline json_t *expect_problem(const struct reply *r, int status)
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

static inline const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* A server of this test's own: replaces the fixture's (which teardown then destroys). */
static inline void restart_with(struct cv_http_config *cfg)
{
    cv_http_server_destroy(srv);
    char errstr[256];
    srv = cv_http_server_new(cfg, routes, sizeof(routes) / sizeof(routes[0]), &app, app_ready,
                             errstr, sizeof(errstr));
    ck_assert_msg(srv != NULL, "%s", errstr);
    port = cv_http_server_port(srv);
}

#endif
