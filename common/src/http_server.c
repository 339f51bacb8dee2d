/* The HTTP server: libmicrohttpd daemon set-up and lifecycle, routing with path parameters,
 * the built-in /healthz /readyz /metrics (also on a probe port of their own), body limits,
 * suspended requests (long polls) and per-request metrics. */
#include "http_int.h"

#include "cv/log.h"
#include "cv/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_THREADS 4
#define DEFAULT_CONNECTION_LIMIT 256
#define DEFAULT_CONNECTION_TIMEOUT_S 60
#define DEFAULT_MAX_BODY_BYTES ((size_t)1024 * 1024)
#define DEFAULT_SHUTDOWN_GRACE_S 35
/* The probe daemon: one thread, a few connections, a short idle timeout. */
#define PROBE_CONNECTION_LIMIT 64
#define PROBE_CONNECTION_TIMEOUT_S 10
/* Per-connection memory for libmicrohttpd's buffers (request line, headers, read and write
 * buffers; bodies are copied out in chunks). The 32 KiB default answers 431 to large headers;
 * 64 KiB leaves room for long trace and auth headers and costs 16 MiB at 256 connections. */
#define CONNECTION_MEMORY_BYTES (64 * 1024)

static uint64_t now_ns(void)
{
    return cv_http_now_ns();
}

/* ---- built-in routes ---- */

static void handle_healthz(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    cv_http_reply_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void handle_readyz(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct cv_http_server *srv = req->srv;
    if (atomic_load(&srv->draining)) {
        cv_http_reply_problem(resp, 503, "Not Ready", "shutting down", NULL);
        return;
    }
    char reason[256] = "";
    int ok = srv->ready_cache_ms
                 ? cv_http_ready_cached(srv, reason, sizeof(reason))
                 : srv->ready == NULL || srv->ready(srv->app, reason, sizeof(reason));
    if (!ok) {
        cv_http_reply_problem(resp, 503, "Not Ready", reason[0] ? reason : "not ready", NULL);
        return;
    }
    cv_http_reply_json(resp, 200, json_pack("{s:s}", "status", "ready"));
}

static void handle_metrics(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    char *text = cv_metrics_render();
    if (text == NULL) {
        cv_http_reply_problem(resp, 500, NULL, "cannot render the metrics", NULL);
        return;
    }
    cv_http_reply_text(resp, 200, "text/plain; version=0.0.4", text, strlen(text));
    free(text);
}

static const struct cv_http_route builtin_routes[] = {
    {"GET", "/healthz", handle_healthz, CV_HTTP_OPEN},
    {"GET", "/readyz", handle_readyz, CV_HTTP_OPEN},
    {"GET", "/metrics", handle_metrics, CV_HTTP_OPEN},
};
#define NBUILTIN (sizeof(builtin_routes) / sizeof(builtin_routes[0]))

/* ---- routing ---- */

static void route_free(struct cv_http_compiled_route *r)
{
    for (size_t i = 0; i < r->nsegs; i++)
        free(r->segs[i].text);
    free(r->segs);
}

/* Splits route->pattern into segments. Returns 0, or -1 with errstr. */
static int route_compile(struct cv_http_compiled_route *r, char *errstr, size_t errstr_size)
{
    const char *pattern = r->pattern;
    if (pattern == NULL || pattern[0] != '/' || r->method == NULL || r->handler == NULL) {
        snprintf(errstr, errstr_size,
                 "route %s %s: needs a method, a handler and a pattern "
                 "starting with '/'",
                 r->method ? r->method : "(null)", pattern ? pattern : "(null)");
        return -1;
    }
    r->segs = calloc(CV_HTTP_MAX_SEGMENTS, sizeof(*r->segs));
    if (r->segs == NULL)
        goto cleanup;
    const char *p = pattern + 1;
    for (;;) {
        size_t n = strcspn(p, "/");
        if (r->nsegs == CV_HTTP_MAX_SEGMENTS) {
            snprintf(errstr, errstr_size, "route %s: more than %d segments", pattern,
                     CV_HTTP_MAX_SEGMENTS);
            return -1;
        }
        struct cv_http_segment *seg = &r->segs[r->nsegs];
        int open = memchr(p, '{', n) != NULL, close = memchr(p, '}', n) != NULL;
        if (open || close) {
            if (n < 3 || p[0] != '{' || p[n - 1] != '}' || memchr(p + 1, '{', n - 2) ||
                memchr(p + 1, '}', n - 2)) {
                snprintf(errstr, errstr_size,
                         "route %s: a parameter must be a whole segment like {id}", pattern);
                return -1;
            }
            seg->is_param = 1;
            seg->text = strndup(p + 1, n - 2);
        } else {
            seg->text = strndup(p, n);
        }
        if (seg->text == NULL)
            goto cleanup;
        r->nsegs++;
        if (p[n] == '\0')
            return 0;
        p += n + 1;
    }
cleanup:
    snprintf(errstr, errstr_size, "route %s: out of memory", pattern);
    return -1;
}

/* Splits the request path into segments in a private copy. Returns 0, or -1 out of memory. A
 * path that is not absolute or has too many segments gets nsegs 0 and matches nothing. */
static int split_path(struct cv_http_request *req)
{
    req->path_buf = strdup(req->path);
    if (req->path_buf == NULL)
        return -1;
    if (req->path_buf[0] != '/')
        return 0;
    char *p = req->path_buf + 1;
    for (;;) {
        if (req->nsegs == CV_HTTP_MAX_SEGMENTS) {
            req->nsegs = 0;
            return 0;
        }
        req->segs[req->nsegs++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL)
            return 0;
        *slash = '\0';
        p = slash + 1;
    }
}

static int path_matches(const struct cv_http_compiled_route *r, const struct cv_http_request *req)
{
    if (r->nsegs != req->nsegs)
        return 0;
    for (size_t i = 0; i < r->nsegs; i++) {
        const struct cv_http_segment *seg = &r->segs[i];
        if (seg->is_param ? req->segs[i][0] == '\0' : strcmp(seg->text, req->segs[i]) != 0)
            return 0;
    }
    return 1;
}

/* Adds method to the comma-separated list unless it is there. */
static void allow_add(char *allow, size_t size, const char *method)
{
    const char *p = allow;
    size_t n = strlen(method);
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, method, n) == 0)
            return;
        p += len;
        p += strspn(p, ", ");
    }
    size_t used = strlen(allow);
    snprintf(allow + used, size - used, "%s%s", used ? ", " : "", method);
}

