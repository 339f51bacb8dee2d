/* Processed-event records for idempotent consumers (table processed_events). */
#include "cv/dedup.h"

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
