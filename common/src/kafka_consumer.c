/* Kafka group consumer. Offsets are stored by the caller only after a message's effect is
 * committed to the database, and committed explicitly (once per batch) and synchronously when
 * partitions are revoked, so a rebalance never skips or loses processed work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/log.h"
#include "kafka_int.h"

static void log_partitions(const char *what, const rd_kafka_topic_partition_list_t *parts)
{
    char buf[512];
    size_t pos = 0;
    buf[0] = '\0';
    for (int i = 0; i < parts->cnt && pos < sizeof(buf) - 1; i++)
        pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "%s%s[%d]", i ? " " : "",
                                parts->elems[i].topic, parts->elems[i].partition);
    cv_log_info("kafka consumer: %s %d partition(s): %s", what, parts->cnt, buf);
}

static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        cv_log_warn("kafka consumer: commit: %s (the records may be redelivered and skipped)",
                    rd_kafka_err2str(err));
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_partitions("assigned", parts);
        if (cooperative) {
            rd_kafka_error_t *error = rd_kafka_incremental_assign(rk, parts);
            if (error) {
                cv_log_error("kafka consumer: incremental assign: %s",
                             rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
            }
        } else {
            rd_kafka_assign(rk, parts);
        }
        return;
    }
    /* Revoked (or lost): commit what was processed before the partitions go elsewhere, so the
     * next owner starts right after it. Callbacks run inside poll, between batches, so every
     * stored offset belongs to a committed transaction. */
    log_partitions(err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS ? "revoked" : "lost", parts);
    if (!rd_kafka_assignment_lost(rk)) {
        rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
        if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
            cv_log_warn("kafka consumer: commit on revoke: %s", rd_kafka_err2str(cerr));
    }
    if (cooperative) {
        rd_kafka_error_t *error = rd_kafka_incremental_unassign(rk, parts);
        if (error) {
            cv_log_error("kafka consumer: incremental unassign: %s", rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

struct cv_kafka_consumer *cv_kafka_consumer_new(const char *brokers, const char *group_id,
                                                const char *client_id, const char *const *topics,
                                                const char *const *extra, char *errstr,
                                                size_t errstr_size)
{
    static const char *const defaults[] = {"enable.auto.commit",
                                           "false",
                                           "enable.auto.offset.store",
                                           "false",
                                           "auto.offset.reset",
                                           "earliest",
                                           "partition.assignment.strategy",
                                           "roundrobin",
                                           "session.timeout.ms",
                                           "10000",
                                           "heartbeat.interval.ms",
                                           "1000",
                                           "topic.metadata.refresh.interval.ms",
                                           "10000",
                                           NULL};
    rd_kafka_conf_t *conf =
        cv_kafka_conf_new(brokers, client_id, defaults, extra, errstr, errstr_size);
    if (!conf)
        return NULL;
    if (cv_kafka_conf_set(conf, "group.id", group_id, errstr, errstr_size) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);
    rd_kafka_t *rk = cv_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk)
        return NULL;
    rd_kafka_poll_set_consumer(rk);

    int ntopics = 0;
    while (topics[ntopics])
        ntopics++;
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(ntopics);
    for (int i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    struct cv_kafka_consumer *c = err ? NULL : calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, errstr_size, "subscribe: %s",
                 err ? rd_kafka_err2str(err) : "out of memory");
        rd_kafka_destroy(rk);
        return NULL;
    }
    c->rk = rk;
    return c;
}

void cv_kafka_consumer_destroy(struct cv_kafka_consumer *c)
{
    if (!c)
        return;
    /* close() revokes the assignment through rebalance_cb, which commits stored offsets. */
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
    if (err)
        cv_log_warn("kafka consumer: close: %s", rd_kafka_err2str(err));
    rd_kafka_destroy(c->rk);
    cv_kafka_lag_free(c);
    free(c);
}

size_t cv_kafka_consumer_poll(struct cv_kafka_consumer *c, rd_kafka_message_t **msgs, size_t max,
                              int timeout_ms)
{
    size_t n = 0;
    int wait = timeout_ms;
    while (n < max) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, wait);
        if (!msg)
            break;
        wait = 0; /* after the first message, take only what is already fetched */
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                cv_log_warn("kafka consumer: %s", rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        }
        msgs[n++] = msg;
    }
    return n;
}

int cv_kafka_consumer_store(struct cv_kafka_consumer *c, const rd_kafka_message_t *msg)
{
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(offs, rd_kafka_topic_name(msg->rkt), msg->partition)->offset =
        msg->offset + 1;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, offs);
    rd_kafka_topic_partition_list_destroy(offs);
    if (err) {
        /* The partition was revoked meanwhile: its next owner will see it again, and the
         * idempotent-consumer record makes that harmless. */
        cv_log_warn("kafka consumer: store offset %s[%d]@%lld: %s", rd_kafka_topic_name(msg->rkt),
                    msg->partition, (long long)msg->offset, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int cv_kafka_consumer_commit(struct cv_kafka_consumer *c, char *errstr, size_t errstr_size)
{
    /* Asynchronous: waiting for the broker's answer cost as much as applying the batch under
     * load (docs/performance.md). A commit that fails is covered by the next one, and by the
     * synchronous commit on revoke; what a lost commit redelivers, deduplication skips. */
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 1);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        snprintf(errstr, errstr_size, "commit: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int cv_kafka_consumer_assigned(struct cv_kafka_consumer *c)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    int n = parts->cnt;
    rd_kafka_topic_partition_list_destroy(parts);
    return n;
}
