/* The service runtime: everything a Conveyor service does that is not its business logic.
 * cv_service_main reads the configuration, connects to PostgreSQL and migrates it, starts the
 * outbox relay, the consumer loop and the HTTP server, and shuts all down on SIGTERM.
 * A service supplies a cv_service_def: its routes, topics and event handler. */
#ifndef CV_SERVICE_H
#define CV_SERVICE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "cv/config.h"
#include "cv/db.h"
#include "cv/http.h"

struct cv_service;

/* One consumed record handed to a service's handler. */
struct cv_event {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;
    const char *key; /* NUL-terminated copy of the record key, or NULL */
    const void *value;
    size_t value_len;
    const rd_kafka_message_t *msg; /* for headers */
    const char *type;              /* "OrderPlaced"; NULL if undecodable */
    const char *event_id;          /* metadata.event_id; NULL if undecodable */
    json_t *data;                  /* decoded, resolved to our schema version; NULL if not */
    const char *decode_error;      /* why data is NULL */
};

enum cv_handler_result {
    CV_HANDLED = 0, /* effect applied (or nothing to do) */
    CV_REJECT,      /* can never be processed: undo its effect, send it to the dead-letter topic */
    CV_RETRY,       /* transient failure: roll back the batch and try again later */
};

/* Called inside the batch's transaction on conn, after the event id was claimed (so it runs
 * once per event). Writes its state and emits events with cv_service_emit on conn. On
 * CV_REJECT, reason says why. */
typedef enum cv_handler_result (*cv_event_handler)(struct cv_service *svc, PGconn *conn,
                                                   const struct cv_event *ev, char *reason,
                                                   size_t reason_size);

struct cv_service_def {
    const char *name;            /* "order": logs, consumer group, client id, "<name>.dlq" */
    const char *summary;         /* one line for --help */
    const char *topic;           /* the topic this service produces to, or NULL */
    const char *const *consumes; /* NULL-terminated topics, or NULL */
    const char *default_http_port;
    const char *default_database_url;
    const struct cv_config_var *config; /* the service's own variables (name NULL ends) */
    const struct cv_http_route *routes;
    size_t nroutes;
    cv_event_handler on_event;
    /* raw: every record reaches on_event, undecodable ones too (data NULL), and the runtime
     * does not claim event ids (the audit service keeps its own record of what it stored). */
    int raw;
    /* Optional: called first in each batch's transaction with all its events (data NULL for
     * undecodable ones), e.g. to lock the rows the batch will touch in one global order so that
     * replicas applying batches side by side cannot deadlock. 0, or -1 with err (the batch is
     * then retried if err is transient). */
    int (*on_batch)(struct cv_service *svc, PGconn *conn, const struct cv_event *const *events,
                    size_t n, struct cv_db_err *err);
    /* Optional: a statement housekeeping runs periodically, with $1 = the retention in hours
     * (PROCESSED_EVENTS_RETENTION_HOURS), deleting at most 10000 rows per run, e.g. old
     * idempotency keys; purge_table names them in metrics and logs. */
    const char *purge_sql;
    const char *purge_table;
    /* Optional: called once after migrations, with a connection (seed data and so on). */
    int (*init)(struct cv_service *svc, PGconn *conn);
    /* Optional: a PostgreSQL NOTIFY channel whose payloads are keys that requests wait on with
     * cv_service_wait (e.g. "order_status", notified with the order id by a trigger). */
    const char *notify_channel;
};

/* Runs the service until SIGTERM or SIGINT. Returns the process exit status. */
int cv_service_main(const struct cv_service_def *def, int argc, char **argv);

/* In a service's main.c: .routes and .nroutes of a cv_service_def from an array of routes. */
#define CV_SERVICE_ROUTES(array) .routes = (array), .nroutes = sizeof(array) / sizeof((array)[0])

const struct cv_config *cv_service_config(const struct cv_service *svc);
/* Nonzero once shutdown began (long polls end early). */
int cv_service_stopping(const struct cv_service *svc);

/* Connection for an HTTP handler; NULL with a 503 problem already replied when the database
 * is unreachable. Give it back with cv_service_db_release. */
PGconn *cv_service_db_acquire(struct cv_service *svc, struct cv_http_response *resp);
void cv_service_db_release(struct cv_service *svc, PGconn *conn);

/* Long polls (needs def->notify_channel). A handler takes a mark, reads the state, and when it
 * has to wait, calls cv_service_wait and returns without replying: the request is suspended (it
 * holds no thread and no database connection) until the key is notified on the channel (by any
 * replica: the wake-up comes from the database), deadline_ms (cv_monotonic_ms clock) passes, or
 * the service stops. on_wake then runs on a server thread as the request's handler: it reads
 * the state again (the notification is only a hint) and replies, or takes a new mark and waits
 * again. Per-request state goes in cv_http_set_state. Returns 0 (suspended), or -1 after
 * replying: 429 with Retry-After when HTTP_MAX_WAITING requests wait already. */
