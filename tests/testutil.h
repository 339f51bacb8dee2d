/* Helpers shared by the integration tests: throwaway databases and topics on the real
 * PostgreSQL and Kafka that tests/run.sh provides (CV_TEST_PG, CV_TEST_DB_PREFIX,
 * KAFKA_BOOTSTRAP_SERVERS, KAFKA_SH). Header-only: each test is one program. */
#ifndef CV_TESTUTIL_H
#define CV_TESTUTIL_H

#include <check.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cv/util.h"
#include "runner.h"

static inline const char *tu_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static inline const char *tu_brokers(void)
{
    return tu_env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092");
}

/* Runs sql on the server's postgres database; aborts the test on failure. */
static inline void tu_admin_sql(const char *sql)
{
    char conninfo[512];
    snprintf(conninfo, sizeof(conninfo), "%s dbname=postgres",
             tu_env("CV_TEST_PG", "host=127.0.0.1 port=5432 user=postgres"));
    PGconn *conn = PQconnectdb(conninfo);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "postgres: %s", PQerrorMessage(conn));
    PQclear(PQexec(conn, "SET client_min_messages TO warning"));
    PGresult *res = PQexec(conn, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql,
                  PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(conn);
}

/* Creates a fresh database named after suffix; writes its conninfo (512 bytes). */
static inline void tu_db_create(const char *suffix, char *conninfo, size_t size)
{
    char name[128], sql[256];
    snprintf(name, sizeof(name), "%s%s", tu_env("CV_TEST_DB_PREFIX", "cvt_manual_"), suffix);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
    tu_admin_sql(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", name);
    tu_admin_sql(sql);
    snprintf(conninfo, size, "%s dbname=%s",
             tu_env("CV_TEST_PG", "host=127.0.0.1 port=5432 user=postgres"), name);
}

static inline void tu_db_drop(const char *suffix)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s%s\" WITH (FORCE)",
             tu_env("CV_TEST_DB_PREFIX", "cvt_manual_"), suffix);
    tu_admin_sql(sql);
}

/* A topic name no other test run uses. */
static inline void tu_topic_name(const char *base, char *out, size_t size)
{
    char id[37];
    cv_uuid_v4(id);
    snprintf(out, size, "%s-%.8s", base, id);
}

/* Runs "$KAFKA_SH <verb>" (start or stop of the test broker). Returns its exit status. */
static inline int tu_kafka_sh(const char *verb)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "\"%s\" %s >/dev/null", tu_env("KAFKA_SH", "deploy/local/kafka.sh"),
             verb);
    return system(cmd);
}

#endif
