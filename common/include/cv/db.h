/* PostgreSQL access through libpq: a fixed-size connection pool, queries that classify their
 * errors as transient (retry later) or permanent, transactions and start-up migrations. */
#ifndef CV_DB_H
#define CV_DB_H

#include <libpq-fe.h>
#include <stddef.h>

#include "cv/embed.h"

/* What went wrong with a database call. transient is set when the same call may succeed later:
 * the connection was lost, the server is shutting down, a serialization failure or deadlock. */
struct cv_db_err {
    char msg[512];
    char sqlstate[6];
    int transient;
};

struct cv_db_pool;

/* Opens a pool of up to size connections to conninfo (a libpq connection string or URI).
 * Connections are opened lazily; one is opened now to check the server answers.
 * Returns NULL with errstr set if it does not. */
struct cv_db_pool *cv_db_pool_new(const char *conninfo, unsigned size, char *errstr,
                                  size_t errstr_size);
void cv_db_pool_destroy(struct cv_db_pool *pool);

/* Takes a connection, waiting while all are in use. A broken connection is reset first.
 * Returns NULL with err set (transient) if the server cannot be reached. */
PGconn *cv_db_acquire(struct cv_db_pool *pool, struct cv_db_err *err);
/* Gives conn back. A connection left inside a transaction is rolled back first. */
void cv_db_release(struct cv_db_pool *pool, PGconn *conn);

/* Opens one connection outside any pool (the outbox relay's, a test's). NULL with err set. */
PGconn *cv_db_connect(const char *conninfo, struct cv_db_err *err);

/* Runs sql with text parameters (NULL entries are SQL NULL). Returns the result when it is
 * COMMAND_OK or TUPLES_OK (caller PQclear's it); otherwise NULL with err filled in. */
PGresult *cv_db_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                      struct cv_db_err *err);
/* The same without a result: 0 or -1 with err. */
int cv_db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
               struct cv_db_err *err);

int cv_db_begin(PGconn *conn, struct cv_db_err *err);
int cv_db_commit(PGconn *conn, struct cv_db_err *err);
/* Rolls back whatever transaction is open; harmless outside one. */
void cv_db_rollback(PGconn *conn);

/* Applies every migration of files not yet recorded in schema_migrations, in order, each in
 * its own transaction, under an advisory lock so that replicas starting together apply each
 * once. Returns 0, or -1 with err naming the failing file. */
int cv_db_migrate(PGconn *conn, const struct cv_embedded_file *files, struct cv_db_err *err);

/* Fills err from a failed result (res may be NULL) of conn. */
void cv_db_err_set(struct cv_db_err *err, PGconn *conn, const PGresult *res);

#endif
