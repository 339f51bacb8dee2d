/* Housekeeping of a service's database, on a thread of its own: the outbox watched once a
 * second (depth, age of the oldest row, whether the relay makes progress: /metrics and
 * /readyz), and processed event ids purged once they are older than the retention, which the
 * start-up check made longer than the retention of every topic consumed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/log.h"
#include "cv/metrics.h"
#include "cv/util.h"
#include "service_int.h"

/* Transaction-level advisory lock: one replica purges at a time. */
#define PURGE_LOCK_ID "7424543"
#define PURGE_CHUNK "10000"

/* Looks at the outbox: gauges, and the stall state /readyz reports. */
static void watch_outbox(struct cv_service *svc, int64_t *last_head, int64_t *last_progress_ms)
{
    static struct cv_gauge *depth, *age, *quarantine;
    if (!depth) {
        depth = cv_metrics_gauge("outbox_depth", "Rows waiting in the outbox", NULL);
        age = cv_metrics_gauge("outbox_oldest_age_seconds",
                               "Age of the oldest row waiting in the outbox", NULL);
        quarantine =
            cv_metrics_gauge("outbox_quarantine_rows",
                             "Rows in outbox_quarantine (the broker can never take them)", NULL);
    }
    struct cv_db_err err;
    memset(&err, 0, sizeof(err));
    PGconn *conn = cv_db_acquire(svc->pool, &err);
    if (!conn)
        return;
    PGresult *res =
        cv_db_query(conn,
                    "SELECT count(*), COALESCE(min(id), 0),"
                    " COALESCE(extract(epoch FROM clock_timestamp() - min(created_at)), 0),"
                    " (SELECT count(*) FROM outbox_quarantine) FROM outbox",
                    0, NULL, &err);
    cv_db_release(svc->pool, conn);
    if (!res) {
        cv_log_debug("housekeeping: outbox: %s", err.msg);
        return;
    }
    long rows = atol(PQgetvalue(res, 0, 0));
    int64_t head = atoll(PQgetvalue(res, 0, 1));
    double oldest = atof(PQgetvalue(res, 0, 2));
    cv_gauge_set(depth, (double)rows);
    cv_gauge_set(age, oldest);
    cv_gauge_set(quarantine, atof(PQgetvalue(res, 0, 3)));
    PQclear(res);

    /* Progress: the outbox is empty, or its first row changed since last time. */
    int64_t now = cv_monotonic_ms();
    if (rows == 0 || head != *last_head)
        *last_progress_ms = now;
    *last_head = head;
    int64_t stuck_s = (now - *last_progress_ms) / 1000;
    pthread_mutex_lock(&svc->ready_lock);
    svc->outbox_stalled = stuck_s >= cv_config_int(svc->cfg, "OUTBOX_STALL_SECONDS");
    if (svc->outbox_stalled)
        snprintf(svc->outbox_stall_reason, sizeof(svc->outbox_stall_reason),
                 "outbox relay stalled: %ld rows waiting, none published for %lld s (oldest "
                 "%.0f s old)",
                 rows, (long long)stuck_s, oldest);
    pthread_mutex_unlock(&svc->ready_lock);
}

/* Deletes, in chunks of their own transactions, what sql (with $1 = hours) purges. Returns the
 * number of rows deleted, -1 on a database error. */
static long purge(struct cv_service *svc, const char *what, const char *sql, const char *hours)
{
    long total = 0;
    for (;;) {
        struct cv_db_err err;
        memset(&err, 0, sizeof(err));
        PGconn *conn = cv_db_acquire(svc->pool, &err);
        if (!conn)
            return -1;
        long n = 0;
        PGresult *res = NULL;
        int rc = cv_db_begin(conn, &err);
        if (rc == 0)
            res = cv_db_query(conn, "SELECT pg_try_advisory_xact_lock(" PURGE_LOCK_ID ")", 0, NULL,
                              &err);
        if (!res)
            rc = -1;
        else if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
            PQclear(res);
            const char *params[] = {hours};
            res = cv_db_query(conn, sql, 1, params, &err);
            if (res)
                n = atol(PQcmdTuples(res));
            else
                rc = -1;
        }
        PQclear(res);
        if (rc == 0)
            rc = cv_db_commit(conn, &err);
        if (rc < 0)
            cv_db_rollback(conn);
        cv_db_release(svc->pool, conn);
        if (rc < 0) {
            cv_log_warn("housekeeping: purging %s: %s", what, err.msg);
            return -1;
        }
        total += n;
        if (n < atol(PURGE_CHUNK) || svc->stop)
            break;
    }
    if (total > 0) {
        char labels[64] = "";
        cv_metrics_label_append(labels, sizeof(labels), "table", what);
        cv_counter_add(cv_metrics_counter("housekeeping_purged_total",
                                          "Rows purged after the retention", labels),
                       (uint64_t)total);
        cv_log_info("housekeeping: purged %ld %s older than %s h", total, what, hours);
    }
    return total;
}

