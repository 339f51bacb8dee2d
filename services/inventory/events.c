/* Inventory's reactions to orders and shipments. A reservation row per order records what was
 * decided, so every event is applied at most once per order whatever arrives twice or late:
 * an order is reserved or rejected once (INSERT ... ON CONFLICT DO NOTHING: a replica that
 * lost the race changes nothing), released only while reserved, shipped only while reserved
 * (UPDATE ... WHERE status = 'RESERVED'), and stock moves only when that row changed.
 * The reservation is released when the SHIPMENT is cancelled, not when the order asks: only
 * shipping knows whether the goods have left, so goods on a truck never count as available.
 * Stock rows are locked in SKU order, so concurrent reservations cannot deadlock on each other
 * within one transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/event.h"
#include "cv/log.h"
#include "cv/util.h"
#include "inventory.h"

/* Sums the order's items per SKU, sorted by SKU: [{"sku", "quantity"}]. */
static json_t *items_by_sku(const json_t *items)
{
    json_t *sums = json_object();
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        const char *sku = json_string_value(json_object_get(item, "sku"));
        json_int_t qty = json_integer_value(json_object_get(item, "quantity"));
        if (!sku)
            continue;
        json_t *sum = json_object_get(sums, sku);
        json_object_set_new(sums, sku, json_integer(qty + (sum ? json_integer_value(sum) : 0)));
    }
    json_t *out = json_array();
    const char *sku;
    json_t *qty;
    json_object_foreach(sums, sku, qty)
        json_array_append_new(out, json_pack("{s:s, s:O}", "sku", sku, "quantity", qty));
    json_decref(sums);
    /* jansson keeps insertion order; sort by SKU for the lock order. */
    size_t n = json_array_size(out);
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0; b--) {
            json_t *x = json_array_get(out, b - 1), *y = json_array_get(out, b);
            if (strcmp(json_string_value(json_object_get(x, "sku")),
                       json_string_value(json_object_get(y, "sku"))) <= 0)
                break;
            json_incref(x);
            json_array_set(out, b - 1, y);
            json_array_set_new(out, b, x);
        }
    return out;
}

/* The reservation's status for order_id, "" if none, into status (16 bytes); locks the row. */
static int reservation_status(PGconn *conn, const char *order_id, char status[16],
                              struct cv_db_err *err)
{
    const char *params[] = {order_id};
    return cv_db_query_text(conn, "SELECT status FROM reservations WHERE order_id = $1 FOR UPDATE",
                            1, params, status, 16, err);
}

/* Records the first decision for order_id; 1 if this call made it, 0 if one existed (made by
 * another replica meanwhile), -1 with err. */
static int record_decision(PGconn *conn, const char *order_id, const char *status,
                           const json_t *items, struct cv_db_err *err)
{
    char *text = json_dumps(items, JSON_COMPACT);
    if (!text) {
        cv_db_err_client(err, 1, "out of memory");
        return -1;
    }
    const char *params[] = {order_id, status, text};
    int inserted = cv_db_exec_count(conn,
                                    "INSERT INTO reservations (order_id, status, items)"
                                    " VALUES ($1, $2, $3) ON CONFLICT (order_id) DO NOTHING",
                                    3, params, err);
    free(text);
    return inserted;
}

/* Moves the order's reservation as the route says (from one of its statuses to its status); its
 * items into *items (caller decrefs) when it did. 1 if it moved, 0 if it was in none of those
 * statuses (or is unknown), -1 with err. */
static int move_reservation(PGconn *conn, const struct cv_event_call *call, json_t **items,
                            struct cv_db_err *err)
{
    const char *order_id = call->order_id;
    const char *params[] = {order_id, call->route->to, call->route->from};
    PGresult *res =
        cv_db_query(conn,
                    "UPDATE reservations SET status = $2, updated_at = now()"
                    " WHERE order_id = $1 AND status = ANY($3::text[]) RETURNING items::text",
                    3, params, err);
    if (!res)
        return -1;
    int moved = PQntuples(res) == 1;
    *items = moved ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    PQclear(res);
    if (moved && !*items) {
        snprintf(err->msg, sizeof(err->msg), "reservation of %s has unreadable items", order_id);
        err->transient = 0;
        err->sqlstate[0] = '\0';
        return -1;
    }
    return moved;
}

/* Moves qty units of sku between columns: "available -> reserved" and so on. */
static int move_stock(PGconn *conn, const char *sku, json_int_t qty, const char *set_sql,
                      struct cv_db_err *err)
{
    char q[24];
    snprintf(q, sizeof(q), "%lld", (long long)qty);
    const char *params[] = {sku, q};
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE stock SET %s, updated_at = now() WHERE sku = $1", set_sql);
    return cv_db_exec(conn, sql, 2, params, err);
}

