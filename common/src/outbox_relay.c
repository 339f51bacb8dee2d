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
#include "cv/metrics.h"
#include "cv/outbox.h"
#include "cv/stages.h"
#include "cv/util.h"
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
    volatile int fatal; /* the producer hit a fatal error: the process must restart */
    volatile unsigned long published;
    pthread_t thread;
    char *known_topics[16]; /* topics the broker said exist */
    long missing_topic_grace_ms;
    char *missing_topic;      /* the topic the relay is waiting for, or NULL */
    int64_t missing_since_ms; /* since when (monotonic) */
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
    json_t *headers_json;        /* owns the header names and text values */
    unsigned char **header_bufs; /* decoded hex values */
    unsigned char **name_bufs;   /* decoded hex names */
    const char *quarantine;      /* why the broker can never take this row, or NULL */
    int64_t created_ms;          /* the row's created_at */
    int64_t produced_ms;         /* when it was handed to the producer */
};

static void row_free(struct row *r)
{
    free(r->id);
    free(r->topic);
    PQfreemem(r->key);
    PQfreemem(r->value);
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->header_bufs[i]);
        free(r->name_bufs[i]);
    }
    free(r->header_bufs);
    free(r->name_bufs);
    free(r->headers);
    json_decref(r->headers_json);
}

