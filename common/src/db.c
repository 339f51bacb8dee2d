/* libpq connection pool and query helpers. The pool hands out whole connections: a caller
 * that holds one owns it (and any transaction on it) until cv_db_release. */
#include "cv/db.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv/log.h"
#include "cv/metrics.h"

struct cv_db_pool {
    char *conninfo;
    unsigned size;
    PGconn **idle; /* stack of idle connections (NULL slots: not yet opened) */
    unsigned nidle;
    pthread_mutex_t lock;
    pthread_cond_t freed;
};

static int sqlstate_is_transient(const char *state)
{
    /* 08: connection exception; 40001 serialization failure; 40P01 deadlock; 57P0x: server
     * shutting down or restarting; 53: insufficient resources (too many connections). */
    return strncmp(state, "08", 2) == 0 || strcmp(state, "40001") == 0 ||
           strcmp(state, "40P01") == 0 || strncmp(state, "57P0", 4) == 0 ||
           strncmp(state, "53", 2) == 0;
}

void cv_db_err_set(struct cv_db_err *err, PGconn *conn, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg)
        msg = conn ? PQerrorMessage(conn) : "no connection";
    snprintf(err->msg, sizeof(err->msg), "%s", msg);
    /* libpq messages end with a newline; logs are one line each. */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n')
            *p = (p[1] ? ' ' : '\0');
    snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state ? state : "");
    err->transient = !conn || PQstatus(conn) != CONNECTION_OK ||
                     (state && sqlstate_is_transient(state)) || (!state && res == NULL);
}

/* Server notices ("relation already exists, skipping") are not errors: log them at debug. */
static void notice_processor(void *arg, const char *message)
{
    cv_log_debug("postgres: %.*s", (int)strcspn(message, "\n"), message);
}

PGconn *cv_db_connect(const char *conninfo, struct cv_db_err *err)
{
    PGconn *conn = PQconnectdb(conninfo);
    PQsetNoticeProcessor(conn, notice_processor, NULL);
    if (PQstatus(conn) != CONNECTION_OK) {
        cv_db_err_set(err, conn, NULL);
        err->transient = 1;
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

struct cv_db_pool *cv_db_pool_new(const char *conninfo, unsigned size, char *errstr,
                                  size_t errstr_size)
{
    struct cv_db_pool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    pool->conninfo = strdup(conninfo);
    pool->size = size ? size : 1;
    pool->idle = calloc(pool->size, sizeof(PGconn *));
    pool->nidle = pool->size;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->freed, NULL);
    if (!pool->conninfo || !pool->idle) {
        snprintf(errstr, errstr_size, "out of memory");
        cv_db_pool_destroy(pool);
        return NULL;
    }
    struct cv_db_err err;
    PGconn *conn = cv_db_connect(conninfo, &err);
    if (!conn) {
        snprintf(errstr, errstr_size, "database: %s", err.msg);
        cv_db_pool_destroy(pool);
        return NULL;
    }
    pool->idle[0] = conn;
    return pool;
}

void cv_db_pool_destroy(struct cv_db_pool *pool)
{
    if (!pool)
        return;
    for (unsigned i = 0; pool->idle && i < pool->nidle; i++)
        if (pool->idle[i])
            PQfinish(pool->idle[i]);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->freed);
    free(pool->idle);
    free(pool->conninfo);
    free(pool);
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Time spent waiting for a free connection: a pool too small for the load shows here first. */
static void observe_wait(double seconds)
{
    static const double buckets[] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
                                     0.1,    0.5,    1,     2.5,   5,    10};
    cv_histogram_observe(cv_metrics_histogram("db_pool_wait_seconds",
                                              "Time to acquire a database connection from the pool",
                                              NULL, buckets, sizeof(buckets) / sizeof(buckets[0])),
                         seconds);
}

