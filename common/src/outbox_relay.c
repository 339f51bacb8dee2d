/* The outbox relay: one thread per service process that, while it holds the database's
 * advisory lock (one active relay per service), publishes outbox rows in id order with the
 * idempotent producer and deletes them once the broker acknowledged them. */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv/log.h"
#include "cv/outbox.h"
#include "outbox_int.h"

/* Advisory lock id of the active relay; each service has its own database. */
#define RELAY_LOCK_ID "7424542"

struct cv_outbox_relay {
    char *conninfo;
    struct cv_kafka_producer *producer;
    unsigned batch_size;
    PGconn *conn;
    volatile int stop;
    volatile int active;
    volatile unsigned long published;
    pthread_t thread;
};

/* One outbox row decoded for publishing. */
struct row {
    char *id;
    char *topic;
    unsigned char *key;
    size_t key_len;
    unsigned char *value;
    size_t value_len;
    struct cv_kafka_header *headers;
    size_t nheaders;
    json_t *headers_json; /* owns the header names and text values */
    unsigned char **header_bufs; /* decoded hex values */
};

static void row_free(struct row *r)
{
    free(r->id);
    free(r->topic);
    PQfreemem(r->key);
    PQfreemem(r->value);
    for (size_t i = 0; i < r->nheaders; i++)
        free(r->header_bufs[i]);
    free(r->header_bufs);
    free(r->headers);
    json_decref(r->headers_json);
}

static unsigned char *hex_decode(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    unsigned char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    *len = n;
    return out;
}

static void row_parse_headers(struct row *r, const char *text)
{
    r->headers_json = json_loads(text, 0, NULL);
    size_t n = json_is_array(r->headers_json) ? json_array_size(r->headers_json) : 0;
    r->headers = calloc(n ? n : 1, sizeof(*r->headers));
    r->header_bufs = calloc(n ? n : 1, sizeof(*r->header_bufs));
    for (size_t i = 0; i < n; i++) {
        json_t *h = json_array_get(r->headers_json, i);
        struct cv_kafka_header *kh = &r->headers[r->nheaders];
        kh->name = json_string_value(json_object_get(h, "k"));
        if (!kh->name)
            continue;
        json_t *v = json_object_get(h, "v");
        json_t *x = json_object_get(h, "x");
        if (json_is_string(v)) {
            kh->value = json_string_value(v);
            kh->len = json_string_length(v);
        } else if (json_is_string(x)) {
            r->header_bufs[r->nheaders] = hex_decode(json_string_value(x), &kh->len);
            kh->value = r->header_bufs[r->nheaders];
        }
        r->nheaders++;
    }
}

