/* The consumer loop: polls a batch, applies it in one database transaction (one savepoint per
 * record, so that a record that can never be processed is dead-lettered alone), then stores
 * and commits the offsets. Transient failures roll the batch back and retry it with backoff,
 * so nothing is skipped or reordered; the event ids claimed in the same transaction (one
 * statement for the whole batch) make redelivery harmless. A permanent failure of the batch as a
 * whole (a batch-level hook, a statement outside any record's savepoint) falls back to one record
 * per transaction, so that only the record that fails on its own is dead-lettered and the others
 * are applied. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/avro.h"
#include "cv/avro_registry.h"
#include "cv/dedup.h"
#include "cv/log.h"
#include "cv/metrics.h"
#include "cv/stages.h"
#include "cv/trace.h"
#include "cv/util.h"
#include "service_int.h"

#define MAX_BATCH 1000

/* A consumed record with what decoding made of it. */
struct decoded {
    struct cv_event ev;
    char *key;
    char type[64];
    char event_id[64];
    char decode_error[256];
    int registry_retry; /* the writer's schema id could not be resolved yet: retry, not reject */
    /* Claimed by the batch's claiming statement in the current transaction: 1 new, 0 seen
     * before; -1 not part of it (claimed on its own, or not at all). */
    int batch_claim;
};

static void decode_record(struct cv_service *svc, struct decoded *d, const rd_kafka_message_t *msg)
{
    memset(d, 0, sizeof(*d));
    struct cv_event *ev = &d->ev;
    ev->topic = rd_kafka_topic_name(msg->rkt);
    ev->partition = msg->partition;
    ev->offset = msg->offset;
    ev->timestamp_ms = rd_kafka_message_timestamp(msg, NULL);
    ev->value = msg->payload;
    ev->value_len = msg->len;
    ev->msg = msg;
    if (msg->key) {
        d->key = strndup(msg->key, msg->key_len);
        ev->key = d->key;
    }
    if (!msg->payload || msg->len == 0) {
        snprintf(d->decode_error, sizeof(d->decode_error), "empty value");
        ev->decode_error = d->decode_error;
        return;
    }
    if (svc->registry &&
        cv_avro_registry_prepare(svc->registry, msg->payload, msg->len, &d->registry_retry,
                                 d->decode_error, sizeof(d->decode_error)) < 0) {
        ev->decode_error = d->decode_error;
        return;
    }
    const struct cv_schema *writer = NULL;
    if (cv_avro_decode(msg->payload, msg->len, NULL, &ev->data, &writer, d->decode_error,
                       sizeof(d->decode_error)) < 0) {
        ev->data = NULL;
        ev->decode_error = d->decode_error;
        return;
    }
    /* The producer names the type in ce_type: a schema id that a registry handed out again
     * for another schema (it lost its storage) must not decode as something else. */
    rd_kafka_headers_t *hdrs = NULL;
    const void *ce_type;
    size_t ce_type_len;
    const char *full = cv_avro_schema_full_name(writer);
    if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, "ce_type", &ce_type, &ce_type_len) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        ce_type && (ce_type_len != strlen(full) || memcmp(ce_type, full, ce_type_len) != 0)) {
        json_decref(ev->data);
        ev->data = NULL;
        snprintf(d->decode_error, sizeof(d->decode_error),
                 "the writer's schema is %s but ce_type says %.*s", full,
                 (int)(ce_type_len < 100 ? ce_type_len : 100), (const char *)ce_type);
        ev->decode_error = d->decode_error;
        return;
    }
    snprintf(d->type, sizeof(d->type), "%s", cv_avro_schema_type(writer));
    ev->type = d->type;
    const char *id =
        json_string_value(json_object_get(json_object_get(ev->data, "metadata"), "event_id"));
    if (!id || !*id) {
        json_decref(ev->data);
        ev->data = NULL;
        ev->type = NULL;
        snprintf(d->decode_error, sizeof(d->decode_error), "event has no metadata.event_id");
        ev->decode_error = d->decode_error;
        return;
    }
    snprintf(d->event_id, sizeof(d->event_id), "%s", id);
    ev->event_id = d->event_id;
}

static void decoded_free(struct decoded *d)
{
    json_decref(d->ev.data);
    free(d->key);
}

static int is_dead_letter_topic(const char *topic)
{
    size_t len = strlen(topic);
    return len >= 4 && strcmp(topic + len - 4, ".dlq") == 0;
}