/* Finds the first route matching method and path; if none, lists in req->allow the methods of
 * the routes matching the path (for a 405). HEAD is answered by GET routes. */
static void route_request(struct cv_http_server *srv, struct cv_http_request *req)
{
    req->allow[0] = '\0';
    int head = strcmp(req->method, "HEAD") == 0;
    size_t nroutes = req->probe ? NBUILTIN : srv->nroutes;
    for (size_t i = 0; i < nroutes; i++) {
        const struct cv_http_compiled_route *r = &srv->routes[i];
        if (!path_matches(r, req))
            continue;
        if (strcmp(r->method, req->method) == 0 || (head && strcmp(r->method, "GET") == 0)) {
            req->route = r;
            return;
        }
        allow_add(req->allow, sizeof(req->allow), r->method);
        if (strcmp(r->method, "GET") == 0)
            allow_add(req->allow, sizeof(req->allow), "HEAD");
    }
}

/* ---- metrics ---- */

/* Bounds the method label: clients choose it, and each value is a new series. */
static const char *method_label(const char *method)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(method, known[i]) == 0)
            return known[i];
    return "OTHER";
}

static void record_metrics(struct cv_http_server *srv, struct cv_http_request *req)
{
    double seconds = (double)(now_ns() - req->started_ns) / 1e9;
    cv_histogram_observe(req->route ? req->route->duration : srv->unmatched_duration, seconds);

    char labels[512] = "", status[16];
    snprintf(status, sizeof(status), "%u", req->status_sent);
    cv_metrics_label_append(labels, sizeof(labels), "method", method_label(req->method));
    cv_metrics_label_append(labels, sizeof(labels), "route",
                            req->route ? req->route->pattern : "unmatched");
    cv_metrics_label_append(labels, sizeof(labels), "status", status);
    cv_counter_add(cv_metrics_counter("http_requests_total", "HTTP requests answered.", labels), 1);
}

