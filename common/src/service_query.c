/* Helpers for the services' HTTP handlers: query parameters and pages of results. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/service.h"

int cv_service_query_int(struct cv_http_request *req, struct cv_http_response *resp,
                         const char *name, long def, long min, long max, long *out)
{
    const char *text = cv_http_query(req, name);
    if (!text) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        char detail[128];
        snprintf(detail, sizeof(detail), "expected an integer in %ld..%ld", min, max);
        cv_http_reply_problem(resp, 400, "Bad Request", detail, name);
        return -1;
    }
    *out = v;
    return 0;
}

int cv_service_query_page(struct cv_http_request *req, struct cv_http_response *resp, long *after,
                          long *limit)
{
    if (cv_service_query_int(req, resp, "limit", 50, 1, 500, limit) < 0)
        return -1;
    return cv_service_query_int(req, resp, "after", 0, 0, INT64_MAX / 2, after);
}

json_t *cv_service_page(PGconn *conn, const char *sql, int nparams, const char *const *params,
                        long limit, const char *key, int *found, struct cv_db_err *err)
{
    const char *all[CV_SERVICE_PAGE_MAX_PARAMS + 1];
    char limit_text[24];
    *found = -1;
    if (nparams < 0 || nparams > CV_SERVICE_PAGE_MAX_PARAMS) {
        cv_db_err_client(err, 0, "a page query takes at most %d parameters",
                         CV_SERVICE_PAGE_MAX_PARAMS);
        return NULL;
    }
    memcpy(all, params, (size_t)nparams * sizeof(*all));
    snprintf(limit_text, sizeof(limit_text), "%ld", limit);
    all[nparams] = limit_text;
    PGresult *res = cv_db_query(conn, sql, nparams + 1, all, err);
    if (!res)
        return NULL;
    json_t *items = json_array();
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        json_t *item = json_loads(PQgetvalue(res, i, 1), 0, NULL);
        if (item)
            json_array_append_new(items, item);
    }
    /* A full page may have a successor; a short one is the last. */
    json_t *next = n > 0 && n == limit ? json_string(PQgetvalue(res, n - 1, 0)) : json_null();
    PQclear(res);
    json_t *page = json_pack("{s:o, s:o}", key, items, "next", next);
    if (!page) {
        cv_db_err_client(err, 0, "out of memory");
        return NULL;
    }
    *found = 1;
    return page;
}

/* 404 "no such <what>" naming field. */
static void reply_not_found(struct cv_http_response *resp, const char *what, const char *field)
{
    char detail[96];
    snprintf(detail, sizeof(detail), "no such %s", what);
    cv_http_reply_problem(resp, 404, "Not Found", detail, field);
}

void cv_service_reply_lookup(struct cv_http_response *resp, json_t *body, int found,
                             const struct cv_db_err *err, const char *what, const char *field)
{
    if (found > 0 && body) {
        cv_http_reply_json(resp, 200, body);
        return;
    }
    json_decref(body);
    if (found < 0)
        cv_service_reply_db_error(resp, err);
    else
        reply_not_found(resp, what, field);
}

const char *cv_service_path_key(struct cv_http_request *req, struct cv_http_response *resp,
                                const char *param, int (*valid)(const char *), const char *what)
{
    const char *key = cv_http_path_param(req, param);
    if (valid(key))
        return key;
    reply_not_found(resp, what, param);
    return NULL;
}

json_t *cv_service_read(struct cv_service *svc, struct cv_http_response *resp,
                        cv_service_reader read, const void *query, const char *what,
                        const char *field)
{
    PGconn *conn = cv_service_db_acquire(svc, resp);
    if (!conn)
        return NULL;
    struct cv_db_err err;
    int found;
    json_t *body = read(conn, query, &found, &err);
    cv_service_db_release(svc, conn);
    /* The reader's own JSON; cppcheck takes it for one pointing at found or err. */
    if (found > 0 && body)
        return body; // cppcheck-suppress returnDanglingLifetime
    cv_service_reply_lookup(resp, body, found, &err, what, field);
    return NULL;
}

void cv_service_reply_read(struct cv_service *svc, struct cv_http_response *resp,
                           cv_service_reader read, const void *query, const char *what,
                           const char *field)
{
    json_t *body = cv_service_read(svc, resp, read, query, what, field);
    if (body)
        cv_http_reply_json(resp, 200, body);
}