/* A record an operator sent back from a dead-letter topic (cv-dlq redrive). */
static int redriven(const struct cv_event *ev)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v;
    size_t len;
    return rd_kafka_message_headers(ev->msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
           rd_kafka_header_get_last(hdrs, "redriven_from", &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* 1 if type is listed in CONSUMER_DEAD_LETTER_TYPES (comma-separated). */
static int held_back(struct cv_service *svc, const char *type)
{
    const char *list = cv_config_str(svc->cfg, "CONSUMER_DEAD_LETTER_TYPES");
    size_t len = strlen(type);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, type, n) == 0)
            return 1;
        p += n + (end ? 1 : 0);
    }
    return 0;
}

/* Runs one record inside the open transaction, under a savepoint. With reject set, the record
 * is not handled but dead-lettered for that reason (it failed on its own). Returns CV_HANDLED
 * (also for skipped duplicates and dead-lettered records) or CV_RETRY; err is set for
 * CV_RETRY, transient unless the failure would come again. */
static enum cv_handler_result apply_record(struct cv_service *svc, PGconn *conn, struct decoded *d,
                                           const char *reject, struct cv_db_err *err)
{
    const struct cv_event *ev = &d->ev;
    char reason[512] = "";
    if (cv_db_exec(conn, "SAVEPOINT record", 0, NULL, err) < 0)
        return CV_RETRY;
    cv_log_set_context(NULL, ev->event_id);
    /* Work caused by this record continues its trace (or starts one). */
    struct cv_trace parent, trace;
    const void *tp;
    size_t tp_len;
    rd_kafka_headers_t *hdrs = NULL;
    char tp_text[CV_TRACEPARENT_LEN + 1] = "";
    if (rd_kafka_message_headers(ev->msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, "traceparent", &tp, &tp_len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        tp && tp_len == CV_TRACEPARENT_LEN) {
        memcpy(tp_text, tp, tp_len);
        tp_text[tp_len] = '\0';
    }
    if (cv_trace_parse(tp_text, &parent) == 0)
        cv_trace_child(&parent, &trace);
    else
        cv_trace_new(&trace);
    cv_trace_set_current(&trace);

    enum cv_handler_result result;
    if (reject) {
        snprintf(reason, sizeof(reason), "%s", reject);
        result = CV_REJECT;
    } else if (!ev->data && !svc->def->raw) {
        snprintf(reason, sizeof(reason), "undecodable: %s", ev->decode_error);
        result = CV_REJECT;
    } else if (!svc->def->raw) {
        int claimed = d->batch_claim >= 0 ? d->batch_claim
                      : redriven(ev)
                          ? cv_dedup_claim_redriven(conn, svc->def->name, ev->event_id, err)
                          : cv_dedup_claim(conn, svc->def->name, ev->event_id, err);
        if (claimed < 0)
            result = cv_service_db_failure(err, reason, sizeof(reason));
        else if (claimed == 0) {
            cv_log_debug("skipping duplicate %s %s", ev->type, ev->event_id);
            cv_counter_add(
                cv_metrics_counter("consumer_duplicates_total", "Redelivered events skipped", NULL),
                1);
            result = CV_HANDLED;
        } else if (held_back(svc, ev->type)) {
            snprintf(reason, sizeof(reason), "held back: %s is in CONSUMER_DEAD_LETTER_TYPES",
                     ev->type);
            result = CV_REJECT;
        } else {
            result = svc->def->on_event(svc, conn, ev, reason, sizeof(reason));
        }
    } else {
        result = svc->def->on_event(svc, conn, ev, reason, sizeof(reason));
    }

    if (result == CV_RETRY) {
        if (!err->msg[0] || !err->transient) {
            snprintf(err->msg, sizeof(err->msg), "%s",
                     reason[0] ? reason : "handler asked to retry");
            err->transient = 1;
        }
    } else if (result == CV_REJECT) {
        /* Undo whatever the handler wrote, then record the event as processed (so that a
         * redelivery is not dead-lettered twice) and dead-letter it. A claim of the batch's
         * statement came before the savepoint: it stays, marked as a dead letter. */
        if (cv_db_exec(conn, "ROLLBACK TO SAVEPOINT record", 0, NULL, err) < 0)
            result = CV_RETRY;
        else if (d->batch_claim == 1 &&
                 cv_dedup_mark_dead_letter(conn, svc->def->name, ev->event_id, err) < 0)
            result = CV_RETRY;
        else if (d->batch_claim != 1 && ev->event_id && !svc->def->raw &&
                 cv_dedup_claim_dead_letter(conn, svc->def->name, ev->event_id, err) < 0)
            result = CV_RETRY;
        else if (is_dead_letter_topic(ev->topic)) {
            /* A dead letter of a dead letter could loop (audit consumes its own dead-letter
             * topic): the record stays where it is, on its dead-letter topic. */
            cv_log_error("not dead-lettering %s[%d]@%lld, read from a dead-letter topic: %s",
                         ev->topic, (int)ev->partition, (long long)ev->offset, reason);
            cv_counter_add(cv_metrics_counter("consumer_dead_letters_skipped_total",
                                              "Records of dead-letter topics that could not be "
                                              "processed, left where they are",
                                              NULL),
                           1);
            result = CV_HANDLED;
        } else if (cv_service_dead_letter(svc, conn, ev->msg, reason, err) < 0) {
            result = CV_RETRY;
        } else {
            result = CV_HANDLED;
            cv_service_count_dead_letter(reason);
        }
    }
    /* A record that succeeded keeps its savepoint rather than spend a round trip releasing it:
     * the next record's savepoint of the same name nests inside it, ROLLBACK TO returns to the
     * newest one, and COMMIT releases them all. */
    cv_log_set_context(NULL, NULL);
    cv_trace_set_current(NULL);
    return result;
}

/* Claims in one statement the records of batch[0..n) that apply_record would claim one by one
 * (decoded, with an event id, not redriven): one round trip per batch instead of per record. */
static int claim_batch(struct cv_service *svc, PGconn *conn, struct decoded *batch, size_t n,
                       struct cv_db_err *err)
{
    if (svc->def->raw)
        return 0;
    const char **ids = calloc(n, sizeof(*ids));
    int *claimed = calloc(n, sizeof(*claimed));
    int rc = 0;
    if (!ids || !claimed) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        err->transient = 1;
        rc = -1;
        goto cleanup;
    }
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (batch[i].ev.data && batch[i].ev.event_id && !redriven(&batch[i].ev)) {
            ids[i] = batch[i].ev.event_id;
            count++;
        }
    if (count == 0)
        goto cleanup;
    rc = cv_dedup_claim_batch(conn, svc->def->name, ids, n, claimed, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (ids[i])
            batch[i].batch_claim = claimed[i];
cleanup:
    free(ids);
    free(claimed);
    return rc;
}

/* Applies batch[0..n) in one transaction; with reject set (n is then 1), dead-letters the
 * record for that reason instead. 0 once committed, -1 with err to retry it (err->transient
 * unset: the same batch would fail again). */
static int apply_batch(struct cv_service *svc, struct decoded *batch, size_t n, const char *reject,
                       struct cv_db_err *err)
{
    for (size_t i = 0; i < n; i++)
        batch[i].batch_claim = -1; /* a claim of an earlier try was rolled back with it */
    PGconn *conn = cv_db_acquire(svc->pool, err);
    if (!conn)
        return -1;
    int rc = cv_db_begin(conn, err);
    if (rc == 0 && svc->def->on_batch && !reject) {
        const struct cv_event **evs = calloc(n, sizeof(*evs));
        if (!evs) {
            snprintf(err->msg, sizeof(err->msg), "out of memory");
            err->transient = 1;
            rc = -1;
        } else {
            for (size_t i = 0; i < n; i++)
                evs[i] = &batch[i].ev;
            rc = svc->def->on_batch(svc, conn, evs, n, err);
            free(evs);
        }
    }
    if (rc == 0 && !reject)
        rc = claim_batch(svc, conn, batch, n, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (apply_record(svc, conn, &batch[i], reject, err) != CV_HANDLED)
            rc = -1;
    if (rc == 0)
        rc = cv_db_commit(conn, err);
    if (rc < 0)
        cv_db_rollback(conn);
    cv_db_release(svc->pool, conn);
    return rc;
}

/* Applies batch[*done..n): the whole batch in one transaction while *isolating is unset; after
 * a permanent failure of the batch, one record per transaction from *done on, dead-lettering
 * (alone) a record that fails permanently by itself. 0 when all are applied, or -1 with err
 * (transient) to try again later from where it stopped. */
static int apply_isolating(struct cv_service *svc, struct decoded *batch, size_t n, size_t *done,
                           int *isolating, struct cv_db_err *err)
{
    if (!*isolating) {
        if (apply_batch(svc, batch, n, NULL, err) == 0) {
            *done = n;
            return 0;
        }
        if (err->transient || svc->stop)
            return -1;
        cv_log_warn("consumer: batch of %zu failed for good (%s): applying its records one at "
                    "a time",
                    n, err->msg);
        cv_counter_add(cv_metrics_counter("consumer_batches_isolated_total",
                                          "Batches that failed for good and were applied one "
                                          "record at a time",
                                          NULL),
                       1);
        *isolating = 1;
    }
    for (; *done < n; (*done)++) {
        struct decoded *d = &batch[*done];
        if (apply_batch(svc, d, 1, NULL, err) == 0)
            continue;
        if (err->transient || svc->stop)
            return -1;
        char reason[600];
        snprintf(reason, sizeof(reason), "database: %s", err->msg);
        cv_log_error("consumer: %s [%d] at offset %lld fails on its own (%s): dead-lettering it",
                     d->ev.topic, (int)d->ev.partition, (long long)d->ev.offset, err->msg);
        if (apply_batch(svc, d, 1, reason, err) < 0) {
            /* Not even its dead letter can be written: wait and try again, never skip. */
            err->transient = 1;
            return -1;
        }
    }
    return 0;
}

/* Decodes again the records whose writer's schema the registry could not give yet (it is
 * unreachable). 0 when none is left, else -1 with err transient: the batch waits. */
static int resolve_pending(struct cv_service *svc, struct decoded *batch, size_t n,
                           struct cv_db_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!batch[i].registry_retry)
            continue;
        const rd_kafka_message_t *msg = batch[i].ev.msg;
        decoded_free(&batch[i]);
        decode_record(svc, &batch[i], msg);
        if (batch[i].registry_retry) {
            snprintf(err->msg, sizeof(err->msg), "%s", batch[i].decode_error);
            err->transient = 1;
            return -1;
        }
    }
    return 0;
}

