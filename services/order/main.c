/* order-service: wiring of the order service's routes, topics and handlers to the runtime. */
#include "order.h"

static const struct cv_http_route routes[] = {
    {"POST", "/orders", order_http_create, CV_ROLE_CUSTOMER | CV_HTTP_RATE_LIMITED},
    {"GET", "/orders", order_http_list, CV_ROLE_CUSTOMER},
    {"GET", "/orders/{id}", order_http_get, CV_ROLE_CUSTOMER},
    {"POST", "/orders/{id}/cancel", order_http_cancel, CV_ROLE_CUSTOMER},
};

static const char *const consumes[] = {"inventory", "shipments", NULL};

static const struct cv_service_def order_service = {
    .name = "order",
    .summary = "Conveyor order service: places orders and follows their status.",
    .topic = "orders",
    .consumes = consumes,
    .default_http_port = "8081",
    .default_database_url = "postgresql://postgres@127.0.0.1:5432/conveyor_order",
    CV_SERVICE_ROUTES(routes),
    .on_event = order_on_event,
    /* An Idempotency-Key protects a client's retries, long over once the retention passed. */
    .purge_sql = "DELETE FROM idempotency_keys WHERE key = ANY(ARRAY(SELECT key FROM"
                 " idempotency_keys WHERE created_at < now() - make_interval(hours => $1::int)"
                 " LIMIT 10000))",
    .purge_table = "idempotency_keys",
    .notify_channel = "order_status", /* long polls; see sql/002_order_status_notify.sql */
};

int main(int argc, char **argv)
{
    return cv_service_main(&order_service, argc, argv);
}
