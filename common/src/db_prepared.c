/* Prepared statements, cached per connection and keyed by SQL text: a statement is parsed and
 * planned once per session instead of at every call. The cache is attached to the PGconn as
 * libpq instance data, so that it is emptied when libpq resets the connection (a new session
 * knows none of the old one's statements) and freed with it. */
#include <libpq-events.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db_int.h"

/* Statements per connection: the services run a few dozen distinct ones. SQL beyond that
 * (a text built per call) runs unprepared rather than grow the server's memory. */
#define CACHE_MAX 128

struct entry {
    char *sql;
    char name[16];
    int ready;
};

struct cache {
    struct entry e[CACHE_MAX];
    unsigned n;
};

static void cache_clear(struct cache *c)
{
    for (unsigned i = 0; i < c->n; i++)
        free(c->e[i].sql);
    c->n = 0;
}

static int event_proc(PGEventId id, void *info, void *pass)
{
    (void)pass;
    switch (id) {
    case PGEVT_CONNRESET: {
        PGconn *conn = ((PGEventConnReset *)info)->conn;
        struct cache *c = PQinstanceData(conn, event_proc);
        if (c)
            cache_clear(c);
        break;
    }
    case PGEVT_CONNDESTROY: {
        PGconn *conn = ((PGEventConnDestroy *)info)->conn;
        struct cache *c = PQinstanceData(conn, event_proc);
        if (c) {
            cache_clear(c);
            free(c);
        }
        break;
    }
    default:
        break;
    }
    return 1;
}

int cv_db_prepared_attach(PGconn *conn)
{
    struct cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    if (!PQregisterEventProc(conn, event_proc, "cv_db_prepared", NULL) ||
        !PQsetInstanceData(conn, event_proc, c)) {
        free(c);
        return -1;
    }
    return 0;
}

/* Statements worth preparing: those that plan. Transaction control and settings run as they
 * are (they are not planned, and some cannot be prepared). */
static int cacheable(const char *sql)
{
    static const char *const verbs[] = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", NULL};
    sql += strspn(sql, " \t\n");
    for (const char *const *v = verbs; *v; v++) {
        size_t len = strlen(*v);
        if (strncasecmp(sql, *v, len) == 0 && (sql[len] == ' ' || sql[len] == '\n'))
            return 1;
    }
    return 0;
}

const char *cv_db_prepared_find(PGconn *conn, const char *sql, int *ready)
{
    struct cache *c = PQinstanceData(conn, event_proc);
    *ready = 0;
    if (!c || !cacheable(sql))
        return NULL;
    for (unsigned i = 0; i < c->n; i++)
        if (strcmp(c->e[i].sql, sql) == 0) {
            *ready = c->e[i].ready;
            return c->e[i].name;
        }
    if (c->n == CACHE_MAX)
        return NULL;
    struct entry *e = &c->e[c->n];
    e->sql = strdup(sql);
    if (!e->sql)
        return NULL;
    /* Names are per session and never reused within one: the index is enough. */
    snprintf(e->name, sizeof(e->name), "cv_%u", c->n);
    e->ready = 0;
    c->n++;
    return e->name;
}

void cv_db_prepared_done(PGconn *conn, const char *sql, int ok)
{
    struct cache *c = PQinstanceData(conn, event_proc);
    for (unsigned i = 0; c && i < c->n; i++)
        if (strcmp(c->e[i].sql, sql) == 0) {
            /* A failed one keeps its name, free on the server, for the next try. */
            c->e[i].ready = ok;
            return;
        }
}
