/* Property tests of a service's consumer state machine against the real PostgreSQL: the events
 * of one order, in a random permutation, split between two appliers that run at the same time
 * on their own connections (as two replicas holding different partitions do; some events are
 * redelivered to both), each event applied as the runtime does (claim its id, on_batch,
 * on_event, commit; retry on a transient failure). Every run of a scenario must end in the
 * same state and emit each outcome event the expected number of times. Header-only: each
 * service test includes it once, after the service's own .c files. */
#ifndef CV_STATEMACHINE_H
#define CV_STATEMACHINE_H

#include <pthread.h>
#include <time.h>

#include "../../common/src/service_int.h"
#include "cv/avro.h"
#include "cv/dedup.h"
#include "cv/embed.h"
#include "cv/log.h"
#include "testutil.h"

#define SM_MAX_EVENTS 16
#define SM_RUNS_DEFAULT 100

/* One event as a consumer receives it. */
struct sm_event {
    struct cv_event ev;
    char type[64];
    char topic[32];
    char event_id[37];
};

/* What a scenario expects of one event type's emissions per run: min..max times. */
struct sm_emits {
    const char *type;
    int min, max;
};

struct sm_applier {
    const char *conninfo;
    struct cv_service *svc;
    struct sm_event *events[SM_MAX_EVENTS * 2];
    size_t n;
    pthread_barrier_t *go;
    char error[512];
};

/* The service's on_batch (struct cv_service_def). */
typedef int (*sm_batch_fn)(struct cv_service *svc, PGconn *conn,
                           const struct cv_event *const *events, size_t n, struct cv_db_err *err);

static char sm_conninfo[512];
static struct cv_service_def sm_def;
static struct cv_service sm_svc;
static unsigned sm_seed;

/* Creates the service's database and its runtime stand-in (name, topic, handlers). */
static void sm_setup(const char *name, const char *topic, cv_event_handler on_event,
                     sm_batch_fn on_batch)
{
    cv_log_init(name, CV_LOG_ERROR);
    char errstr[256];
    ck_assert_msg(cv_avro_catalog_load(errstr, sizeof(errstr)) == 0, "%s", errstr);
    char suffix[64];
    snprintf(suffix, sizeof(suffix), "sm_%s_%d", name, (int)getpid());
    tu_db_create(suffix, sm_conninfo, sizeof(sm_conninfo));
    PGconn *conn = PQconnectdb(sm_conninfo);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "%s", PQerrorMessage(conn));
    struct cv_db_err err;
    ck_assert_msg(cv_db_migrate(conn, cv_common_migrations, &err) == 0, "%s", err.msg);
    ck_assert_msg(cv_db_migrate(conn, cv_service_migrations, &err) == 0, "%s", err.msg);
    PQfinish(conn);
    memset(&sm_svc, 0, sizeof(sm_svc));
    memset(&sm_def, 0, sizeof(sm_def));
    sm_def.name = name;
    sm_def.on_event = on_event;
    sm_def.on_batch = on_batch;
    sm_svc.def = &sm_def;
    snprintf(sm_svc.topic, sizeof(sm_svc.topic), "%s", topic);
    snprintf(sm_svc.source, sizeof(sm_svc.source), "/conveyor/%s", name);
    const char *seed = getenv("SM_SEED");
    sm_seed = seed ? (unsigned)strtoul(seed, NULL, 10) : (unsigned)time(NULL);
    fprintf(stderr, "%s state machine: seed %u (SM_SEED to repeat)\n", name, sm_seed);
}

static void sm_teardown(const char *name)
{
    cv_avro_catalog_free();
    char suffix[64];
    snprintf(suffix, sizeof(suffix), "sm_%s_%d", name, (int)getpid());
    tu_db_drop(suffix);
}

static PGconn *sm_connect(void)
{
    PGconn *conn = PQconnectdb(sm_conninfo);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "%s", PQerrorMessage(conn));
    PQclear(PQexec(conn, "SET client_min_messages TO warning"));
    return conn;
}

