/* The inventory service: reserves the stock of each placed order (all items or none), releases
 * it when the shipment is cancelled, turns it into shipped stock on dispatch, and lets operators
 * set the available stock. */
#ifndef INVENTORY_H
#define INVENTORY_H

#include "cv/http.h"
#include "cv/service.h"

/* HTTP handlers (http_inventory.c). */
void inventory_http_list(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void inventory_http_get(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void inventory_http_put(struct cv_http_request *req, struct cv_http_response *resp, void *app);

/* Consumer of the orders and shipments topics (events.c). */
enum cv_handler_result inventory_on_event(struct cv_service *svc, PGconn *conn,
                                          const struct cv_event *ev, char *reason,
                                          size_t reason_size);

/* Locks the stock rows a batch will touch, in SKU order (events.c). */
int inventory_on_batch(struct cv_service *svc, PGconn *conn, const struct cv_event *const *events,
                       size_t n, struct cv_db_err *err);

/* Sets the available stock of sku (creating it; name NULL keeps the current one, or the sku for a
 * new one) and emits StockAdjusted, in the caller's transaction. Returns 0 or -1 with err
 * (stock.c). */
int inventory_set_available(struct cv_service *svc, PGconn *conn, const char *sku,
                            const char *name, long available, struct cv_db_err *err);
/* One SKU as JSON, or NULL: *found 0 if unknown, -1 on a database error (err). */
json_t *inventory_get(PGconn *conn, const char *sku, int *found, struct cv_db_err *err);
/* A page of SKUs in SKU order after the SKU after (NULL: from the start):
 * {"items": [...], "next"}. NULL with err. */
json_t *inventory_page(PGconn *conn, const char *after, long limit, struct cv_db_err *err);
/* Loads the built-in catalogue when the stock table is empty (seed.c). */
int inventory_seed(struct cv_service *svc, PGconn *conn);

#endif
