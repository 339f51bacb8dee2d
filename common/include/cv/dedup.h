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

/* Claims the events of a batch in one statement, inside the caller's open transaction:
 * claimed[i] = 1 if event_ids[i] is new and this is its first occurrence in the list (apply
 * it), else 0 (skip it; NULL entries are not claimed). 0, or -1 with err. */
int cv_dedup_claim_batch(PGconn *conn, const char *consumer, const char *const *event_ids, size_t n,
                         int *claimed, struct cv_db_err *err);

/* Marks an event claimed earlier in the same transaction as dead-lettered rather than
 * applied (as cv_dedup_claim_dead_letter would have recorded it). 0, or -1 with err. */
int cv_dedup_mark_dead_letter(PGconn *conn, const char *consumer, const char *event_id,
                              struct cv_db_err *err);

#endif
