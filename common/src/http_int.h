/* Declarations shared by the HTTP server's files only (http_server.c, http_request.c,
 * http_reply.c, http_suspend.c, http_ready.c): the server, request and response structs behind
 * the opaque public types. */
#ifndef CV_HTTP_INT_H
#define CV_HTTP_INT_H

#include "cv/http.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define CV_HTTP_MAX_SEGMENTS 32 /* paths with more segments match no route */

struct cv_http_header_pair {
    char *name;
    char *value;
};

struct cv_http_response {
    unsigned status; /* 0 until the handler replies */
    char *body;      /* malloc'd; handed to libmicrohttpd, which frees it */
    size_t body_len;
    char *content_type; /* NULL: none */
    struct cv_http_header_pair *headers;
    size_t nheaders, headers_cap;
    int out_of_memory; /* building the reply failed: a 500 is sent instead */
};

/* A route pattern split into segments; params have is_param set and text = the name. */
struct cv_http_segment {
    char *text;
    int is_param;
};

struct cv_http_compiled_route {
    const char *method;
    const char *pattern;
    cv_http_handler handler;
    struct cv_http_segment *segs;
    size_t nsegs;
    int builtin;                   /* handler gets the server, not the app, as app */
    unsigned access;               /* CV_HTTP_OPEN or CV_ROLE_* bits */
    struct cv_histogram *duration; /* http_request_duration_seconds{route} */
};

struct cv_http_request {
    struct cv_http_server *srv;
    struct MHD_Connection *conn;
    const char *method; /* owned by libmicrohttpd, valid for the request */
    const char *path;
    uint64_t started_ns;

    /* Routing, done on the first call. */
    char *path_buf; /* copy of path, split into segs in place */
    char *segs[CV_HTTP_MAX_SEGMENTS];
    size_t nsegs;
    const struct cv_http_compiled_route *route; /* NULL: 404 or 405 */
    char allow[128];                            /* methods for the 405 Allow header, or "" */

    /* Body: never more than the server's max_body_bytes (+1 for a NUL). */
    char *body;
    size_t body_len, body_cap;
    size_t discarded; /* bytes read and dropped after the body went over the limit */
    int too_large;

    int probe; /* arrived on the probe port: built-in routes only */

    /* Set by the auth check (http_auth.c) before the handler runs. */
    struct cv_http_principal principal;
    char principal_sub[256];
    int authenticated;

    /* Suspension (http_server.c), guarded by the server's suspend_lock. */
    cv_http_handler on_resume; /* set by cv_http_suspend, run when resumed */
    int susp_state;            /* SUSP_* in http_server.c */
    int forced;                /* resumed by the server at destroy, not by its owner */
    struct cv_http_request *susp_prev, *susp_next; /* the server's list of suspended requests */
    void *state;
    void (*state_free)(void *);

    int queued;           /* a response was handed to libmicrohttpd */
    unsigned status_sent; /* its status, for metrics */
    struct cv_http_response resp;
};

/* Where a request stands with respect to suspension (req->susp_state, under suspend_lock). */
enum {
    SUSP_NONE = 0, /* running or replying */
    SUSP_PENDING,  /* the handler called cv_http_suspend; suspended when it returns */
    SUSP_EARLY,    /* resumed before the handler returned: on_resume runs right away */
    SUSP_ON,       /* suspended in libmicrohttpd, in the server's list */
    SUSP_RESUMING, /* resumed; on_resume runs when libmicrohttpd calls back */
};

struct cv_http_server {
    struct MHD_Daemon *daemon;
    struct MHD_Daemon *probe_daemon; /* NULL: no probe port */
    int probe_port;
    struct cv_http_compiled_route *routes; /* built-ins first, then the app's */
    size_t nroutes;
    struct cv_histogram *unmatched_duration;
    struct cv_gauge *in_flight_gauge;
    void *app;
    cv_http_ready_fn ready;
    cv_http_handler before, after; /* around app handlers, may be NULL */
    struct cv_http_auth *auth;     /* borrowed; NULL: authentication off */
    size_t max_body;
    unsigned grace_s;
    int port;
    atomic_int draining;
    atomic_long in_flight; /* requests begun and not yet completed */
    atomic_int destroying; /* nothing is suspended any more */

    pthread_mutex_t suspend_lock;
    struct cv_http_request *suspended; /* SUSP_ON requests */
    struct cv_gauge *suspended_gauge;

    /* Readiness computed off the request path (ready_cache_ms > 0). */
    unsigned ready_cache_ms;
    pthread_t ready_thread;
    int ready_thread_started;
    pthread_mutex_t ready_lock;
    pthread_cond_t ready_cond;
    int ready_stop;
    int ready_ok;
    char ready_reason[256];
    uint64_t ready_at_ns; /* when the last check finished; 0: none yet */
};

static inline uint64_t cv_http_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* http_suspend.c: after a handler or on_resume ran, suspends the connection if it asked to
 * (returns 1), runs on_resume at once if it was resumed meanwhile, returns 0 when a reply is to
 * be sent (once destroying is set nothing is suspended any more: a 503 if nothing replied). */
int cv_http_suspension_settle(struct cv_http_server *srv, struct cv_http_request *req);
/* Resumes whatever is still suspended (destroy, after the grace); on_resume sees draining. */
void cv_http_resume_all(struct cv_http_server *srv);

/* http_ready.c: the readiness thread (ready_cache_ms > 0) and its last result: 1 ready, 0 with
 * reason (also when no check finished yet, or none for a while). start: 0 or -1. */
int cv_http_ready_start(struct cv_http_server *srv);
void cv_http_ready_stop(struct cv_http_server *srv); /* no-op if not started */
int cv_http_ready_cached(struct cv_http_server *srv, char *reason, size_t reason_size);

/* http_auth.c: lets req through to a route of the given access (0, principal set when a token
 * was verified) or replies 401, 403 or 429 (-1). auth NULL lets everything through. */
int cv_http_auth_check(struct cv_http_auth *auth, struct cv_http_request *req,
                       struct cv_http_response *resp, unsigned access);

/* http_request.c: appends upload data to the body; returns 0, -1 if that would go over max (the
 * body is then dropped and too_large set), or -2 out of memory. */
int cv_http_request_append_body(struct cv_http_request *req, const char *data, size_t len,
                                size_t max);
void cv_http_request_release(struct cv_http_request *req);

/* http_reply.c: queues resp on the connection (adding Connection: close when close_connection)
 * and frees its contents. Returns libmicrohttpd's result. */
enum MHD_Result cv_http_response_queue(struct MHD_Connection *conn, struct cv_http_response *resp,
                                       int close_connection);
void cv_http_response_release(struct cv_http_response *resp);
/* cv_http_reply_problem plus the members of extra (an object or NULL; taken). */
void cv_http_reply_problem_with(struct cv_http_response *resp, unsigned status, const char *title,
                                const char *detail, const char *field, json_t *extra);

#endif
