/* Storing consumed records. Audit runs in raw mode: it sees undecodable records too, and keeps
 * its own record of what it stored (event_id is unique), so a redelivered record is stored
 * once. Whatever bytes a record holds, it is stored: keys and header values as bytea, text
 * columns only with text, and a record that still cannot be stored is kept as "Unstorable"
 * (raw bytes and why) rather than dead-lettered (audit consumes its own dead-letter topic). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/json.h"
#include "cv/log.h"
#include "cv/util.h"
#include "audit.h"

/* The record's headers as a JSON object of names to values: text where the bytes are text,
 * else {"hex": "..."} (a name that is not text becomes "hex:<hex>"). */
static json_t *headers_json(rd_kafka_headers_t *hdrs)
{
    json_t *out = json_object();
    const char *name;
    const void *value;
    size_t len;
    for (size_t i = 0; hdrs && rd_kafka_header_get_all(hdrs, i, &name, &value, &len) == 0; i++) {
        json_t *v = value ? cv_json_bytes(value, len) : json_null();
        if (cv_json_is_text(name, strlen(name))) {
            json_object_set_new(out, name, v);
        } else {
            char *hex = cv_hex_encode(name, strlen(name));
            char *key = NULL;
            if (hex && asprintf(&key, "hex:%s", hex) > 0)
                json_object_set_new(out, key, v);
            else
                json_decref(v);
            free(key);
            free(hex);
        }
    }
    return out;
}

/* Appends one bytea element ("\\x<hex>" or NULL) to a PostgreSQL array literal. */
static void array_append(char **lit, size_t *len, const void *bytes, size_t n)
{
    char *hex = bytes ? cv_hex_encode(bytes, n) : NULL;
    size_t need = (hex ? strlen(hex) + 6 : 5) + 1;
    char *bigger = realloc(*lit, *len + need + 2);
    if (!bigger) {
        free(hex);
        return; /* the element is left out; the row is still stored */
    }
    *lit = bigger;
    *len += (size_t)sprintf(*lit + *len, "%s%s%s%s", *len > 1 ? "," : "", hex ? "\"\\\\x" : "NULL",
                            hex ? hex : "", hex ? "\"" : "");
    free(hex);
}

/* Header names and values as two bytea[] literals; caller frees both. 0, or -1 out of memory
 * (both NULL). */
static int headers_arrays(rd_kafka_headers_t *hdrs, char **names, char **values)
{
    /* Each buffer keeps room for the closing "}" and the NUL. */
    size_t nlen = 1, vlen = 1;
    *names = calloc(1, 3);
    *values = calloc(1, 3);
    if (!*names || !*values) {
        free(*names);
        free(*values);
        *names = *values = NULL;
        return -1;
    }
    (*names)[0] = (*values)[0] = '{';
    const char *name;
    const void *value;
    size_t len;
    for (size_t i = 0; hdrs && rd_kafka_header_get_all(hdrs, i, &name, &value, &len) == 0; i++) {
        array_append(names, &nlen, name, strlen(name));
        array_append(values, &vlen, value, len);
    }
    memcpy(*names + nlen, "}", 2);
    memcpy(*values + vlen, "}", 2);
    return 0;
}

static const char *header(const json_t *headers, const char *name)
{
    return json_string_value(json_object_get(headers, name));
}

/* The columns of one row, as text parameters (NULL = SQL NULL) except key_bytes and raw. */
enum {
    P_ID,
    P_TYPE,
    P_TOPIC,
    P_PART,
    P_OFF,
    P_KEY,
    P_ORDER,
    P_AT,
    P_PRODUCER,
    P_HEADERS,
    P_DATA,
    P_RAW,
    P_KEY_BYTES,
    P_NAMES,
    P_VALUES,
    P_ESCAPED,
    P_COUNT
};

static int insert_row(PGconn *conn, const char *const *params, const int *lengths,
                      struct cv_db_err *err)
{
    int formats[P_COUNT] = {0};
    formats[P_RAW] = formats[P_KEY_BYTES] = 1;
    /* Through the db layer: bounded wait for the answer, transient errors classified. */
    PGresult *res = cv_db_query_binary(
        conn,
        "INSERT INTO events (event_id, type, topic, partition, \"offset\", key, order_id,"
        " occurred_at, producer, headers, data, raw, key_bytes, header_names, header_values,"
        " nul_escaped) VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8::bigint / 1000.0),"
        " $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT (event_id) DO NOTHING",
        P_COUNT, params, lengths, formats, err);
    if (!res)
        return -1;
    if (strcmp(PQcmdTuples(res), "0") == 0)
        cv_log_debug("already recorded %s", params[P_ID]);
    PQclear(res);
    return 0;
}

/* The full row failed for a reason retrying cannot fix: keep the record anyway, named by where
 * it was read, with its bytes and the reason. */
