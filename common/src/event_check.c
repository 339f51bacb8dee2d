/* Checks of consumed events that their schema cannot express (see cv/event.h). */
#include <stdio.h>
#include <string.h>

#include "cv/event.h"
#include "cv/util.h"

const char *cv_event_order_id(const struct cv_event *ev, char *reason, size_t reason_size)
{
    const json_t *v = json_object_get(ev->data, "order_id");
    const char *id = json_string_value(v);
    if (!id) {
        snprintf(reason, reason_size, "%s without order_id", ev->type);
        return NULL;
    }
    if (!cv_uuid_valid(id)) {
        snprintf(reason, reason_size, "%s has a malformed order_id", ev->type);
        return NULL;
    }
    return id;
}

int cv_event_items_valid(const struct cv_event *ev, const char *field, int nonempty, char *reason,
                         size_t reason_size)
{
    const json_t *items = json_object_get(ev->data, field);
    if (!json_is_array(items)) {
        snprintf(reason, reason_size, "%s without %s", ev->type, field);
        return -1;
    }
    if (nonempty && json_array_size(items) == 0) {
        snprintf(reason, reason_size, "%s has no %s", ev->type, field);
        return -1;
    }
    size_t i;
    const json_t *item;
    json_array_foreach(items, i, item)
    {
        const json_t *skuv = json_object_get(item, "sku");
        const char *sku = json_string_value(skuv);
        const json_t *qty = json_object_get(item, "quantity");
        /* A NUL byte inside would make the SKU read as its first part: another SKU. */
        if (!sku || strlen(sku) != json_string_length(skuv) || !cv_sku_valid(sku)) {
            snprintf(reason, reason_size, "%s %s[%zu].sku is not a valid SKU", ev->type, field, i);
            return -1;
        }
        if (!json_is_integer(qty) || json_integer_value(qty) <= 0 ||
            json_integer_value(qty) > CV_EVENT_MAX_QUANTITY) {
            snprintf(reason, reason_size, "%s %s[%zu].quantity must be 1 to %ld", ev->type, field,
                     i, CV_EVENT_MAX_QUANTITY);
            return -1;
        }
    }
    return 0;
}

const char *cv_event_string(const struct cv_event *ev, const char *name, char *reason,
                            size_t reason_size)
{
    const char *s = json_string_value(json_object_get(ev->data, name));
    if (!s)
        snprintf(reason, reason_size, "%s without %s", ev->type, name);
    return s;
}
