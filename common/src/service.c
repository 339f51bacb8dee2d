/* The service lifecycle: configuration, database and migrations, Kafka producer and outbox
 * relay, consumer loop and HTTP server; graceful shutdown on SIGTERM (readiness turns 503,
 * in-flight requests and the batch in hand finish, offsets are committed, the producer
 * flushed). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cv/avro.h"
#include "cv/http_auth.h"
#include "cv/log.h"
#include "cv/metrics.h"
#include "cv/trace.h"
#include "cv/util.h"
#include "service_int.h"

/* Variables every service reads, with the service's own defaults filled in at start. */
enum {
    VAR_HTTP_PORT = 0,
    VAR_DATABASE_URL = 1,
};
static struct cv_config_var common_vars[] = {
    {"HTTP_PORT", NULL, "TCP port of the HTTP API", CV_CONFIG_INT, 1, 65535},
    {"DATABASE_URL", NULL,
     "PostgreSQL connection string or URI of this service's own database (may hold a password)",
     CV_CONFIG_SECRET, 0, 0},
    {"HTTP_BIND", "127.0.0.1", "Address the HTTP API listens on (0.0.0.0 or :: for all)",
     CV_CONFIG_STRING, 0, 0},
    {"HTTP_THREADS", "16",
     "HTTP worker threads; each runs one request at a time (waiting long polls hold none)",
     CV_CONFIG_INT, 1, 256},
    {"HTTP_MAX_CONNECTIONS", "4096",
     "Concurrent HTTP connections accepted (keep it above HTTP_MAX_WAITING)", CV_CONFIG_INT, 1,
     100000},
    {"HTTP_MAX_CONNECTIONS_PER_IP", "1024",
     "Concurrent HTTP connections from one client address (0: no limit; behind a gateway every "
     "client shares its address)",
     CV_CONFIG_INT, 0, 100000},
    {"HTTP_IDLE_TIMEOUT_S", "15",
     "Seconds an HTTP connection may stay idle before it is closed (waiting long polls are "
     "exempt: they end at their own timeout)",
     CV_CONFIG_INT, 1, 3600},
    {"HTTP_MAX_WAITING", "2000",
     "Requests that may wait at once per replica (long polls); 429 with Retry-After beyond",
     CV_CONFIG_INT, 1, 100000},
    {"HTTP_PROBE_PORT", "0",
     "Also serve /healthz, /readyz and /metrics alone on this port, on a thread that API "
     "clients cannot starve (0: only on HTTP_PORT)",
     CV_CONFIG_INT, 0, 65535},
    {"HTTP_MAX_BODY_BYTES", "65536", "Largest request body accepted (413 beyond)", CV_CONFIG_INT,
     1024, 16777216},
    {"HTTP_MAX_HEADER_BYTES", "65536",
     "Per-connection buffer for the request line and headers (431 beyond)", CV_CONFIG_INT, 8192,
     1048576},
    {"AUTH_REQUIRED", "true",
     "Require a bearer JWT on every route but /healthz, /readyz and /metrics. false is for a "
     "laptop only: a warning is logged and the API binds to 127.0.0.1",
     CV_CONFIG_BOOL, 0, 0},
    {"AUTH_ISSUER", "", "Required iss claim of tokens (needed when AUTH_REQUIRED)",
     CV_CONFIG_STRING, 0, 0},
    {"AUTH_AUDIENCE", "conveyor", "Audience tokens must name in aud", CV_CONFIG_STRING, 0, 0},
    {"AUTH_JWKS_FILE", "", "JWKS file of RS256/ES256 verification keys, matched by kid",
     CV_CONFIG_STRING, 0, 0},
    {"AUTH_PUBLIC_KEY_FILES", "", "Comma-separated PEM public keys (RSA: RS256, EC P-256: ES256)",
     CV_CONFIG_STRING, 0, 0},
    {"AUTH_HS256_SECRET", "", "HS256 shared secret, at least 32 bytes (local use)",
     CV_CONFIG_SECRET, 0, 0},
    {"AUTH_HS256_SECRET_FILE", "",
     "File holding the HS256 shared secret (trailing newline ignored)", CV_CONFIG_STRING, 0, 0},
    {"AUTH_CLOCK_SKEW_S", "30", "Leeway on the exp and nbf claims", CV_CONFIG_INT, 0, 300},
    {"AUTH_ROLES_CLAIM", "roles",
     "Claim holding the caller's roles (array, or space-separated string); scope is also read",
     CV_CONFIG_STRING, 0, 0},
    {"AUTH_OFF_BIND_ANY", "false",
     "With AUTH_REQUIRED=false, bind to HTTP_BIND anyway (a container behind a gateway that "
     "itself listens on loopback only)",
     CV_CONFIG_BOOL, 0, 0},
    {"RATE_LIMIT_PER_S", "5",
     "Order placements per token subject and second, refill rate (0: no limit)", CV_CONFIG_INT, 0,
     100000},
    {"RATE_LIMIT_BURST", "20", "Order placements a subject may make at once", CV_CONFIG_INT, 1,
     100000},
    {"KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Kafka brokers, host:port[,host:port...]",
     CV_CONFIG_STRING, 0, 0},
    {"KAFKA_GROUP_ID", "", "Consumer group (default: TOPIC_PREFIX followed by the service name)",
     CV_CONFIG_STRING, 0, 0},
    {"KAFKA_SESSION_TIMEOUT_MS", "10000",
     "Consumer group session timeout: how soon a dead replica's partitions move", CV_CONFIG_INT,
     6000, 300000},
    {"KAFKA_ASSIGNMENT_STRATEGY", "roundrobin",
     "Consumer partition assignment: roundrobin or range (eager), or cooperative-sticky "
     "(broken with manual commits before librdkafka 2.10: see docs/kafka-version.md)",
     CV_CONFIG_STRING, 0, 0},
    {"KAFKA_LINGER_MS", "0",
     "Producer linger.ms: how long the relay's producer waits to fill a batch before sending "
     "(docs/performance.md)",
     CV_CONFIG_INT, 0, 1000},
    {"KAFKA_FETCH_WAIT_MAX_MS", "100",
     "Consumer fetch.wait.max.ms: how long the broker holds a fetch that has no data yet "
     "(docs/performance.md)",
     CV_CONFIG_INT, 1, 10000},
    {"KAFKA_CREATE_TOPICS", "true",
     "Create the topics this service produces to (and its dead-letter topic) if missing",
     CV_CONFIG_BOOL, 0, 0},
    {"KAFKA_TOPIC_PARTITIONS", "6", "Partitions of topics this service creates", CV_CONFIG_INT, 1,
     1000},
    {"KAFKA_REPLICATION_FACTOR", "1", "Replication factor of topics this service creates",
     CV_CONFIG_INT, 1, 10},
    {"KAFKA_SECURITY_PROTOCOL", "plaintext",
     "How every Kafka client of the service talks to the brokers: plaintext, ssl, "
     "sasl_plaintext or sasl_ssl",
     CV_CONFIG_STRING, 0, 0},
    {"KAFKA_SASL_MECHANISM", "SCRAM-SHA-512",
     "SASL mechanism with sasl_*: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN", CV_CONFIG_STRING, 0, 0},
    {"KAFKA_SASL_USERNAME", "", "SASL user name (required with sasl_*)", CV_CONFIG_STRING, 0, 0},
    {"KAFKA_SASL_PASSWORD", "",
     "SASL password (with sasl_*, this or KAFKA_SASL_PASSWORD_FILE; never logged)",
     CV_CONFIG_SECRET, 0, 0},
    {"KAFKA_SASL_PASSWORD_FILE", "",
     "File whose first line is the SASL password (a mounted Secret)", CV_CONFIG_STRING, 0, 0},
    {"KAFKA_SSL_CA_LOCATION", "",
     "PEM file of the CA certificates the brokers' certificates are checked against, with ssl "
     "or sasl_ssl (default: the system's store); the broker's name or address must match its "
     "certificate",
     CV_CONFIG_STRING, 0, 0},
    {"KAFKA_SSL_CERTIFICATE_LOCATION", "",
     "PEM client certificate for brokers that require one (mutual TLS)", CV_CONFIG_STRING, 0, 0},
    {"KAFKA_SSL_KEY_LOCATION", "", "PEM private key of KAFKA_SSL_CERTIFICATE_LOCATION",
     CV_CONFIG_STRING, 0, 0},
    {"DB_SSLMODE", "",
     "libpq sslmode of every database connection unless DATABASE_URL names one: disable, "
     "allow, prefer, require, verify-ca or verify-full (default: libpq's, prefer)",
     CV_CONFIG_STRING, 0, 0},
    {"DB_SSLROOTCERT", "",
     "PEM file of the CA certificates the database server's certificate is checked against "
     "(verify-ca, verify-full)",
     CV_CONFIG_STRING, 0, 0},
    {"DB_POOL_SIZE", "20", "PostgreSQL connections of the pool", CV_CONFIG_INT, 2, 500},
    {"DB_POOL_WAIT_MS", "2000",
     "Longest wait for a free pooled connection (HTTP then answers 503 with Retry-After)",
     CV_CONFIG_INT, 1, 600000},
    {"DB_CONNECT_TIMEOUT_S", "5", "Give up opening a database connection after this", CV_CONFIG_INT,
     2, 600},
    {"DB_STATEMENT_TIMEOUT_MS", "5000",
     "The server cancels a statement running longer (0: never); the service waits for an "
     "answer at most this plus 2 s, then drops the connection (a frozen or unreachable server)",
     CV_CONFIG_INT, 0, 3600000},
    {"DB_LOCK_TIMEOUT_MS", "2000",
     "The server gives up waiting for a row lock after this "
     "(0: never); the work is retried",
     CV_CONFIG_INT, 0, 3600000},
    {"DB_KEEPALIVES_IDLE_S", "10",
     "TCP keepalives on both ends of every database connection: idle seconds before the first "
     "probe (0: the system's defaults); a silently vanished peer is noticed after idle + "
     "interval x count seconds, which also frees the outbox relay's lock",
     CV_CONFIG_INT, 0, 7200},
    {"DB_KEEPALIVES_INTERVAL_S", "3", "Seconds between TCP keepalive probes", CV_CONFIG_INT, 1,
     600},
    {"DB_KEEPALIVES_COUNT", "3",
     "Unanswered TCP keepalive probes before the connection is "
     "dropped",
     CV_CONFIG_INT, 1, 100},
    {"DB_TCP_USER_TIMEOUT_MS", "20000",
     "Data left unacknowledged this long breaks a database connection (0: the system's "
     "default)",
     CV_CONFIG_INT, 0, 3600000},
    {"CONSUMER_BATCH_SIZE", "200", "Records applied per database transaction", CV_CONFIG_INT, 1,
     1000},
    {"OUTBOX_BATCH_SIZE", "500", "Outbox rows published per round", CV_CONFIG_INT, 1, 10000},
    {"TOPIC_PREFIX", "",
     "Prefix of every topic name this service uses (several systems on one cluster)",
     CV_CONFIG_STRING, 0, 0},
    {"CONSUMER_DEAD_LETTER_TYPES", "",
     "Event types (comma-separated, e.g. OrderPlaced) dead-lettered instead of applied, to hold "
     "back a type whose handling is broken; redrive them after the fix (cv-dlq redrive)",
     CV_CONFIG_STRING, 0, 0},
    {"OUTBOX_STALL_SECONDS", "60",
     "/readyz answers 503 when the outbox is not empty and no row has left it for this long",
     CV_CONFIG_INT, 1, 86400},
    {"OUTBOX_MISSING_TOPIC_GRACE_SECONDS", "300",
     "Events to a topic the broker says does not exist wait this long for it (a topic just "
     "created, or still being created by the deployment) before they are quarantined",
     CV_CONFIG_INT, 0, 86400},
    {"PROCESSED_EVENTS_RETENTION_HOURS", "336",
     "Processed event ids (and idempotency keys) are purged after this many hours; must exceed "
     "the retention of every topic consumed (checked at start); 0 keeps them for ever",
     CV_CONFIG_INT, 0, 876000},
    {"HOUSEKEEPING_INTERVAL_SECONDS", "300", "How often expired rows are purged", CV_CONFIG_INT, 1,
     86400},
    {"LOG_LEVEL", "info", "debug, info, warn or error", CV_CONFIG_STRING, 0, 0},
    {"SCHEMA_REGISTRY_URL", "",
     "Schema registry (Confluent-compatible API, e.g. http://registry:8080/apis/ccompat/v7): "
     "events are written in the Confluent framing with ids registered there; empty: "
     "single-object encoding. Consumers read both framings either way",
     CV_CONFIG_STRING, 0, 0},
    {"SCHEMA_REGISTRY_USER", "", "Schema registry basic-auth user (empty: no auth)",
     CV_CONFIG_STRING, 0, 0},
    {"SCHEMA_REGISTRY_PASSWORD", "", "Schema registry basic-auth password", CV_CONFIG_SECRET, 0, 0},
    {"SCHEMA_REGISTRY_CA_FILE", "",
     "PEM file of the CAs that sign an https registry's certificate (empty: the system's)",
     CV_CONFIG_STRING, 0, 0},
    {"SCHEMA_REGISTRY_TIMEOUT_MS", "5000", "Timeout of one schema registry request", CV_CONFIG_INT,
     100, 120000},
    {"SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS", "120000",
     "How long start-up waits for the schema registry before giving up (0: forever)", CV_CONFIG_INT,
     0, 86400000},
    {"SCHEMA_REGISTRY_CHECK_MS", "30000",
     "Interval of re-registering the schemas (a registry that lost its storage gets them back)",
     CV_CONFIG_INT, 200, 3600000},
    {NULL, NULL, NULL, 0, 0, 0},
};

