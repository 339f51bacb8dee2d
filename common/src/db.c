/* libpq connection pool and query helpers. The pool hands out whole connections: a caller
 * that holds one owns it (and any transaction on it) until cv_db_release. The server is an
 * unreliable peer: every connection has connect, statement, lock and keepalive timeouts, a
 * caller waits a bounded time for an answer or a free connection, and a connection that broke
 * is replaced rather than handed out. */
#include "cv/db.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cv/log.h"
#include "cv/metrics.h"
#include "cv/util.h"
#include "db_int.h"

struct cv_db_pool {
    char *conninfo;
    unsigned size;
    PGconn **idle; /* stack of idle connections (NULL slots: not yet opened) */
    unsigned nidle;
    pthread_mutex_t lock;
    pthread_cond_t freed;
    /* Circuit breaker: after the server failed to answer or to accept a connection, callers
     * fail at once (503) until trouble_until; then one caller at a time probes it. 0: healthy.
     * Guarded by lock. */
    int64_t trouble_until;
    char trouble[256];
};

/* Pause after a failure before the next probe of an unresponsive server. */
#define TROUBLE_HOLD_MS 1000

/* What the calling thread's last query learnt of the server, for cv_db_release to tell the
 * pool: 1 it answered, -1 it did not answer in time, 0 no query since cv_db_acquire. */
static __thread int thread_outcome;

/* The process's connection options (cv_db_set_options), and the libpq keywords built from
 * them. Written once at start-up, before any thread connects. */
static struct cv_db_options options;
static char application_name[64];
static char opt_connect[16], opt_idle[16], opt_interval[16], opt_count[16], opt_user[16];
static char opt_server[512];
static int options_set;

void cv_db_options_default(struct cv_db_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->connect_timeout_s = 5;
    opts->statement_timeout_ms = 5000;
    opts->lock_timeout_ms = 2000;
    opts->keepalives_idle_s = 10;
    opts->keepalives_interval_s = 3;
    opts->keepalives_count = 3;
    opts->tcp_user_timeout_ms = 20000;
    opts->pool_wait_ms = 2000;
    opts->answer_margin_ms = 2000;
}

/* Appends "-c name=value" to the server options when value is set. */
static void server_opt(size_t *len, const char *name, int value)
{
    if (value <= 0 || *len >= sizeof(opt_server))
        return;
    *len += (size_t)snprintf(opt_server + *len, sizeof(opt_server) - *len, "%s-c %s=%d",
                             *len ? " " : "", name, value);
}

void cv_db_set_options(const struct cv_db_options *opts)
{
    options = *opts;
    snprintf(application_name, sizeof(application_name), "%s",
             opts->application_name ? opts->application_name : "");
    options.application_name = application_name;
    snprintf(opt_connect, sizeof(opt_connect), "%d", opts->connect_timeout_s);
    snprintf(opt_idle, sizeof(opt_idle), "%d", opts->keepalives_idle_s);
    snprintf(opt_interval, sizeof(opt_interval), "%d", opts->keepalives_interval_s);
    snprintf(opt_count, sizeof(opt_count), "%d", opts->keepalives_count);
    snprintf(opt_user, sizeof(opt_user), "%d", opts->tcp_user_timeout_ms);
    /* The same keepalives on the server's end of the connection: a client that vanished
     * silently (its host lost, the network cut) loses its session, and with it its locks
     * (the outbox relay's advisory lock above all), within seconds rather than hours. */
    size_t len = 0;
    opt_server[0] = '\0';
    server_opt(&len, "statement_timeout", opts->statement_timeout_ms);
    server_opt(&len, "lock_timeout", opts->lock_timeout_ms);
    server_opt(&len, "tcp_keepalives_idle", opts->keepalives_idle_s);
    server_opt(&len, "tcp_keepalives_interval", opts->keepalives_interval_s);
    server_opt(&len, "tcp_keepalives_count", opts->keepalives_count);
    server_opt(&len, "tcp_user_timeout", opts->tcp_user_timeout_ms);
    options_set = 1;
}

static void options_ensure(void)
{
    if (!options_set) {
        struct cv_db_options d;
        cv_db_options_default(&d);
        cv_db_set_options(&d);
    }
}

/* How long to wait for an answer: the server's own statement timeout plus the margin. */
static int answer_timeout_ms(void)
{
    options_ensure();
    if (options.statement_timeout_ms <= 0)
        return 0;
    return options.statement_timeout_ms + options.answer_margin_ms;
}