/* An event of type on topic with data (fields except metadata; takes ownership), a new id. */
static struct sm_event *sm_event_new(const char *type, const char *topic, const char *order_id,
                                     json_t *data)
{
    struct sm_event *e = calloc(1, sizeof(*e));
    snprintf(e->type, sizeof(e->type), "%s", type);
    snprintf(e->topic, sizeof(e->topic), "%s", topic);
    cv_uuid_v4(e->event_id);
    json_object_set_new(data, "metadata",
                        json_pack("{s:s, s:I, s:s, s:s, s:n}", "event_id", e->event_id,
                                  "occurred_at", (json_int_t)1717243200123LL, "producer", "test",
                                  "correlation_id", order_id, "causation_id"));
    e->ev.type = e->type;
    e->ev.topic = e->topic;
    e->ev.event_id = e->event_id;
    e->ev.key = NULL;
    e->ev.data = data;
    return e;
}

static void sm_event_free(struct sm_event *e)
{
    if (!e)
        return;
    json_decref(e->ev.data);
    free(e);
}

/* Applies one event as the runtime does, retrying transient failures. 0, or -1 with error. */
static int sm_apply(PGconn *conn, struct cv_service *svc, struct sm_event *e, char *error,
                    size_t error_size)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        struct cv_db_err err = {0};
        char reason[512] = "";
        if (cv_db_begin(conn, &err) < 0)
            goto transient;
        int claimed = cv_dedup_claim(conn, svc->def->name, e->event_id, &err);
        if (claimed < 0)
            goto transient;
        if (claimed == 1) {
            const struct cv_event *evs[] = {&e->ev};
            if (svc->def->on_batch && svc->def->on_batch(svc, conn, evs, 1, &err) < 0)
                goto transient;
            enum cv_handler_result r =
                svc->def->on_event(svc, conn, &e->ev, reason, sizeof(reason));
            if (r == CV_REJECT) {
                cv_db_rollback(conn);
                snprintf(error, error_size, "%.60s rejected: %.400s", e->type, reason);
                return -1;
            }
            if (r == CV_RETRY) {
                cv_db_rollback(conn);
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        if (cv_db_commit(conn, &err) == 0)
            return 0;
    transient:
        cv_db_rollback(conn);
        if (!err.transient) {
            snprintf(error, error_size, "%.60s: %.400s", e->type, err.msg);
            return -1;
        }
    }
    snprintf(error, error_size, "%s: still failing after 200 attempts", e->type);
    return -1;
}

static void *sm_applier_main(void *arg)
{
    struct sm_applier *a = arg;
    PGconn *conn = PQconnectdb(a->conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(a->error, sizeof(a->error), "%s", PQerrorMessage(conn));
        PQfinish(conn);
        pthread_barrier_wait(a->go);
        return NULL;
    }
    pthread_barrier_wait(a->go);
    for (size_t i = 0; i < a->n && !a->error[0]; i++)
        sm_apply(conn, a->svc, a->events[i], a->error, sizeof(a->error));
    PQfinish(conn);
    return NULL;
}

/* Shuffles events (a permutation), splits them between two concurrent appliers, sends about
 * a third of them to both (a redelivery racing the first delivery), and runs both to the end. */
static void sm_run(struct sm_event **events, size_t n, unsigned *rng)
{
    struct sm_event *order[SM_MAX_EVENTS];
    ck_assert_uint_le(n, SM_MAX_EVENTS);
    memcpy(order, events, n * sizeof(*order));
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rand_r(rng) % i;
        struct sm_event *t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    struct sm_applier a[2];
    memset(a, 0, sizeof(a));
    for (int k = 0; k < 2; k++) {
        a[k].conninfo = sm_conninfo;
        a[k].svc = &sm_svc;
        a[k].go = &go;
    }
    for (size_t i = 0; i < n; i++) {
        int side = rand_r(rng) % 2;
        a[side].events[a[side].n++] = order[i];
        if (rand_r(rng) % 3 == 0)
            a[!side].events[a[!side].n++] = order[i];
    }
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        pthread_create(&t[k], NULL, sm_applier_main, &a[k]);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    pthread_barrier_destroy(&go);
    for (int k = 0; k < 2; k++)
        ck_assert_msg(!a[k].error[0], "applier %d: %s", k, a[k].error);
}

/* The text of the first column of the first row of sql with $1 = param ("" if no row). */
static char *sm_query_text(PGconn *conn, const char *sql, const char *param)
{
    const char *params[] = {param};
    PGresult *res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(res));
    char *text = strdup(PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return text;
}