static volatile sig_atomic_t got_signal;
static volatile int got_signal_int; /* the same, readable as an int stop flag */

const struct cv_config *cv_service_config(const struct cv_service *svc)
{
    return svc->cfg;
}

int cv_service_stopping(const struct cv_service *svc)
{
    return svc->stop;
}

/* 503 for a database that is away or busy: the client may try again shortly. */
static void reply_db_unavailable(struct cv_http_response *resp, const struct cv_db_err *err)
{
    cv_log_warn("database unavailable: %s", err->msg);
    cv_http_reply_problem(resp, 503, "Service Unavailable", "the database is unavailable", NULL);
    cv_http_reply_header(resp, "Retry-After", "1");
}

static void wake_request(void *arg, enum cv_wake why)
{
    cv_http_resume(arg);
}

uint64_t cv_service_wait_mark(struct cv_service *svc)
{
    return svc->waiters ? cv_waiters_mark(svc->waiters) : 0;
}

int cv_service_wait(struct cv_service *svc, struct cv_http_request *req,
                    struct cv_http_response *resp, const char *key, uint64_t mark,
                    int64_t deadline_ms, cv_http_handler on_wake)
{
    if (svc->waiters == NULL) {
        cv_log_error("cv_service_wait: the service has no notify channel");
        cv_http_reply_problem(resp, 500, NULL, "cannot wait here", NULL);
        return -1;
    }
    /* Suspend first: the registry may wake the request before this returns. */
    cv_http_suspend(req, on_wake);
    int rc = cv_waiters_add(svc->waiters, key, mark, deadline_ms, wake_request, req);
    if (rc == 0)
        return 0;
    if (rc == 1) { /* changed since the mark, or stopping: on_wake reads again right away */
        cv_http_resume(req);
        return 0;
    }
    cv_http_suspend_cancel(req);
    if (rc == -1) {
        cv_counter_add(svc->waits_refused, 1);
        cv_http_reply_header(resp, "Retry-After", "1");
        cv_http_reply_problem(resp, 429, "Too Many Requests",
                              "too many requests are waiting on this replica; retry later", NULL);
    } else {
        cv_http_reply_problem(resp, 500, NULL, "cannot wait on this key", NULL);
    }
    return -1;
}