/* ---- libmicrohttpd callbacks ---- */

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    cv_log_warn("libmicrohttpd: %s", msg);
}

/* How much of an oversized body (without Content-Length) is read and dropped to be able to
 * answer 413, before giving up on the connection. */
static size_t drain_limit(const struct cv_http_server *srv)
{
    return srv->max_body > 65536 ? srv->max_body : 65536;
}

static void reply_too_large(struct cv_http_server *srv, struct cv_http_request *req)
{
    char detail[96];
    snprintf(detail, sizeof(detail), "the request body exceeds %zu bytes", srv->max_body);
    cv_http_reply_problem(&req->resp, 413, NULL, detail, NULL);
}

/* Queues req->resp. Replies to oversized bodies close the connection: the rest of the body is
 * not worth reading. While draining, every reply asks the client to reconnect elsewhere. */
static enum MHD_Result queue_reply(struct cv_http_server *srv, struct cv_http_request *req)
{
    req->queued = 1;
    req->status_sent = req->resp.out_of_memory ? 500 : req->resp.status;
    int close = req->too_large || atomic_load(&srv->draining);
    return cv_http_response_queue(req->conn, &req->resp, close);
}

/* Runs the matched handler, or answers 404/405, once the whole request has arrived. */
static void dispatch(struct cv_http_server *srv, struct cv_http_request *req)
{
    const struct cv_http_compiled_route *r = req->route;
    if (r == NULL && req->allow[0] != '\0') {
        char detail[160];
        snprintf(detail, sizeof(detail), "allowed methods: %s", req->allow);
        cv_http_reply_problem(&req->resp, 405, NULL, detail, NULL);
        cv_http_reply_header(&req->resp, MHD_HTTP_HEADER_ALLOW, req->allow);
        return;
    }
    if (r == NULL) {
        cv_http_reply_problem(&req->resp, 404, NULL, "no such resource", NULL);
        return;
    }
    if (!r->builtin && srv->before)
        srv->before(req, &req->resp, srv->app);
    if (r->builtin || cv_http_auth_check(srv->auth, req, &req->resp, r->access) == 0)
        r->handler(req, &req->resp, r->builtin ? (void *)srv : srv->app);
    if (!r->builtin && srv->after)
        srv->after(req, &req->resp, srv->app);
}

/* A handler (or on_resume) that neither replied nor suspended: 500. */
static void check_replied(struct cv_http_request *req)
{
    if (req->resp.status != 0)
        return;
    const struct cv_http_compiled_route *r = req->route;
    cv_log_error("http: the handler of %s %s set no status", r ? r->method : "?",
                 r ? r->pattern : "?");
    cv_http_response_release(&req->resp);
    cv_http_reply_problem(&req->resp, 500, NULL, "the handler produced no reply", NULL);
}

/* libmicrohttpd calls this first when the headers have arrived, then once per chunk of body
 * (*upload_data_size > 0), then once more with the whole request in. The first call must not
 * queue a reply (0.9.75 then closes the connection), except to refuse a body announced too
 * large: that is the documented way to answer before "100 Continue" and the body, and the
 * connection is to be closed anyway. */
