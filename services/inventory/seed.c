/* The demo catalogue (services/inventory/seed/catalogue.json, compiled in), loaded when the
 * stock table is empty so that a first order works at once. */
#include "cv/embed.h"
#include "cv/log.h"
#include "inventory.h"

int inventory_seed(struct cv_service *svc, PGconn *conn)
{
    struct cv_db_err err;
    if (cv_db_begin(conn, &err) < 0)
        goto cleanup;
    /* The lock makes replicas starting together seed once. */
    if (cv_db_exec(conn, "LOCK TABLE stock IN EXCLUSIVE MODE", 0, NULL, &err) < 0)
        goto cleanup;
    PGresult *res = cv_db_query(conn, "SELECT NOT EXISTS (SELECT 1 FROM stock)", 0, NULL, &err);
    if (!res)
        goto cleanup;
    int empty = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    size_t loaded = 0;
    for (const struct cv_embedded_file *f = cv_service_seed; empty && f->path; f++) {
        json_error_t jerr;
        json_t *items = json_loads(f->data, 0, &jerr);
        if (!json_is_array(items)) {
            cv_log_error("seed %s: line %d: %s", f->path, jerr.line, jerr.text);
            json_decref(items);
            cv_db_rollback(conn);
            return -1;
        }
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
            const char *sku = json_string_value(json_object_get(item, "sku"));
            const char *name = json_string_value(json_object_get(item, "name"));
            json_int_t available = json_integer_value(json_object_get(item, "available"));
            if (!sku)
                snprintf(err.msg, sizeof(err.msg), "%s: an item without a sku", f->path);
            if (!sku ||
                inventory_store_set_available(svc, conn, sku, name, (long)available, &err) < 0) {
                json_decref(items);
                goto cleanup;
            }
            loaded++;
        }
        json_decref(items);
    }
    if (cv_db_commit(conn, &err) < 0)
        goto cleanup;
    if (loaded)
        cv_log_info("loaded %zu SKUs of demo stock", loaded);
    return 0;
cleanup:
    cv_db_rollback(conn);
    cv_log_error("seeding the stock: %s", err.msg);
    return -1;
}