uint64_t cv_service_wait_mark(struct cv_service *svc);
int cv_service_wait(struct cv_service *svc, struct cv_http_request *req,
                    struct cv_http_response *resp, const char *key, uint64_t mark,
                    int64_t deadline_ms, cv_http_handler on_wake);

/* Emits an event of type (a schema in the catalogue) with data (its fields except metadata)
 * to the service's topic, keyed by key, through the outbox on conn, in the caller's open
 * transaction. The metadata (new event id, time, producer, correlation and causation ids) is
 * filled in here; cause is the event that led to this one, or NULL. Writes the new event's
 * id into event_id_out when not NULL (37 bytes). 0, or -1 with err. */
int cv_service_emit(struct cv_service *svc, PGconn *conn, const char *type, const char *key,
                    const json_t *data, const char *correlation_id, const struct cv_event *cause,
                    char *event_id_out, struct cv_db_err *err);

/* The bounded kind of a dead letter's reason, the label of consumer_dead_lettered_total:
 * unknown_schema, undecodable, held_back, database, rejected (by a handler) or other. */
const char *cv_service_dead_letter_kind(const char *reason);

/* Maps a failed database call inside a handler to the handler's result: CV_RETRY when err is
 * transient, otherwise CV_REJECT with err's message in reason. */
enum cv_handler_result cv_service_db_failure(const struct cv_db_err *err, char *reason,
                                             size_t reason_size);

/* Reads integer query parameter name into *out: def when absent, else it must be an integer
 * in min..max. Returns 0, or -1 after replying a 400 problem naming the parameter. */
int cv_service_query_int(struct cv_http_request *req, struct cv_http_response *resp,
                         const char *name, long def, long min, long max, long *out);

/* Reads the query parameters of a page by sequence cursor: limit (1 to 500, 50 when absent)
 * and after (the previous page's next; 0, from the start, when absent). 0, or -1 after
 * replying a 400 problem naming the parameter. */
int cv_service_query_page(struct cv_http_request *req, struct cv_http_response *resp, long *after,
                          long *limit);

#define CV_SERVICE_PAGE_MAX_PARAMS 8

/* Runs a page query: each row is (cursor text, JSON text of one item), at most limit rows;
 * the statement takes limit as its last parameter ($nparams + 1, added here). Returns {key:
 * [items], "next": the last row's cursor when the page is full, else null} with *found 1, or
 * NULL with *found -1 and err set: a cv_service_reader's result. */
json_t *cv_service_page(PGconn *conn, const char *sql, int nparams, const char *const *params,
                        long limit, const char *key, int *found, struct cv_db_err *err);

/* Replies to a lookup: 200 with body when found > 0, a 404 problem ("no such <what>", naming
 * field) when found == 0, the database error err when found < 0. Takes ownership of body. */
void cv_service_reply_lookup(struct cv_http_response *resp, json_t *body, int found,
                             const struct cv_db_err *err, const char *what, const char *field);

/* The path parameter param when valid accepts it; otherwise NULL after replying 404 "no such
 * <what>" naming param (a malformed key names nothing that exists). */
const char *cv_service_path_key(struct cv_http_request *req, struct cv_http_response *resp,
                                const char *param, int (*valid)(const char *), const char *what);

/* A read for an HTTP handler: the JSON that query (the reader's own type) asks for, or NULL
 * with *found 0 (there is none) or -1 (a database error in err). Caller decrefs. */
typedef json_t *(*cv_service_reader)(PGconn *conn, const void *query, int *found,
                                     struct cv_db_err *err);

/* The read skeleton of an HTTP handler: read on a pooled connection, given back at once.
 * Returns what it found (caller decrefs), or NULL after replying: 404 "no such <what>" naming
 * field, the database error, or 503 without a connection. */
json_t *cv_service_read(struct cv_service *svc, struct cv_http_response *resp,
                        cv_service_reader read, const void *query, const char *what,
                        const char *field);
/* cv_service_read, then 200 with what it found. */
void cv_service_reply_read(struct cv_service *svc, struct cv_http_response *resp,
                           cv_service_reader read, const void *query, const char *what,
                           const char *field);

/* Replies 503 (database unavailable) or 500 for a failed database call in an HTTP handler. */
void cv_service_reply_db_error(struct cv_http_response *resp, const struct cv_db_err *err);

#endif
