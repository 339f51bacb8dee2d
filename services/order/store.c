/* SQL of the order service. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "order.h"

/* One order as JSON, built by PostgreSQL so that the representation lives in one place. */
/* clang-format off */
#define ORDER_JSON                                                                                 \
    "json_strip_nulls(json_build_object('id', id, 'customer_id', customer_id, 'items', items,"     \
    " 'total_cents', total_cents, 'status', status, 'reason', reason,"                             \
    " 'shipping_address', shipping_address,"                                                       \
    " 'cancellation', CASE WHEN cancellation_status IS NOT NULL THEN json_build_object("           \
    "  'status', cancellation_status, 'reason', cancellation_reason,"                              \
    "  'requested_at', " CV_DB_JSON_TIME("cancellation_requested_at") ") END,"                     \
    " 'created_at', " CV_DB_JSON_TIME("created_at") ","                                            \
    " 'updated_at', " CV_DB_JSON_TIME("updated_at") "))"
/* clang-format on */

static const char *const statuses[] = {"PENDING",    "CONFIRMED",  "SHIPMENT_SCHEDULED",
                                       "CANCELLING", "DISPATCHED", "DELIVERED",
                                       "REJECTED",   "CANCELLED",  NULL};

int order_status_valid(const char *status)
{
    for (int i = 0; statuses[i]; i++)
        if (strcmp(status, statuses[i]) == 0)
            return 1;
    return 0;
}

json_t *order_store_get(PGconn *conn, const char *id, int *found, struct cv_db_err *err)
{
    const char *params[] = {id};
    return cv_db_query_json(conn, "SELECT " ORDER_JSON "::text FROM orders WHERE id = $1", 1,
                            params, NULL, found, err);
}

json_t *order_store_page(PGconn *conn, const void *query, int *found, struct cv_db_err *err)
{
    const struct order_page_query *q = query;
    char after_text[24];
    snprintf(after_text, sizeof(after_text), "%ld", q->after);
    const char *params[] = {q->status, q->customer_id, after_text};
    return cv_service_page(conn,
                           "SELECT seq, " ORDER_JSON "::text FROM orders"
                           " WHERE ($1::text IS NULL OR status = $1)"
                           " AND ($2::text IS NULL OR customer_id = $2) AND seq > $3::bigint"
                           " ORDER BY seq LIMIT $4::int",
                           3, params, q->limit, "orders", found, err);
}

/* Runs an UPDATE of one order: rows changed (0 or 1), or -1 with err. When it returns (status,
 * seconds since the order's creation) and the status is not NULL, the order just reached that
 * status: its saga latency is observed. */
static int update_order(PGconn *conn, const char *sql, int nparams, const char *const *params,
                        struct cv_db_err *err)
{
    PGresult *res = cv_db_query(conn, sql, nparams, params, err);
    if (!res)
        return -1;
    int changed = atoi(PQcmdTuples(res));
    if (changed > 0 && PQnfields(res) == 2 && !PQgetisnull(res, 0, 0))
        order_saga_observe(PQgetvalue(res, 0, 0), atof(PQgetvalue(res, 0, 1)));
    PQclear(res);
    return changed;
}

/* What the order's UPDATEs return for update_order. */
#define SAGA_SECONDS "extract(epoch FROM clock_timestamp() - created_at)"

int order_store_advance(PGconn *conn, const char *id, const char *status, const char *from,
                        const char *reason, struct cv_db_err *err)
{
    const char *params[] = {id, status, from, reason};
    return update_order(conn,
                        "UPDATE orders SET status = $2, reason = COALESCE($4, reason),"
                        " updated_at = now()"
                        " WHERE id = $1 AND status = ANY($3::text[])"
                        " RETURNING status, " SAGA_SECONDS,
                        4, params, err);
}

int order_store_request_cancel(PGconn *conn, const char *id, const char *reason,
                               struct cv_db_err *err)
{
    const char *params[] = {id, reason};
    return update_order(
        conn,
        "UPDATE orders SET"
        " status = CASE WHEN shipment_cancelled THEN 'CANCELLED' ELSE 'CANCELLING' END,"
        " reason = CASE WHEN shipment_cancelled THEN $2 ELSE reason END,"
        " cancellation_status = CASE WHEN shipment_cancelled THEN 'accepted' ELSE 'requested' END,"
        " cancellation_requested_at = now(), updated_at = now()"
        " WHERE id = $1 AND status IN ('PENDING', 'CONFIRMED', 'SHIPMENT_SCHEDULED')"
        " RETURNING status, " SAGA_SECONDS,
        2, params, err);
}

int order_store_shipment_cancelled(PGconn *conn, const char *id, const char *reason,
                                   struct cv_db_err *err)
{
    const char *params[] = {id, reason};
    /* Recorded once; ends a requested cancellation. A shipment cancelled for rejected stock
     * leaves a PENDING order to StockRejected. Only a CANCELLING order becomes CANCELLED here
     * (the row was not shipment_cancelled), so a CANCELLED row returned is one that just
     * became so. */
    return update_order(conn,
                        "UPDATE orders SET shipment_cancelled = true,"
                        " status = CASE WHEN status = 'CANCELLING' THEN 'CANCELLED'"
                        "  ELSE status END,"
                        " reason = CASE WHEN status = 'CANCELLING' THEN $2 ELSE reason END,"
                        " cancellation_status = CASE WHEN status = 'CANCELLING'"
                        "  THEN 'accepted' ELSE cancellation_status END,"
                        " updated_at = now()"
                        " WHERE id = $1 AND NOT shipment_cancelled"
                        " RETURNING CASE WHEN status = 'CANCELLED' THEN status END, " SAGA_SECONDS,
                        2, params, err);
}

int order_store_cancellation_refused(PGconn *conn, const char *id, const char *reason,
                                     struct cv_db_err *err)
{
    const char *params[] = {id, reason};
    return update_order(conn,
                        "UPDATE orders SET cancellation_status = 'refused',"
                        " cancellation_reason = $2, updated_at = now()"
                        " WHERE id = $1 AND cancellation_status = 'requested'",
                        2, params, err);
}
