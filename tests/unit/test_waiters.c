/* Unit tests of the waiter registry's table (common/src/waiters.c, included to reach its static
 * functions): the deadline heap, removal by key, the ring of recent notifications that closes
 * the read-then-register window, and cv_waiters_add's answers. No thread, no database: the
 * LISTEN side is tested against PostgreSQL in tests/integration/test_waiters.c. */
#include "../../common/src/waiters.c"

#include <check.h>

#include "runner.h"

static struct cv_waiters *w;
static int fired[4096];
static enum cv_wake fired_why[4096];

static void on_fire(void *arg, enum cv_wake why)
{
    int i = (int)(intptr_t)arg;
    fired[i]++;
    fired_why[i] = why;
}

static void setup(void)
{
    w = waiters_alloc(4096);
    ck_assert_ptr_nonnull(w);
    w->listening = 1;
    memset(fired, 0, sizeof(fired));
}

static void teardown(void)
{
    struct waiter *all = NULL;
    table_take_all(w, &all);
    fire_list(w, all, CV_WAKE_SHUTDOWN);
    waiters_free(w);
}

static void check_heap(void)
{
    for (size_t i = 0; i < w->n; i++) {
        ck_assert_uint_eq(w->heap[i]->heap_idx, i);
        if (i > 0)
            ck_assert_int_le(w->heap[(i - 1) / 2]->deadline_ms, w->heap[i]->deadline_ms);
    }
}

static int add(const char *key, int64_t deadline, int i)
{
    return cv_waiters_add(w, key, cv_waiters_mark(w), deadline, on_fire, (void *)(intptr_t)i);
}

START_TEST(test_deadlines_fire_in_order_and_only_when_due)
{
    srand(7);
    for (int i = 0; i < 1000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i % 37);
        ck_assert_int_eq(add(key, rand() % 10000, i), 0);
    }
    check_heap();
    int64_t last = -1;
    for (int64_t now = 0; now <= 10000; now += 250) {
        struct waiter *due = NULL;
        table_take_expired(w, now, &due);
        for (struct waiter *x = due; x != NULL; x = x->fire_next) {
            ck_assert_int_le(x->deadline_ms, now);
            ck_assert_int_gt(x->deadline_ms, last);
        }
        for (size_t i = 0; i < w->n; i++)
            ck_assert_int_gt(w->heap[i]->deadline_ms, now);
        check_heap();
        fire_list(w, due, CV_WAKE_DEADLINE);
        last = now;
    }
    ck_assert_uint_eq(w->n, 0);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(fired[i], 1);
        ck_assert_int_eq(fired_why[i], CV_WAKE_DEADLINE);
    }
}
END_TEST

START_TEST(test_a_key_wakes_its_waiters_only)
{
    /* Removal from the middle of the heap keeps it a heap. */
    for (int i = 0; i < 300; i++) {
        char key[16];
        snprintf(key, sizeof(key), "order-%d", i % 3);
        ck_assert_int_eq(add(key, 1000 + (i * 7919) % 500, i), 0);
    }
    struct waiter *taken = NULL;
    table_take_key(w, "order-1", key_hash("order-1"), &taken);
    check_heap();
    ck_assert_uint_eq(w->n, 200);
    fire_list(w, taken, CV_WAKE_NOTIFIED);
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(fired[i], i % 3 == 1 ? 1 : 0);
    taken = NULL;
    table_take_key(w, "order-9", key_hash("order-9"), &taken);
    ck_assert_ptr_null(taken);
    table_take_key(w, "order-1", key_hash("order-1"), &taken);
    ck_assert_ptr_null(taken); /* once only */
}
END_TEST

