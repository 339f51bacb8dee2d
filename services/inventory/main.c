/* inventory-service: wiring of the inventory service's routes, topics and handlers. */
#include "inventory.h"

static const struct cv_http_route routes[] = {
    {"GET", "/inventory", inventory_http_list, CV_ROLES_ANY},
    {"GET", "/inventory/{sku}", inventory_http_get, CV_ROLES_ANY},
    {"PUT", "/inventory/{sku}", inventory_http_put, CV_ROLE_OPERATOR},
    {"POST", "/inventory/{sku}/adjust", inventory_http_adjust, CV_ROLE_OPERATOR},
};

static const char *const consumes[] = {"orders", "shipments", NULL};

static const struct cv_config_var config[] = {
    {"INVENTORY_SEED", "true", "Load the demo catalogue when the stock table is empty",
     CV_CONFIG_BOOL, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0},
};

static int inventory_init(struct cv_service *svc, PGconn *conn)
{
    if (!cv_config_bool(cv_service_config(svc), "INVENTORY_SEED"))
        return 0;
    return inventory_seed(svc, conn);
}

static const struct cv_service_def inventory_service = {
    .name = "inventory",
    .summary = "Conveyor inventory service: reserves, releases and ships stock.",
    .topic = "inventory",
    .consumes = consumes,
    .default_http_port = "8082",
    .default_database_url = "postgresql://postgres@127.0.0.1:5432/conveyor_inventory",
    .config = config,
    CV_SERVICE_ROUTES(routes),
    .on_event = inventory_on_event,
    .on_batch = inventory_on_batch,
    .init = inventory_init,
};

int main(int argc, char **argv)
{
    return cv_service_main(&inventory_service, argc, argv);
}
