/* Building HTTP responses: JSON and RFC 9457 problem bodies, headers, and handing the result to
 * libmicrohttpd. Allocation failures degrade to a bare 500 rather than a crash. */
#include "http_int.h"

#include "cv/json.h"
#include "cv/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Replaces the body with a copy of data (len bytes) and sets status and Content-Type. */
static void set_body(struct cv_http_response *resp, unsigned status, const char *content_type,
                     const char *data, size_t len)
{
    free(resp->body);
    free(resp->content_type);
    resp->body = NULL;
    resp->body_len = 0;
    resp->content_type = NULL;
    resp->status = status;
    if (content_type != NULL && (resp->content_type = strdup(content_type)) == NULL)
        resp->out_of_memory = 1;
    if (len == 0)
        return;
    resp->body = malloc(len);
    if (resp->body == NULL) {
        resp->out_of_memory = 1;
        return;
    }
    memcpy(resp->body, data, len);
    resp->body_len = len;
}

/* Serializes body compactly with a trailing newline as the response body. Does not take
 * ownership. */
static void set_json(struct cv_http_response *resp, unsigned status, const char *content_type,
                     const json_t *body)
{
    char *text = cv_json_dumps_compact(body);
    if (text == NULL) {
        cv_log_error("http: cannot serialize a %u reply", status);
        set_body(resp, 500, NULL, NULL, 0);
        resp->out_of_memory = 1;
        return;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL: set_body copies exactly len + 1 bytes */
    set_body(resp, status, content_type, text, len + 1);
    free(text);
}

void cv_http_reply_json(struct cv_http_response *resp, unsigned status, json_t *body)
{
    if (body == NULL) {
        set_body(resp, status, NULL, NULL, 0);
        return;
    }
    set_json(resp, status, "application/json", body);
    json_decref(body);
}

/* The standard reason phrase of the statuses our services use (RFC 9110 wording). */
static const char *reason_phrase(unsigned status)
{
    static const struct {
        unsigned status;
        const char *phrase;
    } phrases[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {406, "Not Acceptable"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Content"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
        if (phrases[i].status == status)
            return phrases[i].phrase;
    return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "Unknown Status";
}

/* A JSON string of s; text that is not valid UTF-8 (it may quote client input) has its non-ASCII
 * bytes replaced by '?'. NULL if out of memory. */
static json_t *safe_string(const char *s)
{
    json_t *v = json_string(s);
    if (v != NULL)
        return v;
    char *copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

/* Builds the problem object; NULL if out of memory. */
static json_t *problem_new(unsigned status, const char *title, const char *detail,
                           const char *field)
{
    if (title == NULL)
        title = reason_phrase(status);
    json_t *p = json_object();
    if (p == NULL)
        return NULL;
    int rc = json_object_set_new(p, "type", json_string("about:blank"));
    rc |= json_object_set_new(p, "title", safe_string(title));
    rc |= json_object_set_new(p, "status", json_integer(status));
    if (detail != NULL)
        rc |= json_object_set_new(p, "detail", safe_string(detail));
    if (field != NULL) {
        json_t *param = json_object();
        rc |= json_object_set_new(p, "field", safe_string(field));
        rc |= json_object_set_new(param, "name", safe_string(field));
        rc |= json_object_set_new(param, "reason", safe_string(detail ? detail : "invalid"));
        rc |= json_object_set_new(p, "invalid-params", json_pack("[o]", param));
    }
    if (rc != 0) {
        json_decref(p);
        return NULL;
    }
    return p;
}

void cv_http_reply_problem_with(struct cv_http_response *resp, unsigned status, const char *title,
                                const char *detail, const char *field, json_t *extra)
{
    json_t *p = problem_new(status, title, detail, field);
    if (p == NULL || (extra != NULL && json_object_update(p, extra) != 0)) {
        json_decref(p);
        json_decref(extra);
        set_body(resp, 500, NULL, NULL, 0);
        resp->out_of_memory = 1;
        return;
    }
    json_decref(extra);
    set_json(resp, status, "application/problem+json", p);
    json_decref(p);
}

void cv_http_reply_problem(struct cv_http_response *resp, unsigned status, const char *title,
                           const char *detail, const char *field)
{
    cv_http_reply_problem_with(resp, status, title, detail, field, NULL);
}

void cv_http_reply_text(struct cv_http_response *resp, unsigned status, const char *content_type,
                        const char *body, size_t len)
{
    set_body(resp, status, content_type, body, len);
}

void cv_http_reply_header(struct cv_http_response *resp, const char *name, const char *value)
{
    if (strcasecmp(name, MHD_HTTP_HEADER_CONTENT_TYPE) == 0) {
        free(resp->content_type);
        if ((resp->content_type = strdup(value)) == NULL)
            resp->out_of_memory = 1;
        return;
    }
    if (resp->nheaders == resp->headers_cap) {
        size_t cap = resp->headers_cap ? resp->headers_cap * 2 : 4;
        struct cv_http_header_pair *h = realloc(resp->headers, cap * sizeof(*h));
        if (h == NULL) {
            resp->out_of_memory = 1;
            return;
        }
        resp->headers = h;
        resp->headers_cap = cap;
    }
    struct cv_http_header_pair *pair = &resp->headers[resp->nheaders];
    pair->name = strdup(name);
    pair->value = strdup(value);
    if (pair->name == NULL || pair->value == NULL) {
        free(pair->name);
        free(pair->value);
        resp->out_of_memory = 1;
        return;
    }
    resp->nheaders++;
}

void cv_http_response_release(struct cv_http_response *resp)
{
    free(resp->body);
    free(resp->content_type);
    for (size_t i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->headers);
    memset(resp, 0, sizeof(*resp));
}

/* The last resort when the reply itself cannot be built: an empty 500. */
static enum MHD_Result queue_bare_500(struct MHD_Connection *conn)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result cv_http_response_queue(struct MHD_Connection *conn, struct cv_http_response *resp,
                                       int close_connection)
{
    if (resp->out_of_memory) {
        cv_log_error("http: out of memory building a %u reply", resp->status);
        cv_http_response_release(resp);
        return queue_bare_500(conn);
    }
    /* MUST_FREE: libmicrohttpd owns the malloc'd body from here and free()s it, no copy. */
    struct MHD_Response *r = MHD_create_response_from_buffer(
        resp->body_len, resp->body, resp->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        cv_http_response_release(resp);
        return queue_bare_500(conn);
    }
    resp->body = NULL;
    if (resp->content_type != NULL &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type) != MHD_YES)
        cv_log_warn("http: invalid Content-Type dropped");
    for (size_t i = 0; i < resp->nheaders; i++)
        if (MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value) != MHD_YES)
            cv_log_warn("http: invalid response header %s dropped", resp->headers[i].name);
    if (close_connection)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(conn, resp->status, r);
    MHD_destroy_response(r);
    cv_http_response_release(resp);
    return ret;
}
