/* HTTP API of the order service: place, read, list and cancel orders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/json.h"
#include "cv/log.h"
#include "cv/util.h"
#include "order.h"

#define MAX_ITEMS 100
#define MAX_QUANTITY 10000
#define MAX_UNIT_PRICE 100000000L /* one million in cents */
#define MAX_ADDRESS_FIELDS 20
#define MAX_WAIT_MS 30000

/* Validates a POST /orders body and builds the normalised request (defaults filled in), which
 * is what the order stores and what an Idempotency-Key is compared against. */
static json_t *validate_order(const json_t *body, long *total, struct cv_json_err *err)
{
    static const char *const top[] = {"customer_id", "items", "shipping_address", NULL};
    static const char *const item_fields[] = {"sku", "quantity", "unit_price_cents", NULL};
    const char *customer_id;
    const json_t *items, *address = NULL;
    if (cv_json_only_fields(body, "", top, err) < 0 ||
        cv_json_get_string(body, "customer_id", 1, 128, 1, &customer_id, err) < 0 ||
        cv_json_get_array(body, "items", 1, MAX_ITEMS, 1, &items, err) < 0 ||
        cv_json_get_object(body, "shipping_address", 0, &address, err) < 0)
        return NULL;

    json_t *norm_items = json_array();
    *total = 0;
    for (size_t i = 0; i < json_array_size(items); i++) {
        char path[32];
        snprintf(path, sizeof(path), "items[%zu]", i);
        char sku_path[64], qty_path[64], price_path[64];
        snprintf(sku_path, sizeof(sku_path), "%s.sku", path);
        snprintf(qty_path, sizeof(qty_path), "%s.quantity", path);
        snprintf(price_path, sizeof(price_path), "%s.unit_price_cents", path);
        const char *sku;
        long quantity, price = 0;
        const json_t *item;
        if (cv_json_get_object(body, path, 1, &item, err) < 0 ||
            cv_json_only_fields(body, path, item_fields, err) < 0 ||
            cv_json_get_string(body, sku_path, 1, 64, 1, &sku, err) < 0 ||
            cv_json_get_int(body, qty_path, 1, MAX_QUANTITY, 1, &quantity, err) < 0 ||
            cv_json_get_int(body, price_path, 0, MAX_UNIT_PRICE, 0, &price, err) < 0) {
            json_decref(norm_items);
            return NULL;
        }
        if (!cv_sku_valid(sku)) {
            cv_json_error_set(err, sku_path, "expected 1 to 64 of A-Z a-z 0-9 . _ -");
            json_decref(norm_items);
            return NULL;
        }
        *total += quantity * price;
        json_array_append_new(norm_items, json_pack("{s:s, s:I, s:I}", "sku", sku, "quantity",
                                                    (json_int_t)quantity, "unit_price_cents",
                                                    (json_int_t)price));
    }
    if (address) {
        if (json_object_size(address) > MAX_ADDRESS_FIELDS) {
            cv_json_error_set(err, "shipping_address", "at most %d fields", MAX_ADDRESS_FIELDS);
            json_decref(norm_items);
            return NULL;
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)address, k, v)
        {
            char path[96];
            snprintf(path, sizeof(path), "shipping_address.%.64s", k);
            const char *s;
            if (strlen(k) < 1 || strlen(k) > 64 || strchr(k, '.') || strchr(k, '[')) {
                cv_json_error_set(err, "shipping_address", "field names are 1 to 64 characters");
                json_decref(norm_items);
                return NULL;
            }
            if (cv_json_get_string(address, k, 0, 256, 1, &s, err) < 0) {
                snprintf(err->field, sizeof(err->field), "%s", path);
                json_decref(norm_items);
                return NULL;
            }
        }
    }
    return json_pack("{s:s, s:o, s:O}", "customer_id", customer_id, "items", norm_items,
                     "shipping_address", address ? (json_t *)address : json_null());
}

/* Looks up an Idempotency-Key. Returns 1 and replies (200 same order, 422 other request) if it
 * was used before, 0 if not, -1 after replying an error. */
