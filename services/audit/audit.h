/* The audit service: records every event of every topic (dead-letter topics included) once,
 * raw bytes and decoded fields, and answers questions about them. */
#ifndef AUDIT_H
#define AUDIT_H

#include "cv/http.h"
#include "cv/service.h"

/* HTTP handlers (http_events.c). */
void audit_http_list(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void audit_http_get(struct cv_http_request *req, struct cv_http_response *resp, void *app);
void audit_http_stats(struct cv_http_request *req, struct cv_http_response *resp, void *app);

/* Consumer of every topic, in raw mode (record.c). */
enum cv_handler_result audit_on_event(struct cv_service *svc, PGconn *conn,
                                      const struct cv_event *ev, char *reason, size_t reason_size);

#endif