/* How many events of type the service emitted for order_id (its outbox, keyed by order). */
static int sm_emitted(PGconn *conn, const char *order_id, const char *type)
{
    char full[96];
    snprintf(full, sizeof(full), "conveyor.%s", type);
    const char *params[] = {order_id, full};
    PGresult *res = PQexecParams(conn,
                                 "SELECT count(*) FROM outbox o, jsonb_array_elements(o.headers) h"
                                 " WHERE o.key = convert_to($1, 'UTF8') AND h->>'k' = 'ce_type'"
                                 " AND h->>'v' = $2",
                                 2, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    int n = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

/* Checks one run's emissions for order_id against expect (type NULL ends it); any other
 * type must not have been emitted more than once. */
static void sm_check_emits(PGconn *conn, const char *scenario, const char *order_id,
                           const struct sm_emits *expect)
{
    for (const struct sm_emits *x = expect; x->type; x++) {
        int n = sm_emitted(conn, order_id, x->type);
        ck_assert_msg(n >= x->min && n <= x->max, "%s (seed %u): %s emitted %d times, not %d..%d",
                      scenario, sm_seed, x->type, n, x->min, x->max);
    }
    const char *params[] = {order_id};
    PGresult *res = PQexecParams(conn,
                                 "SELECT h->>'v', count(*) FROM outbox o,"
                                 " jsonb_array_elements(o.headers) h"
                                 " WHERE o.key = convert_to($1, 'UTF8') AND h->>'k' = 'ce_type'"
                                 " GROUP BY 1 HAVING count(*) > 1",
                                 1, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    ck_assert_msg(PQntuples(res) == 0, "%s (seed %u): %s emitted %s times", scenario, sm_seed,
                  PQntuples(res) ? PQgetvalue(res, 0, 0) : "",
                  PQntuples(res) ? PQgetvalue(res, 0, 1) : "");
    PQclear(res);
}

static int sm_runs(void)
{
    const char *runs = getenv("SM_RUNS");
    return runs ? atoi(runs) : SM_RUNS_DEFAULT;
}

/* Makes one run's events for order_id into events (and may prepare rows first); their count. */
typedef size_t (*sm_builder)(PGconn *conn, const char *order_id, struct sm_event **events);
/* A scenario's own check after a run's state and emissions were checked. */
typedef void (*sm_check)(PGconn *conn, const char *order_id);

/* Runs a scenario sm_runs() times, each for a new order: every run must end with state_sql
 * ($1 = the order id) answering want, and emit as expect says; then check, if any. */
static void sm_scenario(const char *name, const char *state_sql, sm_builder build, const char *want,
                        const struct sm_emits *expect, sm_check check)
{
    PGconn *conn = sm_connect();
    unsigned rng = sm_seed;
    for (int run = 0; run < sm_runs(); run++) {
        char oid[37];
        cv_uuid_v4(oid);
        struct sm_event *events[SM_MAX_EVENTS];
        size_t n = build(conn, oid, events);
        sm_run(events, n, &rng);
        char *state = sm_query_text(conn, state_sql, oid);
        ck_assert_msg(strcmp(state, want) == 0, "%s run %d (seed %u): %s, not %s", name, run,
                      sm_seed, state, want);
        free(state);
        sm_check_emits(conn, name, oid, expect);
        if (check)
            check(conn, oid);
        for (size_t i = 0; i < n; i++)
            sm_event_free(events[i]);
    }
    PQfinish(conn);
}

/* The service under test, for the fixture sm_main installs. */
static const char *sm_name, *sm_topic;
static cv_event_handler sm_on_event;
static sm_batch_fn sm_on_batch;

static void sm_fixture_setup(void)
{
    sm_setup(sm_name, sm_topic, sm_on_event, sm_on_batch);
}

static void sm_fixture_teardown(void)
{
    sm_teardown(sm_name);
}

/* Runs tests (NULL-terminated) as the suite "<name> state machine", each with its own database
 * of the service named name (consuming into topic, with on_event and on_batch). The exit
 * status. */
static int sm_main(const char *name, const char *topic, cv_event_handler on_event,
                   sm_batch_fn on_batch, const TTest *const *tests)
{
    sm_name = name;
    sm_topic = topic;
    sm_on_event = on_event;
    sm_on_batch = on_batch;
    char title[64];
    snprintf(title, sizeof(title), "%s state machine", name);
    Suite *s = suite_create(title);
    TCase *tc = tcase_create("permutations");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, sm_fixture_setup, sm_fixture_teardown);
    for (; *tests; tests++)
        tcase_add_test(tc, *tests);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}

#endif
