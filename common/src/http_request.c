/* The request side of the HTTP server: accessors for handlers, bounded body accumulation, and
 * parsing a JSON body with problem replies for the wrong media type or malformed JSON. */
#include "http_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *cv_http_method(const struct cv_http_request *req)
{
    return req->method;
}

const char *cv_http_path(const struct cv_http_request *req)
{
    return req->path;
}

const char *cv_http_path_param(const struct cv_http_request *req, const char *name)
{
    const struct cv_http_compiled_route *route = req->route;
    if (route == NULL)
        return NULL;
    for (size_t i = 0; i < route->nsegs && i < req->nsegs; i++)
        if (route->segs[i].is_param && strcmp(route->segs[i].text, name) == 0)
            return req->segs[i];
    return NULL;
}

const char *cv_http_query(const struct cv_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *cv_http_header(const struct cv_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void cv_http_set_state(struct cv_http_request *req, void *state, void (*free_fn)(void *))
{
    if (req->state_free != NULL && req->state != state)
        req->state_free(req->state);
    req->state = state;
    req->state_free = free_fn;
}

void *cv_http_state(const struct cv_http_request *req)
{
    return req->state;
}

const char *cv_http_body(const struct cv_http_request *req, size_t *len)
{
    if (len != NULL)
        *len = req->body ? req->body_len : 0;
    return req->body ? req->body : "";
}

int cv_http_request_append_body(struct cv_http_request *req, const char *data, size_t len,
                                size_t max)
{
    if (req->too_large || len > max - req->body_len) {
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        req->too_large = 1;
        return -1;
    }
    if (req->body_len + len + 1 > req->body_cap) {
        /* Double, but never past max + 1 (the NUL): the limit bounds memory, not just input. */
        size_t cap = req->body_cap ? req->body_cap : 1024;
        while (cap < req->body_len + len + 1)
            cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
        char *body = realloc(req->body, cap);
        if (body == NULL)
            return -2;
        req->body = body;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return 0;
}

void cv_http_request_release(struct cv_http_request *req)
{
    if (req == NULL)
        return;
    cv_http_response_release(&req->resp);
    if (req->state_free != NULL)
        req->state_free(req->state);
    free(req->path_buf);
    free(req->body);
    free(req);
}

/* True for "application/json", any case, optionally followed by parameters. */
static int is_json_media_type(const char *ct)
{
    if (ct == NULL)
        return 0;
    ct += strspn(ct, " \t");
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return 0;
    ct += n;
    ct += strspn(ct, " \t");
    return *ct == '\0' || *ct == ';';
}

json_t *cv_http_json_body(struct cv_http_request *req, struct cv_http_response *resp)
{
    if (!is_json_media_type(cv_http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        cv_http_reply_problem(resp, 415, "Unsupported Media Type",
                              "expected Content-Type: application/json", NULL);
        return NULL;
    }
    size_t len;
    const char *body = cv_http_body(req, &len);
    if (len == 0) {
        cv_http_reply_problem(resp, 400, "Malformed JSON", "the request body is empty", NULL);
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        char detail[300];
        snprintf(detail, sizeof(detail), "line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        /* Also as members, for clients that point at the spot. */
        cv_http_reply_problem_with(
            resp, 400, "Malformed JSON", detail, NULL,
            json_pack("{s:i, s:i}", "line", jerr.line, "column", jerr.column));
        return NULL;
    }
    if (!json_is_object(v)) {
        const char *what = json_is_array(v)     ? "an array"
                           : json_is_string(v)  ? "a string"
                           : json_is_null(v)    ? "null"
                           : json_is_boolean(v) ? "a boolean"
                                                : "a number";
        char detail[64];
        snprintf(detail, sizeof(detail), "expected a JSON object, got %s", what);
        cv_http_reply_problem(resp, 400, NULL, detail, NULL);
        json_decref(v);
        return NULL;
    }
    return v;
}
