/* The notification waiter registry (cv/waiters.h): waiters hashed by key and kept in a min-heap
 * by deadline, a ring of recent notifications that closes the read-then-register window, and
 * one thread that LISTENs on a dedicated connection and fires what is due. */
#include "cv/waiters.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cv/db.h"
#include "cv/log.h"
#include "cv/metrics.h"
#include "cv/util.h"

#define RING_SIZE 1024   /* recent notifications remembered for cv_waiters_add */
#define MAX_POLL_MS 1000 /* the thread looks at its deadlines at least this often */
#define RECONNECT_MAX_MS 5000

struct waiter {
    char key[CV_WAITERS_MAX_KEY + 1];
    uint32_t hash;
    int64_t deadline_ms;
    cv_waiters_fn fn;
    void *arg;
    size_t heap_idx;
    struct waiter *prev, *next; /* bucket chain */
    struct waiter *fire_next;   /* list of waiters being fired */
};

struct ring_entry {
    uint64_t seq;
    uint32_t hash;
};

struct cv_waiters {
    char *conninfo;
    char channel[64];
    size_t cap;

    pthread_mutex_t lock;
    struct waiter **buckets;
    size_t nbuckets; /* a power of two */
    struct waiter **heap;
    size_t n;
    uint64_t seq;           /* notifications received (the mark clock) */
    uint64_t missed_before; /* marks below this may have missed a notification */
    struct ring_entry ring[RING_SIZE];
    int listening;
    int stop;

    int wake_fd[2]; /* pipe: a new earliest deadline, or stop */
    pthread_t thread;
    int thread_started;
    PGconn *conn; /* the thread's */

    struct cv_gauge *waiting;
    struct cv_counter *woken[3]; /* by enum cv_wake */
};

static uint32_t key_hash(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h;
}

/* ---- the table: buckets by key, min-heap by deadline (lock held) ---- */

static void heap_swap(struct cv_waiters *w, size_t a, size_t b)
{
    struct waiter *t = w->heap[a];
    w->heap[a] = w->heap[b];
    w->heap[b] = t;
    w->heap[a]->heap_idx = a;
    w->heap[b]->heap_idx = b;
}