int cv_db_sqlstate_transient(const char *state)
{
    /* Errors in the data or the statement: retrying the same thing fails the same way.
     * Everything else (connection, timeouts, shutdown, locks, resources, serialization,
     * internal errors) may succeed later. */
    static const char *const permanent[] = {"0A", "21", "22", "23", "27", "2F", "39",
                                            "3F", "42", "44", "54", "P0", NULL};
    if (!state || strlen(state) != 5)
        return 1;
    for (const char *const *c = permanent; *c; c++)
        if (strncmp(state, *c, 2) == 0)
            return 0;
    return 1;
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
    err->no_answer = 0;
    err->transient =
        !conn || PQstatus(conn) != CONNECTION_OK || !state || cv_db_sqlstate_transient(state);
}

void cv_db_err_client(struct cv_db_err *err, int transient, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->sqlstate[0] = '\0';
    err->transient = transient;
    err->no_answer = 0;
}

/* Server notices ("relation already exists, skipping") are not errors: log them at debug. */
static void notice_processor(void *arg, const char *message)
{
    cv_log_debug("postgres: %.*s", (int)strcspn(message, "\n"), message);
}

PGconn *cv_db_connect(const char *conninfo, struct cv_db_err *err)
{
    options_ensure();
    /* Ours first, conninfo last: what the operator's connection string says wins. */
    const char *keys[12], *values[12];
    int n = 0;
#define KEYWORD(k, v)                                                                              \
    do {                                                                                           \
        keys[n] = (k);                                                                             \
        values[n] = (v);                                                                           \
        n++;                                                                                       \
    } while (0)
    if (options.connect_timeout_s > 0)
        KEYWORD("connect_timeout", opt_connect);
    if (options.keepalives_idle_s > 0) {
        KEYWORD("keepalives", "1");
        KEYWORD("keepalives_idle", opt_idle);
        KEYWORD("keepalives_interval", opt_interval);
        KEYWORD("keepalives_count", opt_count);
    }
    if (options.tcp_user_timeout_ms > 0)
        KEYWORD("tcp_user_timeout", opt_user);
    if (opt_server[0])
        KEYWORD("options", opt_server);
    if (application_name[0])
        KEYWORD("application_name", application_name);
    KEYWORD("dbname", conninfo);
    KEYWORD(NULL, NULL);
#undef KEYWORD
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (!conn) {
        cv_db_err_client(err, 1, "out of memory");
        return NULL;
    }
    PQsetNoticeProcessor(conn, notice_processor, NULL);
    if (cv_db_prepared_attach(conn) < 0)
        cv_log_warn("database: no statement cache for a connection (out of memory)");
    if (PQstatus(conn) != CONNECTION_OK) {
        cv_db_err_set(err, conn, NULL);
        err->transient = 1;
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Gives up on conn: closes its socket so that libpq marks it broken (the pool then replaces
 * it) and the server, once it looks again, ends the session and rolls back what it held. */
static void conn_abandon(PGconn *conn)
{
    int fd = PQsocket(conn);
    if (fd >= 0) {
        shutdown(fd, SHUT_RDWR);
        PQconsumeInput(conn);
    }
}

/* Whether an idle connection may be handed out: anything the server sent unasked (the
 * FATAL of a terminated backend or of a shutdown, or the end of the stream) means it is gone
 * or going. */
static int conn_usable(PGconn *conn)
{
    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE)
        return 0;
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
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

/* Opens the circuit: callers fail fast for a while. Called with pool->lock held. */
static void pool_trouble(struct cv_db_pool *pool, const char *why)
{
    if (!pool->trouble_until)
        cv_log_warn("database: unavailable (%s): failing fast, probing every %d ms", why,
                    TROUBLE_HOLD_MS);
    pool->trouble_until = cv_monotonic_ms() + TROUBLE_HOLD_MS;
    snprintf(pool->trouble, sizeof(pool->trouble), "%s", why);
}

PGconn *cv_db_acquire(struct cv_db_pool *pool, struct cv_db_err *err)
{
    double started = seconds_now();
    options_ensure();
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long wait_ms = options.pool_wait_ms > 0 ? options.pool_wait_ms : 0;
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    thread_outcome = 0;
    pthread_mutex_lock(&pool->lock);
    if (pool->trouble_until) {
        int64_t now = cv_monotonic_ms();
        if (now < pool->trouble_until) {
            cv_db_err_client(err, 1, "database unavailable (%s)", pool->trouble);
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        /* This caller probes; the others keep failing fast meanwhile. */
        pool->trouble_until = now + answer_timeout_ms() + options.connect_timeout_s * 1000L;
    }
    while (pool->nidle == 0) {
        if (wait_ms == 0) {
            pthread_cond_wait(&pool->freed, &pool->lock);
        } else if (pthread_cond_timedwait(&pool->freed, &pool->lock, &until) == ETIMEDOUT &&
                   pool->nidle == 0) {
            pthread_mutex_unlock(&pool->lock);
            observe_wait(seconds_now() - started); /* a wait that gave up counts too */
            cv_db_err_client(err, 1, "no database connection free within %ld ms (all %u in use)",
                             wait_ms, pool->size);
            return NULL;
        }
    }
    PGconn *conn = pool->idle[--pool->nidle];
    pool->idle[pool->nidle] = NULL;
    pthread_mutex_unlock(&pool->lock);
    observe_wait(seconds_now() - started);

    int64_t connecting = cv_monotonic_ms();
    if (conn && !conn_usable(conn)) {
        cv_log_info("database: replacing a broken pooled connection");
        PQreset(conn);
        if (PQstatus(conn) != CONNECTION_OK) {
            cv_db_err_set(err, conn, NULL);
            err->transient = 1;
            PQfinish(conn);
            conn = NULL;
            goto cleanup;
        }
    }
    if (!conn)
        conn = cv_db_connect(pool->conninfo, err);
cleanup:
    if (!conn) {
        /* Give the slot back empty so that a later call tries again. */
        pthread_mutex_lock(&pool->lock);
        /* Only a failure that made the caller wait opens the circuit (the server does not
         * answer); one the server answered at once (too many clients, shutting down,
         * refused) is cheap to meet again and may not concern the next caller. */
        if (cv_monotonic_ms() - connecting >= options.connect_timeout_s * 1000L - 100)
            pool_trouble(pool, err->msg);
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
    if (thread_outcome > 0 && pool->trouble_until) {
        pool->trouble_until = 0;
        cv_log_info("database: answering again");
    } else if (thread_outcome > 0) {
        pool->trouble_until = 0;
    } else if (pool->trouble_until && pool->trouble_until > cv_monotonic_ms() + TROUBLE_HOLD_MS) {
        /* A probing caller that asked nothing: let the next one probe. */
        pool->trouble_until = cv_monotonic_ms();
    } else if (thread_outcome < 0)
        pool_trouble(pool, "no answer from the database");
    thread_outcome = 0;
    pool->idle[pool->nidle++] = conn;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
}

int cv_db_pool_ping(struct cv_db_pool *pool, int timeout_ms, struct cv_db_err *err)
{
    PGconn *conn = cv_db_acquire(pool, err);
    if (!conn)
        return -1;
    PGresult *res = cv_db_query_within(conn, "SELECT 1", 0, NULL, timeout_ms, err);
    PQclear(res);
    cv_db_release(pool, conn);
    return res ? 0 : -1;
}

/* Waits at most until deadline for the result of what was just sent on conn. Returns 0 with
 * *res (NULL if libpq failed: the reason is on conn), or -1 with err set when no answer came
 * in time or the socket failed (conn is then abandoned). */
static int await_result(PGconn *conn, int64_t deadline, int timeout_ms, PGresult **res,
                        struct cv_db_err *err)
{
    PGresult *first = NULL;
    for (;;) {
        int flush = PQflush(conn);
        if (flush < 0)
            break;
        while (flush == 0 && !PQisBusy(conn)) {
            PGresult *r = PQgetResult(conn);
            if (!r) {
                *res = first;
                thread_outcome = 1;
                return 0;
            }
            if (!first)
                first = r; /* one statement: one result (later ones are empty) */
            else
                PQclear(r);
        }
        int64_t left = deadline - cv_monotonic_ms();
        if (left <= 0) {
            cv_db_err_client(err, 1, "no answer from the database within %d ms", timeout_ms);
            err->no_answer = 1;
            thread_outcome = -1;
            PQclear(first);
            conn_abandon(conn);
            return -1;
        }
        struct pollfd pfd = {.fd = PQsocket(conn),
                             .events = (short)(POLLIN | (flush ? POLLOUT : 0))};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(conn))
            break;
    }
    /* The socket failed: libpq's message says how. */
    PQclear(first);
    cv_db_err_set(err, conn, NULL);
    err->transient = 1;
    conn_abandon(conn);
    return -1;
}

/* Prepares sql as name on conn within the deadline. 1 prepared, 0 the server refused (the
 * statement then runs unprepared, to fail or not as it would), -1 as await_result. */
static int prepare_bounded(PGconn *conn, const char *name, const char *sql, int nparams,
                           int64_t deadline, int timeout_ms, struct cv_db_err *err)
{
    PGresult *res = NULL;
    if (!PQsendPrepare(conn, name, sql, nparams, NULL))
        return 0;
    if (await_result(conn, deadline, timeout_ms, &res, err) < 0)
        return -1;
    int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    cv_db_prepared_done(conn, sql, ok);
    return ok;
}

/* Sends the query, prepared when conn caches it, and waits for its result at most
 * timeout_ms. Returns as await_result. */
static int exec_bounded(PGconn *conn, const char *sql, int nparams, const char *const *params,
                        const int *lengths, const int *formats, int timeout_ms, PGresult **res,
                        struct cv_db_err *err)
{
    *res = NULL;
    /* Non-blocking, so that sending cannot wait on a server that stopped reading either. */
    if (PQsetnonblocking(conn, 1) != 0)
        return 0;
    int64_t deadline = cv_monotonic_ms() + timeout_ms;
    int ready = 0;
    const char *name =
        options.no_prepared_statements ? NULL : cv_db_prepared_find(conn, sql, &ready);
    if (name && !ready) {
        int prepared = prepare_bounded(conn, name, sql, nparams, deadline, timeout_ms, err);
        if (prepared < 0)
            return -1;
        ready = prepared;
    }
    int sent = name && ready
                   ? PQsendQueryPrepared(conn, name, nparams, params, lengths, formats, 0)
                   : PQsendQueryParams(conn, sql, nparams, NULL, params, lengths, formats, 0);
    if (!sent)
        return 0;
    return await_result(conn, deadline, timeout_ms, res, err);
}

static PGresult *query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                       const int *lengths, const int *formats, int timeout_ms,
                       struct cv_db_err *err)
{
    PGresult *res;
    if (timeout_ms > 0) {
        if (exec_bounded(conn, sql, nparams, params, lengths, formats, timeout_ms, &res, err) < 0)
            return NULL;
    } else {
        res = PQexecParams(conn, sql, nparams, NULL, params, lengths, formats, 0);
    }
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    cv_db_err_set(err, conn, res);
    PQclear(res);
    return NULL;
}

PGresult *cv_db_query_within(PGconn *conn, const char *sql, int nparams, const char *const *params,
                             int timeout_ms, struct cv_db_err *err)
{
    return query(conn, sql, nparams, params, NULL, NULL, timeout_ms, err);
}

PGresult *cv_db_query_binary(PGconn *conn, const char *sql, int nparams, const char *const *params,
                             const int *lengths, const int *formats, struct cv_db_err *err)
{
    return query(conn, sql, nparams, params, lengths, formats, answer_timeout_ms(), err);
}

PGresult *cv_db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                      struct cv_db_err *err)
{
    return cv_db_query_within(conn, sql, nparams, params, answer_timeout_ms(), err);
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
    if (cv_db_exec(conn, "BEGIN", 0, NULL, err) == 0)
        return 0;
    /* A server that does not answer is not asked again within the same call: the caller's
     * wait stays bounded by one answer timeout. */
    if (PQstatus(conn) == CONNECTION_OK || err->no_answer)
        return -1;
    /* Closed before anything of the transaction ran: a new session, and BEGIN once more. */
    cv_log_info("database: connection lost (%s); reconnecting once", err->msg);
    PQreset(conn);
    if (PQstatus(conn) != CONNECTION_OK) {
        cv_db_err_set(err, conn, NULL);
        err->transient = 1;
        return -1;
    }
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
        cv_db_err_client(err, 0, "transaction was rolled back");
    }
    return ok ? 0 : -1;
}

