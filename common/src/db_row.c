/* Single rows and row counts: what the services' storage reads back most often. Their JSON
 * representations are built in SQL (json_build_object) so that each lives in one place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/db.h"

json_t *cv_db_query_json(PGconn *conn, const char *sql, int nparams, const char *const *params,
                         long long *column1, int *found, struct cv_db_err *err)
{
    PGresult *res = cv_db_query(conn, sql, nparams, params, err);
    if (!res) {
        *found = -1;
        return NULL;
    }
    json_t *row = NULL;
    *found = PQntuples(res) == 1;
    if (*found) {
        row = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        if (row && column1)
            *column1 = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    if (*found && !row) {
        /* Only a query that builds no JSON (or memory running out) gets here. */
        cv_db_err_client(err, 0, "the row is not readable JSON");
        *found = -1;
    }
    return row;
}

int cv_db_query_text(PGconn *conn, const char *sql, int nparams, const char *const *params,
                     char *out, size_t out_size, struct cv_db_err *err)
{
    PGresult *res = cv_db_query(conn, sql, nparams, params, err);
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    snprintf(out, out_size, "%s", found ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return found;
}

int cv_db_exec_count(PGconn *conn, const char *sql, int nparams, const char *const *params,
                     struct cv_db_err *err)
{
    PGresult *res = cv_db_query(conn, sql, nparams, params, err);
    if (!res)
        return -1;
    int changed = atoi(PQcmdTuples(res));
    PQclear(res);
    return changed;
}
