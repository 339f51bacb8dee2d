/* HTTP API of the inventory service: read stock, set or adjust the available stock of a SKU.
 * Each stock row has a version that every write moves on; it is the row's ETag, so that a
 * read-modify-write with If-Match cannot overwrite a change it has not seen. */
#include <stdio.h>
#include <string.h>

#include "cv/json.h"
#include "cv/util.h"
#include "inventory.h"

#define MAX_STOCK 1000000000L
#define MAX_KEY_LEN 128
#define MAX_REASON_LEN 256
#define ETAG_SIZE 32
#define ETAG_FORMAT_HELP "expected * or a list of entity tags such as \"7\""

/* The strong ETag of a stock row's version: "7" with its quotes. */
static void etag_of(long long version, char out[ETAG_SIZE])
{
    snprintf(out, ETAG_SIZE, "\"%lld\"", version);
}

/* Replies 200 with a SKU's JSON and its ETag. Takes ownership of item. */
static void reply_stock(struct cv_http_response *resp, json_t *item, long long version)
{
    char etag[ETAG_SIZE];
    etag_of(version, etag);
    cv_http_reply_header(resp, "ETag", etag);
    cv_http_reply_json(resp, 200, item);
}

/* Reads the If-Match header: 0 with *out NULL (absent) or the value, or -1 after replying 400
 * when it is not a valid precondition. */
static int if_match_header(struct cv_http_request *req, struct cv_http_response *resp,
                           const char **out)
{
    const char *value = cv_http_header(req, "If-Match");
    if (value && cv_http_etag_match(value, "\"0\"", 0) < 0) {
        cv_http_reply_problem(resp, 400, "Bad Request", ETAG_FORMAT_HELP, "If-Match");
        return -1;
    }
    *out = value;
    return 0;
}

/* Inside the caller's transaction: locks sku's row and checks if_match against its version.
 * Returns 0 when it matches, or -1 after replying (404 unknown SKU when unknown_404, else 412;
 * 412 with the current ETag on a stale one; the database error). */
static int check_if_match(struct cv_http_response *resp, PGconn *conn, const char *sku,
                          const char *if_match, int unknown_404)
{
    struct cv_db_err err;
    long long version;
    int found = inventory_store_lock_version(conn, sku, &version, &err);
    if (found < 0) {
        cv_service_reply_db_error(resp, &err);
        return -1;
    }
    if (!found) {
        if (unknown_404)
            cv_http_reply_problem(resp, 404, "Not Found", "no such SKU", "sku");
        else
            cv_http_reply_problem(resp, 412, "Precondition Failed",
                                  "If-Match given for a SKU that does not exist", "If-Match");
        return -1;
    }
    char etag[ETAG_SIZE];
    etag_of(version, etag);
    if (cv_http_etag_match(if_match, etag, 0) != 1) {
        char detail[128];
        snprintf(detail, sizeof(detail), "the stock changed since it was read: its ETag is now %s",
                 etag);
        cv_http_reply_header(resp, "ETag", etag);
        cv_http_reply_problem(resp, 412, "Precondition Failed", detail, "If-Match");
        return -1;
    }
    return 0;
}

void inventory_http_list(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct inventory_page_query q = {.after = cv_http_query(req, "after")};
    if (cv_service_query_int(req, resp, "limit", 100, 1, 1000, &q.limit) < 0)
        return;
    cv_service_reply_read(app, resp, inventory_store_page, &q, NULL, NULL);
}

/* A SKU, and where its row's version goes. */
struct stock_query {
    const char *sku;
    long long *version;
};

static json_t *read_stock(PGconn *conn, const void *query, int *found, struct cv_db_err *err)
{
    const struct stock_query *q = query;
    return inventory_store_get(conn, q->sku, q->version, found, err);
}

void inventory_http_get(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    long long version = 0;
    struct stock_query q = {cv_service_path_key(req, resp, "sku", cv_sku_valid, "SKU"), &version};
    json_t *item = q.sku ? cv_service_read(app, resp, read_stock, &q, "SKU", "sku") : NULL;
    if (!item)
        return;
    /* A client holding the current version gets 304 without the body (weak comparison, and a
     * malformed header counts as no match, RFC 9110 section 13.1.2). */
    const char *if_none_match = cv_http_header(req, "If-None-Match");
    char etag[ETAG_SIZE];
    etag_of(version, etag);
    if (if_none_match && cv_http_etag_match(if_none_match, etag, 1) == 1) {
        json_decref(item);
        cv_http_reply_header(resp, "ETag", etag);
        cv_http_reply_json(resp, 304, NULL);
        return;
    }
    reply_stock(resp, item, version);
}

