/* HTTP API of the inventory service: read stock, set the available stock of a SKU. */
#include <stdio.h>
#include <string.h>

#include "cv/json.h"
#include "cv/util.h"
#include "inventory.h"

#define MAX_STOCK 1000000000L

void inventory_http_list(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct cv_service *svc = app;
    long limit;
    const char *after = cv_http_query(req, "after");
    if (cv_service_query_int(req, resp, "limit", 100, 1, 1000, &limit) < 0)
        return;
    PGconn *conn = cv_service_db_acquire(svc, resp);
    if (!conn)
        return;
    struct cv_db_err err;
    json_t *page = inventory_page(conn, after, limit, &err);
    cv_service_db_release(svc, conn);
    cv_service_reply_lookup(resp, page, page ? 1 : -1, &err, NULL, NULL);
}

void inventory_http_get(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct cv_service *svc = app;
    const char *sku = cv_http_path_param(req, "sku");
    if (!cv_sku_valid(sku)) {
        cv_http_reply_problem(resp, 404, "Not Found", "no such SKU", "sku");
        return;
    }
    PGconn *conn = cv_service_db_acquire(svc, resp);
    if (!conn)
        return;
    struct cv_db_err err;
    int found;
    json_t *item = inventory_get(conn, sku, &found, &err);
    cv_service_db_release(svc, conn);
    cv_service_reply_lookup(resp, item, found, &err, "SKU", "sku");
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
    json_t *body = cv_http_json_body(req, resp);
    if (!body)
        return;
    static const char *const fields[] = {"name", "available", NULL};
    struct cv_json_error jerr;
    const char *name = NULL;
    long available;
    if (cv_json_only_fields(body, "", fields, &jerr) < 0 ||
        cv_json_get_string(body, "name", 1, 200, 0, &name, &jerr) < 0 ||
        cv_json_get_int(body, "available", 0, MAX_STOCK, 1, &available, &jerr) < 0) {
        cv_http_reply_problem(resp, 400, "Invalid stock", jerr.detail, jerr.field);
        json_decref(body);
        return;
    }
    PGconn *conn = cv_service_db_acquire(svc, resp);
    if (!conn) {
        json_decref(body);
        return;
    }
    struct cv_db_err err;
    int found;
    json_t *item = NULL;
    if (cv_db_begin(conn, &err) < 0 ||
        inventory_set_available(svc, conn, sku, name, available, &err) < 0 ||
        cv_db_commit(conn, &err) < 0 || !(item = inventory_get(conn, sku, &found, &err))) {
        cv_db_rollback(conn);
        cv_service_reply_db_error(resp, &err);
    } else {
        cv_http_reply_json(resp, 200, item);
    }
    cv_service_db_release(svc, conn);
    json_decref(body);
}
