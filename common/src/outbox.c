/* Transactional outbox, the writing side: records added inside the caller's transaction, with
 * a NOTIFY that wakes the relay (outbox_relay.c) when the transaction commits. */
#include "cv/outbox.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/json.h"
#include "cv/log.h"
#include "outbox_int.h"

static char *headers_to_json(const struct cv_kafka_header *headers, size_t nheaders)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < nheaders; i++) {
        const unsigned char *v = headers[i].value;
        size_t len = v ? headers[i].len : 0;
        const char *name = headers[i].name;
        json_t *h = json_object();
        if (cv_json_is_text(name, strlen(name))) {
            json_object_set_new(h, "k", json_string(name));
        } else {
            char *hex = cv_hex_encode(name, strlen(name));
            json_object_set_new(h, "kx", json_string(hex ? hex : ""));
            free(hex);
        }
        if (!v) {
            json_object_set_new(h, "v", json_null());
        } else if (cv_json_is_text(v, len)) {
            /* jsonb strings must be valid UTF-8 without NUL; anything else is stored as hex. */
            json_object_set_new(h, "v", json_stringn((const char *)v, len));
        } else {
            char *hex = cv_hex_encode(v, len);
            json_object_set_new(h, "x", json_string(hex ? hex : ""));
            free(hex);
        }
        json_array_append_new(arr, h);
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

int cv_outbox_add(PGconn *conn, const char *topic, const void *key, size_t key_len,
                  const void *value, size_t value_len, const struct cv_kafka_header *headers,
                  size_t nheaders, struct cv_db_err *err)
{
    char *hdrs = headers_to_json(headers, nheaders);
    const char *params[] = {topic, key, value, hdrs};
    int lengths[] = {0, (int)key_len, (int)value_len, 0};
    int formats[] = {0, 1, 1, 0};
    /* The insert and the relay's wake-up in one round trip: PostgreSQL folds the identical
     * notifications of one transaction into one, delivered at commit. */
    PGresult *res = cv_db_query_binary(conn,
                                       "WITH ins AS (INSERT INTO outbox (topic, key, value,"
                                       " headers) VALUES ($1, $2, $3, $4::jsonb) RETURNING id)"
                                       " SELECT pg_notify('" NOTIFY_CHANNEL "', '') FROM ins",
                                       4, params, lengths, formats, err);
    free(hdrs);
    int rc = res ? 0 : -1;
    PQclear(res);
    return rc;
}
