/* PostgreSQL access through libpq: a fixed-size connection pool, queries that classify their
 * errors as transient (retry later) or permanent, transactions and start-up migrations. */
#ifndef CV_DB_H
#define CV_DB_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "cv/embed.h"

/* What went wrong with a database call. transient is set when the same call may succeed later.
 * Retrying is the default: only errors in the data or the statement itself (SQLSTATE classes
 * 0A, 21, 22, 23, 27, 2F, 39, 3F, 42, 44, 54, P0) are permanent. A lost connection, a timeout
 * (57014), the server shutting down (57P0x), a serialization failure or deadlock (40),
 * a lock not available (55P03) and too many connections (53) are transient. */
struct cv_db_err {
    char msg[512];
    char sqlstate[6];
    int transient;
    int no_answer; /* the server did not answer in time: the connection was given up */
};

struct cv_db_pool;

/* How every connection of the process treats the server as an unreliable peer. A zero field
 * keeps libpq's or the server's own default (no limit). */
struct cv_db_options {
    int connect_timeout_s;     /* give up opening a connection after this (libpq: min 2 s) */
    int statement_timeout_ms;  /* the server cancels a statement running longer */
    int lock_timeout_ms;       /* the server gives up waiting for a lock after this */
    int keepalives_idle_s;     /* TCP keepalives, on both ends of every connection: a peer */
    int keepalives_interval_s; /* that vanished silently (host lost, network cut) is noticed */
    int keepalives_count;      /* after idle + interval * count seconds */
    int tcp_user_timeout_ms;   /* data left unacknowledged this long breaks the connection */
    int pool_wait_ms;          /* longest wait for a free pooled connection */
    /* How long a client waits for an answer before giving the connection up (the server
     * may be frozen or unreachable, so its own statement timeout cannot fire): the statement
     * timeout plus this margin. */
    int answer_margin_ms;
    const char *application_name; /* shown in pg_stat_activity; copied */
};

/* The defaults above: 5 s to connect, 5 s per statement, 2 s per lock, keepalives 10/3/3,
 * 20 s user timeout, 2 s pool wait, 2 s margin. */
void cv_db_options_default(struct cv_db_options *opts);
/* Sets the options of every connection opened afterwards (call before any thread starts). */
void cv_db_set_options(const struct cv_db_options *opts);

/* Opens a pool of up to size connections to conninfo (a libpq connection string or URI).
 * Connections are opened lazily; one is opened now to check the server answers.
 * Returns NULL with errstr set if it does not. */
struct cv_db_pool *cv_db_pool_new(const char *conninfo, unsigned size, char *errstr,
                                  size_t errstr_size);
void cv_db_pool_destroy(struct cv_db_pool *pool);

/* Takes a connection, waiting at most the pool wait while all are in use. A connection that
 * broke while idle (the server closed it: restart, pg_terminate_backend) is replaced first.
 * Returns NULL with err set (transient) if none is free in time or the server cannot be
 * reached. */
PGconn *cv_db_acquire(struct cv_db_pool *pool, struct cv_db_err *err);
/* Gives conn back. A connection left inside a transaction is rolled back first. */
void cv_db_release(struct cv_db_pool *pool, PGconn *conn);

/* Opens one connection outside any pool (the outbox relay's, a test's). NULL with err set. */
PGconn *cv_db_connect(const char *conninfo, struct cv_db_err *err);

/* Runs sql with text parameters (NULL entries are SQL NULL). Returns the result when it is
 * COMMAND_OK or TUPLES_OK (caller PQclear's it); otherwise NULL with err filled in. Waits for
 * the answer at most the statement timeout plus the margin: past that the connection is given
 * up (closed; the pool replaces it) and err says so, transient. */
PGresult *cv_db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                      struct cv_db_err *err);
/* The same without a result: 0 or -1 with err. */
int cv_db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
               struct cv_db_err *err);

/* Sends a query bounded by timeout_ms (<= 0: wait for ever) as cv_db_query does. */
PGresult *cv_db_query_within(PGconn *conn, const char *sql, int nparams, const char *const *params,
                             int timeout_ms, struct cv_db_err *err);
/* cv_db_query with binary parameters: lengths and formats as PQexecParams takes them. */
PGresult *cv_db_query_binary(PGconn *conn, const char *sql, int nparams, const char *const *params,
                             const int *lengths, const int *formats, struct cv_db_err *err);

/* BEGIN. When the connection turns out dead (nothing of the transaction has run yet), it is
 * reset and BEGIN tried once more, so a pooled connection the server dropped while idle costs
 * the caller nothing. */
int cv_db_begin(PGconn *conn, struct cv_db_err *err);
int cv_db_commit(PGconn *conn, struct cv_db_err *err);
/* Rolls back whatever transaction is open; harmless outside one. */
void cv_db_rollback(PGconn *conn);

/* Applies every migration of files not yet recorded in schema_migrations, in order, each in
 * its own transaction, under an advisory lock so that replicas starting together apply each
 * once. Returns 0, or -1 with err naming the failing file. */
int cv_db_migrate(PGconn *conn, const struct cv_embedded_file *files, struct cv_db_err *err);

/* Takes a pooled connection and runs SELECT 1 within timeout_ms: 0, or -1 with err. */
int cv_db_pool_ping(struct cv_db_pool *pool, int timeout_ms, struct cv_db_err *err);

/* Whether an error of SQLSTATE state is worth retrying (see struct cv_db_err). */
int cv_db_sqlstate_transient(const char *state);

/* SQL of a timestamp column col as the services' JSON shows times: "2026-01-31T12:00:00.000Z". */
#define CV_DB_JSON_TIME(col)                                                                       \
    "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* Runs a query that selects at most one row whose first column is JSON text (a
 * json_build_object(...)::text) and returns it parsed, or NULL: *found 0 when there is no row,
 * -1 with err on a database error or unreadable JSON. When column1 is not NULL the row's second
 * column (an integer such as a row version) goes there. Caller decrefs. */
json_t *cv_db_query_json(PGconn *conn, const char *sql, int nparams, const char *const *params,
                         long long *column1, int *found, struct cv_db_err *err);

/* Runs a query that selects at most one row and copies its first column into out (out_size
 * bytes, truncated), "" when there is no row. 1 (a row), 0 (none), or -1 with err. */
int cv_db_query_text(PGconn *conn, const char *sql, int nparams, const char *const *params,
                     char *out, size_t out_size, struct cv_db_err *err);

/* Runs a statement (a conditional INSERT, UPDATE or DELETE) and returns the rows it changed, or
 * -1 with err. */
int cv_db_exec_count(PGconn *conn, const char *sql, int nparams, const char *const *params,
                     struct cv_db_err *err);

/* Fills err from a failed result (res may be NULL) of conn. */
void cv_db_err_set(struct cv_db_err *err, PGconn *conn, const PGresult *res);

#endif
