/* The HTTP server every service embeds (libmicrohttpd underneath): JSON routes with path
 * parameters, built-in /healthz /readyz /metrics, RFC 9457 problem replies, body limits,
 * per-route metrics and graceful draining. */
#ifndef CV_HTTP_H
#define CV_HTTP_H

#include <jansson.h>
#include <stddef.h>

struct cv_http_server;
struct cv_http_request;  /* method, path, path params, query, headers, body; valid in the handler */
struct cv_http_response; /* status, headers, body; filled by the handler */

/* Runs on a server thread and may block briefly (database queries); see `threads`. A handler
 * that has to wait for something suspends its request instead (cv_http_suspend). */
typedef void (*cv_http_handler)(struct cv_http_request *req, struct cv_http_response *resp,
                                void *app);

/* Who may call a route (cv_http_route.access): CV_HTTP_OPEN, or the roles any one of which
 * lets a bearer token through (403 otherwise), optionally with CV_HTTP_RATE_LIMITED. 0 is not a
 * valid access: cv_http_server_new refuses a route that does not state one. */
enum {
    CV_ROLE_CUSTOMER = 1 << 0, /* places, reads, lists and cancels its own orders (sub) */
    CV_ROLE_OPERATOR = 1 << 1, /* adjusts stock, dispatches and delivers shipments */
    CV_ROLE_AUDITOR = 1 << 2,  /* reads the audit record */
    CV_ROLES_ANY = CV_ROLE_CUSTOMER | CV_ROLE_OPERATOR | CV_ROLE_AUDITOR,
    CV_HTTP_OPEN = 1 << 8,         /* no token needed (the built-in probes and /metrics) */
    CV_HTTP_RATE_LIMITED = 1 << 9, /* also counted against the caller's rate limit (429) */
};

struct cv_http_route {
    const char *method;  /* "GET", "POST", ...; a GET route also answers HEAD */
    const char *pattern; /* "/orders/{id}/cancel": {name} matches one non-empty segment */
    cv_http_handler handler;
    unsigned access; /* CV_HTTP_OPEN or CV_ROLE_* bits (| CV_HTTP_RATE_LIMITED) */
};

/* The authenticated caller of a request (cv_http_principal). */
struct cv_http_principal {
    const char *sub; /* the token's subject: a customer's customer_id */
    unsigned roles;  /* CV_ROLE_* */
};

struct cv_http_auth; /* token verification and rate limits: cv/http_auth.h */

/* Returns 1 when ready, or 0 with the reason in reason (e.g. "database unreachable"). Called on
 * a server thread for every GET /readyz, or, with ready_cache_ms, on a thread of its own. */
typedef int (*cv_http_ready_fn)(void *app, char *reason, size_t reason_size);

/* Zero fields take the default noted. */
struct cv_http_config {
    const char *bind_address;      /* "127.0.0.1", "0.0.0.0" or "::" (IPv6 when it has ':');
                                      NULL: "0.0.0.0" */
    int port;                      /* 0 = ephemeral; read back with cv_http_server_port */
    unsigned threads;              /* worker threads (default 4): the number of requests that can
                                      block in handlers at once, see http_server.c */
    unsigned connection_limit;     /* open connections across all threads (default 256) */
    unsigned connection_timeout_s; /* connections idle this long are closed (default 60);
                                      suspended requests are exempt (their owner has a deadline) */
    unsigned per_ip_limit;         /* open connections per client address (0: no limit) */
    int probe_port;                /* > 0: /healthz /readyz /metrics are also served alone on this
                                      port, by a daemon of their own that API clients cannot
                                      starve (threads busy, connection limit reached); 0: none */
    unsigned ready_cache_ms;       /* > 0: the ready callback runs on a thread of its own every
                                      this many ms and /readyz answers its last result at once;
                                      0: /readyz calls it */
    size_t max_body_bytes;         /* request bodies beyond get 413 (default 1 MiB) */
    size_t max_header_bytes;       /* per-connection buffer for the request line and headers;
                                      larger headers get 431 (default 64 KiB) */
    /* Borrowed, must outlive the server. NULL: authentication off, every route open and
     * cv_http_principal NULL (laptop mode, the caller binds to loopback). */
    struct cv_http_auth *auth;
    /* Optional, run around every app route's handler on its thread (not the built-ins): set up
     * and clear per-request context such as the trace; before may add response headers. */
    cv_http_handler before;
    cv_http_handler after;
    unsigned shutdown_grace_s; /* cv_http_server_destroy waits this long for in-flight
                                  requests (default 35: a 30 s long poll plus margin) */
};

/* Starts serving: GET /healthz, /readyz, /metrics, then routes (matched in order; the array and
 * its strings must outlive the server). app is passed to handlers and ready; ready may be NULL
 * (always ready). Returns the server, or NULL with the reason in errstr. */
struct cv_http_server *cv_http_server_new(const struct cv_http_config *cfg,
                                          const struct cv_http_route *routes, size_t nroutes,
                                          void *app, cv_http_ready_fn ready, char *errstr,
                                          size_t errstr_size);