/* The bytes of a hex string, NUL-terminated (for a header name); NULL if out of memory. */
static unsigned char *hex_decode(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    unsigned char *out = malloc(n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

/* Returns -1 if out of memory (what was allocated is freed by row_free). */
static int row_parse_headers(struct row *r, const char *text)
{
    r->headers_json = json_loads(text, 0, NULL);
    size_t n = json_is_array(r->headers_json) ? json_array_size(r->headers_json) : 0;
    r->headers = calloc(n ? n : 1, sizeof(*r->headers));
    r->header_bufs = calloc(n ? n : 1, sizeof(*r->header_bufs));
    r->name_bufs = calloc(n ? n : 1, sizeof(*r->name_bufs));
    if (!r->headers || !r->header_bufs || !r->name_bufs)
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *h = json_array_get(r->headers_json, i);
        struct cv_kafka_header *kh = &r->headers[r->nheaders];
        kh->name = json_string_value(json_object_get(h, "k"));
        if (!kh->name && json_is_string(json_object_get(h, "kx"))) {
            /* A name that is not text (a dead letter's original header): its bytes, up to a
             * NUL, since librdkafka takes names as C strings. */
            size_t len;
            r->name_bufs[r->nheaders] =
                hex_decode(json_string_value(json_object_get(h, "kx")), &len);
            if (!r->name_bufs[r->nheaders])
                return -1;
            kh->name = (const char *)r->name_bufs[r->nheaders];
        }
        if (!kh->name)
            continue;
        json_t *v = json_object_get(h, "v");
        json_t *x = json_object_get(h, "x");
        if (json_is_string(v)) {
            kh->value = json_string_value(v);
            kh->len = json_string_length(v);
        } else if (json_is_string(x)) {
            r->header_bufs[r->nheaders] = hex_decode(json_string_value(x), &kh->len);
            if (!r->header_bufs[r->nheaders]) {
                r->nheaders++; /* so that row_free frees this header's name buffer */
                return -1;
            }
            kh->value = r->header_bufs[r->nheaders];
        }
        r->nheaders++;
    }
    return 0;
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
    /* A NOTIFY that arrived while the last round's queries ran is already in libpq's buffer,
     * not on the socket: polling would sleep through it for the whole timeout. */
    if (!PQconsumeInput(relay->conn))
        return -1;
    int queued = 0;
    PGnotify *q;
    while ((q = PQnotifies(relay->conn)) != NULL) {
        queued = 1;
        PQfreemem(q);
    }
    if (queued)
        return 0;
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
    PGresult *res =
        cv_db_query(relay->conn, "SELECT pg_try_advisory_lock(" RELAY_LOCK_ID ")", 0, NULL, &err);
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

#define DELETE_DELIVERED "DELETE FROM outbox WHERE id = ANY($1::bigint[])"

/* Deletes the rows whose delivery succeeded and moves those the broker can never take to
 * outbox_quarantine, in one transaction. -1 on a database error. */
static int settle_rows(struct cv_outbox_relay *relay, struct row *rows,
                       struct cv_kafka_delivery *dlv, int n)
{
    size_t cap = (size_t)n * 21 + 3;
    char *ids = malloc(cap);
    if (!ids) {
        cv_log_warn("outbox relay: out of memory settling %d rows", n);
        return -1; /* the rows stay; a later round delivers them again (duplicates, no loss) */
    }
    size_t pos = 0;
    int count = 0, quarantined = 0;
    ids[pos++] = '{';
    for (int i = 0; i < n; i++) {
        if (rows[i].quarantine) {
            quarantined++;
            continue;
        }
        if (!dlv[i].done || dlv[i].err)
            continue;
        pos += (size_t)snprintf(ids + pos, cap - pos, "%s%s", count ? "," : "", rows[i].id);
        count++;
    }
    ids[pos++] = '}';
    ids[pos] = '\0';
    struct cv_db_err err;
    int rc = 0;
    if (count == 0 && quarantined == 0)
        goto cleanup;
    const char *delete_params[] = {ids};
    if (quarantined == 0) {
        /* The common case: one statement is a transaction of its own, no BEGIN or COMMIT. */
        rc = cv_db_exec(relay->conn, DELETE_DELIVERED, 1, delete_params, &err);
    } else {
        rc = cv_db_begin(relay->conn, &err);
        if (rc == 0 && count > 0)
            rc = cv_db_exec(relay->conn, DELETE_DELIVERED, 1, delete_params, &err);
        for (int i = 0; rc == 0 && i < n; i++) {
            if (!rows[i].quarantine)
                continue;
            const char *params[] = {rows[i].id, rows[i].quarantine};
            rc = cv_db_exec(relay->conn,
                            "WITH moved AS (DELETE FROM outbox WHERE id = $1::bigint RETURNING *)"
                            " INSERT INTO outbox_quarantine (id, topic, key, value, headers,"
                            " created_at, reason) SELECT id, topic, key, value, headers,"
                            " created_at, $2 FROM moved",
                            2, params, &err);
        }
        if (rc == 0)
            rc = cv_db_commit(relay->conn, &err);
        if (rc < 0)
            cv_db_rollback(relay->conn);
    }
    if (rc < 0) {
        cv_log_warn("outbox relay: delete: %s", err.msg);
        goto cleanup;
    }
    relay->published += (unsigned long)count;
    for (int i = 0; i < n; i++) {
        if (!rows[i].quarantine)
            continue;
        cv_log_error("outbox relay: row %s to %s quarantined (outbox_quarantine): %s", rows[i].id,
                     rows[i].topic, rows[i].quarantine);
        cv_counter_add(cv_metrics_counter("outbox_quarantined_total",
                                          "Outbox rows the broker can never take, moved to "
                                          "outbox_quarantine",
                                          NULL),
                       1);
    }
cleanup:
    free(ids);
    return rc;
}

/* Whether topic exists: 1 yes, 0 no (the broker says so), -1 unknown (no answer). A message
 * to a missing topic would otherwise wait in librdkafka for topic.metadata.propagation.max.ms
 * and hold up every row behind it. */
static int topic_exists(struct cv_outbox_relay *relay, const char *topic)
{
    size_t n = sizeof(relay->known_topics) / sizeof(relay->known_topics[0]);
    for (size_t i = 0; i < n && relay->known_topics[i]; i++)
        if (strcmp(relay->known_topics[i], topic) == 0)
            return 1;
    rd_kafka_t *rk = cv_kafka_producer_handle(relay->producer);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt)
        return -1;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
    int exists = -1;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
        rd_kafka_resp_err_t terr = md->topics[0].err;
        if (terr == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0)
            exists = 1;
        else if (terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                 terr == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION)
            exists = 0;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (exists == 1) {
        size_t i = 0;
        while (i < n && relay->known_topics[i])
            i++;
        if (i == n) { /* full: start over */
            for (i = 0; i < n; i++) {
                free(relay->known_topics[i]);
                relay->known_topics[i] = NULL;
            }
            i = 0;
        }
        relay->known_topics[i] = strdup(topic); /* NULL if out of memory: not cached */
    }
    return exists;
}

/* A topic the broker says is missing may be about to appear (just created and not yet known to
 * every broker, or the deployment's topics step still running): its rows wait, as for a broker
 * that is away, for missing_topic_grace_ms from the first time it was found missing, and only
 * then are they quarantined. 1 once that time is over. */
static int missing_topic_given_up(struct cv_outbox_relay *relay, const char *topic)
{
    int64_t now = cv_monotonic_ms();
    if (!relay->missing_topic || strcmp(relay->missing_topic, topic) != 0) {
        free(relay->missing_topic);
        relay->missing_topic = strdup(topic);
        relay->missing_since_ms = now;
        cv_log_warn("outbox relay: topic %s does not exist; waiting up to %ld ms for it", topic,
                    relay->missing_topic_grace_ms);
    }
    return now - relay->missing_since_ms >= relay->missing_topic_grace_ms;
}

/* A fatal producer error (idempotence broken) leaves the producer unusable: only a new process
 * can go on, in order. 1 if there is one. */
static int producer_fatal(struct cv_outbox_relay *relay)
{
    char why[512];
    rd_kafka_t *rk = cv_kafka_producer_handle(relay->producer);
    if (!rd_kafka_fatal_error(rk, why, sizeof(why)))
        return 0;
    if (!relay->fatal)
        cv_log_error("outbox relay: fatal producer error, the process must restart: %s", why);
    relay->fatal = 1;
    relay->stop = 1;
    return 1;
}

/* One round of rows: selected, handed to the producer, settled once acknowledged. The relay
 * keeps two rounds going: the next one is selected and produced while the broker acknowledges
 * the previous one (docs/performance.md). */
struct round {
    struct row *rows;
    struct cv_kafka_delivery *dlv; /* filled by delivery reports: valid until settled */
    int n;                         /* rows selected */
    int produced;                  /* rows handed to the producer (a prefix of rows) */
    int transient;                 /* a transient failure ended the round early */
};

/* The ids of the round's rows as a PostgreSQL array literal; the caller frees it. */
static char *round_ids(const struct round *rd)
{
    size_t cap = (size_t)rd->n * 21 + 3;
    char *ids = malloc(cap);
    if (!ids)
        return NULL;
    size_t pos = 0;
    ids[pos++] = '{';
    for (int i = 0; i < rd->n; i++)
        pos += (size_t)snprintf(ids + pos, cap - pos, "%s%s", i ? "," : "", rd->rows[i].id);
    ids[pos++] = '}';
    ids[pos] = '\0';
    return ids;
}

/* Copies row i of a select into r. Returns -1 if out of memory (row_free frees the rest). */
static int row_load(struct row *r, const PGresult *res, int i)
{
    r->id = strdup(PQgetvalue(res, i, 0));
    r->topic = strdup(PQgetvalue(res, i, 1));
    if (!PQgetisnull(res, i, 2)) {
        r->key = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &r->key_len);
        if (!r->key)
            return -1;
    }
    r->value = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 3), &r->value_len);
    r->created_ms = strtoll(PQgetvalue(res, i, 5), NULL, 10);
    if (!r->id || !r->topic || !r->value)
        return -1;
    return row_parse_headers(r, PQgetvalue(res, i, 4));
}

