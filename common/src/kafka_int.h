/* Declarations shared by the Kafka files of the common library only. */
#ifndef CV_KAFKA_INT_H
#define CV_KAFKA_INT_H

#include "cv/kafka.h"

/* Sets one property, or fills errstr naming it and returns -1. */
int cv_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                      size_t errstr_size);

/* A configuration with our log and error callbacks, bootstrap servers, client id, then the
 * defaults and the caller's extra properties (both NULL-terminated name, value lists; extra
 * wins). NULL with errstr set. */
rd_kafka_conf_t *cv_kafka_conf_new(const char *brokers, const char *client_id,
                                   const char *const *defaults, const char *const *extra,
                                   char *errstr, size_t errstr_size);

/* rd_kafka_new, owning conf whatever happens (librdkafka frees it only on success). NULL with
 * errstr set. */
rd_kafka_t *cv_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr,
                         size_t errstr_size);

struct cv_lag_series;

struct cv_kafka_consumer {
    rd_kafka_t *rk;
    struct cv_lag_series *lag; /* consumer_lag_records series reported so far (kafka_lag.c) */
    size_t nlag;
};

/* Forgets the lag series (the gauges themselves belong to the metrics registry). */
void cv_kafka_lag_free(struct cv_kafka_consumer *c);

#endif