/* The port actually bound (useful with port 0). */
int cv_http_server_port(const struct cv_http_server *srv);

/* Graceful shutdown, first step: /readyz answers 503 "shutting down" from now on, and replies
 * ask clients to close their connections. */
void cv_http_server_set_draining(struct cv_http_server *srv);

/* Stops accepting connections, waits up to shutdown_grace_s for in-flight requests to be
 * answered, then stops the threads and frees the server. Whoever suspended requests must have
 * resumed them before (a request still suspended at the end of the grace is resumed here, its
 * on_resume seeing the server draining). NULL is a no-op. */
void cv_http_server_destroy(struct cv_http_server *srv);

/* The probe port actually bound, 0 if there is none. */
int cv_http_server_probe_port(const struct cv_http_server *srv);

/* ---- Suspended requests (long polls) ----
 * A handler that waits for something (an order's status) suspends its request instead of
 * blocking: its connection then holds no server thread. Whoever it waits on calls cv_http_resume
 * from any thread; on_resume then runs on a server thread as the request's handler again (same
 * request, same response and headers so far; before/after hooks are not run again) and replies,
 * or suspends again. Suspended connections are exempt from the idle timeout: the waiter must
 * enforce its own deadline. */

/* Suspends req once the handler returns; the handler returns without replying. Call from a
 * handler or an on_resume, then hand req to whatever will resume it (which may happen before
 * the handler returned: on_resume then runs right after it). */
void cv_http_suspend(struct cv_http_request *req, cv_http_handler on_resume);
/* Takes back a cv_http_suspend before anyone could resume it (the handler replies instead). */
void cv_http_suspend_cancel(struct cv_http_request *req);
/* Resumes a request suspended with cv_http_suspend. Any thread, once per cv_http_suspend; req
 * must not be used by the caller afterwards. */
void cv_http_resume(struct cv_http_request *req);
/* Per-request state for handlers that suspend: state lives until the request completes (then
 * free_fn(state), if free_fn is not NULL) or is replaced. */
void cv_http_set_state(struct cv_http_request *req, void *state, void (*free_fn)(void *));
void *cv_http_state(const struct cv_http_request *req);
/* Nonzero once the server is draining (shutdown began): a waiting handler answers now. */
int cv_http_draining(const struct cv_http_request *req);

/* The caller authenticated by its bearer token; NULL when authentication is off or the route
 * is open. Lives until the request completes. */
const struct cv_http_principal *cv_http_principal(const struct cv_http_request *req);

/* Request accessors. Strings borrow from the request and live until the handler returns. */
const char *cv_http_method(const struct cv_http_request *req);
const char *cv_http_path(const struct cv_http_request *req); /* percent-decoded, without query */
/* The segment matched by {name} in the route pattern, NULL if the pattern has no such name.
 * libmicrohttpd decodes the path before matching, so an encoded '/' splits segments. */
const char *cv_http_path_param(const struct cv_http_request *req, const char *name);
const char *cv_http_query(const struct cv_http_request *req, const char *name);  /* NULL: absent */
const char *cv_http_header(const struct cv_http_request *req, const char *name); /* any case */
/* The body (NUL-terminated for convenience, may contain NULs) and its length; "" if none. */
const char *cv_http_body(const struct cv_http_request *req, size_t *len);

/* Parses the body as a JSON object. Replies a 415 problem unless Content-Type is
 * application/json (parameters such as charset allowed), a 400 problem naming line and column
 * (also as "line"/"column" members) for malformed JSON, a 400 problem for a non-object.
 * Returns the object (caller decrefs) or NULL after replying. Duplicate keys are malformed. */
json_t *cv_http_json_body(struct cv_http_request *req, struct cv_http_response *resp);

/* Conditional requests: whether the value of an If-Match (weak 0: strong comparison, a weak tag
 * never matches) or If-None-Match (weak 1) header matches etag, the resource's current strong
 * entity tag with its quotes ("\"7\""). Returns 1 when "*" or one of the listed tags matches, 0
 * when none does, -1 when header is NULL or not a valid "*" or list of entity tags. */
int cv_http_etag_match(const char *header, const char *etag, int weak);

/* Replies: the last call wins for status and body; headers accumulate. */

/* JSON body followed by a newline, Content-Type application/json. Takes ownership of body;
 * NULL body: no body (for 204). */
void cv_http_reply_json(struct cv_http_response *resp, unsigned status, json_t *body);

/* application/problem+json (RFC 9457): {"type":"about:blank","title","status","detail"} plus,
 * when field != NULL, "field" and "invalid-params":[{"name":field,"reason":detail}]. title NULL:
 * the status's reason phrase; detail may be NULL. */
void cv_http_reply_problem(struct cv_http_response *resp, unsigned status, const char *title,
                           const char *detail, const char *field);

/* Any body, copied, with the given Content-Type. */
void cv_http_reply_text(struct cv_http_response *resp, unsigned status, const char *content_type,
                        const char *body, size_t len);

/* Adds a response header (both strings copied). */
void cv_http_reply_header(struct cv_http_response *resp, const char *name, const char *value);

#endif
