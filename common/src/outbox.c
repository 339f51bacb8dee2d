/* Transactional outbox, the writing side: records added inside the caller's transaction, with
 * a NOTIFY that wakes the relay (outbox_relay.c) when the transaction commits. */
#include "cv/outbox.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cv/log.h"
#include "outbox_int.h"

static int is_text(const unsigned char *p, size_t len)
{
    /* jsonb strings must be valid UTF-8 without NUL; anything else is stored as hex. */
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
        if (c == 0 || n == 0 || i + n > len)
            return 0;
        for (size_t k = 1; k < n; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        i += n;
    }
    return 1;
}

static char *headers_to_json(const struct cv_kafka_header *headers, size_t nheaders)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < nheaders; i++) {
        const unsigned char *v = headers[i].value;
        size_t len = v ? headers[i].len : 0;
        json_t *h = json_pack("{s:s}", "k", headers[i].name);
        if (!v) {
            json_object_set_new(h, "v", json_null());
        } else if (is_text(v, len)) {
            json_object_set_new(h, "v", json_stringn((const char *)v, len));
        } else {
            char *hex = malloc(len * 2 + 1);
            for (size_t k = 0; k < len; k++)
                snprintf(hex + 2 * k, 3, "%02x", v[k]);
            json_object_set_new(h, "x", json_stringn(hex, len * 2));
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
    PGresult *res = cv_db_query_binary(conn,
                                       "INSERT INTO outbox (topic, key, value, headers)"
                                       " VALUES ($1, $2, $3, $4::jsonb)",
                                       4, params, lengths, formats, err);
    free(hdrs);
    int rc = res ? 0 : -1;
    PQclear(res);
    if (rc == 0)
        rc = cv_db_exec(conn, "NOTIFY " NOTIFY_CHANNEL, 0, NULL, err);
    return rc;
}