PGconn *cv_service_db_acquire(struct cv_service *svc, struct cv_http_response *resp)
{
    struct cv_db_err err;
    memset(&err, 0, sizeof(err));
    PGconn *conn = cv_db_acquire(svc->pool, &err);
    if (!conn)
        reply_db_unavailable(resp, &err);
    return conn;
}

void cv_service_db_release(struct cv_service *svc, PGconn *conn)
{
    cv_db_release(svc->pool, conn);
}

void cv_service_reply_db_error(struct cv_http_response *resp, const struct cv_db_err *err)
{
    if (err->transient) {
        reply_db_unavailable(resp, err);
    } else {
        cv_log_error("database error: %s", err->msg);
        cv_http_reply_problem(resp, 500, "Internal Server Error", "database error", NULL);
    }
}

/* /readyz: start-up is not waiting for the schema registry, a broker answers, the consumer
 * loop runs, the outbox relay makes progress, the database answers. */
static int service_ready(void *app, char *reason, size_t reason_size)
{
    struct cv_service *svc = app;
    pthread_mutex_lock(&svc->ready_lock);
    int registry_wait = svc->registry_wait[0] != '\0';
    if (registry_wait)
        snprintf(reason, reason_size, "%s", svc->registry_wait);
    pthread_mutex_unlock(&svc->ready_lock);
    if (registry_wait)
        return 0;
    pthread_mutex_lock(&svc->ready_lock);
    int64_t now = cv_monotonic_ms();
    if (now - svc->kafka_checked_ms > 1000) {
        svc->kafka_ok = cv_kafka_reachable(cv_kafka_producer_handle(svc->producer), 1000);
        svc->kafka_checked_ms = cv_monotonic_ms();
    }
    int kafka_ok = svc->kafka_ok;
    pthread_mutex_unlock(&svc->ready_lock);
    if (!kafka_ok) {
        /* first: a broker that refuses our credentials also keeps the consumer from starting */
        snprintf(reason, reason_size, "kafka unreachable (the log says why)");
        return 0;
    }
    if (svc->def->consumes && !svc->consumer_running) {
        snprintf(reason, reason_size, "consumer not running");
        return 0;
    }
    pthread_mutex_lock(&svc->ready_lock);
    int stalled = svc->outbox_stalled;
    if (stalled)
        snprintf(reason, reason_size, "%s", svc->outbox_stall_reason);
    pthread_mutex_unlock(&svc->ready_lock);
    if (stalled)
        return 0;
    /* Bounded: a frozen or unreachable server turns this 503 within about a second (or the
     * connect timeout, when a broken connection must be replaced first). */
    struct cv_db_err err;
    memset(&err, 0, sizeof(err));
    if (cv_db_pool_ping(svc->pool, 1000, &err) < 0) {
        snprintf(reason, reason_size, "database unreachable: %s", err.msg);
        return 0;
    }
    return 1;
}