/* fetched_ms: wall clock when the poll returned the batch, for the per-hop histograms. */
static void process_batch(struct cv_service *svc, rd_kafka_message_t **msgs, size_t n,
                          int64_t fetched_ms)
{
    struct decoded *batch = calloc(n, sizeof(*batch));
    if (!batch) {
        /* Going on would commit later offsets past these records: stop, and let the
         * supervisor restart the process, which reads them again. */
        cv_log_error("consumer: out of memory for a batch of %zu records", n);
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        decode_record(svc, &batch[i], msgs[i]);
        if (batch[i].ev.timestamp_ms > 0)
            cv_stage_observe(CV_STAGE_PRODUCE_TO_FETCH, batch[i].ev.timestamp_ms, fetched_ms);
    }

    int64_t started = cv_monotonic_ms();
    struct cv_backoff backoff = CV_BACKOFF(100, 5000);
    size_t done = 0;
    int isolating = 0;
    struct cv_db_err err;
    for (;;) {
        memset(&err, 0, sizeof(err));
        if (resolve_pending(svc, batch, n, &err) == 0 &&
            apply_isolating(svc, batch, n, &done, &isolating, &err) == 0)
            break;
        if (svc->stop) {
            /* Not committed: the records come again after restart or rebalance. */
            cv_log_warn("consumer: stopping with a batch of %zu not applied: %s", n, err.msg);
            goto cleanup;
        }
        int wait_ms = cv_backoff_next(&backoff);
        cv_log_warn("consumer: batch of %zu failed (%s), retrying in %d ms", n, err.msg, wait_ms);
        cv_counter_add(cv_metrics_counter("consumer_batch_retries_total",
                                          "Batches rolled back and retried", NULL),
                       1);
        cv_sleep_ms(wait_ms, &svc->stop);
    }
    int64_t applied_ms = cv_now_ms();
    cv_stage_observe(CV_STAGE_FETCH_TO_APPLIED, fetched_ms, applied_ms);
    for (size_t i = 0; i < n; i++)
        cv_kafka_consumer_store(svc->consumer, msgs[i]);
    char errstr[256];
    if (cv_kafka_consumer_commit(svc->consumer, errstr, sizeof(errstr)) < 0)
        cv_log_warn("consumer: %s (the records may be redelivered and skipped)", errstr);
    cv_stage_observe(CV_STAGE_APPLIED_TO_COMMIT, applied_ms, cv_now_ms());
    cv_counter_add(
        cv_metrics_counter("consumer_records_total", "Records consumed and applied", NULL), n);
    cv_histogram_observe(cv_metrics_histogram("consumer_batch_duration_seconds",
                                              "Time to apply and commit one batch", NULL, NULL, 0),
                         (double)(cv_monotonic_ms() - started) / 1000.0);
cleanup:
    for (size_t i = 0; i < n; i++)
        decoded_free(&batch[i]);
    free(batch);
}