/* A write's request: If-Match and the JSON body, which fields reads into the handler's own
 * struct. */
struct stock_write {
    const char *if_match;
    json_t *body;
};

/* Starts a write to a SKU: the If-Match header, the JSON body read by fields into out (400
 * titled title when it fails), then a pooled connection. The connection, or NULL after
 * replying (nothing to end then); end it with write_end. */
static PGconn *write_begin(struct cv_service *svc, struct cv_http_request *req,
                           struct cv_http_response *resp, const char *title,
                           int (*fields)(const json_t *body, void *out, struct cv_json_err *jerr),
                           void *out, struct stock_write *w)
{
    w->body = NULL;
    if (if_match_header(req, resp, &w->if_match) < 0 || !(w->body = cv_http_json_body(req, resp)))
        return NULL;
    struct cv_json_err jerr;
    PGconn *conn = NULL;
    if (fields(w->body, out, &jerr) < 0)
        cv_http_reply_problem(resp, 400, title, jerr.detail, jerr.field);
    else
        conn = cv_service_db_acquire(svc, resp);
    if (!conn)
        json_decref(w->body);
    return conn;
}

/* Ends a write write_begin started: rolls back what was not committed, gives the connection
 * back. */
static void write_end(struct cv_service *svc, PGconn *conn, struct stock_write *w)
{
    cv_db_rollback(conn);
    cv_service_db_release(svc, conn);
    json_decref(w->body);
}

/* A PUT's body: {"name"?: 1..200 chars, "available": 0..MAX_STOCK}. */
struct stock_put {
    const char *name;
    long available;
};

static int stock_put_fields(const json_t *body, void *out, struct cv_json_err *jerr)
{
    static const char *const fields[] = {"name", "available", NULL};
    struct stock_put *put = out;
    put->name = NULL;
    return cv_json_only_fields(body, "", fields, jerr) < 0 ||
                   cv_json_get_string(body, "name", 1, 200, 0, &put->name, jerr) < 0 ||
                   cv_json_get_int(body, "available", 0, MAX_STOCK, 1, &put->available, jerr) < 0
               ? -1
               : 0;
}

void inventory_http_put(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct cv_service *svc = app;
    const char *sku = cv_http_path_param(req, "sku");
    if (!cv_sku_valid(sku)) {
        cv_http_reply_problem(resp, 400, "Bad Request", "expected 1 to 64 of A-Z a-z 0-9 . _ -",
                              "sku");
        return;
    }
    struct stock_write w;
    struct stock_put put;
    PGconn *conn = write_begin(svc, req, resp, "Invalid stock", stock_put_fields, &put, &w);
    if (!conn)
        return;
    struct cv_db_err err;
    int found;
    long long version = 0;
    json_t *item = NULL;
    if (cv_db_begin(conn, &err) < 0) {
        cv_service_reply_db_error(resp, &err);
        goto cleanup;
    }
    /* The check and the write under one row lock: of concurrent PUTs with the same ETag, one
     * wins and the others find the version it left. */
    if (w.if_match && check_if_match(resp, conn, sku, w.if_match, 0) < 0)
        goto cleanup;
    if (inventory_store_set_available(svc, conn, sku, put.name, put.available, &err) < 0 ||
        !(item = inventory_store_get(conn, sku, &version, &found, &err)) ||
        cv_db_commit(conn, &err) < 0) {
        json_decref(item);
        cv_service_reply_db_error(resp, &err);
        goto cleanup;
    }
    reply_stock(resp, item, version);
cleanup:
    write_end(svc, conn, &w);
}

/* Answers a retry of an adjustment recorded under key: 200 with the stock it left and its ETag
 * when the request is the same one, 422 when key went with another. Returns 1 after replying,
 * 0 when no adjustment has key, -1 after replying a database error. */
