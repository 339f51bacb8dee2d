/* Storing consumed records. Audit runs in raw mode: it sees undecodable records too, and keeps
 * its own record of what it stored (event_id is unique), so a redelivered record is stored
 * once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/log.h"
#include "cv/util.h"
#include "audit.h"

/* The record's headers as a JSON object; values that are not text are hex-encoded as
 * {"hex": "..."}. */
static json_t *headers_json(const rd_kafka_message_t *msg)
{
    json_t *out = json_object();
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return out;
    const char *name;
    const void *value;
    size_t len;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &len) == 0; i++) {
        json_t *v = value ? json_stringn(value, len) : json_null();
        if (value && !v) {
            char *hex = malloc(len * 2 + 1);
            for (size_t k = 0; k < len; k++)
                snprintf(hex + 2 * k, 3, "%02x", ((const unsigned char *)value)[k]);
            v = json_pack("{s:s}", "hex", hex);
            free(hex);
        }
        json_object_set_new(out, name, v);
    }
    return out;
}

static const char *header(const json_t *headers, const char *name)
{
    return json_string_value(json_object_get(headers, name));
}

enum cv_handler_result audit_on_event(struct cv_service *svc, PGconn *conn,
                                      const struct cv_event *ev, char *reason,
                                      size_t reason_size)
{
    json_t *headers = headers_json(ev->msg);
    int dead_letter = strlen(ev->topic) > 4 && strcmp(ev->topic + strlen(ev->topic) - 4, ".dlq") == 0;
    const json_t *meta = ev->data ? json_object_get(ev->data, "metadata") : NULL;
    char where[256], occurred[24], partition[16], offset[24];
    snprintf(where, sizeof(where), "%s/%d/%lld", ev->topic, (int)ev->partition,
             (long long)ev->offset);
    snprintf(partition, sizeof(partition), "%d", (int)ev->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)ev->offset);

    const char *event_id, *type, *order_id = NULL, *producer = NULL;
    json_t *data;
    json_int_t at = ev->timestamp_ms > 0 ? ev->timestamp_ms : cv_now_ms();
    if (dead_letter || !ev->data) {
        /* A dead letter is a record of its own, wherever it came from; an undecodable record
         * has no id of its own. Both are named by where they were read. */
        event_id = where;
        type = dead_letter ? "DeadLetter" : "Undecodable";
        data = json_pack("{s:s?, s:s?, s:s?, s:s?, s:O?, s:s?}", "reason",
                         header(headers, "dlq_reason"), "source_topic",
                         header(headers, "dlq_topic"), "original_type", ev->type,
                         "decode_error", ev->decode_error, "decoded", ev->data, "consumer",
                         header(headers, "dlq_consumer"));
        order_id = ev->data ? json_string_value(json_object_get(ev->data, "order_id")) : NULL;
        producer = header(headers, "dlq_consumer");
    } else {
        event_id = ev->event_id;
        type = ev->type;
        data = json_incref(ev->data);
        order_id = json_string_value(json_object_get(ev->data, "order_id"));
        producer = json_string_value(json_object_get(meta, "producer"));
        at = json_integer_value(json_object_get(meta, "occurred_at"));
    }
    if (!order_id && ev->key && cv_uuid_valid(ev->key))
        order_id = ev->key;
    snprintf(occurred, sizeof(occurred), "%lld", (long long)at);
    char *headers_text = json_dumps(headers, JSON_COMPACT);
    char *data_text = json_dumps(data, JSON_COMPACT);
    const char *params[] = {event_id, type,     ev->topic,    partition, offset,
                            ev->key,  order_id, occurred,     producer,  headers_text,
                            data_text, ev->value ? (const char *)ev->value : ""};
    int lengths[12] = {0};
    int formats[12] = {0};
    lengths[11] = (int)ev->value_len;
    formats[11] = 1;
    PGresult *res = PQexecParams(
        conn,
        "INSERT INTO events (event_id, type, topic, partition, \"offset\", key, order_id,"
        " occurred_at, producer, headers, data, raw) VALUES ($1, $2, $3, $4, $5, $6, $7,"
        " to_timestamp($8::bigint / 1000.0), $9, $10, $11, $12) ON CONFLICT (event_id) DO NOTHING",
        12, NULL, params, lengths, formats, 0);
    enum cv_handler_result result = CV_HANDLED;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        struct cv_db_err err;
        cv_db_err_set(&err, conn, res);
        result = cv_service_db_failure(&err, reason, reason_size);
    } else if (strcmp(PQcmdTuples(res), "0") == 0) {
        cv_log_debug("already recorded %s", event_id);
    }
    PQclear(res);
    free(headers_text);
    free(data_text);
    json_decref(headers);
    json_decref(data);
    return result;
}
