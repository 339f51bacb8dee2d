/* Events leaving a service: its own events with metadata and CloudEvents headers, and
 * dead-letter records, both written to the outbox in the caller's transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/avro.h"
#include "cv/event.h"
#include "cv/log.h"
#include "cv/trace.h"
#include "cv/util.h"
#include "service_int.h"

int cv_service_emit(struct cv_service *svc, PGconn *conn, const char *type, const char *key,
                    const json_t *data, const char *correlation_id, const struct cv_event *cause,
                    char *event_id_out, struct cv_db_err *err)
{
    const struct cv_schema *schema = cv_avro_schema_by_type(type);
    if (!schema || !svc->topic[0]) {
        snprintf(err->msg, sizeof(err->msg), "cannot emit %s: %s", type,
                 schema ? "service has no topic" : "unknown event type");
        err->transient = 0;
        err->sqlstate[0] = '\0';
        return -1;
    }
    char event_id[37];
    cv_uuid_v4(event_id);
    int64_t now = cv_now_ms();
    json_t *event = json_deep_copy(data);
    json_t *meta = json_pack("{s:s, s:I, s:s, s:s, s:o}", "event_id", event_id, "occurred_at",
                             (json_int_t)now, "producer", svc->def->name, "correlation_id",
                             correlation_id ? correlation_id : event_id, "causation_id",
                             cause && cause->event_id ? json_string(cause->event_id) : json_null());
    json_object_set_new(event, "metadata", meta);

    unsigned char *value = NULL;
    size_t value_len = 0;
    char errstr[256];
    /* Registry mode writes the Confluent framing once the schema has its id (until then, and
     * without a registry, single-object: consumers read both). */
    enum cv_avro_framing framing = svc->registry && cv_avro_schema_get_id(schema, NULL) == 0
                                       ? CV_AVRO_CONFLUENT
                                       : CV_AVRO_SINGLE_OBJECT;
    if (cv_avro_encode(schema, event, framing, &value, &value_len, errstr, sizeof(errstr)) < 0) {
        json_decref(event);
        snprintf(err->msg, sizeof(err->msg), "encode %s: %s", type, errstr);
        err->transient = 0;
        err->sqlstate[0] = '\0';
        return -1;
    }
    json_decref(event);

    /* The event continues the trace of the work that emits it, as a span of its own. */
    struct cv_trace span;
    const struct cv_trace *trace = cv_trace_current();
    if (trace)
        cv_trace_child(trace, &span);
    else
        cv_trace_new(&span);
    char traceparent[CV_TRACEPARENT_LEN + 1];
    cv_trace_format(&span, traceparent);
    char ce_type[96], ce_time[25];
    snprintf(ce_type, sizeof(ce_type), "%s", cv_avro_schema_full_name(schema));
    cv_format_time(now, ce_time);
    const struct cv_kafka_header headers[] = {
        {"ce_specversion", "1.0", 3},
        {"ce_id", event_id, strlen(event_id)},
        {"ce_type", ce_type, strlen(ce_type)},
        {"ce_source", svc->source, strlen(svc->source)},
        {"ce_time", ce_time, strlen(ce_time)},
        {"content-type", "application/avro", 16},
        {"traceparent", traceparent, CV_TRACEPARENT_LEN},
    };
    int rc = cv_outbox_add(conn, svc->topic, key, key ? strlen(key) : 0, value, value_len, headers,
                           sizeof(headers) / sizeof(headers[0]), err);
    free(value);
    if (rc == 0 && event_id_out)
        memcpy(event_id_out, event_id, 37);
    return rc;
}

/* Headers named dlq_* are ours: those of a record redriven or dead-lettered before are not
 * carried over (the new ones say why and where from). */
static int is_dlq_header(const char *name)
{
    return strncmp(name, "dlq_", 4) == 0;
}