static int replay_adjustment(struct cv_http_response *resp, PGconn *conn, const char *key,
                             const char *sku, long delta, const char *reason)
{
    struct cv_db_err err;
    int found;
    long long version = 0;
    json_t *done = inventory_store_find_adjustment(conn, key, &version, &found, &err);
    if (found < 0) {
        cv_service_reply_db_error(resp, &err);
        return -1;
    }
    if (!found)
        return 0;
    const char *done_sku = json_string_value(json_object_get(done, "sku"));
    const char *done_reason = json_string_value(json_object_get(done, "reason"));
    if (done_sku && strcmp(done_sku, sku) == 0 && done_reason && strcmp(done_reason, reason) == 0 &&
        json_integer_value(json_object_get(done, "delta")) == delta) {
        cv_http_reply_header(resp, "Idempotent-Replayed", "true");
        reply_stock(resp, json_incref(json_object_get(done, "stock")), version);
    } else {
        cv_http_reply_problem(resp, 422, "Unprocessable Content",
                              "this Idempotency-Key was used with a different request",
                              "Idempotency-Key");
    }
    json_decref(done);
    return 1;
}

/* An adjustment's body: {"delta": non-zero integer, "reason": 1..256 chars}. */
struct stock_adjust {
    long delta;
    const char *reason;
};

static int adjustment_fields(const json_t *body, void *out, struct cv_json_err *jerr)
{
    static const char *const fields[] = {"delta", "reason", NULL};
    struct stock_adjust *adj = out;
    if (cv_json_only_fields(body, "", fields, jerr) < 0 ||
        cv_json_get_int(body, "delta", -MAX_STOCK, MAX_STOCK, 1, &adj->delta, jerr) < 0 ||
        cv_json_get_string(body, "reason", 1, MAX_REASON_LEN, 1, &adj->reason, jerr) < 0)
        return -1;
    if (adj->delta == 0)
        return cv_json_error_set(jerr, "delta", "expected a non-zero integer in %ld..%ld",
                                 -MAX_STOCK, MAX_STOCK);
    return 0;
}

void inventory_http_adjust(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct cv_service *svc = app;
    const char *sku = cv_service_path_key(req, resp, "sku", cv_sku_valid, "SKU");
    if (!sku)
        return;
    const char *key = cv_http_header(req, "Idempotency-Key");
    if (key && (key[0] == '\0' || strlen(key) > MAX_KEY_LEN)) {
        cv_http_reply_problem(resp, 400, "Bad Request", "expected 1 to 128 characters",
                              "Idempotency-Key");
        return;
    }
    struct stock_write w;
    struct stock_adjust adj;
    PGconn *conn = write_begin(svc, req, resp, "Invalid adjustment", adjustment_fields, &adj, &w);
    if (!conn)
        return;
    long delta = adj.delta;
    const char *reason = adj.reason;
    struct cv_db_err err;
    struct inventory_adjustment done = {0};
    char detail[160];
    /* A retry of an adjustment that was applied gets its answer again, whatever If-Match says
     * now. */
    if (key && replay_adjustment(resp, conn, key, sku, delta, reason) != 0)
        goto cleanup;
    if (cv_db_begin(conn, &err) < 0) {
        cv_service_reply_db_error(resp, &err);
        goto cleanup;
    }
    if (w.if_match && check_if_match(resp, conn, sku, w.if_match, 1) < 0)
        goto cleanup;
    switch (inventory_store_adjust(svc, conn, sku, delta, MAX_STOCK, reason, key, &done, &err)) {
    case INVENTORY_ADJUSTED:
        if (cv_db_commit(conn, &err) < 0) {
            json_decref(done.stock);
            cv_service_reply_db_error(resp, &err);
        } else {
            reply_stock(resp, done.stock, done.version);
        }
        break;
    case INVENTORY_ADJUST_UNKNOWN_SKU:
        cv_http_reply_problem(resp, 404, "Not Found", "no such SKU", "sku");
        break;
    case INVENTORY_ADJUST_OUT_OF_RANGE:
        snprintf(detail, sizeof(detail), "available is %lld: adding %ld would make it %s",
                 done.available, delta, delta < 0 ? "negative" : "exceed 1000000000");
        cv_http_reply_problem(resp, 409, "Conflict", detail, "delta");
        break;
    case INVENTORY_ADJUST_KEY_TAKEN:
        /* A concurrent request with the same key committed first: undo ours, answer as it did. */
        cv_db_rollback(conn);
        if (replay_adjustment(resp, conn, key, sku, delta, reason) == 0)
            cv_http_reply_problem(resp, 503, "Service Unavailable",
                                  "the Idempotency-Key is in use: retry", "Idempotency-Key");
        break;
    case INVENTORY_ADJUST_FAILED:
        cv_service_reply_db_error(resp, &err);
        break;
    }
cleanup:
    write_end(svc, conn, &w);
}
