/* Metrics of the service framework whose labels need a rule: dead letters are counted by a
 * bounded kind of reason (the reason itself names event ids and free text, which would make a
 * new series per record). */
#include <string.h>

#include "cv/metrics.h"
#include "cv/service.h"
#include "service_int.h"

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *const kinds[] = {"unknown_schema", "undecodable", "held_back",
                                    "database",       "rejected",    "other"};

const char *cv_service_dead_letter_kind(const char *reason)
{
    if (reason == NULL)
        return "other";
    /* A writer's schema we do not have: by fingerprint, by registry id, or one the registry
     * could not give (a producer newer than this consumer, or a registry problem). */
    if (starts_with(reason, "undecodable: unknown schema ") ||
        starts_with(reason, "undecodable: schema id "))
        return "unknown_schema";
    if (starts_with(reason, "undecodable: "))
        return "undecodable";
    if (starts_with(reason, "held back: "))
        return "held_back";
    if (starts_with(reason, "database: "))
        return "database";
    if (reason[0] == '\0')
        return "other";
    return "rejected"; /* a handler refused the event: missing fields, impossible values */
}

static struct cv_counter *dead_letter_counter(const char *kind)
{
    char labels[64] = "";
    cv_metrics_label_append(labels, sizeof(labels), "reason", kind);
    return cv_metrics_counter("consumer_dead_lettered_total",
                              "Records sent to the dead-letter topic, by kind of reason", labels);
}

void cv_service_dead_letter_metrics_init(void)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        dead_letter_counter(kinds[i]);
}

void cv_service_count_dead_letter(const char *reason)
{
    cv_counter_add(dead_letter_counter(cv_service_dead_letter_kind(reason)), 1);
}
