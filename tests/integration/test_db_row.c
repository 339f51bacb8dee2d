/* Single rows and row counts (db_row.c) against a real PostgreSQL: a row as JSON with its
 * second column, no row, unreadable JSON, a row's first column as text, and rows changed. */
#include <check.h>
#include <stdlib.h>

#include "cv/db.h"
#include "cv/log.h"
#include "testutil.h"

static char conninfo[512];
static PGconn *conn;

static void setup(void)
{
    cv_log_init("test", CV_LOG_ERROR);
    tu_db_create("dbrow", conninfo, sizeof(conninfo));
    struct cv_db_err err;
    conn = cv_db_connect(conninfo, &err);
    ck_assert_msg(conn != NULL, "%s", err.msg);
    ck_assert_msg(
        cv_db_exec(conn, "CREATE TABLE t (k text PRIMARY KEY, v bigint)", 0, NULL, &err) == 0 &&
            cv_db_exec(conn, "INSERT INTO t VALUES ('a', 7), ('b', 8)", 0, NULL, &err) == 0,
        "%s", err.msg);
}

static void teardown(void)
{
    PQfinish(conn);
    tu_db_drop("dbrow");
}

START_TEST(test_row_as_json)
{
    struct cv_db_err err;
    const char *a[] = {"a"}, *z[] = {"z"};
    long long v = 0;
    int found = -2;
    json_t *row =
        cv_db_query_json(conn, "SELECT json_build_object('k', k)::text, v FROM t WHERE k = $1", 1,
                         a, &v, &found, &err);
    ck_assert_int_eq(found, 1);
    ck_assert_str_eq(json_string_value(json_object_get(row, "k")), "a");
    ck_assert_int_eq(v, 7);
    json_decref(row);

    row = cv_db_query_json(conn, "SELECT json_build_object('k', k)::text FROM t WHERE k = $1", 1, z,
                           NULL, &found, &err);
    ck_assert_ptr_null(row);
    ck_assert_int_eq(found, 0);

    /* Not JSON: an error, not "no such row". */
    row = cv_db_query_json(conn, "SELECT 'not json' FROM t WHERE k = $1", 1, a, NULL, &found, &err);
    ck_assert_ptr_null(row);
    ck_assert_int_eq(found, -1);
    ck_assert_int_eq(err.transient, 0);

    row = cv_db_query_json(conn, "SELECT nonsense FROM t", 0, NULL, NULL, &found, &err);
    ck_assert_ptr_null(row);
    ck_assert_int_eq(found, -1);
    ck_assert_str_eq(err.sqlstate, "42703");
}
END_TEST

START_TEST(test_row_as_text)
{
    struct cv_db_err err;
    const char *b[] = {"b"}, *z[] = {"z"};
    char out[4] = "x";
    ck_assert_int_eq(
        cv_db_query_text(conn, "SELECT v * 1000 FROM t WHERE k = $1", 1, b, out, sizeof(out), &err),
        1);
    ck_assert_str_eq(out, "800"); /* truncated to the buffer */
    ck_assert_int_eq(
        cv_db_query_text(conn, "SELECT v FROM t WHERE k = $1", 1, z, out, sizeof(out), &err), 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(cv_db_query_text(conn, "SELECT nonsense", 0, NULL, out, sizeof(out), &err),
                     -1);
}
END_TEST

START_TEST(test_rows_changed)
{
    struct cv_db_err err;
    const char *a[] = {"a"};
    ck_assert_int_eq(cv_db_exec_count(conn, "UPDATE t SET v = v + 1", 0, NULL, &err), 2);
    ck_assert_int_eq(
        cv_db_exec_count(conn, "INSERT INTO t VALUES ($1, 1) ON CONFLICT DO NOTHING", 1, a, &err),
        0);
    ck_assert_int_eq(cv_db_exec_count(conn, "DELETE FROM t WHERE k = $1", 1, a, &err), 1);
    ck_assert_int_eq(cv_db_exec_count(conn, "UPDATE nowhere SET v = 1", 0, NULL, &err), -1);
    ck_assert_str_eq(err.sqlstate, "42P01");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("db rows");
    TCase *tc = tcase_create("db rows");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_row_as_json);
    tcase_add_test(tc, test_row_as_text);
    tcase_add_test(tc, test_rows_changed);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
