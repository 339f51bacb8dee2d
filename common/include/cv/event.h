/* Checks of consumed events beyond what their schema says: an event that decodes can still
 * carry a malformed order id or a quantity no request could have made. A consumer rejects
 * such an event (dead letter with the reason) instead of applying it. */
#ifndef CV_EVENT_H
#define CV_EVENT_H

#include <stddef.h>

#include "cv/service.h"

/* Largest quantity of one item an event may carry (the order API accepts up to 10000). */
#define CV_EVENT_MAX_QUANTITY 1000000L

/* The event's order_id when it is present and a UUID; NULL with the reason in reason
 * ("OrderPlaced without order_id", "... has a malformed order_id"). */
const char *cv_event_order_id(const struct cv_event *ev, char *reason, size_t reason_size);

/* Checks the event's array field items (StockItem or OrderItem): at least one item when
 * nonempty is set, each with a valid SKU and a quantity of 1 to CV_EVENT_MAX_QUANTITY.
 * 0, or -1 with the reason naming the bad item. */
int cv_event_items_valid(const struct cv_event *ev, const char *field, int nonempty, char *reason,
                         size_t reason_size);

/* The event's string field name, or NULL with the reason when it is missing. */
const char *cv_event_string(const struct cv_event *ev, const char *name, char *reason,
                            size_t reason_size);

/* Table dispatch of a service's consumer: each row names an event type the service acts on, its
 * handler, and the statuses it may move the order's row between. */
struct cv_event_route;

/* One event as cv_event_dispatch hands it to a handler. */
struct cv_event_call {
    struct cv_service *svc;
    const struct cv_event *ev;
    const struct cv_event_route *route; /* the row of the event's type */
    const char *order_id;               /* the event's order_id, a UUID */
    char status[16]; /* the row's status as the lock read it; "" if none, or without a lock */
    char *reason;    /* why, when the handler returns CV_REJECT (reason_size bytes) */
    size_t reason_size;
};

/* Handles one event inside the batch's transaction on conn (see cv_event_handler). */
typedef enum cv_handler_result (*cv_event_route_handler)(PGconn *conn,
                                                         const struct cv_event_call *call);

struct cv_event_route {
    const char *type; /* "StockReserved"; NULL ends a table */
    cv_event_route_handler handle;
    const char *to;    /* the status it moves to, or NULL */
    const char *from;  /* SQL array of the statuses it may leave ("{PENDING}"), or NULL */
    const char *items; /* a field that must hold valid items (cv_event_items_valid), or NULL */
};

/* Locks the row all handlers of one order meet on, until the batch's transaction ends, and
 * reads its status into status ("" if none). -1 with err, anything else goes on. */
typedef int (*cv_event_lock)(PGconn *conn, const char *order_id, char status[16],
                             struct cv_db_err *err);

/* Dispatches ev through routes: a type without a row is handled (nothing to do). Otherwise the
 * event must carry a UUID order_id and, when the row names a field, valid items there (else
 * CV_REJECT with the reason); the log context becomes the order and event, lock (if not NULL)
 * runs, and the row's handler decides. */
enum cv_handler_result cv_event_dispatch(const struct cv_event_route *routes, cv_event_lock lock,
                                         struct cv_service *svc, PGconn *conn,
                                         const struct cv_event *ev, char *reason,
                                         size_t reason_size);

/* Emits an event of type with data (taken: decref'd here) for the order of call, keyed and
 * correlated by its order_id and caused by its event, as cv_service_emit does. CV_HANDLED, or
 * the failure as cv_service_db_failure maps it (data NULL, out of memory, is a CV_RETRY). */
enum cv_handler_result cv_event_emit(PGconn *conn, const struct cv_event_call *call,
                                     const char *type, json_t *data);

/* cv_service_db_failure for a handler of call. */
enum cv_handler_result cv_event_db_failure(const struct cv_event_call *call,
                                           const struct cv_db_err *err);

#endif