static void on_signal(int sig)
{
    got_signal = sig;
    got_signal_int = 1;
}

/* Waits until the database answers (it may start after us under docker compose), then
 * migrates it and runs the service's init. */
static int setup_database(struct cv_service *svc)
{
    const char *url = cv_config_str(svc->cfg, "DATABASE_URL");
    struct cv_db_options opts;
    cv_db_options_default(&opts);
    opts.connect_timeout_s = (int)cv_config_int(svc->cfg, "DB_CONNECT_TIMEOUT_S");
    opts.statement_timeout_ms = (int)cv_config_int(svc->cfg, "DB_STATEMENT_TIMEOUT_MS");
    opts.lock_timeout_ms = (int)cv_config_int(svc->cfg, "DB_LOCK_TIMEOUT_MS");
    opts.keepalives_idle_s = (int)cv_config_int(svc->cfg, "DB_KEEPALIVES_IDLE_S");
    opts.keepalives_interval_s = (int)cv_config_int(svc->cfg, "DB_KEEPALIVES_INTERVAL_S");
    opts.keepalives_count = (int)cv_config_int(svc->cfg, "DB_KEEPALIVES_COUNT");
    opts.tcp_user_timeout_ms = (int)cv_config_int(svc->cfg, "DB_TCP_USER_TIMEOUT_MS");
    opts.pool_wait_ms = (int)cv_config_int(svc->cfg, "DB_POOL_WAIT_MS");
    char app[80];
    snprintf(app, sizeof(app), "%s-service", svc->def->name);
    opts.application_name = app;
    cv_db_set_options(&opts);
    char errstr[512];
    struct cv_backoff backoff = CV_BACKOFF(200, 5000);
    while (!(svc->pool = cv_db_pool_new(url, (unsigned)cv_config_int(svc->cfg, "DB_POOL_SIZE"),
                                        errstr, sizeof(errstr)))) {
        if (got_signal)
            return -1;
        cv_log_warn("waiting for the database: %s", errstr);
        cv_sleep_ms(cv_backoff_next(&backoff), NULL);
    }
    struct cv_db_err err;
    PGconn *conn = cv_db_acquire(svc->pool, &err);
    int rc = -1;
    if (!conn)
        cv_log_error("database: %s", err.msg);
    else if (cv_db_migrate(conn, cv_common_migrations, &err) < 0 ||
             cv_db_migrate(conn, cv_service_migrations, &err) < 0)
        cv_log_error("migration failed: %s", err.msg);
    else if (svc->def->init && svc->def->init(svc, conn) < 0)
        cv_log_error("initialisation failed");
    else
        rc = 0;
    if (conn)
        cv_db_release(svc->pool, conn);
    return rc;
}

