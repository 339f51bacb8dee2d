/* The database as an unreliable peer, against a real PostgreSQL: which errors are worth a
 * retry, the server-side timeouts and keepalives every connection carries, the bounded wait
 * for an answer and for a pooled connection, a pooled connection the server dropped
 * replaced before it is handed out, and statements prepared once per session. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cv/db.h"
#include "cv/log.h"
#include "cv/util.h"
#include "testutil.h"

static char conninfo[512];

static void setup(void)
{
    cv_log_init("test", CV_LOG_ERROR);
    struct cv_db_options opts;
    cv_db_options_default(&opts);
    opts.statement_timeout_ms = 400;
    opts.lock_timeout_ms = 200;
    opts.pool_wait_ms = 300;
    opts.answer_margin_ms = 300;
    opts.application_name = "cv-test-db";
    cv_db_set_options(&opts);
    tu_db_create("dbfaults", conninfo, sizeof(conninfo));
}

static void teardown(void)
{
    tu_db_drop("dbfaults");
}

static PGconn *connect_or_fail(void)
{
    struct cv_db_err err;
    PGconn *conn = cv_db_connect(conninfo, &err);
    ck_assert_msg(conn != NULL, "%s", err.msg);
    return conn;
}

static struct cv_db_pool *pool_new(unsigned size)
{
    char errstr[256];
    struct cv_db_pool *pool = cv_db_pool_new(conninfo, size, errstr, sizeof(errstr));
    ck_assert_msg(pool != NULL, "%s", errstr);
    return pool;
}

static PGconn *acquire_or_fail(struct cv_db_pool *pool)
{
    struct cv_db_err err;
    PGconn *conn = cv_db_acquire(pool, &err);
    ck_assert_msg(conn != NULL, "%s", err.msg);
    return conn;
}

static char *show(PGconn *conn, const char *name)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SHOW %s", name);
    struct cv_db_err err;
    PGresult *res = cv_db_query(conn, sql, 0, NULL, &err);
    ck_assert_msg(res != NULL, "%s: %s", sql, err.msg);
    char *v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static int backend_pid(PGconn *conn)
{
    struct cv_db_err err;
    PGresult *res = cv_db_query(conn, "SELECT pg_backend_pid()", 0, NULL, &err);
    ck_assert_msg(res != NULL, "%s", err.msg);
    int pid = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return pid;
}

START_TEST(test_only_data_errors_are_permanent)
{
    static const char *const transient[] = {"57014", "57P01", "57P02", "57P03", "08006", "08001",
                                            "40001", "40P01", "55P03", "53300", "53100", "58030",
                                            "XX000", "25P02", "",      NULL};
    static const char *const permanent[] = {"22P05", "22021", "22012", "23505", "23503", "42P01",
                                            "42703", "2F005", "P0001", "0A000", "54001", NULL};
    for (const char *const *s = transient; *s; s++)
        ck_assert_msg(cv_db_sqlstate_transient(*s), "%s should be transient", *s);
    for (const char *const *s = permanent; *s; s++)
        ck_assert_msg(!cv_db_sqlstate_transient(*s), "%s should be permanent", *s);
}
END_TEST

START_TEST(test_every_connection_carries_its_timeouts_and_keepalives)
{
    PGconn *conn = connect_or_fail();
    const char *want[][2] = {{"statement_timeout", "400ms"},    {"lock_timeout", "200ms"},
                             {"tcp_keepalives_idle", "10"},     {"tcp_keepalives_interval", "3"},
                             {"tcp_keepalives_count", "3"},     {"tcp_user_timeout", "20000"},
                             {"application_name", "cv-test-db"}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char *v = show(conn, want[i][0]);
        ck_assert_msg(strcmp(v, want[i][1]) == 0, "%s is %s, not %s", want[i][0], v, want[i][1]);
        free(v);
    }
    PQfinish(conn);
}
END_TEST

START_TEST(test_statement_timeout_is_transient_and_data_error_permanent)
{
    PGconn *conn = connect_or_fail();
    struct cv_db_err err;
    ck_assert(cv_db_exec(conn, "SELECT pg_sleep(3)", 0, NULL, &err) < 0);
    ck_assert_str_eq(err.sqlstate, "57014");
    ck_assert(err.transient);
    ck_assert(cv_db_exec(conn, "SELECT 1/0", 0, NULL, &err) < 0);
    ck_assert_str_eq(err.sqlstate, "22012");
    ck_assert(!err.transient);
    ck_assert(cv_db_exec(conn, "SELECT $1::jsonb", 1, (const char *[]){"\"a\\u0000b\""}, &err) < 0);
    ck_assert_str_eq(err.sqlstate, "22P05");
    ck_assert(!err.transient);
    PQfinish(conn);
}
END_TEST

START_TEST(test_lock_timeout_is_transient)
{
    PGconn *holder = connect_or_fail(), *waiter = connect_or_fail();
    struct cv_db_err err;
    ck_assert(cv_db_exec(holder, "SELECT pg_advisory_lock(42)", 0, NULL, &err) == 0);
    int64_t t0 = cv_monotonic_ms();
    ck_assert(cv_db_exec(waiter, "SELECT pg_advisory_lock(42)", 0, NULL, &err) < 0);
    ck_assert_str_eq(err.sqlstate, "55P03");
    ck_assert(err.transient);
    ck_assert_int_lt(cv_monotonic_ms() - t0, 3000);
    PQfinish(holder);
    PQfinish(waiter);
}
END_TEST

START_TEST(test_unanswered_query_gives_the_connection_up)
{
    PGconn *conn = connect_or_fail();
    struct cv_db_err err;
    /* The server will not cancel it (its timeout off for this session): the client must. */
    ck_assert(cv_db_exec(conn, "SET statement_timeout = 0", 0, NULL, &err) == 0);
    int64_t t0 = cv_monotonic_ms();
    PGresult *res = cv_db_query_within(conn, "SELECT pg_sleep(5)", 0, NULL, 300, &err);
    int64_t took = cv_monotonic_ms() - t0;
    ck_assert(res == NULL);
    ck_assert(err.transient);
    ck_assert_msg(strstr(err.msg, "no answer") != NULL, "%s", err.msg);
    ck_assert_int_lt(took, 2000);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_BAD);
    PQfinish(conn);
}
END_TEST

