/* The inventory service: reserves the stock of each placed order (all items or none), releases
 * it when the shipment is cancelled, turns it into shipped stock on dispatch, and lets operators
 * set or adjust the available stock. */
#ifndef INVENTORY_H
#define INVENTORY_H

#include "cv/http.h"
#include "cv/service.h"

/* HTTP handlers (http_inventory.c). */
void inventory_http_list(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void inventory_http_get(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void inventory_http_put(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void inventory_http_adjust(struct cv_http_request *req, struct cv_http_response *resp, void *app);

/* Consumer of the orders and shipments topics (events.c). */
enum cv_handler_result inventory_on_event(struct cv_service *svc, PGconn *conn,
                                          const struct cv_event *ev, char *reason,
                                          size_t reason_size);

/* Locks the stock rows a batch will touch, in SKU order (events.c). */
int inventory_on_batch(struct cv_service *svc, PGconn *conn, const struct cv_event *const *events,
                       size_t n, struct cv_db_err *err);

/* Storage (store.c). */
/* Sets the available stock of sku (creating it; name NULL keeps the current one, or the sku for a
 * new one) and emits StockAdjusted, in the caller's transaction. Returns 0 or -1 with err. */
int inventory_store_set_available(struct cv_service *svc, PGconn *conn, const char *sku,
                                  const char *name, long available, struct cv_db_err *err);
/* One SKU as JSON, or NULL: *found 0 if unknown, -1 on a database error (err). The row's
 * version goes to *version when version is not NULL. Caller decrefs. */
json_t *inventory_store_get(PGconn *conn, const char *sku, long long *version, int *found,
                            struct cv_db_err *err);
/* Locks sku's stock row until the caller's transaction ends and reads its version (which every
 * write of the row moves on, see sql/002_stock_version.sql). 1, 0 if there is no such SKU, or
 * -1 with err. */
int inventory_store_lock_version(PGconn *conn, const char *sku, long long *version,
                                 struct cv_db_err *err);

enum inventory_adjust_result {
    INVENTORY_ADJUST_FAILED = -1,  /* database error: see err */
    INVENTORY_ADJUSTED = 0,        /* done: out->stock, out->available, out->version */
    INVENTORY_ADJUST_UNKNOWN_SKU,  /* no such SKU */
    INVENTORY_ADJUST_OUT_OF_RANGE, /* available would leave 0..max: out->available is the figure */
    INVENTORY_ADJUST_KEY_TAKEN,    /* another adjustment committed key meanwhile: roll back */
};

struct inventory_adjustment {
    json_t *stock;       /* the SKU as JSON after the adjustment (owned by the caller) */
    long long available; /* available after, or now when out of range */
    long long version;   /* the row's version after */
};

/* Adds delta (non-zero) to sku's available stock if the result stays within 0..max_available,
 * records the adjustment with its reason (under the idempotency key key when not NULL) and
 * emits StockAdjusted, all in the caller's open transaction. */
enum inventory_adjust_result inventory_store_adjust(struct cv_service *svc, PGconn *conn,
                                                    const char *sku, long delta, long max_available,
                                                    const char *reason, const char *key,
                                                    struct inventory_adjustment *out,
                                                    struct cv_db_err *err);
/* The adjustment recorded under Idempotency-Key key as {"sku", "delta", "reason", "stock"}, with
 * the version it left in *version; NULL with *found 0 if none, -1 on a database error (err).
 * Caller decrefs. */
json_t *inventory_store_find_adjustment(PGconn *conn, const char *key, long long *version,
                                        int *found, struct cv_db_err *err);
/* What GET /inventory asks for: SKUs after the SKU after (NULL: from the start), at most limit. */
struct inventory_page_query {
    const char *after;
    long limit;
};
/* A page of SKUs in SKU order as query (a struct inventory_page_query) says:
 * {"items": [...], "next"}; a cv_service_reader. */
json_t *inventory_store_page(PGconn *conn, const void *query, int *found, struct cv_db_err *err);
/* Loads the built-in catalogue when the stock table is empty (seed.c). */
int inventory_seed(struct cv_service *svc, PGconn *conn);

#endif
