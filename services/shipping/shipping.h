/* The shipping service: opens a shipment for every placed order, schedules it once the stock is
 * reserved, decides cancellation requests (cancel, or refuse once the goods left), cancels it
 * when the stock is rejected, and lets operators dispatch and deliver it. */
#ifndef SHIPPING_H
#define SHIPPING_H

#include "cv/http.h"
#include "cv/service.h"

/* HTTP handlers (http_shipments.c). */
void shipping_http_list(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void shipping_http_get(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void shipping_http_dispatch(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void shipping_http_deliver(struct cv_http_request *req, struct cv_http_response *resp, void *app);

/* Consumer of the orders and inventory topics (events.c). */
enum cv_handler_result shipping_on_event(struct cv_service *svc, PGconn *conn,
                                         const struct cv_event *ev, char *reason,
                                         size_t reason_size);

/* Storage (store.c). */
/* The shipment of order_id as JSON, or NULL: *found 0 if none, -1 on a database error. */
json_t *shipping_store_get(PGconn *conn, const char *order_id, int *found, struct cv_db_err *err);

/* What GET /shipments asks for: status (NULL: any), the cursor after (0: from the start), and
 * at most limit shipments. */
struct shipping_page_query {
    const char *status;
    long after, limit;
};
/* A page of shipments, oldest first, as query (a struct shipping_page_query) says:
 * {"shipments": [...], "next"}; a cv_service_reader. */
json_t *shipping_store_page(PGconn *conn, const void *query, int *found, struct cv_db_err *err);
/* The shipment's current status into status (16 bytes), "" if there is none; locks the row.
 * 1 (it exists), 0 (it does not) or -1 with err. */
int shipping_store_status(PGconn *conn, const char *order_id, char status[16],
                          struct cv_db_err *err);

/* Makes sure the shipment of order_id exists (PENDING when new), then locks it as
 * shipping_store_status does: concurrent handlers of one order always meet on this row lock. */
int shipping_store_lock(PGconn *conn, const char *order_id, char status[16], struct cv_db_err *err);

#endif
