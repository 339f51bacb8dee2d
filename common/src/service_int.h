/* The service runtime's state, shared by service.c, service_consumer.c and service_emit.c. */
#ifndef CV_SERVICE_INT_H
#define CV_SERVICE_INT_H

#include <pthread.h>

#include "cv/kafka.h"
#include "cv/outbox.h"
#include "cv/service.h"
#include "cv/waiters.h"

struct cv_service {
    const struct cv_service_def *def;
    struct cv_config *cfg;
    struct cv_db_pool *pool;
    struct cv_kafka_producer *producer; /* the outbox relay's */
    struct cv_outbox_relay *relay;
    struct cv_kafka_consumer *consumer;
    struct cv_http_server *http;
    struct cv_http_route *routes; /* the service's routes and GET /openapi.json (owned) */
    struct cv_http_auth *auth;    /* NULL: authentication off */
    struct cv_waiters *waiters;   /* long polls; NULL without def->notify_channel */
    struct cv_counter *waits_refused;
    pthread_t consumer_thread;
    pthread_t lag_thread; /* reports consumer lag every second, even while a batch is stuck */
    int consumer_started;
    volatile int consumer_running; /* the loop is polling */
    volatile int stop;
    char topic[160];     /* TOPIC_PREFIX + def->topic; "" if the service produces none */
    char dlq_topic[160]; /* TOPIC_PREFIX + "<name>.dlq" */
    char **consumes;     /* TOPIC_PREFIX + each of def->consumes, NULL-terminated */
    char source[160];    /* CloudEvents source: "/conveyor/<name>" */
    /* readiness cache: brokers are asked at most once a second */
    pthread_mutex_t ready_lock;
    int64_t kafka_checked_ms;
    int kafka_ok;
    /* TLS and SASL given to every Kafka client (service_security.c); borrows from cfg */
    struct cv_kafka_security kafka_sec;
    /* registry mode (service_registry.c): NULL without SCHEMA_REGISTRY_URL */
    struct cv_avro_registry *registry;
    pthread_t registry_thread;
    int registry_started;
    char registry_wait[600]; /* why start-up waits for the registry, "" once done (ready_lock) */
    /* housekeeping (service_housekeeping.c); outbox_stalled and its reason under ready_lock */
    pthread_t housekeeping_thread;
    int housekeeping_started;
    int outbox_stalled;
    char outbox_stall_reason[192];
};

/* Checks the transport security settings (Kafka TLS/SASL, PostgreSQL sslmode) and fills
 * kafka_sec; 0, or -1 with errstr naming the variable (service_security.c). The free wipes
 * the password read from a file. */
int cv_service_security_init(struct cv_service *svc, char *errstr, size_t errstr_size);
void cv_service_security_free(struct cv_service *svc);

/* Starts / stops the consumer loop thread (service_consumer.c). */
int cv_service_consumer_start(struct cv_service *svc, char *errstr, size_t errstr_size);
void cv_service_consumer_stop(struct cv_service *svc);

/* Registry mode (service_registry.c). init: with SCHEMA_REGISTRY_URL set, checks the settings
 * and makes the client (no request yet); 0, or -1 with errstr naming the variable. start:
 * registers the service's schemas, waiting for the registry (bounded; cancel stops the wait),
 * and starts the background re-registration; 0, or -1 after logging why. */
int cv_service_registry_init(struct cv_service *svc, char *errstr, size_t errstr_size);
int cv_service_registry_start(struct cv_service *svc, const volatile int *cancel);
/* Stops the background check (after svc->stop is set) and frees the client. */
void cv_service_registry_stop(struct cv_service *svc);
/* Starts / stops the housekeeping thread (service_housekeeping.c): outbox gauges and stall
 * state every second, purges every HOUSEKEEPING_INTERVAL_SECONDS. Stop after svc->stop is set. */
int cv_service_housekeeping_start(struct cv_service *svc);
void cv_service_housekeeping_stop(struct cv_service *svc);
/* Checks that PROCESSED_EVENTS_RETENTION_HOURS exceeds the retention.ms of every topic the
 * service consumes, asking the broker until it answers or *give_up. 0, or -1 after logging
 * the one line that says why. */
int cv_service_check_retention(struct cv_service *svc, const volatile int *give_up);

/* Writes a dead-letter record for msg (its key, value and headers, plus why and where from)
 * to the outbox on conn, in the open transaction (service_emit.c). */
int cv_service_dead_letter(struct cv_service *svc, PGconn *conn, const rd_kafka_message_t *msg,
                           const char *reason, struct cv_db_err *err);

/* A copy of routes[0..n) followed by GET /openapi.json, which answers the embedded
 * cv_service_openapi (service_openapi.c); *nout is set. Caller frees. NULL when out of memory. */
struct cv_http_route *cv_service_routes_with_openapi(const struct cv_http_route *routes, size_t n,
                                                     size_t *nout);

/* Counts one dead letter in consumer_dead_lettered_total{reason=<kind>} (service_metrics.c). */
void cv_service_count_dead_letter(const char *reason);
/* Registers every kind at 0, so that the first dead letter is an increase Prometheus sees
 * (a series that appears at 1 has no increase to compute). */
void cv_service_dead_letter_metrics_init(void);

#endif
