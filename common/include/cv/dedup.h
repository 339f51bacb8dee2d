/* Idempotent consumers: the id of a consumed event is recorded in the same transaction as its
 * effect, so that a redelivered event is recognised and skipped. */
#ifndef CV_DEDUP_H
#define CV_DEDUP_H

#include <libpq-fe.h>

#include "cv/db.h"

/* Records event_id as processed by consumer, inside the caller's open transaction.
 * Returns 1 if it is new (apply its effect), 0 if it was processed before (skip it),
 * -1 with err on a database error. */
int cv_dedup_claim(PGconn *conn, const char *consumer, const char *event_id, struct cv_db_err *err);

/* Records event_id as dead-lettered by consumer (not applied): a redelivery is skipped, a
 * redriven copy may still claim it. Returns as cv_dedup_claim. */
int cv_dedup_claim_dead_letter(PGconn *conn, const char *consumer, const char *event_id,
                               struct cv_db_err *err);

/* Claims a redriven event (header redriven_from): 1 if it is new or was dead-lettered before
 * (apply it now; it is then recorded as applied), 0 if it was applied before. */
int cv_dedup_claim_redriven(PGconn *conn, const char *consumer, const char *event_id,
                            struct cv_db_err *err);

#endif
