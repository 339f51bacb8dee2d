/* Declarations shared by the HTTP server's files only (http_server.c, http_request.c,
 * http_reply.c): the request and response structs behind the opaque public types. */
#ifndef CV_HTTP_INT_H
#define CV_HTTP_INT_H

#include "cv/http.h"

#include <microhttpd.h>
#include <stdint.h>

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
    int builtin;                         /* handler gets the server, not the app, as app */
    struct cv_histogram *duration;       /* http_request_duration_seconds{route} */
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

    int probe;            /* arrived on the probe port: built-in routes only */

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