static int insert_unstorable(PGconn *conn, const char **params, const int *lengths,
                             const char *where, const char *why, struct cv_db_err *err)
{
    json_t *data = json_pack("{s:o}", "store_error", cv_json_bytes(why, strlen(why)));
    char *data_text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    params[P_ID] = where;
    params[P_TYPE] = "Unstorable";
    params[P_KEY] = NULL;
    params[P_ORDER] = NULL;
    params[P_PRODUCER] = NULL;
    params[P_HEADERS] = "{}";
    params[P_DATA] = data_text;
    params[P_ESCAPED] = "false";
    int rc = insert_row(conn, params, lengths, err);
    free(data_text);
    return rc;
}

enum cv_handler_result audit_on_event(struct cv_service *svc, PGconn *conn,
                                      const struct cv_event *ev, char *reason, size_t reason_size)
{
    const rd_kafka_message_t *msg = ev->msg;
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hdrs = NULL;
    json_t *headers = headers_json(hdrs);
    size_t topic_len = strlen(ev->topic);
    int dead_letter = topic_len > 4 && strcmp(ev->topic + topic_len - 4, ".dlq") == 0;
    json_t *decoded = ev->data ? json_deep_copy(ev->data) : NULL;
    size_t escaped = decoded ? cv_json_escape_nul(decoded) : 0;
    const json_t *meta = decoded ? json_object_get(decoded, "metadata") : NULL;
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
        data = json_pack(
            "{s:s?, s:s?, s:s?, s:s?, s:O?, s:s?}", "reason", header(headers, "dlq_reason"),
            "source_topic", header(headers, "dlq_topic"), "original_type", ev->type, "decode_error",
            ev->decode_error, "decoded", decoded, "consumer", header(headers, "dlq_consumer"));
        order_id = decoded ? json_string_value(json_object_get(decoded, "order_id")) : NULL;
        producer = header(headers, "dlq_consumer");
    } else {
        event_id = ev->event_id;
        type = ev->type;
        data = json_incref(decoded);
        order_id = json_string_value(json_object_get(decoded, "order_id"));
        producer = json_string_value(json_object_get(meta, "producer"));
        at = json_integer_value(json_object_get(meta, "occurred_at"));
    }
    /* The key as text only when it is text; key_bytes always has it. */
    char *key_text = msg->key && cv_json_is_text(msg->key, msg->key_len)
                         ? strndup(msg->key, msg->key_len)
                         : NULL;
    if (!order_id && key_text && cv_uuid_valid(key_text))
        order_id = key_text;
    snprintf(occurred, sizeof(occurred), "%lld", (long long)at);
    char *headers_text = json_dumps(headers, JSON_COMPACT);
    char *data_text = json_dumps(data, JSON_COMPACT);
    char *names = NULL, *values = NULL;
    enum cv_handler_result result = CV_HANDLED;
    if (headers_arrays(hdrs, &names, &values) < 0 || !headers_text || (data && !data_text) ||
        (msg->key && cv_json_is_text(msg->key, msg->key_len) && !key_text)) {
        /* Storing less than the record would lose it: retry the batch later. */
        snprintf(reason, reason_size, "out of memory");
        result = CV_RETRY;
        goto cleanup;
    }
    const char *params[P_COUNT] = {
        [P_ID] = event_id,        [P_TYPE] = type,
        [P_TOPIC] = ev->topic,    [P_PART] = partition,
        [P_OFF] = offset,         [P_KEY] = key_text,
        [P_ORDER] = order_id,     [P_AT] = occurred,
        [P_PRODUCER] = producer,  [P_HEADERS] = headers_text,
        [P_DATA] = data_text,     [P_RAW] = ev->value ? (const char *)ev->value : "",
        [P_KEY_BYTES] = msg->key, [P_NAMES] = names,
        [P_VALUES] = values,      [P_ESCAPED] = escaped ? "true" : "false",
    };
    int lengths[P_COUNT] = {0};
    lengths[P_RAW] = (int)ev->value_len;
    lengths[P_KEY_BYTES] = msg->key ? (int)msg->key_len : 0;

    struct cv_db_err err;
    memset(&err, 0, sizeof(err));
    int rc = cv_db_exec(conn, "SAVEPOINT audit_row", 0, NULL, &err);
    if (rc == 0 && insert_row(conn, params, lengths, &err) < 0) {
        rc = -1;
        if (!err.transient) {
            cv_log_error("cannot store %s as %s (%s): keeping it as Unstorable", where, type,
                         err.msg);
            char why[sizeof(err.msg)];
            snprintf(why, sizeof(why), "%s", err.msg);
            if (cv_db_exec(conn, "ROLLBACK TO SAVEPOINT audit_row", 0, NULL, &err) == 0 &&
                insert_unstorable(conn, params, lengths, where, why, &err) == 0)
                rc = 0;
        }
    }
    if (rc == 0)
        rc = cv_db_exec(conn, "RELEASE SAVEPOINT audit_row", 0, NULL, &err);
    if (rc < 0)
        result = cv_service_db_failure(&err, reason, reason_size);
cleanup:
    free(names);
    free(values);
    free(key_text);
    free(headers_text);
    free(data_text);
    json_decref(headers);
    json_decref(data);
    json_decref(decoded);
    return result;
}