static void *consumer_main(void *arg)
{
    struct cv_service *svc = arg;
    size_t max = (size_t)cv_config_int(svc->cfg, "CONSUMER_BATCH_SIZE");
    if (max > MAX_BATCH)
        max = MAX_BATCH;
    rd_kafka_message_t **msgs = calloc(max, sizeof(*msgs));
    if (!msgs) {
        cv_log_error("consumer: out of memory; not consuming (readiness says so)");
        return NULL;
    }
    struct cv_gauge *assigned = cv_metrics_gauge(
        "consumer_assigned_partitions", "Partitions currently assigned to this replica", NULL);
    svc->consumer_running = 1;
    while (!svc->stop) {
        size_t n = cv_kafka_consumer_poll(svc->consumer, msgs, max, 200);
        cv_gauge_set(assigned, cv_kafka_consumer_assigned(svc->consumer));
        if (n == 0)
            continue;
        process_batch(svc, msgs, n, cv_now_ms());
        for (size_t i = 0; i < n; i++)
            rd_kafka_message_destroy(msgs[i]);
    }
    svc->consumer_running = 0;
    free(msgs);
    return NULL;
}

/* Lag is reported from a thread of its own: when the consumer loop is stuck (a batch retried,
 * a statement waiting on a lock) is exactly when the lag must keep growing on /metrics. */