int cv_service_dead_letter(struct cv_service *svc, PGconn *conn, const rd_kafka_message_t *msg,
                           const char *reason, struct cv_db_err *err)
{
    rd_kafka_headers_t *orig = NULL;
    size_t norig = 0;
    if (rd_kafka_message_headers(msg, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
        norig = rd_kafka_header_cnt(orig);
    struct cv_kafka_header *headers = calloc(norig + 9, sizeof(*headers));
    if (!headers) {
        snprintf(err->msg, sizeof(err->msg), "dead letter: out of memory");
        err->transient = 1;
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < norig; i++) {
        const char *name;
        const void *value;
        size_t len;
        if (rd_kafka_header_get_all(orig, i, &name, &value, &len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            !is_dlq_header(name))
            headers[n++] = (struct cv_kafka_header){name, value, len};
    }
    size_t nkept = n; /* the original headers are headers[0..nkept) */
    char partition[16], offset[24], when[25];
    snprintf(partition, sizeof(partition), "%d", (int)msg->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)msg->offset);
    cv_format_time(cv_now_ms(), when);
    const char *topic = rd_kafka_topic_name(msg->rkt);
    headers[n++] = (struct cv_kafka_header){"dlq_reason", reason, strlen(reason)};
    headers[n++] = (struct cv_kafka_header){"dlq_topic", topic, strlen(topic)};
    headers[n++] = (struct cv_kafka_header){"dlq_partition", partition, strlen(partition)};
    headers[n++] = (struct cv_kafka_header){"dlq_offset", offset, strlen(offset)};
    headers[n++] = (struct cv_kafka_header){"dlq_time", when, strlen(when)};
    headers[n++] = (struct cv_kafka_header){"dlq_consumer", svc->def->name, strlen(svc->def->name)};

    /* A dead letter must fit what our producer sends, or the relay could never publish it. The
     * full record stays on its source topic; cut, in this order, the value, the original
     * headers, the key, and say so in headers (room for them is reserved first). */
    const void *key = msg->key;
    size_t key_len = msg->key ? msg->key_len : 0;
    const void *value = msg->payload ? msg->payload : "";
    size_t value_len = msg->payload ? msg->len : 0;
    char value_cut[24], headers_cut[24], key_cut[24];
    size_t notes = 3 * (sizeof("dlq_headers_dropped") + sizeof(value_cut) + 10);
    size_t limit = CV_KAFKA_MESSAGE_MAX_BYTES;
    size_t budget = limit - notes; /* what the record may take before the notes are added */
    size_t fixed = cv_kafka_record_size(key_len, 0, headers, n);
    if (fixed + value_len > limit) {
        size_t room = fixed < budget ? budget - fixed : 0;
        snprintf(value_cut, sizeof(value_cut), "%zu", value_len);
        value_len = room < value_len ? room : value_len;
        headers[n++] =
            (struct cv_kafka_header){"dlq_value_truncated", value_cut, strlen(value_cut)};
    }
    if (cv_kafka_record_size(key_len, value_len, headers, n) > limit && nkept > 0) {
        snprintf(headers_cut, sizeof(headers_cut), "%zu", nkept);
        memmove(headers, headers + nkept, (n - nkept) * sizeof(*headers));
        n -= nkept;
        headers[n++] =
            (struct cv_kafka_header){"dlq_headers_dropped", headers_cut, strlen(headers_cut)};
    }
    if (cv_kafka_record_size(key_len, value_len, headers, n) > limit) {
        size_t over = cv_kafka_record_size(key_len, value_len, headers, n) - budget;
        snprintf(key_cut, sizeof(key_cut), "%zu", key_len);
        key_len = over < key_len ? key_len - over : 0;
        headers[n++] = (struct cv_kafka_header){"dlq_key_truncated", key_cut, strlen(key_cut)};
    }
    cv_log_warn("dead-lettering %s[%d]@%lld to %s: %s", topic, (int)msg->partition,
                (long long)msg->offset, svc->dlq_topic, reason);
    int rc = cv_outbox_add(conn, svc->dlq_topic, key, key_len, value, value_len, headers, n, err);
    free(headers);
    return rc;
}

enum cv_handler_result cv_event_emit(PGconn *conn, const struct cv_event_call *call,
                                     const char *type, json_t *data)
{
    if (!data)
        return CV_RETRY; /* out of memory building it */
    struct cv_db_err err;
    int rc = cv_service_emit(call->svc, conn, type, call->order_id, data, call->order_id, call->ev,
                             NULL, &err);
    json_decref(data);
    return rc < 0 ? cv_event_db_failure(call, &err) : CV_HANDLED;
}
