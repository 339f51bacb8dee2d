/* The waiter registry against the real PostgreSQL: a NOTIFY from another connection wakes the
 * waiters of its key (and only them), deadlines fire on time, a killed LISTEN connection is
 * re-established and wakes every waiter to read again, and stopping wakes whoever is left. */
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cv/db.h"
#include "cv/util.h"
#include "cv/waiters.h"
#include "testutil.h"

#define NSLOTS 8

static char conninfo[512];
static PGconn *conn;
static struct cv_waiters *w;
static atomic_int fired[NSLOTS];
static atomic_int why[NSLOTS];
static atomic_llong fired_at[NSLOTS];

static void on_fire(void *arg, enum cv_wake reason)
{
    int i = (int)(intptr_t)arg;
    atomic_store(&why[i], (int)reason);
    atomic_store(&fired_at[i], cv_monotonic_ms());
    atomic_fetch_add(&fired[i], 1);
}

static int wait_fired(int i, int ms)
{
    for (int t = 0; t < ms && atomic_load(&fired[i]) == 0; t += 10)
        cv_sleep_ms(10, NULL);
    return atomic_load(&fired[i]);
}

static void wait_listening(void)
{
    for (int t = 0; t < 10000 && !cv_waiters_listening(w); t += 10)
        cv_sleep_ms(10, NULL);
    ck_assert(cv_waiters_listening(w));
}

static void sql(const char *text)
{
    struct cv_db_err err;
    ck_assert_msg(cv_db_exec(conn, text, 0, NULL, &err) == 0, "%s: %s", text, err.msg);
}

static void setup(void)
{
    tu_db_create("waiters", conninfo, sizeof(conninfo));
    struct cv_db_err err;
    conn = cv_db_connect(conninfo, &err);
    ck_assert_msg(conn != NULL, "%s", err.msg);
    char errstr[256];
    w = cv_waiters_new(conninfo, "test_chan", 100, errstr, sizeof(errstr));
    ck_assert_msg(w != NULL, "%s", errstr);
    for (int i = 0; i < NSLOTS; i++) {
        atomic_store(&fired[i], 0);
        atomic_store(&why[i], -1);
    }
    wait_listening();
}

static void teardown(void)
{
    cv_waiters_destroy(w);
    PQfinish(conn);
    tu_db_drop("waiters");
}

static int add(const char *key, int64_t in_ms, int slot)
{
    return cv_waiters_add(w, key, cv_waiters_mark(w), cv_monotonic_ms() + in_ms, on_fire,
                          (void *)(intptr_t)slot);
}

START_TEST(test_notify_wakes_its_key)
{
    ck_assert_int_eq(add("order-1", 20000, 0), 0);
    ck_assert_int_eq(add("order-1", 20000, 1), 0);
    ck_assert_int_eq(add("order-2", 20000, 2), 0);
    sql("SELECT pg_notify('test_chan', 'order-1')");
    ck_assert_int_eq(wait_fired(0, 5000), 1);
    ck_assert_int_eq(wait_fired(1, 5000), 1);
    ck_assert_int_eq(atomic_load(&why[0]), CV_WAKE_NOTIFIED);
    cv_sleep_ms(200, NULL);
    ck_assert_int_eq(atomic_load(&fired[2]), 0);
    ck_assert_uint_eq(cv_waiters_count(w), 1);
    /* Another channel's notification wakes nobody. */
    sql("SELECT pg_notify('other_chan', 'order-2')");
    cv_sleep_ms(200, NULL);
    ck_assert_int_eq(atomic_load(&fired[2]), 0);
    /* A notification that came between a mark and the add is not missed. */
    uint64_t mark = cv_waiters_mark(w);
    sql("SELECT pg_notify('test_chan', 'order-3')");
    for (int t = 0; t < 5000 && cv_waiters_mark(w) == mark; t += 10)
        cv_sleep_ms(10, NULL);
    ck_assert_int_eq(
        cv_waiters_add(w, "order-3", mark, cv_monotonic_ms() + 20000, on_fire, (void *)3), 1);
}
END_TEST

START_TEST(test_deadline_fires_on_time)
{
    int64_t t0 = cv_monotonic_ms();
    ck_assert_int_eq(add("slow", 20000, 1), 0);
    ck_assert_int_eq(add("soon", 300, 0), 0); /* earlier than what the thread sleeps towards */
    ck_assert_int_eq(wait_fired(0, 3000), 1);
    int64_t took = atomic_load(&fired_at[0]) - t0;
    ck_assert_int_ge(took, 300);
    ck_assert_int_lt(took, 1500);
    ck_assert_int_eq(atomic_load(&why[0]), CV_WAKE_DEADLINE);
    ck_assert_int_eq(atomic_load(&fired[1]), 0);
}
END_TEST

START_TEST(test_lost_listen_connection_wakes_everyone_and_comes_back)
{
    ck_assert_int_eq(add("k", 30000, 0), 0);
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'LISTEN%'");
    /* Notifications may have been lost meanwhile: the waiter is told to read again. */
    ck_assert_int_eq(wait_fired(0, 10000), 1);
    ck_assert_int_eq(atomic_load(&why[0]), CV_WAKE_NOTIFIED);
    wait_listening();
    ck_assert_int_eq(add("k", 30000, 1), 0);
    sql("SELECT pg_notify('test_chan', 'k')");
    ck_assert_int_eq(wait_fired(1, 5000), 1);
}
END_TEST

START_TEST(test_stop_wakes_the_rest)
{
    ck_assert_int_eq(add("a", 30000, 0), 0);
    ck_assert_int_eq(add("b", 30000, 1), 0);
    cv_waiters_stop(w);
    ck_assert_int_eq(atomic_load(&fired[0]), 1);
    ck_assert_int_eq(atomic_load(&fired[1]), 1);
    ck_assert_int_eq(atomic_load(&why[1]), CV_WAKE_SHUTDOWN);
    ck_assert_int_eq(add("c", 30000, 2), 1);
}
END_TEST

static Suite *waiters_suite(void)
{
    Suite *s = suite_create("waiters_pg");
    TCase *tc = tcase_create("listen");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_notify_wakes_its_key);
    tcase_add_test(tc, test_deadline_fires_on_time);
    tcase_add_test(tc, test_lost_listen_connection_wakes_everyone_and_comes_back);
    tcase_add_test(tc, test_stop_wakes_the_rest);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(waiters_suite());
}
