/* Table dispatch of consumed events to a service's handlers, and what a failed database call
 * in a handler makes of the event (see cv/event.h, cv/service.h). */
#include <stdio.h>
#include <string.h>

#include "cv/event.h"
#include "cv/log.h"

enum cv_handler_result cv_event_dispatch(const struct cv_event_route *routes, cv_event_lock lock,
                                         struct cv_service *svc, PGconn *conn,
                                         const struct cv_event *ev, char *reason,
                                         size_t reason_size)
{
    const struct cv_event_route *route = routes;
    while (route->type && strcmp(route->type, ev->type) != 0)
        route++;
    if (!route->type)
        return CV_HANDLED; /* not one this service acts on */
    struct cv_event_call call = {
        .svc = svc, .ev = ev, .route = route, .reason = reason, .reason_size = reason_size};
    call.order_id = cv_event_order_id(ev, reason, reason_size);
    if (!call.order_id)
        return CV_REJECT;
    if (route->items && cv_event_items_valid(ev, route->items, 1, reason, reason_size) < 0)
        return CV_REJECT;
    cv_log_set_context(call.order_id, ev->event_id);
    struct cv_db_err err;
    if (lock && lock(conn, call.order_id, call.status, &err) < 0)
        return cv_service_db_failure(&err, reason, reason_size);
    return route->handle(conn, &call);
}

enum cv_handler_result cv_event_db_failure(const struct cv_event_call *call,
                                           const struct cv_db_err *err)
{
    return cv_service_db_failure(err, call->reason, call->reason_size);
}

enum cv_handler_result cv_service_db_failure(const struct cv_db_err *err, char *reason,
                                             size_t reason_size)
{
    snprintf(reason, reason_size, "database: %s", err->msg);
    return err->transient ? CV_RETRY : CV_REJECT;
}
