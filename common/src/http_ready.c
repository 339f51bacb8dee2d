/* Readiness off the request path: a thread runs the server's ready callback every
 * ready_cache_ms and /readyz answers its last result at once, so that a probe never waits on
 * the database or the broker (http_server.c serves it). */
#include "http_int.h"

#include <stdio.h>
#include <time.h>

/* The last cached readiness check: 1 ready, 0 with reason. A check that has not finished for a
 * while (the checker is stuck on a dependency) is reported as such. */
int cv_http_ready_cached(struct cv_http_server *srv, char *reason, size_t reason_size)
{
    pthread_mutex_lock(&srv->ready_lock);
    int ok = srv->ready_ok;
    uint64_t at = srv->ready_at_ns;
    snprintf(reason, reason_size, "%s", srv->ready_reason);
    pthread_mutex_unlock(&srv->ready_lock);
    uint64_t stale_ns = (uint64_t)(srv->ready_cache_ms * 3 + 5000) * 1000000u;
    if (at == 0) {
        snprintf(reason, reason_size, "starting");
        return 0;
    }
    if (cv_http_now_ns() - at > stale_ns) {
        snprintf(reason, reason_size, "readiness check stalled (%.1f s since the last)",
                 (double)(cv_http_now_ns() - at) / 1e9);
        return 0;
    }
    return ok;
}

static void *ready_main(void *arg)
{
    struct cv_http_server *srv = arg;
    pthread_mutex_lock(&srv->ready_lock);
    while (!srv->ready_stop) {
        pthread_mutex_unlock(&srv->ready_lock);
        char reason[256] = "";
        int ok = srv->ready == NULL || srv->ready(srv->app, reason, sizeof(reason));
        pthread_mutex_lock(&srv->ready_lock);
        srv->ready_ok = ok;
        snprintf(srv->ready_reason, sizeof(srv->ready_reason), "%s", reason);
        srv->ready_at_ns = cv_http_now_ns();
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += srv->ready_cache_ms / 1000;
        until.tv_nsec += (long)(srv->ready_cache_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!srv->ready_stop &&
               pthread_cond_timedwait(&srv->ready_cond, &srv->ready_lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&srv->ready_lock);
    return NULL;
}

int cv_http_ready_start(struct cv_http_server *srv)
{
    if (pthread_create(&srv->ready_thread, NULL, ready_main, srv) != 0)
        return -1;
    srv->ready_thread_started = 1;
    return 0;
}

void cv_http_ready_stop(struct cv_http_server *srv)
{
    if (!srv->ready_thread_started)
        return;
    pthread_mutex_lock(&srv->ready_lock);
    srv->ready_stop = 1;
    pthread_cond_signal(&srv->ready_cond);
    pthread_mutex_unlock(&srv->ready_lock);
    pthread_join(srv->ready_thread, NULL);
    srv->ready_thread_started = 0;
}