PGconn *cv_db_acquire(struct cv_db_pool *pool, struct cv_db_err *err)
{
    double started = seconds_now();
    pthread_mutex_lock(&pool->lock);
    while (pool->nidle == 0)
        pthread_cond_wait(&pool->freed, &pool->lock);
    PGconn *conn = pool->idle[--pool->nidle];
    pool->idle[pool->nidle] = NULL;
    pthread_mutex_unlock(&pool->lock);
    observe_wait(seconds_now() - started);

    if (conn && PQstatus(conn) != CONNECTION_OK) {
        PQreset(conn);
        if (PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = NULL;
        }
    }
    if (!conn)
        conn = cv_db_connect(pool->conninfo, err);
    if (!conn) {
        /* Give the slot back empty so that a later call tries again. */
        pthread_mutex_lock(&pool->lock);
        pool->idle[pool->nidle++] = NULL;
        pthread_cond_signal(&pool->freed);
        pthread_mutex_unlock(&pool->lock);
    }
    return conn;
}

void cv_db_release(struct cv_db_pool *pool, PGconn *conn)
{
    if (conn && PQtransactionStatus(conn) != PQTRANS_IDLE)
        cv_db_rollback(conn);
    pthread_mutex_lock(&pool->lock);
    pool->idle[pool->nidle++] = conn;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
}

PGresult *cv_db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                      struct cv_db_err *err)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    cv_db_err_set(err, conn, res);
    PQclear(res);
    return NULL;
}

int cv_db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
               struct cv_db_err *err)
{
    PGresult *res = cv_db_query(conn, sql, nparams, params, err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int cv_db_begin(PGconn *conn, struct cv_db_err *err)
{
    return cv_db_exec(conn, "BEGIN", 0, NULL, err);
}

int cv_db_commit(PGconn *conn, struct cv_db_err *err)
{
    PGresult *res = cv_db_query(conn, "COMMIT", 0, NULL, err);
    if (!res)
        return -1;
    /* COMMIT of a failed transaction answers ROLLBACK without an error. */
    int ok = strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    if (!ok) {
        snprintf(err->msg, sizeof(err->msg), "transaction was rolled back");
        err->sqlstate[0] = '\0';
        err->transient = 0;
    }
    return ok ? 0 : -1;
}

void cv_db_rollback(PGconn *conn)
{
    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) == PQTRANS_IDLE)
        return;
    PGresult *res = PQexec(conn, "ROLLBACK");
    PQclear(res);
}

int cv_db_migrate(PGconn *conn, const struct cv_embedded_file *files, struct cv_db_err *err)
{
    /* One lock id for every service: each owns its database, so it never contends across. */
    if (cv_db_exec(conn, "SELECT pg_advisory_lock(7424541)", 0, NULL, err) < 0)
        return -1;
    int rc = cv_db_exec(conn,
                        "CREATE TABLE IF NOT EXISTS schema_migrations ("
                        " name text PRIMARY KEY,"
                        " applied_at timestamptz NOT NULL DEFAULT now())",
                        0, NULL, err);
    for (const struct cv_embedded_file *f = files; rc == 0 && f->path; f++) {
        const char *name = f->path; /* "services/order/sql/001_orders.sql" */
        const char *params[] = {name};
        PGresult *res =
            cv_db_query(conn, "SELECT 1 FROM schema_migrations WHERE name = $1", 1, params, err);
        if (!res) {
            rc = -1;
            break;
        }
        int applied = PQntuples(res) > 0;
        PQclear(res);
        if (applied)
            continue;
        if (cv_db_begin(conn, err) < 0) {
            rc = -1;
            break;
        }
        /* PQexec runs a multi-statement script; parameters are not needed here. */
        res = PQexec(conn, f->data);
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
            cv_db_err_set(err, conn, res);
            PQclear(res);
            cv_db_rollback(conn);
            size_t len = strlen(err->msg);
            snprintf(err->msg + len, sizeof(err->msg) - len, " (in %s)", name);
            rc = -1;
            break;
        }
        PQclear(res);
        if (cv_db_exec(conn, "INSERT INTO schema_migrations (name) VALUES ($1)", 1, params, err) <
                0 ||
            cv_db_commit(conn, err) < 0) {
            cv_db_rollback(conn);
            rc = -1;
            break;
        }
        cv_log_info("applied migration %s", name);
    }
    struct cv_db_err unlock_err;
    cv_db_exec(conn, "SELECT pg_advisory_unlock(7424541)", 0, NULL, &unlock_err);
    return rc;
}