/* Selects up to batch_size rows, oldest first, other than those of the round in flight, and
 * produces them. Not "after the last id in flight": a transaction that took a lower id may
 * commit later, and its row must not wait for the stream to pause. Returns the number of rows
 * found, or -1 on a database error. Rows the broker can never take are marked for quarantine;
 * a transient failure ends the round early (the rows from there are produced again by a later
 * round, in order). */
static int round_produce(struct cv_outbox_relay *relay, const struct round *in_flight,
                         struct round *rd)
{
    memset(rd, 0, sizeof(*rd));
    struct cv_db_err err;
    char limit[16];
    snprintf(limit, sizeof(limit), "%u", relay->batch_size);
    char *skip = round_ids(in_flight);
    if (!skip) {
        cv_log_warn("outbox relay: out of memory");
        return -1;
    }
    const char *params[] = {limit, skip};
    PGresult *res = cv_db_query(relay->conn,
                                "SELECT id, topic, key, value, headers,"
                                " (extract(epoch FROM created_at) * 1000)::bigint FROM outbox"
                                " WHERE id <> ALL($2::bigint[]) ORDER BY id LIMIT $1",
                                2, params, &err);
    free(skip);
    if (!res) {
        cv_log_warn("outbox relay: select: %s", err.msg);
        return -1;
    }
    int n = PQntuples(res);
    if (n <= 0) {
        PQclear(res);
        return 0;
    }
    struct row *rows = calloc((size_t)n, sizeof(*rows));
    struct cv_kafka_delivery *dlv = calloc((size_t)n, sizeof(*dlv));
    int loaded = 0;
    while (rows && dlv && loaded < n && row_load(&rows[loaded], res, loaded) == 0)
        loaded++;
    PQclear(res);
    if (loaded < n) {
        /* Out of memory: nothing is produced; the rows stay in the outbox for a later round. */
        for (int i = 0; rows && i < n; i++)
            row_free(&rows[i]);
        free(rows);
        free(dlv);
        cv_log_warn("outbox relay: out of memory loading %d rows", n);
        return -1;
    }
    rd->rows = rows;
    rd->dlv = dlv;
    rd->n = n;
    int64_t picked_ms = cv_now_ms();
    for (int i = 0; i < n; i++)
        cv_stage_observe(CV_STAGE_OUTBOX_TO_RELAY, rows[i].created_ms, picked_ms);

