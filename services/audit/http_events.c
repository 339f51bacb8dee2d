/* HTTP API of the audit service: query recorded events, one event, statistics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cv/util.h"

#define EVENT_JSON                                                                                 \
    "json_build_object('event_id', event_id, 'type', type, 'topic', topic,"                        \
    " 'partition', partition, 'offset', \"offset\", 'key', key,"                                   \
    " 'key_hex', CASE WHEN key IS NULL THEN encode(key_bytes, 'hex') END, 'order_id', order_id,"   \
    " 'occurred_at', " CV_DB_JSON_TIME(                                                            \
        "occurred_at") ","                                                                         \
                       " 'recorded_at', " CV_DB_JSON_TIME(                                         \
                           "recorded_at") ","                                                      \
                                          " 'producer', producer, 'headers', headers, 'data', "    \
                                          "data)"

/* Parses an RFC 3339 query parameter into milliseconds as text; 0 absent, 1 set, -1 replied. */
static int time_param(struct cv_http_request *req, struct cv_http_response *resp, const char *name,
                      char out[24])
{
    const char *text = cv_http_query(req, name);
    if (!text)
        return 0;
    int64_t ms;
    if (cv_parse_time(text, &ms) < 0) {
        cv_http_reply_problem(resp, 400, "Bad Request",
                              "expected an RFC 3339 time such as 2026-01-31T12:00:00Z", name);
        return -1;
    }
    snprintf(out, 24, "%lld", (long long)ms);
    return 1;
}

/* What GET /events asks for: its filters and cursor as the statement's parameters. */
struct events_query {
    const char *params[7];
    long limit;
};

static json_t *read_events(PGconn *conn, const void *query, int *found, struct cv_db_err *err)
{
    const struct events_query *q = query;
    return cv_service_page(
        conn,
        "SELECT (extract(epoch from occurred_at) * 1000)::bigint || '.' || seq,"
        " " EVENT_JSON "::text FROM events"
        " WHERE ($1::text IS NULL OR order_id = $1) AND ($2::text IS NULL OR type = $2)"
        " AND ($3::text IS NULL OR topic = $3)"
        " AND ($4::bigint IS NULL OR occurred_at >= to_timestamp($4::bigint / 1000.0))"
        " AND ($5::bigint IS NULL OR occurred_at < to_timestamp($5::bigint / 1000.0))"
        " AND ($6::bigint IS NULL OR (occurred_at, seq) >"
        "      (to_timestamp($6::bigint / 1000.0), $7::bigint))"
        " ORDER BY occurred_at, seq LIMIT $8::int",
        7, q->params, q->limit, "events", found, err);
}

void audit_http_list(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    char since[24], until[24], after_ms[24] = "", after_seq[24] = "";
    int has_since = time_param(req, resp, "since", since);
    if (has_since < 0)
        return;
    int has_until = time_param(req, resp, "until", until);
    if (has_until < 0)
        return;
    struct events_query q;
    if (cv_service_query_int(req, resp, "limit", 100, 1, 1000, &q.limit) < 0)
        return;
    /* Cursor "<occurred_at ms>.<seq>" of the last event of the previous page. */
    const char *after = cv_http_query(req, "after");
    if (after) {
        long long ms, seq;
        char tail;
        if (sscanf(after, "%lld.%lld%c", &ms, &seq, &tail) != 2 || ms < 0 || seq < 0) {
            cv_http_reply_problem(resp, 400, "Bad Request", "not a cursor from \"next\"", "after");
            return;
        }
        snprintf(after_ms, sizeof(after_ms), "%lld", ms);
        snprintf(after_seq, sizeof(after_seq), "%lld", seq);
    }
    const char *params[] = {cv_http_query(req, "order_id"), cv_http_query(req, "type"),
                            cv_http_query(req, "topic"),    has_since ? since : NULL,
                            has_until ? until : NULL,       after ? after_ms : NULL,
                            after ? after_seq : NULL};
    memcpy(q.params, params, sizeof(params));
    cv_service_reply_read(app, resp, read_events, &q, NULL, NULL);
}

static json_t *read_event(PGconn *conn, const void *event_id, int *found, struct cv_db_err *err)
{
    const char *params[] = {event_id};
    return cv_db_query_json(conn, "SELECT " EVENT_JSON "::text FROM events WHERE event_id = $1", 1,
                            params, NULL, found, err);
}

void audit_http_get(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    cv_service_reply_read(app, resp, read_event, cv_http_path_param(req, "event_id"), "event",
                          "event_id");
}

static json_t *read_stats(PGconn *conn, const void *query, int *found, struct cv_db_err *err)
{
    /* From event_counts (kept by a trigger on insert): cheap however large events is. */
    return cv_db_query_json(
        conn,
        "SELECT json_build_object("
        " 'total', (SELECT COALESCE(sum(n), 0) FROM event_counts),"
        " 'by_type', COALESCE((SELECT json_object_agg(type, n) FROM"
        "   (SELECT type, sum(n) AS n FROM event_counts GROUP BY type ORDER BY type) t), '{}'),"
        " 'by_topic', COALESCE((SELECT json_object_agg(topic, n) FROM"
        "   (SELECT topic, sum(n) AS n FROM event_counts GROUP BY topic ORDER BY topic) t), '{}'),"
        " 'last_event_at', (SELECT " CV_DB_JSON_TIME(
            "max(last_event_at)") " FROM event_counts),"
                                  " 'last_recorded_at', (SELECT " CV_DB_JSON_TIME(
                                      "max(last_recorded_at)") " FROM"
                                                               " event_counts))::text",
        0, NULL, NULL, found, err);
}

void audit_http_stats(struct cv_http_request *req, struct cv_http_response *resp, void *app)
{
    cv_service_reply_read(app, resp, read_stats, NULL, NULL, NULL);
}