static int replay_idempotent(PGconn *conn, const char *key, const json_t *request,
                             struct cv_http_response *resp)
{
    struct cv_db_err err;
    const char *params[] = {key};
    PGresult *res =
        cv_db_query(conn, "SELECT request::text, order_id FROM idempotency_keys WHERE key = $1", 1,
                    params, &err);
    if (!res) {
        cv_service_reply_db_error(resp, &err);
        return -1;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    json_t *previous = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    char order_id[40];
    snprintf(order_id, sizeof(order_id), "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    int same = previous && json_equal(previous, request);
    json_decref(previous);
    if (!same) {
        cv_http_reply_problem(resp, 422, "Unprocessable Content",
                              "this Idempotency-Key was used with a different request",
                              "Idempotency-Key");
        return 1;
    }
    int found;
    json_t *order = order_store_get(conn, order_id, &found, &err);
    if (!order) {
        cv_service_reply_db_error(resp, &err);
        return -1;
    }
    char location[64];
    snprintf(location, sizeof(location), "/orders/%s", order_id);
    cv_http_reply_header(resp, "Location", location);
    cv_http_reply_json(resp, 200, order);
    return 1;
}

/* Inserts the order, its idempotency key and its OrderPlaced event in one transaction, and
 * returns the order as it was committed (PENDING: read inside the transaction, before the saga
 * can move it on). NULL with err (sqlstate 23505 when the key was taken meanwhile). */
static json_t *insert_order(struct cv_service *svc, PGconn *conn, const char *id, const json_t *req,
                            long total, const char *idem_key, struct cv_db_err *err)
{
    char *items = json_dumps(json_object_get(req, "items"), JSON_COMPACT);
    json_t *addr = json_object_get(req, "shipping_address");
    char *address = json_is_null(addr) ? NULL : json_dumps(addr, JSON_COMPACT);
    char *request = json_dumps(req, JSON_COMPACT);
    char total_text[24];
    snprintf(total_text, sizeof(total_text), "%ld", total);
    const char *customer = json_string_value(json_object_get(req, "customer_id"));
    const char *params[] = {id, customer, items, total_text, address};
    const char *key_params[] = {idem_key, request, id};

    json_t *event = json_pack("{s:s, s:s, s:O, s:I, s:O}", "order_id", id, "customer_id", customer,
                              "items", json_object_get(req, "items"), "total_cents",
                              (json_int_t)total, "shipping_address", addr);
    int rc = cv_db_begin(conn, err);
    if (rc == 0)
        rc = cv_db_exec(conn,
                        "INSERT INTO orders (id, customer_id, status, items, total_cents,"
                        " shipping_address) VALUES ($1, $2, 'PENDING', $3, $4, $5)",
                        5, params, err);
    if (rc == 0 && idem_key)
        rc = cv_db_exec(conn,
                        "INSERT INTO idempotency_keys (key, request, order_id)"
                        " VALUES ($1, $2, $3)",
                        3, key_params, err);
    if (rc == 0)
        rc = cv_service_emit(svc, conn, "OrderPlaced", id, event, id, NULL, NULL, err);
    int found;
    json_t *order = rc == 0 ? order_store_get(conn, id, &found, err) : NULL;
    if (!order || cv_db_commit(conn, err) < 0) {
        cv_db_rollback(conn);
        json_decref(order);
        order = NULL;
    }
    json_decref(event);
    free(items);
    free(address);
    free(request);
    return order;
}

/* A customer's token owns the orders whose customer_id is its subject; without authentication
 * (laptop mode) every order is the caller's. */
static int order_owned(const struct cv_http_request *req, const json_t *order)
{
    const struct cv_http_principal *who = cv_http_principal(req);
    const char *owner = json_string_value(json_object_get(order, "customer_id"));
    return who == NULL || (owner && strcmp(owner, who->sub) == 0);
}

/* What a customer may read: order id when it is the caller's (order_owned). */
struct owned_order {
    const char *id;
    const struct cv_http_request *req;
};

/* A cv_service_reader of a struct owned_order: another customer's order reads as none (it is
 * not revealed to exist). */
static json_t *read_owned_order(PGconn *conn, const void *query, int *found, struct cv_db_err *err)
{
    const struct owned_order *q = query;
    json_t *order = order_store_get(conn, q->id, found, err);
    if (order && !order_owned(q->req, order)) {
        json_decref(order);
        *found = 0;
        return NULL;
    }
    return order;
}

/* Replies 404 "no such order" unless order id exists and belongs to the caller. 0 when it
 * does, -1 after replying. */
static int order_check_owner(struct cv_http_request *req, struct cv_http_response *resp,
                             PGconn *conn, const char *id)
{
    if (cv_http_principal(req) == NULL)
        return 0;
    struct owned_order q = {id, req};
    struct cv_db_err err;
    int found;
    json_t *order = read_owned_order(conn, &q, &found, &err);
    if (found > 0) {
        json_decref(order);
        return 0;
    }
    cv_service_reply_lookup(resp, NULL, found, &err, "order", "id");
    return -1;
}

void order_http_create(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct cv_service *svc = app;
    const char *idem_key = cv_http_header(req, "Idempotency-Key");
    if (idem_key && (strlen(idem_key) < 1 || strlen(idem_key) > 128)) {
        cv_http_reply_problem(resp, 400, "Bad Request", "expected 1 to 128 characters",
                              "Idempotency-Key");
        return;
    }
    json_t *body = cv_http_json_body(req, resp);
    if (!body)
        return;
    const struct cv_http_principal *who = cv_http_principal(req);
    if (who && json_object_get(body, "customer_id") == NULL)
        json_object_set_new(body, "customer_id", json_string(who->sub));
    struct cv_json_err jerr;
    long total = 0;
    json_t *request = validate_order(body, &total, &jerr);
    json_decref(body);
    if (!request) {
        cv_http_reply_problem(resp, 400, "Invalid order", jerr.detail, jerr.field);
        return;
    }
    if (!order_owned(req, request)) {
        cv_http_reply_problem(resp, 403, NULL, "customer_id must be the token's subject",
                              "customer_id");
        json_decref(request);
        return;
    }
    PGconn *conn = cv_service_db_acquire(svc, resp);
    if (!conn) {
        json_decref(request);
        return;
    }
    if (idem_key && replay_idempotent(conn, idem_key, request, resp) != 0)
        goto cleanup;

    char id[37];
    cv_uuid_v4(id);
    cv_log_set_context(id, NULL);
    struct cv_db_err err;
    json_t *order = insert_order(svc, conn, id, request, total, idem_key, &err);
    if (!order) {
        /* The same key in a concurrent request won the race: answer as a replay. */
        if (idem_key && strcmp(err.sqlstate, "23505") == 0 &&
            replay_idempotent(conn, idem_key, request, resp) != 0)
            goto cleanup;
        cv_service_reply_db_error(resp, &err);
        goto cleanup;
    }
    cv_log_info("order %s placed", id);
    char location[64];
    snprintf(location, sizeof(location), "/orders/%s", id);
    cv_http_reply_header(resp, "Location", location);
    cv_http_reply_json(resp, 201, order);
cleanup:
    cv_log_set_context(NULL, NULL);
    cv_service_db_release(svc, conn);
    json_decref(request);
}

/* Parses "CONFIRMED,REJECTED" into a JSON array of statuses; NULL after replying 400. */
static json_t *parse_wait_for(const char *text, struct cv_http_response *resp)
{
    json_t *set = json_array();
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", text);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!order_status_valid(tok)) {
            cv_http_reply_problem(resp, 400, "Bad Request", "unknown order status", "wait_for");
            json_decref(set);
            return NULL;
        }
        json_array_append_new(set, json_string(tok));
    }
    if (json_array_size(set) == 0) {
        cv_http_reply_problem(resp, 400, "Bad Request", "expected STATUS[,STATUS...]", "wait_for");
        json_decref(set);
        return NULL;
    }
    return set;
}

