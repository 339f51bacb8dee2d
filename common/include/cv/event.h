/* Checks of consumed events beyond what their schema says: an event that decodes can still
 * carry a malformed order id or a quantity no request could have made. A consumer rejects
 * such an event (dead letter with the reason) instead of applying it. */
#ifndef CV_EVENT_H
#define CV_EVENT_H

#include <stddef.h>

#include "cv/service.h"

/* Largest quantity of one item an event may carry (the order API accepts up to 10000). */
#define CV_EVENT_MAX_QUANTITY 1000000L

/* The event's order_id when it is present and a UUID; NULL with the reason in reason
 * ("OrderPlaced without order_id", "... has a malformed order_id"). */
const char *cv_event_order_id(const struct cv_event *ev, char *reason, size_t reason_size);

/* Checks the event's array field items (StockItem or OrderItem): at least one item when
 * nonempty is set, each with a valid SKU and a quantity of 1 to CV_EVENT_MAX_QUANTITY.
 * 0, or -1 with the reason naming the bad item. */
int cv_event_items_valid(const struct cv_event *ev, const char *field, int nonempty, char *reason,
                         size_t reason_size);

/* The event's string field name, or NULL with the reason when it is missing. */
const char *cv_event_string(const struct cv_event *ev, const char *name, char *reason,
                            size_t reason_size);

#endif
