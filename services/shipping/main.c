/* shipping-service: wiring of the shipping service's routes, topics and handlers. */
#include "shipping.h"

static const struct cv_http_route routes[] = {
    {"GET", "/shipments", shipping_http_list, CV_ROLE_OPERATOR},
    {"GET", "/shipments/{order_id}", shipping_http_get, CV_ROLE_OPERATOR},
    {"POST", "/shipments/{order_id}/dispatch", shipping_http_dispatch, CV_ROLE_OPERATOR},
    {"POST", "/shipments/{order_id}/deliver", shipping_http_deliver, CV_ROLE_OPERATOR},
};

static const char *const consumes[] = {"orders", "inventory", NULL};

static const struct cv_service_def shipping_service = {
    .name = "shipping",
    .summary = "Conveyor shipping service: schedules, dispatches and delivers shipments.",
    .topic = "shipments",
    .consumes = consumes,
    .default_http_port = "8083",
    .default_database_url = "postgresql://postgres@127.0.0.1:5432/conveyor_shipping",
    CV_SERVICE_ROUTES(routes),
    .on_event = shipping_on_event,
};

int main(int argc, char **argv)
{
    return cv_service_main(&shipping_service, argc, argv);
}