START_TEST(test_a_notification_after_the_mark_is_not_missed)
{
    uint64_t mark = cv_waiters_mark(w);
    ring_record(w, key_hash("a")); /* committed between the caller's read and its add */
    ck_assert_int_eq(cv_waiters_add(w, "a", mark, 100, on_fire, (void *)1), 1);
    ck_assert_int_eq(cv_waiters_add(w, "b", mark, 100, on_fire, (void *)2), 0);
    /* A mark taken after the notification registers. */
    ck_assert_int_eq(cv_waiters_add(w, "a", cv_waiters_mark(w), 100, on_fire, (void *)3), 0);
    ck_assert_uint_eq(w->n, 2);

    /* More notifications since the mark than the ring remembers: cannot tell, read again. */
    mark = cv_waiters_mark(w);
    for (int i = 0; i < RING_SIZE; i++)
        ring_record(w, key_hash("other"));
    ck_assert_int_eq(cv_waiters_add(w, "c", mark, 100, on_fire, (void *)4), 1);
    ck_assert_int_eq(cv_waiters_add(w, "c", cv_waiters_mark(w), 100, on_fire, (void *)4), 0);
}
END_TEST

START_TEST(test_a_reconnect_invalidates_older_marks)
{
    uint64_t mark = cv_waiters_mark(w);
    w->missed_before = ++w->seq; /* what the thread does once LISTEN is back */
    ck_assert_int_eq(cv_waiters_add(w, "a", mark, 100, on_fire, (void *)1), 1);
    ck_assert_int_eq(cv_waiters_add(w, "a", cv_waiters_mark(w), 100, on_fire, (void *)1), 0);
    /* While nobody listens, waiters register anyway: the thread wakes them at each attempt. */
    w->listening = 0;
    ck_assert_int_eq(cv_waiters_add(w, "b", mark, 100, on_fire, (void *)2), 0);
}
END_TEST

START_TEST(test_cap_bad_keys_and_stopping)
{
    struct cv_waiters *small = waiters_alloc(3);
    small->listening = 1;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cv_waiters_add(small, "k", 0, 100, on_fire, (void *)(intptr_t)i), 0);
    ck_assert_int_eq(cv_waiters_add(small, "k", 0, 100, on_fire, (void *)9), -1);
    ck_assert_uint_eq(cv_waiters_count(small), 3);
    char long_key[CV_WAITERS_MAX_KEY + 2];
    memset(long_key, 'x', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    ck_assert_int_eq(cv_waiters_add(w, long_key, 0, 100, on_fire, (void *)9), -2);
    ck_assert_int_eq(cv_waiters_add(w, "", 0, 100, on_fire, (void *)9), -2);
    /* Stopped (no thread here): wakes all once, and refuses new waiters with 1. */
    cv_waiters_stop(small);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(fired[i], 1);
        ck_assert_int_eq(fired_why[i], CV_WAKE_SHUTDOWN);
    }
    ck_assert_int_eq(cv_waiters_add(small, "k", cv_waiters_mark(small), 100, on_fire, (void *)9),
                     1);
    ck_assert_int_eq(fired[9], 0);
    cv_waiters_destroy(small);
}
END_TEST

START_TEST(test_channel_names)
{
    char errstr[128];
    ck_assert_ptr_null(cv_waiters_new("dbname=x", "order status", 10, errstr, sizeof(errstr)));
    ck_assert_ptr_null(cv_waiters_new("dbname=x", "1abc", 10, errstr, sizeof(errstr)));
    ck_assert_ptr_null(cv_waiters_new("dbname=x", "Orders", 10, errstr, sizeof(errstr)));
    ck_assert_ptr_null(cv_waiters_new("dbname=x", "ok", 0, errstr, sizeof(errstr)));
    ck_assert(channel_valid("order_status"));
}
END_TEST

static Suite *waiters_suite(void)
{
    Suite *s = suite_create("waiters");
    TCase *tc = tcase_create("table");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_deadlines_fire_in_order_and_only_when_due);
    tcase_add_test(tc, test_a_key_wakes_its_waiters_only);
    tcase_add_test(tc, test_a_notification_after_the_mark_is_not_missed);
    tcase_add_test(tc, test_a_reconnect_invalidates_older_marks);
    tcase_add_test(tc, test_cap_bad_keys_and_stopping);
    tcase_add_test(tc, test_channel_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(waiters_suite());
}
