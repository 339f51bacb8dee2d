/* Processed-event records for idempotent consumers (table processed_events). */
#include "cv/dedup.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Runs one claiming statement; 1 if it wrote a row, 0 if not, -1 with err. */
static int claim(PGconn *conn, const char *sql, const char *consumer, const char *event_id,
                 struct cv_db_err *err)
{
    const char *params[] = {consumer, event_id};
    PGresult *res = cv_db_query(conn, sql, 2, params, err);
    if (!res)
        return -1;
    int inserted = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return inserted;
}

int cv_dedup_claim(PGconn *conn, const char *consumer, const char *event_id, struct cv_db_err *err)
{
    return claim(conn,
                 "INSERT INTO processed_events (consumer, event_id)"
                 " VALUES ($1, $2) ON CONFLICT DO NOTHING",
                 consumer, event_id, err);
}

int cv_dedup_claim_dead_letter(PGconn *conn, const char *consumer, const char *event_id,
                               struct cv_db_err *err)
{
    return claim(conn,
                 "INSERT INTO processed_events (consumer, event_id, dead_lettered)"
                 " VALUES ($1, $2, true) ON CONFLICT DO NOTHING",
                 consumer, event_id, err);
}

int cv_dedup_claim_redriven(PGconn *conn, const char *consumer, const char *event_id,
                            struct cv_db_err *err)
{
    return claim(conn,
                 "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)"
                 " ON CONFLICT (consumer, event_id) DO UPDATE SET dead_lettered = false,"
                 " processed_at = now() WHERE processed_events.dead_lettered",
                 consumer, event_id, err);
}

int cv_dedup_claim_batch(PGconn *conn, const char *consumer, const char *const *event_ids, size_t n,
                         int *claimed, struct cv_db_err *err)
{
    json_t *ids = json_array();
    for (size_t i = 0; ids && i < n; i++) {
        claimed[i] = 0;
        if (event_ids[i] && json_array_append_new(ids, json_string(event_ids[i])) < 0) {
            json_decref(ids);
            ids = NULL;
        }
    }
    char *ids_json = ids ? json_dumps(ids, JSON_COMPACT) : NULL;
    json_decref(ids);
    if (!ids_json) {
        cv_db_err_client(err, 1, "out of memory");
        return -1;
    }
    /* A JSON array rather than a text[] literal: no quoting rules of our own. An id twice in
     * the list is inserted once (the second meets the first's row), like two claims in turn. */
    const char *params[] = {consumer, ids_json};
    PGresult *res = cv_db_query(conn,
                                "INSERT INTO processed_events (consumer, event_id)"
                                " SELECT $1, e FROM jsonb_array_elements_text($2::jsonb) AS e"
                                " ON CONFLICT DO NOTHING RETURNING event_id",
                                2, params, err);
    free(ids_json);
    if (!res)
        return -1;
    /* Each id returned is claimed by its first occurrence in the list. */
    for (int r = 0; r < PQntuples(res); r++) {
        const char *id = PQgetvalue(res, r, 0);
        for (size_t i = 0; i < n; i++)
            if (event_ids[i] && !claimed[i] && strcmp(event_ids[i], id) == 0) {
                claimed[i] = 1;
                break;
            }
    }
    PQclear(res);
    return 0;
}

int cv_dedup_mark_dead_letter(PGconn *conn, const char *consumer, const char *event_id,
                              struct cv_db_err *err)
{
    const char *params[] = {consumer, event_id};
    return cv_db_exec(conn,
                      "UPDATE processed_events SET dead_lettered = true"
                      " WHERE consumer = $1 AND event_id = $2",
                      2, params, err);
}