static int status_in(const json_t *order, const json_t *set)
{
    const char *status = json_string_value(json_object_get(order, "status"));
    size_t i;
    json_t *s;
    json_array_foreach(set, i, s) if (status && strcmp(status, json_string_value(s)) == 0) return 1;
    return 0;
}

/* A GET's state, kept across the suspensions of a long poll. */
struct order_wait {
    char id[37];
    json_t *wait_for; /* statuses awaited, or NULL: answer at once */
    int64_t deadline_ms;
};

static void order_wait_free(void *state)
{
    struct order_wait *w = state;
    json_decref(w->wait_for);
    free(w);
}

/* Reads the order and replies when it is in an awaited status, when the wait is over (timeout,
 * shutdown) or on error; otherwise suspends the request until the order changes (its status
 * trigger notifies "order_status" with its id, from whichever replica changed it) and runs
 * again then. The mark is taken before the read so that a change in between is not missed. */
static void order_wait_step(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct cv_service *svc = app;
    struct order_wait *w = cv_http_state(req);
    uint64_t mark = cv_service_wait_mark(svc);
    struct owned_order q = {w->id, req};
    json_t *order = cv_service_read(svc, resp, read_owned_order, &q, "order", "id");
    if (!order)
        return;
    if (!w->wait_for || status_in(order, w->wait_for) || cv_monotonic_ms() >= w->deadline_ms ||
        cv_service_stopping(svc) || cv_http_draining(req)) {
        cv_http_reply_json(resp, 200, order);
        return;
    }
    json_decref(order);
    cv_service_wait(svc, req, resp, w->id, mark, w->deadline_ms, order_wait_step);
}