static void relay_sleep(struct cv_outbox_relay *relay, int ms)
{
    for (int slept = 0; slept < ms && !relay->stop; slept += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Waits up to ms for a NOTIFY on the relay's connection. -1 if the connection broke. */
static int wait_notify(struct cv_outbox_relay *relay, int ms)
{
    struct pollfd pfd = {.fd = PQsocket(relay->conn), .events = POLLIN};
    for (int waited = 0; waited < ms && !relay->stop; waited += 100) {
        int rc = poll(&pfd, 1, 100);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc > 0) {
            if (!PQconsumeInput(relay->conn))
                return -1;
            int got = 0;
            PGnotify *n;
            while ((n = PQnotifies(relay->conn)) != NULL) {
                got = 1;
                PQfreemem(n);
            }
            if (got)
                return 0;
        }
    }
    return 0;
}

static void relay_disconnect(struct cv_outbox_relay *relay)
{
    if (relay->conn)
        PQfinish(relay->conn); /* ends the session: the lock goes with it */
    relay->conn = NULL;
    relay->active = 0;
}

static int relay_connect(struct cv_outbox_relay *relay)
{
    struct cv_db_err err;
    relay->conn = cv_db_connect(relay->conninfo, &err);
    if (!relay->conn) {
        cv_log_warn("outbox relay: database unreachable: %s", err.msg);
        return -1;
    }
    if (cv_db_exec(relay->conn, "LISTEN " NOTIFY_CHANNEL, 0, NULL, &err) < 0) {
        cv_log_warn("outbox relay: LISTEN: %s", err.msg);
        relay_disconnect(relay);
        return -1;
    }
    return 0;
}

/* Tries to become the active relay. 1 if it is now, 0 if another one is, -1 on error. */
static int relay_try_lock(struct cv_outbox_relay *relay)
{
    struct cv_db_err err;
    PGresult *res = cv_db_query(relay->conn, "SELECT pg_try_advisory_lock(" RELAY_LOCK_ID ")", 0,
                                NULL, &err);
    if (!res) {
        cv_log_warn("outbox relay: lock: %s", err.msg);
        return -1;
    }
    int got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (got)
        cv_log_info("outbox relay: active");
    return got;
}

/* Deletes the rows whose delivery succeeded. -1 on a database error. */
static int delete_delivered(struct cv_outbox_relay *relay, struct row *rows,
                            struct cv_kafka_delivery *dlv, int n)
{
    size_t cap = (size_t)n * 21 + 3;
    char *ids = malloc(cap);
    size_t pos = 0;
    int count = 0;
    ids[pos++] = '{';
    for (int i = 0; i < n; i++) {
        if (!dlv[i].done || dlv[i].err)
            continue;
        pos += (size_t)snprintf(ids + pos, cap - pos, "%s%s", count ? "," : "", rows[i].id);
        count++;
    }
    ids[pos++] = '}';
    ids[pos] = '\0';
    int rc = 0;
    if (count > 0) {
        struct cv_db_err err;
        const char *params[] = {ids};
        rc = cv_db_exec(relay->conn, "DELETE FROM outbox WHERE id = ANY($1::bigint[])", 1, params,
                        &err);
        if (rc < 0)
            cv_log_warn("outbox relay: delete: %s", err.msg);
        else
            relay->published += (unsigned long)count;
    }
    free(ids);
    return rc;
}

/* Publishes one batch. Returns the number of rows found, or -1 on a database error. */
static int publish_batch(struct cv_outbox_relay *relay)
{
    struct cv_db_err err;
    char limit[16];
    snprintf(limit, sizeof(limit), "%u", relay->batch_size);
    const char *params[] = {limit};
    PGresult *res = cv_db_query(relay->conn,
                                "SELECT id, topic, key, value, headers FROM outbox"
                                " ORDER BY id LIMIT $1",
                                1, params, &err);
    if (!res) {
        cv_log_warn("outbox relay: select: %s", err.msg);
        return -1;
    }
    int n = PQntuples(res);
    if (n == 0) {
        PQclear(res);
        return 0;
    }
    struct row *rows = calloc((size_t)n, sizeof(*rows));
    struct cv_kafka_delivery *dlv = calloc((size_t)n, sizeof(*dlv));
    for (int i = 0; i < n; i++) {
        struct row *r = &rows[i];
        r->id = strdup(PQgetvalue(res, i, 0));
        r->topic = strdup(PQgetvalue(res, i, 1));
        if (!PQgetisnull(res, i, 2))
            r->key = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &r->key_len);
        r->value = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 3), &r->value_len);
        row_parse_headers(r, PQgetvalue(res, i, 4));
    }
    PQclear(res);

    int produced = 0;
    for (; produced < n && !relay->stop; produced++) {
        struct row *r = &rows[produced];
        char errstr[256];
        while (cv_kafka_produce(relay->producer, r->topic, r->key, r->key_len, r->value,
                                r->value_len, r->headers, r->nheaders, &dlv[produced], errstr,
                                sizeof(errstr)) < 0) {
            /* Local queue full: serve reports and try again; anything else is logged. */
            cv_log_debug("outbox relay: %s", errstr);
            if (relay->stop)
                break;
            rd_kafka_poll(cv_kafka_producer_handle(relay->producer), 100);
        }
        if (relay->stop)
            break;
    }
    /* Deliveries never expire (message.timeout.ms=0): wait while the broker is away. On stop,
     * give what is in flight a few more seconds, then leave the rest in the outbox. */
    size_t pending = cv_kafka_wait(relay->producer, dlv, (size_t)produced, 1 << 30, &relay->stop);
    if (pending)
        cv_kafka_wait(relay->producer, dlv, (size_t)produced, 5000, NULL);
    int failed = 0;
    for (int i = 0; i < produced; i++) {
        if (dlv[i].done && dlv[i].err) {
            failed++;
            cv_log_error("outbox relay: row %s to %s failed: %s", rows[i].id, rows[i].topic,
                         rd_kafka_err2str(dlv[i].err));
        }
    }
    int rc = delete_delivered(relay, rows, dlv, produced);
    for (int i = 0; i < n; i++)
        row_free(&rows[i]);
    free(rows);
    free(dlv);
    if (failed)
        relay_sleep(relay, 1000); /* failed rows stay and are tried again */
    return rc < 0 ? -1 : n;
}

static void *relay_main(void *arg)
{
    struct cv_outbox_relay *relay = arg;
    int backoff = 100;
    while (!relay->stop) {
        if (!relay->conn && relay_connect(relay) < 0) {
            relay_sleep(relay, backoff);
            backoff = backoff < 5000 ? backoff * 2 : 5000;
            continue;
        }
        if (!relay->active) {
            int got = relay_try_lock(relay);
            if (got < 0) {
                relay_disconnect(relay);
                continue;
            }
            relay->active = got;
            if (!got) {
                /* Standby: the lock frees when the active relay's session ends. */
                if (wait_notify(relay, 1000) < 0)
                    relay_disconnect(relay);
                continue;
            }
        }
        int n = publish_batch(relay);
        if (n < 0) {
            relay_disconnect(relay);
            relay_sleep(relay, backoff);
            backoff = backoff < 5000 ? backoff * 2 : 5000;
            continue;
        }
        backoff = 100;
        /* A full batch means more may be waiting; otherwise sleep until notified. The timeout
         * also catches rows committed while the connection was being re-established. */
        if ((unsigned)n < relay->batch_size && wait_notify(relay, 1000) < 0)
            relay_disconnect(relay);
    }
    relay_disconnect(relay);
    return NULL;
}

struct cv_outbox_relay *cv_outbox_relay_start(const char *conninfo,
                                              struct cv_kafka_producer *producer,
                                              unsigned batch_size, char *errstr,
                                              size_t errstr_size)
{
    struct cv_outbox_relay *relay = calloc(1, sizeof(*relay));
    if (!relay || !(relay->conninfo = strdup(conninfo))) {
        free(relay);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    relay->producer = producer;
    relay->batch_size = batch_size ? batch_size : 500;
    if (pthread_create(&relay->thread, NULL, relay_main, relay) != 0) {
        snprintf(errstr, errstr_size, "outbox relay: cannot start thread");
        free(relay->conninfo);
        free(relay);
        return NULL;
    }
    return relay;
}

void cv_outbox_relay_stop(struct cv_outbox_relay *relay)
{
    if (!relay)
        return;
    relay->stop = 1;
    pthread_join(relay->thread, NULL);
    free(relay->conninfo);
    free(relay);
}

int cv_outbox_relay_active(const struct cv_outbox_relay *relay)
{
    return relay->active;
}

unsigned long cv_outbox_relay_published(const struct cv_outbox_relay *relay)
{
    return relay->published;
}