    int produced = 0, transient = 0;
    for (; produced < n && !relay->stop && !transient; produced++) {
        struct row *r = &rows[produced];
        char errstr[256];
        int exists = topic_exists(relay, r->topic);
        if (exists == 0 && !missing_topic_given_up(relay, r->topic))
            exists = -1;
        else if (exists == 1 && relay->missing_topic &&
                 strcmp(relay->missing_topic, r->topic) == 0) {
            free(relay->missing_topic);
            relay->missing_topic = NULL;
        }
        if (exists == 0) {
            r->quarantine = "topic does not exist";
            dlv[produced].done = 1;
            continue;
        }
        if (exists < 0) {
            cv_log_warn("outbox relay: row %s: no metadata for topic %s; retrying", r->id,
                        r->topic);
            transient = 1;
            break;
        }
        r->produced_ms = cv_now_ms();
        while (cv_kafka_produce(relay->producer, r->topic, r->key, r->key_len, r->value,
                                r->value_len, r->headers, r->nheaders, &dlv[produced], errstr,
                                sizeof(errstr)) < 0) {
            rd_kafka_resp_err_t perr = dlv[produced].err;
            dlv[produced].err = RD_KAFKA_RESP_ERR_NO_ERROR;
            if (perr == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                /* Local queue full: serve reports and try again. */
                if (relay->stop)
                    break;
                rd_kafka_poll(cv_kafka_producer_handle(relay->producer), 100);
                continue;
            }
            if (cv_kafka_err_permanent(perr)) {
                r->quarantine = rd_kafka_err2str(perr);
                dlv[produced].done = 1;
            } else if (!producer_fatal(relay)) {
                cv_log_warn("outbox relay: row %s: %s; retrying", r->id, errstr);
                transient = 1;
            }
            break;
        }
        if (relay->stop || transient)
            break;
    }
    rd->produced = produced;
    rd->transient = transient;
    return n;
}

/* Waits for the round's deliveries, deletes the delivered rows, quarantines those the broker
 * can never take, and frees the round. Returns -1 on a database error, 1 if rows are left to
 * retry (failed or not produced), else 0. */