static void purge_all(struct cv_service *svc)
{
    long hours = cv_config_int(svc->cfg, "PROCESSED_EVENTS_RETENTION_HOURS");
    if (hours == 0)
        return;
    char text[24];
    snprintf(text, sizeof(text), "%ld", hours);
    purge(svc, "processed_events",
          "DELETE FROM processed_events WHERE ctid = ANY(ARRAY(SELECT ctid FROM processed_events"
          " WHERE processed_at < now() - make_interval(hours => $1::int) LIMIT " PURGE_CHUNK "))",
          text);
    if (svc->def->purge_sql)
        purge(svc, svc->def->purge_table ? svc->def->purge_table : "service", svc->def->purge_sql,
              text);
}

static void *housekeeping_main(void *arg)
{
    struct cv_service *svc = arg;
    int64_t last_head = -1, last_progress = cv_monotonic_ms();
    int64_t interval_ms = cv_config_int(svc->cfg, "HOUSEKEEPING_INTERVAL_SECONDS") * 1000;
    int64_t next_purge = cv_monotonic_ms() + 5000; /* first soon after start */
    while (!svc->stop) {
        watch_outbox(svc, &last_head, &last_progress);
        if (cv_monotonic_ms() >= next_purge) {
            purge_all(svc);
            next_purge = cv_monotonic_ms() + interval_ms;
        }
        cv_sleep_ms(1000, &svc->stop);
    }
    return NULL;
}

int cv_service_housekeeping_start(struct cv_service *svc)
{
    if (pthread_create(&svc->housekeeping_thread, NULL, housekeeping_main, svc) != 0)
        return -1;
    svc->housekeeping_started = 1;
    return 0;
}

void cv_service_housekeeping_stop(struct cv_service *svc)
{
    if (!svc->housekeeping_started)
        return;
    pthread_join(svc->housekeeping_thread, NULL);
    svc->housekeeping_started = 0;
}

int cv_service_check_retention(struct cv_service *svc, const volatile int *give_up)
{
    long hours = cv_config_int(svc->cfg, "PROCESSED_EVENTS_RETENTION_HOURS");
    if (hours == 0 || svc->def->raw || !svc->consumes)
        return 0;
    rd_kafka_t *rk = cv_kafka_producer_handle(svc->producer);
    for (size_t i = 0; svc->consumes[i]; i++) {
        int64_t ms = 0;
        char errstr[512];
        struct cv_backoff backoff = CV_BACKOFF(500, 5000);
        /* The broker may not answer yet: keep asking, as for topic creation. */
        int rc;
        while ((rc = cv_kafka_topic_retention_ms(rk, svc->consumes[i], &ms, 5000, errstr,
                                                 sizeof(errstr))) < 0) {
            if (*give_up)
                return -1;
            cv_log_warn("kafka: %s", errstr);
            cv_sleep_ms(cv_backoff_next(&backoff), NULL);
        }
        if (rc == 1) {
            /* Its producer creates it; the next start checks it. */
            cv_log_warn("kafka: topic %s does not exist yet: its retention is not checked",
                        svc->consumes[i]);
            continue;
        }
        if (ms < 0 || ms >= (int64_t)hours * 3600000) {
            cv_log_error("PROCESSED_EVENTS_RETENTION_HOURS: %ld h must exceed the retention of "
                         "topic %s (retention.ms=%lld%s), or a redelivered event could be "
                         "applied twice; raise it, or set 0 to keep processed events for ever",
                         hours, svc->consumes[i], (long long)ms, ms < 0 ? ": for ever" : "");
            return -1;
        }
    }
    return 0;
}