static int setup_producer(struct cv_service *svc)
{
    char errstr[512];
    char client_id[128];
    snprintf(client_id, sizeof(client_id), "%s-producer", svc->def->name);
    char linger[16];
    snprintf(linger, sizeof(linger), "%ld", cv_config_int(svc->cfg, "KAFKA_LINGER_MS"));
    const char *extra[2 + sizeof(svc->kafka_sec.props) / sizeof(svc->kafka_sec.props[0])] = {
        "linger.ms", linger};
    for (size_t i = 0; svc->kafka_sec.props[i]; i++) /* TLS and SASL */
        extra[2 + i] = svc->kafka_sec.props[i];
    svc->producer = cv_kafka_producer_new(cv_config_str(svc->cfg, "KAFKA_BOOTSTRAP_SERVERS"),
                                          client_id, extra, errstr, sizeof(errstr));
    if (!svc->producer) {
        cv_log_error("kafka producer: %s", errstr);
        return -1;
    }
    return 0;
}

/* Runs after the HTTP server is up, so that a service started while the broker is away still
 * answers (/healthz, /readyz with the reason, and requests that only need the database: an
 * order placed now waits in the outbox). */
static int setup_kafka(struct cv_service *svc)
{
    char errstr[512];
    if (cv_config_bool(svc->cfg, "KAFKA_CREATE_TOPICS")) {
        const char *topics[3] = {svc->dlq_topic, svc->topic[0] ? svc->topic : NULL, NULL};
        /* Brokers may come up after us: keep trying, the relay waits meanwhile anyway. */
        struct cv_backoff backoff = CV_BACKOFF(500, 5000);
        while (cv_kafka_create_topics(cv_kafka_producer_handle(svc->producer), topics,
                                      (int)cv_config_int(svc->cfg, "KAFKA_TOPIC_PARTITIONS"),
                                      (int)cv_config_int(svc->cfg, "KAFKA_REPLICATION_FACTOR"),
                                      5000, errstr, sizeof(errstr)) < 0) {
            if (got_signal)
                return -1;
            cv_log_warn("kafka: %s", errstr);
            cv_sleep_ms(cv_backoff_next(&backoff), NULL);
        }
    }
    if (cv_service_check_retention(svc, &got_signal_int) < 0)
        return -1;
    svc->relay =
        cv_outbox_relay_start(cv_config_str(svc->cfg, "DATABASE_URL"), svc->producer,
                              (unsigned)cv_config_int(svc->cfg, "OUTBOX_BATCH_SIZE"),
                              cv_config_int(svc->cfg, "OUTBOX_MISSING_TOPIC_GRACE_SECONDS") * 1000,
                              errstr, sizeof(errstr));
    if (!svc->relay) {
        cv_log_error("%s", errstr);
        return -1;
    }
    if (svc->def->consumes && cv_service_consumer_start(svc, errstr, sizeof(errstr)) < 0) {
        cv_log_error("kafka consumer: %s", errstr);
        return -1;
    }
    return 0;
}