START_TEST(test_pool_wait_is_bounded)
{
    struct cv_db_pool *pool = pool_new(1);
    struct cv_db_err err;
    PGconn *conn = acquire_or_fail(pool);
    int64_t t0 = cv_monotonic_ms();
    ck_assert(cv_db_acquire(pool, &err) == NULL);
    int64_t took = cv_monotonic_ms() - t0;
    ck_assert(err.transient);
    ck_assert_int_ge(took, 250);
    ck_assert_int_lt(took, 3000);
    cv_db_release(pool, conn);
    conn = acquire_or_fail(pool);
    cv_db_release(pool, conn);
    cv_db_pool_destroy(pool);
}
END_TEST

START_TEST(test_terminated_pooled_connection_is_replaced)
{
    struct cv_db_pool *pool = pool_new(2);
    struct cv_db_err err;
    PGconn *conn = acquire_or_fail(pool);
    int pid = backend_pid(conn);
    cv_db_release(pool, conn);

    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
    PGconn *admin = connect_or_fail();
    ck_assert(cv_db_exec(admin, sql, 0, NULL, &err) == 0);
    /* The backend is gone once it no longer shows in pg_stat_activity. */
    snprintf(sql, sizeof(sql), "SELECT 1 FROM pg_stat_activity WHERE pid = %d", pid);
    for (int i = 0; i < 100; i++) {
        PGresult *res = cv_db_query(admin, sql, 0, NULL, &err);
        ck_assert(res != NULL);
        int gone = PQntuples(res) == 0;
        PQclear(res);
        if (gone)
            break;
        cv_sleep_ms(20, NULL);
    }
    PQfinish(admin);

    /* The same slot comes back working: a new session, and a transaction runs on it. */
    conn = acquire_or_fail(pool);
    ck_assert_int_ne(backend_pid(conn), pid);
    ck_assert_msg(cv_db_begin(conn, &err) == 0, "%s", err.msg);
    ck_assert_msg(cv_db_commit(conn, &err) == 0, "%s", err.msg);
    cv_db_release(pool, conn);
    cv_db_pool_destroy(pool);
}
END_TEST

START_TEST(test_unresponsive_server_makes_the_pool_fail_fast_then_probe)
{
    struct cv_db_pool *pool = pool_new(3);
    struct cv_db_err err;
    PGconn *conn = acquire_or_fail(pool);
    ck_assert(cv_db_exec(conn, "SET statement_timeout = 0", 0, NULL, &err) == 0);
    ck_assert(cv_db_query_within(conn, "SELECT pg_sleep(3)", 0, NULL, 200, &err) == NULL);
    ck_assert(err.no_answer);
    cv_db_release(pool, conn);

    /* Open: the next callers fail at once, with the reason. */
    int64_t t0 = cv_monotonic_ms();
    ck_assert(cv_db_acquire(pool, &err) == NULL);
    ck_assert_int_lt(cv_monotonic_ms() - t0, 100);
    ck_assert(err.transient);
    ck_assert_msg(strstr(err.msg, "no answer") != NULL, "%s", err.msg);

    /* After the pause one caller probes; its answer closes the circuit for everyone. */
    cv_sleep_ms(1100, NULL);
    conn = acquire_or_fail(pool);
    ck_assert(cv_db_acquire(pool, &err) == NULL); /* meanwhile the others still fail fast */
    ck_assert(backend_pid(conn) > 0);
    cv_db_release(pool, conn);
    conn = acquire_or_fail(pool);
    cv_db_release(pool, conn);
    cv_db_pool_destroy(pool);
}
END_TEST