void order_http_get(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    const char *id = cv_service_path_key(req, resp, "id", cv_uuid_valid, "order");
    if (!id)
        return;
    json_t *wait_for = NULL;
    long timeout_ms = 0;
    const char *wait_text = cv_http_query(req, "wait_for");
    if (wait_text && !(wait_for = parse_wait_for(wait_text, resp)))
        return;
    if (cv_service_query_int(req, resp, "timeout_ms", 10000, 0, MAX_WAIT_MS, &timeout_ms) < 0) {
        json_decref(wait_for);
        return;
    }
    struct order_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        json_decref(wait_for);
        cv_http_reply_problem(resp, 500, NULL, "out of memory", NULL);
        return;
    }
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->wait_for = wait_for;
    w->deadline_ms = cv_monotonic_ms() + timeout_ms;
    cv_http_set_state(req, w, order_wait_free);
    order_wait_step(req, resp, app);
}

void order_http_list(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct order_page_query q = {.status = cv_http_query(req, "status"),
                                 .customer_id = cv_http_query(req, "customer_id")};
    const struct cv_http_principal *who = cv_http_principal(req);
    if (who && q.customer_id && strcmp(q.customer_id, who->sub) != 0) {
        cv_http_reply_problem(resp, 403, NULL, "a customer lists only its own orders",
                              "customer_id");
        return;
    }
    if (who)
        q.customer_id = who->sub;
    if (q.status && !order_status_valid(q.status)) {
        cv_http_reply_problem(resp, 400, "Bad Request", "unknown order status", "status");
        return;
    }
    if (cv_service_query_page(req, resp, &q.after, &q.limit) == 0)
        cv_service_reply_read(app, resp, order_store_page, &q, NULL, NULL);
}

/* POST /orders/{id}/cancel: records the request (CANCELLING) and emits
 * OrderCancellationRequested in one transaction; shipping decides. 202 with the order, also
 * for a repeated request while it is CANCELLING; 409 once the order is past cancelling. */
void order_http_cancel(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct cv_service *svc = app;
    const char *id = cv_service_path_key(req, resp, "id", cv_uuid_valid, "order");
    if (!id)
        return;
    PGconn *conn = cv_service_db_acquire(svc, resp);
    if (!conn)
        return;
    if (order_check_owner(req, resp, conn, id) < 0) {
        cv_service_db_release(svc, conn);
        return;
    }
    cv_log_set_context(id, NULL);
    struct cv_db_err err;
    int found = 0;
    json_t *event = json_pack("{s:s, s:s}", "order_id", id, "reason", "cancelled by customer");
    int rc = cv_db_begin(conn, &err);
    int changed =
        rc == 0 ? order_store_request_cancel(conn, id, "cancelled by customer", &err) : -1;
    if (changed == 1)
        rc = cv_service_emit(svc, conn, "OrderCancellationRequested", id, event, id, NULL, NULL,
                             &err);
    if (changed < 0 || rc < 0 || cv_db_commit(conn, &err) < 0) {
        cv_db_rollback(conn);
        cv_service_reply_db_error(resp, &err);
        goto cleanup;
    }
    json_t *order = order_store_get(conn, id, &found, &err);
    const char *status = json_string_value(json_object_get(order, "status"));
    if (found < 0)
        cv_service_reply_db_error(resp, &err);
    else if (!found)
        cv_http_reply_problem(resp, 404, "Not Found", "no such order", "id");
    else if (!changed && strcmp(status, "CANCELLING") != 0) {
        char detail[128];
        snprintf(detail, sizeof(detail), "an order that is %s cannot be cancelled", status);
        cv_http_reply_problem(resp, 409, "Conflict", detail, "status");
        json_decref(order);
    } else {
        if (changed)
            cv_log_info("order %s: cancellation requested", id);
        cv_http_reply_json(resp, 202, order);
    }
cleanup:
    json_decref(event);
    cv_log_set_context(NULL, NULL);
    cv_service_db_release(svc, conn);
}