/* Moves every item's quantity between columns as move_stock does. 0, or -1 with err. */
static int move_items(PGconn *conn, const json_t *items, const char *set_sql, struct cv_db_err *err)
{
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        if (move_stock(conn, json_string_value(json_object_get(item, "sku")),
                       json_integer_value(json_object_get(item, "quantity")), set_sql, err) < 0)
            return -1;
    }
    return 0;
}

/* Moves the reservation as the route says and, when it moved, its items' stock between columns
 * (set_sql, as move_stock takes it); the items into *items (caller decrefs). 1 if it moved, 0 if
 * not, -1 with err. */
static int move_reserved_stock(PGconn *conn, const struct cv_event_call *call, const char *set_sql,
                               json_t **items, struct cv_db_err *err)
{
    int moved = move_reservation(conn, call, items, err);
    if (moved > 0 && move_items(conn, *items, set_sql, err) < 0)
        return -1;
    return moved;
}

/* OrderPlaced: reserves all its items or none (RESERVED or REJECTED, decided once). */
static enum cv_handler_result on_order_placed(PGconn *conn, const struct cv_event_call *call)
{
    const char *order_id = call->order_id;
    struct cv_db_err err;
    char status[16];
    if (reservation_status(conn, order_id, status, &err) < 0)
        return cv_event_db_failure(call, &err);
    if (status[0]) /* decided already (or its shipment cancelled before it was placed) */
        return CV_HANDLED;

    json_t *items = items_by_sku(json_object_get(call->ev->data, "items"));
    json_t *shortages = json_array();
    char why[1024] = "insufficient stock:";
    size_t why_len = strlen(why);
    size_t i;
    json_t *item;
    enum cv_handler_result result = CV_HANDLED;
    json_array_foreach(items, i, item)
    {
        const char *sku = json_string_value(json_object_get(item, "sku"));
        json_int_t want = json_integer_value(json_object_get(item, "quantity"));
        const char *params[] = {sku};
        PGresult *res = cv_db_query(conn, "SELECT available FROM stock WHERE sku = $1 FOR UPDATE",
                                    1, params, &err);
        if (!res) {
            result = cv_event_db_failure(call, &err);
            goto cleanup;
        }
        json_int_t have = PQntuples(res) ? atoll(PQgetvalue(res, 0, 0)) : 0;
        int known = PQntuples(res) == 1;
        PQclear(res);
        if (have < want) {
            json_array_append_new(shortages, json_pack("{s:s, s:I, s:I}", "sku", sku, "requested",
                                                       want, "available", have));
            why_len +=
                (size_t)snprintf(why + why_len, why_len < sizeof(why) ? sizeof(why) - why_len : 0,
                                 "%s %s (requested %lld, available %lld%s)",
                                 json_array_size(shortages) > 1 ? "," : "", sku, (long long)want,
                                 (long long)have, known ? "" : ", unknown SKU");
        }
    }
    int reserve = json_array_size(shortages) == 0;
    const char *type = reserve ? "StockReserved" : "StockRejected";
    /* The decision first: if another replica decided (or recorded a cancelled shipment)
     * since the read above, this one changes nothing. */
    int inserted = record_decision(conn, order_id, reserve ? "RESERVED" : "REJECTED", items, &err);
    if (inserted < 0) {
        result = cv_event_db_failure(call, &err);
        goto cleanup;
    }
    if (!inserted)
        goto cleanup;
    if (reserve &&
        move_items(conn, items,
                   "available = available - $2::bigint, reserved = reserved + $2::bigint",
                   &err) < 0) {
        result = cv_event_db_failure(call, &err);
        goto cleanup;
    }
    json_t *event = reserve ? json_pack("{s:s, s:O}", "order_id", order_id, "items", items)
                            : json_pack("{s:s, s:s, s:O}", "order_id", order_id, "reason", why,
                                        "shortages", shortages);
    result = cv_event_emit(conn, call, type, event);
    if (result == CV_HANDLED)
        cv_log_info("order %s: %s", order_id, reserve ? "reserved" : why);
cleanup:
    json_decref(items);
    json_decref(shortages);
    return result;
}

/* ShipmentCancelled: the goods will not leave, so a RESERVED reservation goes back to
 * available (StockReleased). A shipment cancelled before inventory saw the order is recorded
 * RELEASED, so that the order is never reserved. */
