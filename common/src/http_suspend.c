/* Suspended requests (long polls): a handler parks its request instead of blocking a server
 * thread, and whoever it waits on resumes it from any thread. Wraps libmicrohttpd's
 * suspend/resume with the states that make a resume safe at any moment (even before the
 * handler returned) and a list that lets the server resume leftovers before it stops. */
#include "http_int.h"

#include "cv/log.h"
#include "cv/metrics.h"

void cv_http_suspend(struct cv_http_request *req, cv_http_handler on_resume)
{
    struct cv_http_server *srv = req->srv;
    pthread_mutex_lock(&srv->suspend_lock);
    req->on_resume = on_resume;
    req->susp_state = SUSP_PENDING;
    pthread_mutex_unlock(&srv->suspend_lock);
}

void cv_http_suspend_cancel(struct cv_http_request *req)
{
    struct cv_http_server *srv = req->srv;
    pthread_mutex_lock(&srv->suspend_lock);
    if (req->susp_state == SUSP_PENDING) {
        req->susp_state = SUSP_NONE;
        req->on_resume = NULL;
    }
    pthread_mutex_unlock(&srv->suspend_lock);
}

void cv_http_resume(struct cv_http_request *req)
{
    struct cv_http_server *srv = req->srv;
    pthread_mutex_lock(&srv->suspend_lock);
    if (req->susp_state == SUSP_PENDING) {
        req->susp_state = SUSP_EARLY; /* the handler is still running: settle() sees it */
        pthread_mutex_unlock(&srv->suspend_lock);
        return;
    }
    if (req->susp_state != SUSP_ON) {
        pthread_mutex_unlock(&srv->suspend_lock);
        cv_log_error("http: cv_http_resume of a request that is not suspended (state %d)",
                     req->susp_state);
        return;
    }
    req->susp_state = SUSP_RESUMING;
    if (req->susp_prev != NULL)
        req->susp_prev->susp_next = req->susp_next;
    else
        srv->suspended = req->susp_next;
    if (req->susp_next != NULL)
        req->susp_next->susp_prev = req->susp_prev;
    req->susp_prev = req->susp_next = NULL;
    struct MHD_Connection *conn = req->conn;
    pthread_mutex_unlock(&srv->suspend_lock);
    cv_gauge_add(srv->suspended_gauge, -1);
    /* Still suspended, so req and conn stay valid until libmicrohttpd takes this up. */
    MHD_resume_connection(conn);
}

int cv_http_draining(const struct cv_http_request *req)
{
    return atomic_load(&req->srv->draining);
}

/* The connection is suspended under suspend_lock, so cv_http_resume never reaches
 * libmicrohttpd before the suspension did. */
int cv_http_suspension_settle(struct cv_http_server *srv, struct cv_http_request *req)
{
    for (;;) {
        pthread_mutex_lock(&srv->suspend_lock);
        int state = req->susp_state;
        if (state == SUSP_PENDING && !atomic_load(&srv->destroying)) {
            MHD_suspend_connection(req->conn);
            req->susp_state = SUSP_ON;
            req->susp_prev = NULL;
            req->susp_next = srv->suspended;
            if (srv->suspended != NULL)
                srv->suspended->susp_prev = req;
            srv->suspended = req;
            pthread_mutex_unlock(&srv->suspend_lock);
            cv_gauge_add(srv->suspended_gauge, 1);
            return 1;
        }
        req->susp_state = SUSP_NONE;
        cv_http_handler fn = req->on_resume;
        req->on_resume = NULL;
        pthread_mutex_unlock(&srv->suspend_lock);
        if (state == SUSP_PENDING) { /* the server is going away: answer now */
            if (req->resp.status == 0)
                cv_http_reply_problem(&req->resp, 503, NULL, "shutting down", NULL);
            return 0;
        }
        if (state != SUSP_EARLY)
            return 0;
        fn(req, &req->resp, srv->app);
    }
}

void cv_http_resume_all(struct cv_http_server *srv)
{
    for (;;) {
        pthread_mutex_lock(&srv->suspend_lock);
        struct cv_http_request *req = srv->suspended;
        if (req != NULL)
            req->forced = 1;
        pthread_mutex_unlock(&srv->suspend_lock);
        if (req == NULL)
            return;
        cv_http_resume(req);
    }
}