static enum MHD_Result handle_access(struct cv_http_server *srv, int probe,
                                     struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *upload_data,
                                     size_t *upload_data_size, void **req_cls)
{
    struct cv_http_request *req = *req_cls;

    if (req == NULL) {
        req = calloc(1, sizeof(*req));
        if (req == NULL)
            return MHD_NO;
        req->srv = srv;
        req->probe = probe;
        req->conn = conn;
        req->method = method;
        req->path = url;
        req->started_ns = now_ns();
        *req_cls = req;
        atomic_fetch_add(&srv->in_flight, 1);
        cv_gauge_add(srv->in_flight_gauge, 1);
        if (split_path(req) < 0) {
            req->resp.out_of_memory = 1;
            return MHD_YES;
        }
        route_request(srv, req);
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno == ERANGE || n > srv->max_body) {
                req->too_large = 1;
                reply_too_large(srv, req);
                return queue_reply(srv, req);
            }
        }
        return MHD_YES;
    }

    if (req->queued) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!req->too_large && !req->resp.out_of_memory) {
            int rc =
                cv_http_request_append_body(req, upload_data, *upload_data_size, srv->max_body);
            if (rc == -2)
                req->resp.out_of_memory = 1;
        }
        if (req->too_large) {
            /* 0.9.75 refuses a reply queued mid-body (it closes the connection instead), so
             * read on and drop the rest to answer 413 at the end; a body that keeps coming
             * long past the limit gets the connection closed without a reply. */
            req->discarded += *upload_data_size;
            if (req->discarded > drain_limit(srv))
                return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    /* The whole request has arrived, or a suspended request was resumed (out of memory:
     * queue_reply answers 500). */
    if (req->too_large) {
        reply_too_large(srv, req);
    } else if (!req->resp.out_of_memory) {
        pthread_mutex_lock(&srv->suspend_lock);
        cv_http_handler resumed = req->susp_state == SUSP_RESUMING ? req->on_resume : NULL;
        if (resumed != NULL) {
            req->susp_state = SUSP_NONE;
            req->on_resume = NULL;
        }
        pthread_mutex_unlock(&srv->suspend_lock);
        if (resumed != NULL)
            resumed(req, &req->resp, srv->app);
        else
            dispatch(srv, req);
        if (cv_http_suspension_settle(srv, req))
            return MHD_YES;
        check_replied(req);
    }
    return queue_reply(srv, req);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    return handle_access(cls, 0, conn, url, method, upload_data, upload_data_size, req_cls);
}

/* The probe daemon's: the same, routing built-in routes only. */
static enum MHD_Result on_access_probe(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_data_size,
                                       void **req_cls)
{
    return handle_access(cls, 1, conn, url, method, upload_data, upload_data_size, req_cls);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct cv_http_server *srv = cls;
    struct cv_http_request *req = *req_cls;
    if (req == NULL)
        return;
    *req_cls = NULL;
    if (req->queued)
        record_metrics(srv, req);
    cv_gauge_add(srv->in_flight_gauge, -1);
    atomic_fetch_sub(&srv->in_flight, 1);
    cv_http_request_release(req);
}

/* ---- lifecycle ---- */

static int register_metrics(struct cv_http_server *srv)
{
    for (size_t i = 0; i < srv->nroutes; i++) {
        char labels[512] = "";
        if (cv_metrics_label_append(labels, sizeof(labels), "route", srv->routes[i].pattern) < 0)
            return -1;
        srv->routes[i].duration =
            cv_metrics_histogram("http_request_duration_seconds",
                                 "Time from request headers to reply sent.", labels, NULL, 0);
    }
    srv->unmatched_duration = cv_metrics_histogram("http_request_duration_seconds",
                                                   "Time from request headers to reply sent.",
                                                   "route=\"unmatched\"", NULL, 0);
    srv->in_flight_gauge = cv_metrics_gauge("http_requests_in_flight",
                                            "HTTP requests being received, handled or sent.", NULL);
    srv->suspended_gauge = cv_metrics_gauge(
        "http_requests_suspended", "HTTP requests waiting without a thread (long polls).", NULL);
    return 0;
}

static void server_free(struct cv_http_server *srv)
{
    cv_http_ready_stop(srv);
    pthread_cond_destroy(&srv->ready_cond);
    pthread_mutex_destroy(&srv->ready_lock);
    pthread_mutex_destroy(&srv->suspend_lock);
    for (size_t i = 0; i < srv->nroutes; i++)
        route_free(&srv->routes[i]);
    free(srv->routes);
    free(srv);
}

/* Each connection is a descriptor: raises the soft limit towards the hard one when the
 * connection limits need more than it allows (the usual soft limit, 1024, would make accept
 * fail long before a few thousand long polls). */
static void raise_fd_limit(unsigned connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)connections + 256; /* database, Kafka, log and spare descriptors */
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rlim_t before = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        cv_log_warn("http: %u connections need %lu descriptors, the limit is %lu", connections,
                    (unsigned long)want, (unsigned long)rl.rlim_cur);
    else
        cv_log_info("http: descriptor limit raised from %lu to %lu", (unsigned long)before,
                    (unsigned long)rl.rlim_cur);
}