/* Each request works for the trace its traceparent names (a new one without it); the reply
 * carries the context so that callers can follow the order's events. */
static void http_before(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    struct cv_trace parent, t;
    if (cv_trace_parse(cv_http_header(req, "traceparent"), &parent) == 0)
        cv_trace_child(&parent, &t);
    else
        cv_trace_new(&t);
    cv_trace_set_current(&t);
    char header[CV_TRACEPARENT_LEN + 1];
    cv_trace_format(&t, header);
    cv_http_reply_header(resp, "traceparent", header);
}

static void http_after(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    cv_trace_set_current(NULL);
    cv_log_set_context(NULL, NULL);
}

/* Reads a secret file into buf (trailing newlines dropped). Length, or -1 with errstr. */
static long read_secret_file(const char *path, unsigned char *buf, size_t size, char *errstr,
                             size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(errstr, errstr_size, "AUTH_HS256_SECRET_FILE: cannot open %s", path);
        return -1;
    }
    size_t n = fread(buf, 1, size, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    return (long)n;
}

/* The verification keys of the AUTH_* settings. 0, or -1 with errstr naming the variable. */
static int load_auth_keys(const struct cv_config *cfg, struct cv_jwt_keys *keys, char *errstr,
                          size_t errstr_size)
{
    char why[384];
    const char *jwks = cv_config_str(cfg, "AUTH_JWKS_FILE");
    if (jwks[0] && cv_jwt_keys_add_jwks(keys, jwks, why, sizeof(why)) < 0) {
        snprintf(errstr, errstr_size, "AUTH_JWKS_FILE: %s", why);
        return -1;
    }
    char pems[1024];
    snprintf(pems, sizeof(pems), "%s", cv_config_str(cfg, "AUTH_PUBLIC_KEY_FILES"));
    char *save = NULL;
    for (char *p = strtok_r(pems, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (cv_jwt_keys_add_pem(keys, p, NULL, why, sizeof(why)) < 0) {
            snprintf(errstr, errstr_size, "AUTH_PUBLIC_KEY_FILES: %s", why);
            return -1;
        }
    }
    unsigned char secret[4096];
    long len = 0;
    const char *secret_var = "AUTH_HS256_SECRET";
    const char *path = cv_config_str(cfg, "AUTH_HS256_SECRET_FILE");
    if (path[0]) {
        secret_var = "AUTH_HS256_SECRET_FILE";
        len = read_secret_file(path, secret, sizeof(secret), errstr, errstr_size);
        if (len < 0)
            return -1;
    } else {
        const char *s = cv_config_str(cfg, "AUTH_HS256_SECRET");
        len = (long)strlen(s);
        if ((size_t)len > sizeof(secret))
            len = sizeof(secret);
        memcpy(secret, s, (size_t)len);
    }
    int rc = 0;
    if (len > 0 && cv_jwt_keys_add_hs256(keys, secret, (size_t)len, NULL, why, sizeof(why)) < 0) {
        snprintf(errstr, errstr_size, "%s: %s", secret_var, why);
        rc = -1;
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    if (rc == 0 && cv_jwt_keys_count(keys) == 0) {
        snprintf(errstr, errstr_size,
                 "AUTH_REQUIRED is true but no key is set (AUTH_JWKS_FILE, "
                 "AUTH_PUBLIC_KEY_FILES, AUTH_HS256_SECRET[_FILE])");
        rc = -1;
    }
    return rc;
}

/* The authenticator of the AUTH_* settings, or (AUTH_REQUIRED false) none: then a warning (the
 * API will listen on loopback only unless AUTH_OFF_BIND_ANY, see setup_http). Runs first, so
 * that bad keys stop the service before it connects to anything. 0, or -1 after logging. */
static int setup_auth(struct cv_service *svc)
{
    const struct cv_config *cfg = svc->cfg;
    if (!cv_config_bool(cfg, "AUTH_REQUIRED")) {
        int any = cv_config_bool(cfg, "AUTH_OFF_BIND_ANY");
        cv_log_warn("AUTH_REQUIRED=false: the HTTP API accepts every request without a token; "
                    "for a laptop only%s",
                    any ? " (AUTH_OFF_BIND_ANY: listening on HTTP_BIND as set)"
                        : ", listening on 127.0.0.1");
        return 0;
    }
    char errstr[512];
    if (cv_config_str(cfg, "AUTH_ISSUER")[0] == '\0') {
        cv_log_error("AUTH_ISSUER: required when AUTH_REQUIRED is true");
        return -1;
    }
    struct cv_jwt_keys *keys = cv_jwt_keys_new();
    if (keys == NULL || load_auth_keys(cfg, keys, errstr, sizeof(errstr)) < 0) {
        cv_jwt_keys_destroy(keys);
        cv_log_error("%s", keys ? errstr : "out of memory");
        return -1;
    }
    size_t nkeys = cv_jwt_keys_count(keys);
    struct cv_http_auth_config ac = {
        .keys = keys,
        .issuer = cv_config_str(cfg, "AUTH_ISSUER"),
        .audience = cv_config_str(cfg, "AUTH_AUDIENCE"),
        .skew_s = cv_config_int(cfg, "AUTH_CLOCK_SKEW_S"),
        .roles_claim = cv_config_str(cfg, "AUTH_ROLES_CLAIM"),
        .rate_per_s = (double)cv_config_int(cfg, "RATE_LIMIT_PER_S"),
        .burst = (double)cv_config_int(cfg, "RATE_LIMIT_BURST"),
    };
    svc->auth = cv_http_auth_new(&ac, errstr, sizeof(errstr));
    if (svc->auth == NULL) {
        cv_log_error("auth: %s", errstr);
        return -1;
    }
    cv_log_info("authentication on: %zu verification key(s), issuer %s, audience %s", nkeys,
                ac.issuer, ac.audience);
    return 0;
}

static int setup_http(struct cv_service *svc)
{
    const char *bind_address = cv_config_str(svc->cfg, "HTTP_BIND");
    if (svc->auth == NULL && !cv_config_bool(svc->cfg, "AUTH_OFF_BIND_ANY"))
        bind_address = "127.0.0.1"; /* no authentication: nobody else may reach it */
    struct cv_http_config hc = {
        .bind_address = bind_address,
        .port = (int)cv_config_int(svc->cfg, "HTTP_PORT"),
        .threads = (unsigned)cv_config_int(svc->cfg, "HTTP_THREADS"),
        .connection_limit = (unsigned)cv_config_int(svc->cfg, "HTTP_MAX_CONNECTIONS"),
        .connection_timeout_s = (unsigned)cv_config_int(svc->cfg, "HTTP_IDLE_TIMEOUT_S"),
        .per_ip_limit = (unsigned)cv_config_int(svc->cfg, "HTTP_MAX_CONNECTIONS_PER_IP"),
        .probe_port = (int)cv_config_int(svc->cfg, "HTTP_PROBE_PORT"),
        .ready_cache_ms = 500, /* probes never wait on the database or the broker */
        .max_body_bytes = (size_t)cv_config_int(svc->cfg, "HTTP_MAX_BODY_BYTES"),
        .max_header_bytes = (size_t)cv_config_int(svc->cfg, "HTTP_MAX_HEADER_BYTES"),
        .auth = svc->auth,
        .before = http_before,
        .after = http_after,
    };
    char errstr[512];
    size_t nroutes = 0;
    svc->routes = cv_service_routes_with_openapi(svc->def->routes, svc->def->nroutes, &nroutes);
    if (!svc->routes) {
        cv_log_error("http: out of memory");
        return -1;
    }
    svc->http =
        cv_http_server_new(&hc, svc->routes, nroutes, svc, service_ready, errstr, sizeof(errstr));
    if (!svc->http) {
        cv_log_error("http: %s", errstr);
        return -1;
    }
    cv_log_info("listening on %s:%d", hc.bind_address, cv_http_server_port(svc->http));
    return 0;
}

/* The waiter registry of long polls: its own LISTEN connection on the service's channel. */
static int setup_waiters(struct cv_service *svc)
{
    svc->waits_refused = cv_metrics_counter(
        "http_waits_refused_total", "Requests refused (429) because too many were waiting.", NULL);
    if (svc->def->notify_channel == NULL)
        return 0;
    long cap = cv_config_int(svc->cfg, "HTTP_MAX_WAITING");
    if (cap >= cv_config_int(svc->cfg, "HTTP_MAX_CONNECTIONS"))
        cv_log_warn("HTTP_MAX_WAITING (%ld) is not below HTTP_MAX_CONNECTIONS: connections run "
                    "out before requests are refused with 429",
                    cap);
    char errstr[256];
    svc->waiters = cv_waiters_new(cv_config_str(svc->cfg, "DATABASE_URL"), svc->def->notify_channel,
                                  (size_t)cap, errstr, sizeof(errstr));
    if (!svc->waiters) {
        cv_log_error("%s", errstr);
        return -1;
    }
    return 0;
}

/* Topic names with TOPIC_PREFIX in front. */
static void name_topics(struct cv_service *svc)
{
    const char *prefix = cv_config_str(svc->cfg, "TOPIC_PREFIX");
    const struct cv_service_def *def = svc->def;
    if (def->topic)
        snprintf(svc->topic, sizeof(svc->topic), "%s%s", prefix, def->topic);
    snprintf(svc->dlq_topic, sizeof(svc->dlq_topic), "%s%s.dlq", prefix, def->name);
    size_t n = 0;
    while (def->consumes && def->consumes[n])
        n++;
    svc->consumes = calloc(n + 1, sizeof(char *));
    if (!svc->consumes)
        abort(); /* start-up, before any thread: as asprintf below, nothing to fall back on */
    for (size_t i = 0; i < n; i++)
        if (asprintf(&svc->consumes[i], "%s%s", prefix, def->consumes[i]) < 0)
            abort();
}

static void teardown(struct cv_service *svc)
{
    svc->stop = 1;
    if (svc->http)
        cv_http_server_set_draining(svc->http);
    cv_waiters_stop(svc->waiters);     /* waiting requests answer now, with the current state */
    cv_http_server_destroy(svc->http); /* waits for requests in flight */
    free(svc->routes);
    cv_waiters_destroy(svc->waiters);
    cv_http_auth_destroy(svc->auth);
    cv_service_consumer_stop(svc); /* finishes its batch, commits, leaves the group */
    cv_service_housekeeping_stop(svc);
    cv_service_registry_stop(svc);
    cv_outbox_relay_stop(svc->relay); /* finishes its round */
    cv_kafka_producer_destroy(svc->producer, 5000);
    cv_db_pool_destroy(svc->pool);
    cv_service_security_free(svc);
    cv_config_destroy(svc->cfg);
    for (size_t i = 0; svc->consumes && svc->consumes[i]; i++)
        free(svc->consumes[i]);
    free(svc->consumes);
    pthread_mutex_destroy(&svc->ready_lock);
    cv_avro_catalog_free();
}

int cv_service_main(const struct cv_service_def *def, int argc, char **argv)
{
    common_vars[VAR_HTTP_PORT].default_value = def->default_http_port;
    common_vars[VAR_DATABASE_URL].default_value = def->default_database_url;
    static const struct cv_config_var empty[] = {{NULL, NULL, NULL, 0, 0, 0}};
    const struct cv_config_var *const tables[] = {common_vars, def->config ? def->config : empty,
                                                  NULL};
    char program[64];
    snprintf(program, sizeof(program), "%s-service", def->name);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cv_config_print_help(stdout, program, def->summary, tables);
            return 0;
        }
        fprintf(stderr,
                "%s: unknown argument %s (configuration is read from the environment; "
                "see --help)\n",
                program, argv[i]);
        return 2;
    }

    struct cv_service svc_storage;
    struct cv_service *svc = &svc_storage;
    memset(svc, 0, sizeof(*svc));
    svc->def = def;
    pthread_mutex_init(&svc->ready_lock, NULL);
    snprintf(svc->source, sizeof(svc->source), "/conveyor/%s", def->name);

    char errstr[512];
    svc->cfg = cv_config_load(tables, errstr, sizeof(errstr));
    if (!svc->cfg) {
        fprintf(stderr, "%s: %s\n", program, errstr);
        pthread_mutex_destroy(&svc->ready_lock);
        return 2;
    }
    enum cv_log_level level;
    if (cv_log_level_parse(cv_config_str(svc->cfg, "LOG_LEVEL"), &level) < 0) {
        fprintf(stderr, "%s: LOG_LEVEL: expected debug, info, warn or error, got \"%s\"\n", program,
                cv_config_str(svc->cfg, "LOG_LEVEL"));
        cv_config_destroy(svc->cfg);
        pthread_mutex_destroy(&svc->ready_lock);
        return 2;
    }
    if (cv_service_security_init(svc, errstr, sizeof(errstr)) < 0 ||
        cv_service_registry_init(svc, errstr, sizeof(errstr)) < 0) {
        fprintf(stderr, "%s: %s\n", program, errstr);
        cv_service_security_free(svc);
        cv_config_destroy(svc->cfg);
        pthread_mutex_destroy(&svc->ready_lock);
        return 2;
    }
    cv_log_init(program, level);
    name_topics(svc);

    /* SIGTERM/SIGINT only set a flag; the main thread notices it below. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    if (cv_avro_catalog_load(errstr, sizeof(errstr)) < 0) {
        cv_log_error("schemas: %s", errstr);
        goto cleanup;
    }
    if (setup_auth(svc) < 0 || setup_database(svc) < 0 || setup_producer(svc) < 0 ||
        setup_waiters(svc) < 0 || setup_http(svc) < 0 ||
        cv_service_registry_start(svc, &got_signal) < 0 || setup_kafka(svc) < 0)
        goto cleanup;
    if (cv_service_housekeeping_start(svc) < 0) {
        cv_log_error("cannot start the housekeeping thread");
        goto cleanup;
    }
    cv_log_info("started");
    while (!got_signal && !cv_outbox_relay_fatal(svc->relay))
        cv_sleep_ms(200, NULL);
    if (!got_signal) {
        /* Only a new producer can go on in order: let the supervisor restart us. */
        cv_log_error("exiting after a fatal producer error");
        goto cleanup;
    }
    cv_log_info("received signal %d, shutting down", (int)got_signal);
    status = 0;
cleanup:
    teardown(svc);
    if (status == 0)
        cv_log_info("stopped");
    return got_signal && status ? 0 : status;
}
