/* The order service: accepts orders over HTTP, emits OrderPlaced and cancellation requests, and
 * moves each order's status forward as inventory and shipping events arrive. */
#ifndef ORDER_H
#define ORDER_H

#include "cv/http.h"
#include "cv/service.h"

/* HTTP handlers (http_orders.c). */
void order_http_create(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void order_http_get(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void order_http_list(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void order_http_cancel(struct cv_http_request *req, struct cv_http_response *resp, void *app);

/* Consumer of the inventory and shipments topics (events.c). */
enum cv_handler_result order_on_event(struct cv_service *svc, PGconn *conn,
                                      const struct cv_event *ev, char *reason, size_t reason_size);

/* Storage (store.c). */
/* The order as its JSON representation, or NULL if there is none (*found = 0) or on a database
 * error (err set, *found = -1). Caller decrefs. */
json_t *order_store_get(PGconn *conn, const char *id, int *found, struct cv_db_err *err);
/* What GET /orders asks for: status and customer_id filter when not NULL; orders after the
 * cursor after (0: from the start), at most limit. */
struct order_page_query {
    const char *status;
    const char *customer_id;
    long after, limit;
};
/* A page of orders, oldest first, as query (a struct order_page_query) says:
 * {"orders": [...], "next"}; a cv_service_reader. */
json_t *order_store_page(PGconn *conn, const void *query, int *found, struct cv_db_err *err);
/* Moves order id to status when its current status is one of from (a SQL array literal such as
 * "{PENDING,CONFIRMED}"). reason may be NULL. Returns rows changed (0 or 1) or -1 with err. */
int order_store_advance(PGconn *conn, const char *id, const char *status, const char *from,
                        const char *reason, struct cv_db_err *err);

/* Observes order_saga_seconds{status}: the time from the order's creation (OrderPlaced) to
 * reaching status (saga_metrics.c). */
void order_saga_observe(const char *status, double seconds);

/* Records a customer's cancellation request of order id if its status allows one (PENDING,
 * CONFIRMED, SHIPMENT_SCHEDULED): the order becomes CANCELLING, or CANCELLED at once when its
 * shipment is known to be cancelled already. Returns rows changed (0 or 1) or -1 with err. */
int order_store_request_cancel(PGconn *conn, const char *id, const char *reason,
                               struct cv_db_err *err);
/* Records that order id's shipment was cancelled (ShipmentCancelled), once: a CANCELLING order
 * becomes CANCELLED with reason; any other keeps its status (a later cancellation request then
 * ends at once). Returns rows changed (0 or 1) or -1 with err. */
int order_store_shipment_cancelled(PGconn *conn, const char *id, const char *reason,
                                   struct cv_db_err *err);
/* Records shipping's refusal of a requested cancellation (ShipmentCancellationRefused), with
 * reason. Returns rows changed (0 or 1) or -1 with err. */
int order_store_cancellation_refused(PGconn *conn, const char *id, const char *reason,
                                     struct cv_db_err *err);

/* 1 if status is one of the order statuses. */
int order_status_valid(const char *status);

#endif
