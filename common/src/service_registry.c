/* Registry mode of a service (SCHEMA_REGISTRY_URL set): at start-up the current schema of every
 * event type is registered under "<topic>-<full name>" (TopicRecordNameStrategy) and its id
 * cached, so that cv_service_emit writes the Confluent framing; the consumer resolves unknown
 * ids through the same client. A background check registers them again now and then: a registry
 * that lost its storage gets them back, and an id that changed is followed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/avro_registry.h"
#include "cv/log.h"
#include "cv/util.h"
#include "service_int.h"

/* Registers every current event schema under svc's topic. Returns the number that failed;
 * errstr and *transient describe the first failure. Logs ids that changed. */
static int register_all(struct cv_service *svc, int *transient, char *errstr, size_t errstr_size)
{
    int failed = 0;
    *transient = 1;
    for (size_t i = 0; i < cv_avro_catalog_count(); i++) {
        const struct cv_schema *s = cv_avro_catalog_get(i);
        if (strcmp(cv_avro_schema_origin(s), "current") != 0)
            continue;
        char subject[400];
        if (cv_avro_registry_subject(svc->topic, s, subject, sizeof(subject)) < 0)
            continue;
        uint32_t before = 0, id;
        int had = cv_avro_schema_get_id(s, &before) == 0, tr;
        char err[512];
        if (cv_avro_registry_register(svc->registry, subject, s, &id, &tr, err, sizeof(err)) < 0) {
            if (failed++ == 0) {
                snprintf(errstr, errstr_size, "%s", err);
                *transient = tr;
            }
            continue;
        }
        if (had && before != id)
            cv_log_warn("schema registry: %s moved from id %u to %u (the registry lost its "
                        "storage?); records written with %u stay readable here",
                        subject, before, id, before);
        else if (!had)
            cv_log_info("schema registry: %s is id %u", subject, id);
    }
    return failed;
}

static void set_wait_reason(struct cv_service *svc, const char *reason)
{
    pthread_mutex_lock(&svc->ready_lock);
    snprintf(svc->registry_wait, sizeof(svc->registry_wait), "%s", reason);
    pthread_mutex_unlock(&svc->ready_lock);
}

static void *check_main(void *arg)
{
    struct cv_service *svc = arg;
    int interval = (int)cv_config_int(svc->cfg, "SCHEMA_REGISTRY_CHECK_MS");
    int was_ok = 1;
    while (!svc->stop) {
        cv_sleep_ms(interval, &svc->stop);
        if (svc->stop)
            break;
        char errstr[512];
        int transient;
        int ok = register_all(svc, &transient, errstr, sizeof(errstr)) == 0;
        /* Running services keep their cached ids: an outage is logged, not fatal. */
        if (!ok && was_ok)
            cv_log_warn("schema registry unavailable, using cached ids: %s", errstr);
        else if (ok && !was_ok)
            cv_log_info("schema registry reachable again");
        was_ok = ok;
    }
    return NULL;
}

int cv_service_registry_init(struct cv_service *svc, char *errstr, size_t errstr_size)
{
    const char *url = cv_config_str(svc->cfg, "SCHEMA_REGISTRY_URL");
    if (!url[0])
        return 0;
    struct cv_avro_registry_conf conf = {
        .url = url,
        .user = cv_config_str(svc->cfg, "SCHEMA_REGISTRY_USER"),
        .password = cv_config_str(svc->cfg, "SCHEMA_REGISTRY_PASSWORD"),
        .ca_file = cv_config_str(svc->cfg, "SCHEMA_REGISTRY_CA_FILE"),
        .timeout_ms = cv_config_int(svc->cfg, "SCHEMA_REGISTRY_TIMEOUT_MS"),
    };
    char err[256];
    svc->registry = cv_avro_registry_new(&conf, err, sizeof(err));
    if (!svc->registry) {
        snprintf(errstr, errstr_size, "SCHEMA_REGISTRY_URL: %s", err);
        return -1;
    }
    return 0;
}

int cv_service_registry_start(struct cv_service *svc, const volatile int *cancel)
{
    char errstr[512];
    if (!svc->registry)
        return 0;
    if (!svc->topic[0])
        return 0; /* consumes only: ids are resolved as records arrive */

    /* Start-up waits for the registry (readiness says why), within a bound. */
    long limit = cv_config_int(svc->cfg, "SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS");
    int64_t deadline = cv_monotonic_ms() + limit;
    struct cv_backoff backoff = CV_BACKOFF(250, 5000);
    int transient;
    while (register_all(svc, &transient, errstr, sizeof(errstr)) != 0) {
        char reason[600];
        snprintf(reason, sizeof(reason), "schema registry: %s", errstr);
        set_wait_reason(svc, reason);
        if (!transient) {
            cv_log_error("%s", reason);
            return -1;
        }
        if (*cancel)
            return -1;
        if (limit > 0 && cv_monotonic_ms() >= deadline) {
            cv_log_error("%s (gave up after SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS=%ld)", reason,
                         limit);
            return -1;
        }
        cv_log_warn("waiting for the %s", reason);
        cv_sleep_ms(cv_backoff_next(&backoff), cancel);
    }
    set_wait_reason(svc, "");
    if (pthread_create(&svc->registry_thread, NULL, check_main, svc) != 0) {
        cv_log_error("cannot start the schema registry check thread");
        return -1;
    }
    svc->registry_started = 1;
    return 0;
}

void cv_service_registry_stop(struct cv_service *svc)
{
    if (svc->registry_started) {
        pthread_join(svc->registry_thread, NULL);
        svc->registry_started = 0;
    }
    cv_avro_registry_destroy(svc->registry);
    svc->registry = NULL;
}