static int round_settle(struct cv_outbox_relay *relay, struct round *rd)
{
    if (rd->n == 0)
        return 0;
    struct row *rows = rd->rows;
    struct cv_kafka_delivery *dlv = rd->dlv;
    int produced = rd->produced;
    /* Deliveries never expire (message.timeout.ms=0): wait while the broker is away. On stop,
     * give what is in flight a few more seconds, then leave the rest in the outbox. */
    size_t pending = cv_kafka_wait(relay->producer, dlv, (size_t)produced, 1 << 30, &relay->stop);
    if (pending)
        cv_kafka_wait(relay->producer, dlv, (size_t)produced, 5000, NULL);
    int failed = 0;
    for (int i = 0; i < produced; i++) {
        if (dlv[i].done && !dlv[i].err && !rows[i].quarantine)
            cv_stage_observe(CV_STAGE_PRODUCE_TO_ACK, rows[i].produced_ms, dlv[i].done_ms);
        if (!dlv[i].done || !dlv[i].err || rows[i].quarantine)
            continue;
        if (cv_kafka_err_permanent(dlv[i].err)) {
            rows[i].quarantine = rd_kafka_err2str(dlv[i].err);
        } else {
            failed++;
            cv_log_warn("outbox relay: row %s to %s failed: %s; retrying", rows[i].id,
                        rows[i].topic, rd_kafka_err2str(dlv[i].err));
        }
    }
    producer_fatal(relay);
    int rc = settle_rows(relay, rows, dlv, produced);
    for (int i = 0; i < rd->n; i++)
        row_free(&rows[i]);
    free(rows);
    free(dlv);
    int retry = failed || rd->transient || produced < rd->n;
    memset(rd, 0, sizeof(*rd));
    return rc < 0 ? -1 : retry;
}

/* One step of publishing: produces the round after prev while prev is being acknowledged, then
 * settles prev. The new round becomes prev. Returns the number of rows the new round found, or
 * -1 on a database error (both rounds settled then). */
static int publish_step(struct cv_outbox_relay *relay, struct round *prev)
{
    struct round cur;
    int n = round_produce(relay, prev, &cur);
    int settled = round_settle(relay, prev);
    if (n < 0 || settled != 0) {
        /* A database error, or rows of prev to retry: finish this round too, so that the next
         * one starts again from the oldest row left, in order. */
        int rc = n < 0 ? -1 : round_settle(relay, &cur);
        if (n < 0 || settled < 0 || rc < 0)
            return -1;
        relay_sleep(relay, 1000); /* failed rows stay and are tried again */
        return n;
    }
    *prev = cur;
    if (cur.n > 0 && (cur.transient || cur.produced < cur.n)) {
        if (round_settle(relay, prev) < 0)
            return -1;
        relay_sleep(relay, 1000);
    }
    return n;
}

static void *relay_main(void *arg)
{
    struct cv_outbox_relay *relay = arg;
    struct round prev = {0}; /* produced, not settled yet */
    struct cv_backoff backoff = CV_BACKOFF(100, 5000);
    while (!relay->stop && !producer_fatal(relay)) {
        if (!relay->conn && relay_connect(relay) < 0) {
            relay_sleep(relay, cv_backoff_next(&backoff));
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
        int n = publish_step(relay, &prev);
        if (n < 0) {
            relay_disconnect(relay);
            relay_sleep(relay, cv_backoff_next(&backoff));
            continue;
        }
        cv_backoff_reset(&backoff);
        /* Rows found: look for more at once (that also settles them). None: sleep until
         * notified. The timeout also catches rows committed while the connection was being
         * re-established. */
        if (n == 0 && wait_notify(relay, 1000) < 0)
            relay_disconnect(relay);
    }
    if (prev.n > 0 && relay->conn)
        round_settle(relay, &prev);
    relay_disconnect(relay);
    return NULL;
}

struct cv_outbox_relay *cv_outbox_relay_start(const char *conninfo,
                                              struct cv_kafka_producer *producer,
                                              unsigned batch_size, long missing_topic_grace_ms,
                                              char *errstr, size_t errstr_size)
{
    struct cv_outbox_relay *relay = calloc(1, sizeof(*relay));
    if (!relay || !(relay->conninfo = strdup(conninfo))) {
        free(relay);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    relay->producer = producer;
    relay->batch_size = batch_size ? batch_size : 500;
    relay->missing_topic_grace_ms = missing_topic_grace_ms;
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
    for (size_t i = 0; i < sizeof(relay->known_topics) / sizeof(relay->known_topics[0]); i++)
        free(relay->known_topics[i]);
    free(relay->missing_topic);
    free(relay->conninfo);
    free(relay);
}

int cv_outbox_relay_fatal(const struct cv_outbox_relay *relay)
{
    return relay->fatal;
}

int cv_outbox_relay_active(const struct cv_outbox_relay *relay)
{
    return relay->active;
}

unsigned long cv_outbox_relay_published(const struct cv_outbox_relay *relay)
{
    return relay->published;
}