struct cv_http_server *cv_http_server_new(const struct cv_http_config *cfg,
                                          const struct cv_http_route *routes, size_t nroutes,
                                          void *app, cv_http_ready_fn ready, char *errstr,
                                          size_t errstr_size)
{
    const char *address = cfg->bind_address ? cfg->bind_address : "0.0.0.0";
    unsigned threads = cfg->threads ? cfg->threads : DEFAULT_THREADS;
    unsigned limit = cfg->connection_limit ? cfg->connection_limit : DEFAULT_CONNECTION_LIMIT;
    unsigned timeout =
        cfg->connection_timeout_s ? cfg->connection_timeout_s : DEFAULT_CONNECTION_TIMEOUT_S;
    if (cfg->port < 0 || cfg->port > 65535) {
        snprintf(errstr, errstr_size, "http: port %d out of range", cfg->port);
        return NULL;
    }
    if (cfg->probe_port < 0 || cfg->probe_port > 65535 ||
        (cfg->probe_port != 0 && cfg->probe_port == cfg->port)) {
        snprintf(errstr, errstr_size, "http: probe port %d is out of range or the API's own",
                 cfg->probe_port);
        return NULL;
    }
    if (limit < threads) {
        snprintf(errstr, errstr_size, "http: connection_limit %u is below threads %u", limit,
                 threads);
        return NULL;
    }

    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr *sa;
    /* ALLOW_SUSPEND_RESUME includes MHD_USE_ITC: each pool thread gets its own wake-up
     * channel, through which MHD_resume_connection reaches the thread owning the connection. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (strchr(address, ':') != NULL) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET6, address, &sin6.sin6_addr) != 1) {
            snprintf(errstr, errstr_size, "http: invalid IPv6 bind address \"%s\"", address);
            return NULL;
        }
        /* The unspecified address "::" also takes IPv4 clients, as containers expect. */
        flags |= IN6_IS_ADDR_UNSPECIFIED(&sin6.sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
        sa = (struct sockaddr *)&sin6;
    } else {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)cfg->port);
        if (inet_pton(AF_INET, address, &sin.sin_addr) != 1) {
            snprintf(errstr, errstr_size, "http: invalid IPv4 bind address \"%s\"", address);
            return NULL;
        }
        sa = (struct sockaddr *)&sin;
    }

    struct cv_http_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL || (srv->routes = calloc(NBUILTIN + nroutes, sizeof(*srv->routes))) == NULL) {
        free(srv);
        snprintf(errstr, errstr_size, "http: out of memory");
        return NULL;
    }
    srv->app = app;
    srv->ready = ready;
    srv->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
    srv->grace_s = cfg->shutdown_grace_s ? cfg->shutdown_grace_s : DEFAULT_SHUTDOWN_GRACE_S;
    srv->before = cfg->before;
    srv->after = cfg->after;
    srv->auth = cfg->auth;
    srv->ready_cache_ms = cfg->ready_cache_ms;
    atomic_init(&srv->draining, 0);
    atomic_init(&srv->in_flight, 0);
    atomic_init(&srv->destroying, 0);
    pthread_mutex_init(&srv->suspend_lock, NULL);
    pthread_mutex_init(&srv->ready_lock, NULL);
    pthread_condattr_t cattr;
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->ready_cond, &cattr);
    pthread_condattr_destroy(&cattr);
    for (size_t i = 0; i < NBUILTIN + nroutes; i++) {
        const struct cv_http_route *src = i < NBUILTIN ? &builtin_routes[i] : &routes[i - NBUILTIN];
        struct cv_http_compiled_route *r = &srv->routes[i];
        r->method = src->method;
        r->pattern = src->pattern;
        r->handler = src->handler;
        r->builtin = i < NBUILTIN;
        r->access = src->access;
        srv->nroutes++;
        if ((r->access & (CV_HTTP_OPEN | CV_ROLES_ANY)) == 0) {
            snprintf(errstr, errstr_size,
                     "http: route %s %s states no access (CV_HTTP_OPEN or "
                     "roles)",
                     r->method, r->pattern);
            goto cleanup;
        }
        if (route_compile(r, errstr, errstr_size) < 0)
            goto cleanup;
    }
    if (register_metrics(srv) < 0) {
        snprintf(errstr, errstr_size, "http: a route pattern is too long for a metric label");
        goto cleanup;
    }

    raise_fd_limit(limit + (cfg->probe_port ? PROBE_CONNECTION_LIMIT : 0));
    /* Handlers may block briefly (database queries) and libmicrohttpd runs each one on the pool
     * thread that owns its connection, stalling that thread's other connections meanwhile;
     * waiting requests (long polls) are suspended instead and hold no thread. Each thread gets
     * connection_limit / threads connections; the per-IP limit is the whole daemon's. */
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_access, srv, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, srv, /* must come first to catch start errors */
        MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
        limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->per_ip_limit, MHD_OPTION_CONNECTION_TIMEOUT,
        timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        cfg->max_header_bytes ? cfg->max_header_bytes : (size_t)CONNECTION_MEMORY_BYTES,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        snprintf(errstr, errstr_size, "http: cannot listen on %s port %d (see the log above)",
                 address, cfg->port);
        goto cleanup;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->port;
    if (cfg->probe_port > 0) {
        /* Probes get a daemon of their own (one thread, its own connection limit), so that no
         * number of API clients, busy handlers or open connections can keep them waiting. */
        if (sa->sa_family == AF_INET6)
            sin6.sin6_port = htons((uint16_t)cfg->probe_port);
        else
            sin.sin_port = htons((uint16_t)cfg->probe_port);
        srv->probe_daemon = MHD_start_daemon(
            flags & ~(unsigned)MHD_ALLOW_SUSPEND_RESUME, (uint16_t)cfg->probe_port, NULL, NULL,
            on_access_probe, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv, MHD_OPTION_SOCK_ADDR,
            sa, MHD_OPTION_CONNECTION_LIMIT, (unsigned)PROBE_CONNECTION_LIMIT,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)PROBE_CONNECTION_TIMEOUT_S,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
        if (srv->probe_daemon == NULL) {
            snprintf(errstr, errstr_size,
                     "http: cannot listen on %s probe port %d (see the log above)", address,
                     cfg->probe_port);
            MHD_stop_daemon(srv->daemon);
            goto cleanup;
        }
        srv->probe_port = cfg->probe_port;
    }
    if (srv->ready_cache_ms > 0) {
        if (cv_http_ready_start(srv) < 0) {
            snprintf(errstr, errstr_size, "http: cannot start the readiness thread");
            MHD_stop_daemon(srv->probe_daemon);
            MHD_stop_daemon(srv->daemon);
            goto cleanup;
        }
    }
    cv_log_info("http: listening on %s port %d with %u threads%s", address, srv->port, threads,
                srv->probe_daemon ? ", probes also on their own port" : "");
    return srv;

