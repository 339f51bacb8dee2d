/* Kafka clients on librdkafka: an idempotent producer (acks=all) whose deliveries the caller
 * waits for, and a group consumer that stores offsets only after processing, commits them
 * explicitly (asynchronously) and commits synchronously when partitions are revoked. */
#ifndef CV_KAFKA_H
#define CV_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* The largest record our producer sends (librdkafka's message.max.bytes, set to this in
 * cv_kafka_producer_new): the one place that limit is known. Brokers accept 1048588 by default. */
#define CV_KAFKA_MESSAGE_MAX_BYTES 1000000
/* Room kept under that limit for the record and batch framing librdkafka adds. */
#define CV_KAFKA_FRAMING_BYTES 1024

struct cv_kafka_header {
    const char *name;
    const void *value;
    size_t len;
};

/* Where one produced message ended up. The producer fills it from its delivery report. */
struct cv_kafka_delivery {
    volatile int done; /* set once the report arrived */
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
    int64_t done_ms; /* wall clock when the report arrived */
};

struct cv_kafka_producer;

/* Idempotent producer for brokers ("host:port,..."). extra: NULL or a NULL-terminated list of
 * name, value pairs of further librdkafka properties. Returns NULL with errstr set. */
struct cv_kafka_producer *cv_kafka_producer_new(const char *brokers, const char *client_id,
                                                const char *const *extra, char *errstr,
                                                size_t errstr_size);
/* Bytes a record of key_len, value_len and headers takes against CV_KAFKA_MESSAGE_MAX_BYTES,
 * framing included (an upper bound). */
size_t cv_kafka_record_size(size_t key_len, size_t value_len, const struct cv_kafka_header *headers,
                            size_t nheaders);

/* 1 if a produce or delivery error can never go away for that message (too large, invalid,
 * not authorised): the message must be set aside, not retried. */
int cv_kafka_err_permanent(rd_kafka_resp_err_t err);

/* Flushes for at most timeout_ms, then destroys. Messages still queued are dropped (their
 * senders must not have treated them as delivered). */
void cv_kafka_producer_destroy(struct cv_kafka_producer *p, int timeout_ms);
rd_kafka_t *cv_kafka_producer_handle(struct cv_kafka_producer *p);

/* Queues one message; key may be NULL. Headers are copied. dlv (may be NULL) is filled when
 * the delivery report arrives and must stay valid until then. Returns 0, or -1 with errstr
 * (queue full, unknown topic, message too large) and the error code in dlv->err. */
int cv_kafka_produce(struct cv_kafka_producer *p, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     const struct cv_kafka_header *headers, size_t nheaders,
                     struct cv_kafka_delivery *dlv, char *errstr, size_t errstr_size);

/* Serves delivery reports until every one of dlv[0..n) is done, or timeout_ms passes, or
 * *stop becomes non-zero (stop may be NULL). Returns the number not yet done. */
size_t cv_kafka_wait(struct cv_kafka_producer *p, struct cv_kafka_delivery *dlv, size_t n,
                     int timeout_ms, const volatile int *stop);

/* TLS and SASL of a client, as librdkafka properties for the extra of cv_kafka_producer_new
 * and cv_kafka_consumer_new (name, value pairs, NULL-terminated). */
struct cv_kafka_security {
    const char *props[16];
    char *password; /* read from KAFKA_SASL_PASSWORD_FILE; owned, wiped when freed */
};

/* A setting's value by name: "" or NULL when unset. */
typedef const char *(*cv_kafka_setting_fn)(const char *name, void *arg);

/* Fills sec from the settings KAFKA_SECURITY_PROTOCOL (plaintext, ssl, sasl_plaintext,
 * sasl_ssl; default plaintext), KAFKA_SASL_MECHANISM (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN;
 * default SCRAM-SHA-512), KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD or
 * KAFKA_SASL_PASSWORD_FILE (its first line), KAFKA_SSL_CA_LOCATION,
 * KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION, read through get(name, arg).
 * The props borrow the strings get returns (they must outlive sec) and sec->password.
 * Returns 0, or -1 with one line in errstr naming the variable (never a password's value). */
int cv_kafka_security_init(struct cv_kafka_security *sec, cv_kafka_setting_fn get, void *arg,
                           char *errstr, size_t errstr_size);
/* Wipes and frees a password read from a file. */
void cv_kafka_security_free(struct cv_kafka_security *sec);

/* 1 if a broker answered a metadata request within timeout_ms. */
int cv_kafka_reachable(rd_kafka_t *rk, int timeout_ms);

struct cv_kafka_consumer;

/* Joins group_id and subscribes to topics (NULL-terminated). Auto commit and automatic offset
 * storing are off; the assignment strategy is roundrobin (eager) unless extra sets
 * partition.assignment.strategy: librdkafka before 2.10 can lose a cooperative assignment
 * when offsets are committed during a rebalance (librdkafka #4059). extra as for the producer.
 * Returns NULL with errstr set. */
struct cv_kafka_consumer *cv_kafka_consumer_new(const char *brokers, const char *group_id,
                                                const char *client_id, const char *const *topics,
                                                const char *const *extra, char *errstr,
                                                size_t errstr_size);
/* Commits stored offsets, leaves the group and destroys the consumer. */
void cv_kafka_consumer_destroy(struct cv_kafka_consumer *c);

/* Waits up to timeout_ms for the first message, then takes what is already there, up to max.
 * Returns how many messages were put in msgs (each to be freed with rd_kafka_message_destroy).
 * Error events (broker down and so on) are logged, not returned. */
size_t cv_kafka_consumer_poll(struct cv_kafka_consumer *c, rd_kafka_message_t **msgs, size_t max,
                              int timeout_ms);

/* Marks msg as processed: its offset + 1 will be committed. */
int cv_kafka_consumer_store(struct cv_kafka_consumer *c, const rd_kafka_message_t *msg);

/* Commits the stored offsets asynchronously (a failure is logged when its answer comes, and
 * covered by the next commit). 0, or -1 with errstr if it could not be sent. */
int cv_kafka_consumer_commit(struct cv_kafka_consumer *c, char *errstr, size_t errstr_size);

/* Number of partitions currently assigned to this member. */
int cv_kafka_consumer_assigned(struct cv_kafka_consumer *c);

/* Sets consumer_lag_records{topic,partition} for each assigned partition: the high watermark
 * of the last fetch minus this member's position, both known locally (no broker round trip).
 * Partitions no longer assigned are set to 0: their lag is reported by their new owner. */
void cv_kafka_consumer_report_lag(struct cv_kafka_consumer *c);

/* Creates the topics (NULL-terminated) that do not exist yet, with partitions partitions and
 * replication_factor replicas, through any client handle. Existing topics are left as they
 * are. 0, or -1 with errstr. */
int cv_kafka_create_topics(rd_kafka_t *rk, const char *const *topics, int partitions,
                           int replication_factor, int timeout_ms, char *errstr,
                           size_t errstr_size);

/* Reads topic's retention.ms (-1: kept for ever) into *retention_ms through the admin API.
 * 0, 1 if the topic does not exist, or -1 with errstr. */
int cv_kafka_topic_retention_ms(rd_kafka_t *rk, const char *topic, int64_t *retention_ms,
                                int timeout_ms, char *errstr, size_t errstr_size);

#endif
