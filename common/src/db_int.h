/* Internal to the db layer: the per-connection cache of prepared statements (db_prepared.c). */
#ifndef CV_DB_INT_H
#define CV_DB_INT_H

#include <libpq-fe.h>

/* Gives conn a statement cache that dies with its session (libpq's reset and destroy events).
 * 0, or -1 when it cannot (out of memory): conn then runs every statement unprepared. */
int cv_db_prepared_attach(PGconn *conn);

/* The prepared statement of sql on conn. Returns its name and sets *ready when it is
 * prepared on the current session; with *ready unset the caller prepares it under that name
 * and reports cv_db_prepared_done. NULL: run sql unprepared (not a cacheable statement,
 * no cache on conn, or the cache is full). */
const char *cv_db_prepared_find(PGconn *conn, const char *sql, int *ready);

/* Whether preparing sql (named by cv_db_prepared_find) succeeded. */
void cv_db_prepared_done(PGconn *conn, const char *sql, int ok);

#endif