START_TEST(test_begin_on_a_dead_connection_reconnects_once)
{
    PGconn *conn = connect_or_fail(), *admin = connect_or_fail();
    int pid = backend_pid(conn);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
    struct cv_db_err err;
    ck_assert(cv_db_exec(admin, sql, 0, NULL, &err) == 0);
    cv_sleep_ms(200, NULL);
    ck_assert_msg(cv_db_begin(conn, &err) == 0, "%s", err.msg);
    ck_assert_int_ne(backend_pid(conn), pid);
    ck_assert_msg(cv_db_commit(conn, &err) == 0, "%s", err.msg);
    PQfinish(conn);
    PQfinish(admin);
}
END_TEST

/* How many of conn's session's prepared statements have the text sql. */
static int prepared_count(PGconn *conn, const char *sql)
{
    const char *params[] = {sql};
    struct cv_db_err err;
    PGresult *res = cv_db_query(
        conn, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", 1, params, &err);
    ck_assert_msg(res != NULL, "%s", err.msg);
    int n = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

static int add_one(PGconn *conn, const char *n, struct cv_db_err *err)
{
    const char *params[] = {n};
    PGresult *res = cv_db_query(conn, "SELECT $1::int + 1", 1, params, err);
    if (!res)
        return -1;
    int v = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

START_TEST(test_statements_are_prepared_once_per_session)
{
    PGconn *conn = connect_or_fail(), *admin = connect_or_fail();
    struct cv_db_err err;
    ck_assert_int_eq(add_one(conn, "1", &err), 2);
    ck_assert_int_eq(add_one(conn, "41", &err), 42);
    ck_assert_int_eq(prepared_count(conn, "SELECT $1::int + 1"), 1);
    /* Transaction control is not prepared. */
    ck_assert_msg(cv_db_begin(conn, &err) == 0, "%s", err.msg);
    ck_assert_msg(cv_db_commit(conn, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(prepared_count(conn, "BEGIN"), 0);

    /* A statement that fails keeps failing as itself, and its error class says so. */
    ck_assert_msg(cv_db_begin(conn, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(add_one(conn, "x", &err), -1);
    ck_assert_str_eq(err.sqlstate, "22P02");
    ck_assert(!err.transient);
    cv_db_rollback(conn);
    ck_assert_int_eq(add_one(conn, "2", &err), 3);

    /* A new session (the server ended the old one) knows none of the old statements: the
     * cache starts again rather than execute names the server has never seen. */
    int pid = backend_pid(conn);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
    ck_assert(cv_db_exec(admin, sql, 0, NULL, &err) == 0);
    cv_sleep_ms(200, NULL);
    ck_assert_msg(cv_db_begin(conn, &err) == 0, "%s", err.msg);
    ck_assert_int_ne(backend_pid(conn), pid);
    ck_assert_int_eq(add_one(conn, "9", &err), 10);
    ck_assert_msg(cv_db_commit(conn, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(prepared_count(conn, "SELECT $1::int + 1"), 1);
    PQfinish(conn);
    PQfinish(admin);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("db");
    TCase *tc = tcase_create("db");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_only_data_errors_are_permanent);
    tcase_add_test(tc, test_every_connection_carries_its_timeouts_and_keepalives);
    tcase_add_test(tc, test_statement_timeout_is_transient_and_data_error_permanent);
    tcase_add_test(tc, test_lock_timeout_is_transient);
    tcase_add_test(tc, test_unanswered_query_gives_the_connection_up);
    tcase_add_test(tc, test_pool_wait_is_bounded);
    tcase_add_test(tc, test_terminated_pooled_connection_is_replaced);
    tcase_add_test(tc, test_begin_on_a_dead_connection_reconnects_once);
    tcase_add_test(tc, test_statements_are_prepared_once_per_session);
    tcase_add_test(tc, test_unresponsive_server_makes_the_pool_fail_fast_then_probe);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