static void *lag_main(void *arg)
{
    struct cv_service *svc = arg;
    while (!svc->stop) {
        cv_kafka_consumer_report_lag(svc->consumer);
        cv_sleep_ms(1000, &svc->stop);
    }
    return NULL;
}

int cv_service_consumer_start(struct cv_service *svc, char *errstr, size_t errstr_size)
{
    const char *brokers = cv_config_str(svc->cfg, "KAFKA_BOOTSTRAP_SERVERS");
    const char *group = cv_config_str(svc->cfg, "KAFKA_GROUP_ID");
    char session[16];
    snprintf(session, sizeof(session), "%ld", cv_config_int(svc->cfg, "KAFKA_SESSION_TIMEOUT_MS"));
    char fetch_wait[16];
    snprintf(fetch_wait, sizeof(fetch_wait), "%ld",
             cv_config_int(svc->cfg, "KAFKA_FETCH_WAIT_MAX_MS"));
    const char *extra[6 + sizeof(svc->kafka_sec.props) / sizeof(svc->kafka_sec.props[0])] = {
        "session.timeout.ms",
        session,
        "partition.assignment.strategy",
        cv_config_str(svc->cfg, "KAFKA_ASSIGNMENT_STRATEGY"),
        "fetch.wait.max.ms",
        fetch_wait};
    for (size_t i = 0; svc->kafka_sec.props[i]; i++) /* TLS and SASL, as for the producer */
        extra[6 + i] = svc->kafka_sec.props[i];
    char client_id[128];
    snprintf(client_id, sizeof(client_id), "%s-consumer", svc->def->name);
    char default_group[192];
    snprintf(default_group, sizeof(default_group), "%s%s", cv_config_str(svc->cfg, "TOPIC_PREFIX"),
             svc->def->name);
    cv_service_dead_letter_metrics_init();
    svc->consumer =
        cv_kafka_consumer_new(brokers, group[0] ? group : default_group, client_id,
                              (const char *const *)svc->consumes, extra, errstr, errstr_size);
    if (!svc->consumer)
        return -1;
    if (pthread_create(&svc->consumer_thread, NULL, consumer_main, svc) != 0) {
        snprintf(errstr, errstr_size, "cannot start the consumer thread");
        cv_kafka_consumer_destroy(svc->consumer);
        svc->consumer = NULL;
        return -1;
    }
    if (pthread_create(&svc->lag_thread, NULL, lag_main, svc) != 0) {
        snprintf(errstr, errstr_size, "cannot start the consumer lag thread");
        svc->stop = 1;
        pthread_join(svc->consumer_thread, NULL);
        cv_kafka_consumer_destroy(svc->consumer);
        svc->consumer = NULL;
        return -1;
    }
    svc->consumer_started = 1;
    return 0;
}

void cv_service_consumer_stop(struct cv_service *svc)
{
    if (!svc->consumer_started)
        return;
    pthread_join(svc->consumer_thread, NULL);
    pthread_join(svc->lag_thread, NULL);
    cv_kafka_consumer_destroy(svc->consumer); /* commits on revoke and leaves the group */
    svc->consumer = NULL;
    svc->consumer_started = 0;
}
