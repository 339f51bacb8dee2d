/* Processed-event records for idempotent consumers (table processed_events). */
#include "cv/dedup.h"

#include <string.h>

int cv_dedup_claim(PGconn *conn, const char *consumer, const char *event_id,
                   struct cv_db_err *err)
{
    const char *params[] = {consumer, event_id};
    PGresult *res = cv_db_query(conn,
                                "INSERT INTO processed_events (consumer, event_id)"
                                " VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                2, params, err);
    if (!res)
        return -1;
    int inserted = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return inserted;
}