static void heap_up(struct cv_waiters *w, size_t i)
{
    while (i > 0 && w->heap[(i - 1) / 2]->deadline_ms > w->heap[i]->deadline_ms) {
        heap_swap(w, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct cv_waiters *w, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;
        if (l < w->n && w->heap[l]->deadline_ms < w->heap[min]->deadline_ms)
            min = l;
        if (r < w->n && w->heap[r]->deadline_ms < w->heap[min]->deadline_ms)
            min = r;
        if (min == i)
            return;
        heap_swap(w, i, min);
        i = min;
    }
}

static void table_insert(struct cv_waiters *w, struct waiter *x)
{
    struct waiter **b = &w->buckets[x->hash & (w->nbuckets - 1)];
    x->prev = NULL;
    x->next = *b;
    if (*b != NULL)
        (*b)->prev = x;
    *b = x;
    x->heap_idx = w->n;
    w->heap[w->n++] = x;
    heap_up(w, x->heap_idx);
}

static void table_remove(struct cv_waiters *w, struct waiter *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        w->buckets[x->hash & (w->nbuckets - 1)] = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    size_t i = x->heap_idx;
    w->n--;
    if (i != w->n) {
        w->heap[i] = w->heap[w->n];
        w->heap[i]->heap_idx = i;
        heap_down(w, i);
        heap_up(w, i);
    }
}

/* Moves the waiters of key onto *fire. */
static void table_take_key(struct cv_waiters *w, const char *key, uint32_t hash,
                           struct waiter **fire)
{
    struct waiter *x = w->buckets[hash & (w->nbuckets - 1)];
    while (x != NULL) {
        struct waiter *next = x->next;
        if (x->hash == hash && strcmp(x->key, key) == 0) {
            table_remove(w, x);
            x->fire_next = *fire;
            *fire = x;
        }
        x = next;
    }
}

/* Moves the waiters whose deadline is at or before now onto *fire. */
static void table_take_expired(struct cv_waiters *w, int64_t now, struct waiter **fire)
{
    while (w->n > 0 && w->heap[0]->deadline_ms <= now) {
        struct waiter *x = w->heap[0];
        table_remove(w, x);
        x->fire_next = *fire;
        *fire = x;
    }
}

static void table_take_all(struct cv_waiters *w, struct waiter **fire)
{
    while (w->n > 0) {
        struct waiter *x = w->heap[w->n - 1];
        table_remove(w, x);
        x->fire_next = *fire;
        *fire = x;
    }
}

/* ---- recent notifications (lock held) ---- */

static void ring_record(struct cv_waiters *w, uint32_t hash)
{
    w->seq++;
    w->ring[w->seq % RING_SIZE] = (struct ring_entry){w->seq, hash};
}

/* 1 if a notification of hash (or one that may have been missed) came after mark. */
static int ring_seen_since(const struct cv_waiters *w, uint32_t hash, uint64_t mark)
{
    if (mark < w->missed_before)
        return 1;
    if (w->seq - mark >= RING_SIZE)
        return 1; /* too many since: cannot tell, say yes */
    for (uint64_t s = mark + 1; s <= w->seq; s++)
        if (w->ring[s % RING_SIZE].hash == hash)
            return 1;
    return 0;
}

/* Calls each waiter of the list (lock not held) and frees it. */
static void fire_list(struct cv_waiters *w, struct waiter *fire, enum cv_wake why)
{
    size_t n = 0;
    while (fire != NULL) {
        struct waiter *next = fire->fire_next;
        fire->fn(fire->arg, why);
        free(fire);
        fire = next;
        n++;
    }
    if (n > 0 && w->waiting != NULL) {
        cv_gauge_add(w->waiting, -(double)n);
        cv_counter_add(w->woken[why], n);
    }
}

/* ---- the thread ---- */

static void wake_thread(struct cv_waiters *w)
{
    char c = 1;
    ssize_t rc = write(w->wake_fd[1], &c, 1); /* full pipe: a wake-up is pending anyway */
    (void)rc;
}

/* Connects (cv_db_connect: the library's connection settings, timeouts and keepalives, so that
 * a peer that silently vanished is noticed) and LISTENs. 0, or -1 (logged). */
static int listen_connect(struct cv_waiters *w)
{
    struct cv_db_err err;
    w->conn = cv_db_connect(w->conninfo, &err);
    if (w->conn == NULL) {
        cv_log_warn("waiters: cannot connect for LISTEN %s: %s", w->channel, err.msg);
        return -1;
    }
    char sql[96];
    snprintf(sql, sizeof(sql), "LISTEN %s", w->channel);
    PGresult *res = PQexec(w->conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        cv_log_warn("waiters: LISTEN %s: %s", w->channel, PQresultErrorMessage(res));
    PQclear(res);
    if (!ok || PQsetnonblocking(w->conn, 1) != 0)
        goto cleanup;
    return 0;
cleanup:
    PQfinish(w->conn);
    w->conn = NULL;
    return -1;
}

/* Reads what arrived on the connection; records notifications and moves their waiters onto
 * *fire. -1 if the connection broke. Lock held. */
static int take_notifications(struct cv_waiters *w, struct waiter **fire)
{
    if (!PQconsumeInput(w->conn) || PQstatus(w->conn) == CONNECTION_BAD)
        return -1;
    PGnotify *note;
    while ((note = PQnotifies(w->conn)) != NULL) {
        if (strlen(note->extra) <= CV_WAITERS_MAX_KEY) {
            uint32_t hash = key_hash(note->extra);
            ring_record(w, hash);
            table_take_key(w, note->extra, hash, fire);
        }
        PQfreemem(note);
    }
    return 0;
}

static void *waiters_main(void *arg)
{
    struct cv_waiters *w = arg;
    struct cv_backoff backoff = CV_BACKOFF(100, RECONNECT_MAX_MS);
    for (;;) {
        pthread_mutex_lock(&w->lock);
        int stop = w->stop;
        pthread_mutex_unlock(&w->lock);
        if (stop)
            break;

        if (w->conn == NULL) {
            int rc = listen_connect(w);
            struct waiter *fire = NULL;
            pthread_mutex_lock(&w->lock);
            if (rc == 0) {
                /* Whatever was notified while nobody listened is lost: every waiter reads
                 * again, and marks taken before now are stale. */
                w->listening = 1;
                w->missed_before = ++w->seq;
                cv_backoff_reset(&backoff);
                cv_log_info("waiters: listening on %s", w->channel);
            }
            /* Down: the waiters read again now, and again at each attempt (polling). */
            table_take_all(w, &fire);
            pthread_mutex_unlock(&w->lock);
            fire_list(w, fire, CV_WAKE_NOTIFIED);
            if (rc < 0) {
                struct pollfd pfd = {.fd = w->wake_fd[0], .events = POLLIN};
                poll(&pfd, 1, cv_backoff_next(&backoff));
                char buf[64];
                while (read(w->wake_fd[0], buf, sizeof(buf)) > 0)
                    ;
                continue;
            }
        }

        pthread_mutex_lock(&w->lock);
        int64_t now = cv_monotonic_ms();
        int timeout = MAX_POLL_MS;
        if (w->n > 0) {
            int64_t until = w->heap[0]->deadline_ms - now;
            timeout = until < 0 ? 0 : until < MAX_POLL_MS ? (int)until : MAX_POLL_MS;
        }
        pthread_mutex_unlock(&w->lock);

        struct pollfd pfd[2] = {{.fd = PQsocket(w->conn), .events = POLLIN},
                                {.fd = w->wake_fd[0], .events = POLLIN}};
        int rc = poll(pfd, 2, timeout);
        if (rc < 0 && errno != EINTR) {
            cv_log_error("waiters: poll: %s", strerror(errno));
            cv_sleep_ms(100, NULL);
            continue;
        }
        if (rc > 0 && (pfd[1].revents & POLLIN)) {
            char buf[64];
            while (read(w->wake_fd[0], buf, sizeof(buf)) > 0)
                ;
        }
        struct waiter *notified = NULL, *expired = NULL;
        int broken = 0;
        pthread_mutex_lock(&w->lock);
        if (rc > 0 && pfd[0].revents != 0)
            broken = take_notifications(w, &notified) < 0;
        if (broken)
            w->listening = 0;
        table_take_expired(w, cv_monotonic_ms(), &expired);
        pthread_mutex_unlock(&w->lock);
        fire_list(w, notified, CV_WAKE_NOTIFIED);
        fire_list(w, expired, CV_WAKE_DEADLINE);
        if (broken) {
            cv_log_warn("waiters: the LISTEN connection broke: %s", PQerrorMessage(w->conn));
            PQfinish(w->conn);
            w->conn = NULL;
        }
    }
    return NULL;
}

/* ---- API ---- */

/* Allocates the table for cap waiters (no thread, no connection). NULL out of memory. */
static struct cv_waiters *waiters_alloc(size_t cap)
{
    struct cv_waiters *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->cap = cap;
    w->nbuckets = 64;
    while (w->nbuckets < cap && w->nbuckets < 65536)
        w->nbuckets *= 2;
    w->buckets = calloc(w->nbuckets, sizeof(*w->buckets));
    w->heap = calloc(cap ? cap : 1, sizeof(*w->heap));
    w->missed_before = 0;
    w->wake_fd[0] = w->wake_fd[1] = -1;
    pthread_mutex_init(&w->lock, NULL);
    if (w->buckets == NULL || w->heap == NULL) {
        free(w->buckets);
        free(w->heap);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

static void waiters_free(struct cv_waiters *w)
{
    free(w->buckets);
    free(w->heap);
    free(w->conninfo);
    if (w->wake_fd[0] >= 0)
        close(w->wake_fd[0]);
    if (w->wake_fd[1] >= 0)
        close(w->wake_fd[1]);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

static int channel_valid(const char *channel)
{
    size_t n = strlen(channel);
    if (n == 0 || n > 63 || (channel[0] >= '0' && channel[0] <= '9'))
        return 0;
    return strspn(channel, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

struct cv_waiters *cv_waiters_new(const char *conninfo, const char *channel, size_t cap,
                                  char *errstr, size_t errstr_size)
{
    if (!channel_valid(channel) || cap == 0) {
        snprintf(errstr, errstr_size,
                 "waiters: the channel must be 1 to 63 of a-z 0-9 _ and cap positive");
        return NULL;
    }
    struct cv_waiters *w = waiters_alloc(cap);
    if (w == NULL || (w->conninfo = strdup(conninfo)) == NULL || pipe2(w->wake_fd, O_CLOEXEC) < 0 ||
        fcntl(w->wake_fd[0], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(w->wake_fd[1], F_SETFL, O_NONBLOCK) < 0) {
        snprintf(errstr, errstr_size, "waiters: out of resources");
        goto cleanup;
    }
    snprintf(w->channel, sizeof(w->channel), "%s", channel);
    char labels[128] = "";
    cv_metrics_label_append(labels, sizeof(labels), "channel", channel);
    w->waiting = cv_metrics_gauge("notify_waiters", "Requests waiting on a notification.", labels);
    static const char *const reasons[] = {"notified", "deadline", "shutdown"};
    for (int i = 0; i < 3; i++) {
        char l[192];
        snprintf(l, sizeof(l), "%s", labels);
        cv_metrics_label_append(l, sizeof(l), "reason", reasons[i]);
        w->woken[i] = cv_metrics_counter("notify_wakeups_total", "Waiters woken, by reason.", l);
    }
    if (pthread_create(&w->thread, NULL, waiters_main, w) != 0) {
        snprintf(errstr, errstr_size, "waiters: cannot start the thread");
        goto cleanup;
    }
    w->thread_started = 1;
    return w;
cleanup:
    if (w != NULL)
        waiters_free(w);
    return NULL;
}

void cv_waiters_stop(struct cv_waiters *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_mutex_unlock(&w->lock);
    wake_thread(w);
    if (w->thread_started)
        pthread_join(w->thread, NULL);
    w->thread_started = 0;
    struct waiter *fire = NULL;
    pthread_mutex_lock(&w->lock);
    w->listening = 0;
    table_take_all(w, &fire);
    pthread_mutex_unlock(&w->lock);
    fire_list(w, fire, CV_WAKE_SHUTDOWN);
}

void cv_waiters_destroy(struct cv_waiters *w)
{
    if (w == NULL)
        return;
    cv_waiters_stop(w);
    PQfinish(w->conn);
    waiters_free(w);
}

uint64_t cv_waiters_mark(struct cv_waiters *w)
{
    pthread_mutex_lock(&w->lock);
    uint64_t mark = w->seq;
    pthread_mutex_unlock(&w->lock);
    return mark;
}

int cv_waiters_add(struct cv_waiters *w, const char *key, uint64_t mark, int64_t deadline_ms,
                   cv_waiters_fn fn, void *arg)
{
    size_t len = strlen(key);
    if (len == 0 || len > CV_WAITERS_MAX_KEY)
        return -2;
    uint32_t hash = key_hash(key);
    pthread_mutex_lock(&w->lock);
    /* Not listening: register anyway; the thread wakes everyone at each reconnect attempt. */
    if (w->stop || (w->listening && ring_seen_since(w, hash, mark))) {
        pthread_mutex_unlock(&w->lock);
        return 1;
    }
    if (w->n >= w->cap) {
        pthread_mutex_unlock(&w->lock);
        return -1;
    }
    struct waiter *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        pthread_mutex_unlock(&w->lock);
        return -1;
    }
    memcpy(x->key, key, len + 1);
    x->hash = hash;
    x->deadline_ms = deadline_ms;
    x->fn = fn;
    x->arg = arg;
    table_insert(w, x);
    int earliest = x->heap_idx == 0;
    pthread_mutex_unlock(&w->lock);
    if (w->waiting != NULL)
        cv_gauge_add(w->waiting, 1);
    if (earliest)
        wake_thread(w); /* its poll may be sleeping past this deadline */
    return 0;
}

size_t cv_waiters_count(struct cv_waiters *w)
{
    pthread_mutex_lock(&w->lock);
    size_t n = w->n;
    pthread_mutex_unlock(&w->lock);
    return n;
}

int cv_waiters_listening(struct cv_waiters *w)
{
    pthread_mutex_lock(&w->lock);
    int listening = w->listening;
    pthread_mutex_unlock(&w->lock);
    return listening;
}