static enum cv_handler_result on_shipment_cancelled(PGconn *conn, const struct cv_event_call *call)
{
    const char *order_id = call->order_id;
    const char *why = cv_event_string(call->ev, "reason", call->reason, call->reason_size);
    if (!why)
        return CV_REJECT;
    struct cv_db_err err;
    json_t *none = json_array();
    int inserted = record_decision(conn, order_id, call->route->to, none, &err);
    json_decref(none);
    if (inserted < 0)
        return cv_event_db_failure(call, &err);
    if (inserted) {
        cv_log_info("order %s: shipment cancelled before the order was seen", order_id);
        return CV_HANDLED;
    }
    json_t *items = NULL;
    int moved = move_reserved_stock(
        conn, call, "available = available + $2::bigint, reserved = reserved - $2::bigint", &items,
        &err);
    json_t *event = moved > 0 ? json_pack("{s:s, s:O, s:s}", "order_id", order_id, "items", items,
                                          "reason", why)
                              : NULL;
    json_decref(items);
    if (moved <= 0)
        return moved < 0 ? cv_event_db_failure(call, &err) : CV_HANDLED;
    enum cv_handler_result result = cv_event_emit(conn, call, "StockReleased", event);
    if (result == CV_HANDLED)
        cv_log_info("order %s: stock released", order_id);
    return result;
}

/* ShipmentDispatched: the reserved units left (reserved -> shipped), once. */
static enum cv_handler_result on_shipment_dispatched(PGconn *conn, const struct cv_event_call *call)
{
    const char *order_id = call->order_id;
    struct cv_db_err err;
    json_t *items = NULL;
    int moved = move_reserved_stock(
        conn, call, "reserved = reserved - $2::bigint, shipped = shipped + $2::bigint", &items,
        &err);
    json_decref(items);
    if (moved < 0)
        return cv_event_db_failure(call, &err);
    if (moved)
        cv_log_info("order %s: stock shipped", order_id);
    else {
        char status[16];
        if (reservation_status(conn, order_id, status, &err) < 0)
            return cv_event_db_failure(call, &err);
        if (strcmp(status, call->route->to) != 0)
            cv_log_warn("order %s dispatched while its reservation is %s", order_id,
                        status[0] ? status : "unknown");
    }
    return CV_HANDLED;
}

int inventory_on_batch(struct cv_service *svc, PGconn *conn, const struct cv_event *const *events,
                       size_t n, struct cv_db_err *err)
{
    /* Every SKU the batch may touch: those of placed orders, and those reserved for the
     * orders it cancels or ships. Locked here in SKU order, once, for the whole batch. */
    json_t *skus = json_array(), *orders = json_array();
    for (size_t i = 0; i < n; i++) {
        const json_t *data = events[i]->data;
        const char *order_id = json_string_value(json_object_get(data, "order_id"));
        if (order_id && cv_uuid_valid(order_id))
            json_array_append_new(orders, json_string(order_id));
        size_t k;
        json_t *item;
        json_array_foreach(json_object_get(data, "items"), k, item)
        {
            /* The SKU as it is, NUL bytes included: a value the database refuses fails the
             * batch, which is then applied record by record and that record dead-lettered. */
            json_t *sku = json_object_get(item, "sku");
            if (json_is_string(sku))
                json_array_append(skus, sku);
        }
    }
    int rc = 0;
    if (json_array_size(skus) || json_array_size(orders)) {
        /* Postgres array literals from JSON arrays of strings. */
        char *sku_json = json_dumps(skus, JSON_COMPACT),
             *order_json = json_dumps(orders, JSON_COMPACT);
        const char *params[] = {sku_json, order_json};
        rc = cv_db_exec(conn,
                        "SELECT sku FROM stock WHERE sku IN ("
                        " SELECT jsonb_array_elements_text($1::jsonb)"
                        " UNION SELECT jsonb_array_elements(items)->>'sku' FROM reservations"
                        "  WHERE order_id IN (SELECT jsonb_array_elements_text($2::jsonb)::uuid))"
                        " ORDER BY sku FOR UPDATE",
                        2, params, err);
        free(sku_json);
        free(order_json);
    }
    json_decref(skus);
    json_decref(orders);
    return rc;
}

/* Release 1's OrderCancelled is not acted on: the release follows ShipmentCancelled, which
 * shipping emits for it as for OrderCancellationRequested. */
static const struct cv_event_route routes[] = {
    {"OrderPlaced", on_order_placed, NULL, NULL, "items"}, /* RESERVED or REJECTED, once */
    {"ShipmentCancelled", on_shipment_cancelled, "RELEASED", "{RESERVED}", NULL},
    {"ShipmentDispatched", on_shipment_dispatched, "SHIPPED", "{RESERVED}", "items"},
    {NULL, NULL, NULL, NULL, NULL},
};

enum cv_handler_result inventory_on_event(struct cv_service *svc, PGconn *conn,
                                          const struct cv_event *ev, char *reason,
                                          size_t reason_size)
{
    return cv_event_dispatch(routes, NULL, svc, conn, ev, reason, reason_size);
}
