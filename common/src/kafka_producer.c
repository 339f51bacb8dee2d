/* Idempotent Kafka producer. Every message carries a pointer to the caller's delivery slot,
 * filled by the delivery report; callers wait for their slots before they treat a message
 * as published (the outbox relay deletes rows only then). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv/log.h"
#include "cv/util.h"
#include "kafka_int.h"

struct cv_kafka_producer {
    rd_kafka_t *rk;
};

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    struct cv_kafka_delivery *dlv = msg->_private;
    if (!dlv)
        return;
    dlv->err = msg->err;
    dlv->partition = msg->partition;
    dlv->offset = msg->offset;
    dlv->done_ms = cv_now_ms();
    dlv->done = 1;
}

struct cv_kafka_producer *cv_kafka_producer_new(const char *brokers, const char *client_id,
                                                const char *const *extra, char *errstr,
                                                size_t errstr_size)
{
    /* message.timeout.ms=0: a message is retried until delivered, never expired. Expiring one
     * would let a later message of the same key overtake it when its sender retries. */
    char max_bytes[16];
    snprintf(max_bytes, sizeof(max_bytes), "%d", CV_KAFKA_MESSAGE_MAX_BYTES);
    const char *const defaults[] = {"enable.idempotence",
                                    "true",
                                    "acks",
                                    "all",
                                    "max.in.flight.requests.per.connection",
                                    "5",
                                    "message.timeout.ms",
                                    "0",
                                    "linger.ms",
                                    "0",
                                    "socket.keepalive.enable",
                                    "true",
                                    "message.max.bytes",
                                    max_bytes,
                                    NULL};
    rd_kafka_conf_t *conf =
        cv_kafka_conf_new(brokers, client_id, defaults, extra, errstr, errstr_size);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
    rd_kafka_t *rk = cv_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk)
        return NULL;
    struct cv_kafka_producer *p = calloc(1, sizeof(*p));
    if (!p) {
        rd_kafka_destroy(rk);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    p->rk = rk;
    return p;
}

void cv_kafka_producer_destroy(struct cv_kafka_producer *p, int timeout_ms)
{
    if (!p)
        return;
    rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, timeout_ms);
    if (err)
        cv_log_warn("kafka producer: %d message(s) not delivered at shutdown: %s",
                    rd_kafka_outq_len(p->rk), rd_kafka_err2str(err));
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0); /* serve the purge reports while the slots still exist */
    rd_kafka_destroy(p->rk);
    free(p);
}

rd_kafka_t *cv_kafka_producer_handle(struct cv_kafka_producer *p)
{
    return p->rk;
}

int cv_kafka_produce(struct cv_kafka_producer *p, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     const struct cv_kafka_header *headers, size_t nheaders,
                     struct cv_kafka_delivery *dlv, char *errstr, size_t errstr_size)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(nheaders);
    for (size_t i = 0; i < nheaders; i++)
        rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value, (ssize_t)headers[i].len);
    if (dlv) {
        dlv->done = 0;
        dlv->err = RD_KAFKA_RESP_ERR_NO_ERROR;
        dlv->partition = -1;
        dlv->offset = -1;
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? key_len : 0),
        RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(dlv), RD_KAFKA_V_END);
    if (err) {
        if (dlv)
            dlv->err = err;
        /* The headers pass to librdkafka only on success (docs/dependencies.md). */
        rd_kafka_headers_destroy(hdrs);
        snprintf(errstr, errstr_size, "produce to %s: %s", topic, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

size_t cv_kafka_record_size(size_t key_len, size_t value_len, const struct cv_kafka_header *headers,
                            size_t nheaders)
{
    /* Varint lengths take at most 5 bytes each: name length, value length per header. */
    size_t size = CV_KAFKA_FRAMING_BYTES + key_len + value_len;
    for (size_t i = 0; i < nheaders; i++)
        size += strlen(headers[i].name) + (headers[i].value ? headers[i].len : 0) + 10;
    return size;
}

int cv_kafka_err_permanent(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT: /* not with message.timeout.ms=0, but final if so */
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__BAD_MSG:
        return 1;
    default:
        return 0;
    }
}

size_t cv_kafka_wait(struct cv_kafka_producer *p, struct cv_kafka_delivery *dlv, size_t n,
                     int timeout_ms, const volatile int *stop)
{
    int64_t deadline = cv_monotonic_ms() + timeout_ms;
    size_t first_pending = 0;
    for (;;) {
        while (first_pending < n && dlv[first_pending].done)
            first_pending++;
        if (first_pending == n)
            return 0;
        int64_t left = deadline - cv_monotonic_ms();
        if (left <= 0 || (stop && *stop))
            break;
        rd_kafka_poll(p->rk, left < 100 ? (int)left : 100);
    }
    size_t pending = 0;
    for (size_t i = first_pending; i < n; i++)
        pending += !dlv[i].done;
    return pending;
}
