/* Transactional outbox: cv_outbox_add writes a record in the caller's transaction; the relay
 * publishes rows in id order with the idempotent producer and deletes them once acknowledged.
 * Only one relay per database is active at a time (a PostgreSQL advisory lock), so per-key
 * order holds across replicas; it wakes on LISTEN/NOTIFY. */
#ifndef CV_OUTBOX_H
#define CV_OUTBOX_H

#include <libpq-fe.h>

#include "cv/db.h"
#include "cv/kafka.h"

/* Adds one record to the outbox on conn, inside the caller's open transaction, and notifies
 * the relay (delivered on commit). key may be NULL. 0, or -1 with err. */
int cv_outbox_add(PGconn *conn, const char *topic, const void *key, size_t key_len,
                  const void *value, size_t value_len, const struct cv_kafka_header *headers,
                  size_t nheaders, struct cv_db_err *err);

struct cv_outbox_relay;

/* Starts the relay thread: it connects to conninfo on its own connection, becomes the active
 * relay when it holds the lock, and publishes through producer (not owned; the relay is the
 * only thread that polls it). batch_size rows per round trip. Rows to a topic the broker says
 * does not exist wait for it missing_topic_grace_ms (0: none), then are quarantined. NULL with
 * errstr. */
struct cv_outbox_relay *cv_outbox_relay_start(const char *conninfo,
                                              struct cv_kafka_producer *producer,
                                              unsigned batch_size, long missing_topic_grace_ms,
                                              char *errstr, size_t errstr_size);
/* Stops the thread after the round in flight (waiting at most a few seconds for deliveries;
 * rows not acknowledged stay in the outbox for the next relay) and frees it. */
void cv_outbox_relay_stop(struct cv_outbox_relay *relay);
/* 1 once the producer hit a fatal error (rd_kafka_fatal_error): the relay stopped, and only a
 * new process can publish in order again; the service exits non-zero. */
int cv_outbox_relay_fatal(const struct cv_outbox_relay *relay);
/* 1 while this relay holds the lock and publishes. */
int cv_outbox_relay_active(const struct cv_outbox_relay *relay);
/* Rows published by this relay since start. */
unsigned long cv_outbox_relay_published(const struct cv_outbox_relay *relay);

#endif
