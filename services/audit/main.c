/* audit-service: wiring of the audit service's routes, topics and handler. */
#include "audit.h"

static const struct cv_http_route routes[] = {
    {"GET", "/events", audit_http_list, CV_ROLE_AUDITOR},
    {"GET", "/events/{event_id}", audit_http_get, CV_ROLE_AUDITOR},
    {"GET", "/stats", audit_http_stats, CV_ROLE_AUDITOR},
};

static const char *const consumes[] = {"orders",        "inventory",    "shipments", "order.dlq",
                                       "inventory.dlq", "shipping.dlq", "audit.dlq", NULL};

static const struct cv_service_def audit_service = {
    .name = "audit",
    .summary = "Conveyor audit service: records every event and answers questions about them.",
    .topic = NULL,
    .consumes = consumes,
    .default_http_port = "8084",
    .default_database_url = "postgresql://postgres@127.0.0.1:5432/conveyor_audit",
    CV_SERVICE_ROUTES(routes),
    .on_event = audit_on_event,
    .raw = 1,
};

int main(int argc, char **argv)
{
    return cv_service_main(&audit_service, argc, argv);
}