cleanup:
    server_free(srv);
    return NULL;
}

int cv_http_server_port(const struct cv_http_server *srv)
{
    return srv->port;
}

int cv_http_server_probe_port(const struct cv_http_server *srv)
{
    return srv->probe_port;
}

void cv_http_server_set_draining(struct cv_http_server *srv)
{
    if (srv != NULL && !atomic_exchange(&srv->draining, 1))
        cv_log_info("http: draining: /readyz now answers 503");
}

void cv_http_server_destroy(struct cv_http_server *srv)
{
    if (srv == NULL)
        return;
    atomic_store(&srv->draining, 1);
    /* Stop accepting; connections already open may still finish their requests. */
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    uint64_t deadline = now_ns() + (uint64_t)srv->grace_s * 1000000000u;
    while (atomic_load(&srv->in_flight) > 0 && now_ns() < deadline) {
        struct timespec tick = {0, 10000000L}; /* 10 ms */
        nanosleep(&tick, NULL);
    }
    /* libmicrohttpd aborts when stopped with a suspended connection: resume what the owners
     * left (nothing, normally) and give the replies a moment to go out. */
    atomic_store(&srv->destroying, 1);
    cv_http_resume_all(srv);
    uint64_t last = now_ns() + 2000000000u;
    while (atomic_load(&srv->in_flight) > 0 && now_ns() < last) {
        struct timespec tick = {0, 10000000L};
        nanosleep(&tick, NULL);
        cv_http_resume_all(srv);
    }
    long left = atomic_load(&srv->in_flight);
    if (left > 0)
        cv_log_warn("http: stopping with %ld requests still in flight", left);
    if (srv->probe_daemon != NULL)
        MHD_stop_daemon(srv->probe_daemon);
    MHD_stop_daemon(srv->daemon);
    server_free(srv);
}