void cv_db_rollback(PGconn *conn)
{
    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) == PQTRANS_IDLE)
        return;
    /* Bounded like any statement: a server that does not answer loses the connection, and
     * with it the transaction. */
    struct cv_db_err err;
    PQclear(cv_db_query(conn, "ROLLBACK", 0, NULL, &err));
}

static int exec_unbounded(PGconn *conn, const char *sql, struct cv_db_err *err)
{
    PGresult *res = cv_db_query_within(conn, sql, 0, NULL, 0, err);
    PQclear(res);
    return res ? 0 : -1;
}

int cv_db_migrate(PGconn *conn, const struct cv_embedded_file *files, struct cv_db_err *err)
{
    /* Migrations may take long (an index on a big table) and wait for another replica's: no
     * statement, lock or answer timeouts here, restored at the end. */
    if (exec_unbounded(conn, "SET statement_timeout = 0", err) < 0 ||
        exec_unbounded(conn, "SET lock_timeout = 0", err) < 0)
        return -1;
    /* One lock id for every service: each owns its database, so it never contends across. */
    if (exec_unbounded(conn, "SELECT pg_advisory_lock(7424541)", err) < 0)
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
    exec_unbounded(conn, "SELECT pg_advisory_unlock(7424541)", &unlock_err);
    exec_unbounded(conn, "RESET statement_timeout", &unlock_err);
    exec_unbounded(conn, "RESET lock_timeout", &unlock_err);
    return rc;
}
