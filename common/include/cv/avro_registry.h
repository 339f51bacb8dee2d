/* A client of a schema registry's Confluent-compatible REST API (Confluent Schema Registry,
 * Apicurio Registry under /apis/ccompat/v7, ...): registers catalogue schemas under subjects
 * named by TopicRecordNameStrategy and resolves the schema ids found in Confluent-framed values,
 * adding the writers' schemas to the catalogue so that cv_avro_decode reads them. libcurl does
 * the HTTP; every call blocks for at most the configured timeout. Thread-safe. */
#ifndef CV_AVRO_REGISTRY_H
#define CV_AVRO_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "cv/avro.h"

struct cv_avro_registry_conf {
    const char *url;      /* base URL of the API, e.g. http://registry:8080/apis/ccompat/v7 */
    const char *user;     /* HTTP basic auth user, or NULL/"" for none */
    const char *password; /* its password (never logged) */
    const char *ca_file;  /* PEM file of the CAs that sign the registry's certificate, or
                           * NULL/"" for the system's */
    long timeout_ms;      /* per request, connecting included */
};

struct cv_avro_registry;

/* Checks conf (an http:// or https:// URL) and copies it. Caller owns the result
 * (cv_avro_registry_destroy); NULL with errstr on error. Makes no request. */
struct cv_avro_registry *cv_avro_registry_new(const struct cv_avro_registry_conf *conf,
                                              char *errstr, size_t errstr_size);
void cv_avro_registry_destroy(struct cv_avro_registry *reg);

/* The subject of s on topic by TopicRecordNameStrategy: "<topic>-<record full name>". Returns
 * 0, or -1 if it does not fit in size. */
int cv_avro_registry_subject(const char *topic, const struct cv_schema *s, char *buf, size_t size);

/* Registers s under subject (a registry that has it already answers with its id) and records
 * the id on s with cv_avro_schema_set_id. If s had another id before (a registry that lost its
 * storage hands out new ids), the old id stays readable: a copy of s keeps it in the catalogue.
 * Returns 0 with *id set, or -1 with errstr and *transient (may be NULL) set to 1 when a retry
 * may succeed (no answer, 5xx, 408, 429) and 0 when not (the registry refused the schema or the
 * credentials). */
int cv_avro_registry_register(struct cv_avro_registry *reg, const char *subject,
                              const struct cv_schema *s, uint32_t *id, int *transient, char *errstr,
                              size_t errstr_size);

/* The schema with registry id id: the catalogue's, or else fetched (GET /schemas/ids/{id}) and
 * added to the catalogue with that id (cv_avro_catalog_add). NULL with errstr and *transient
 * (may be NULL) as for cv_avro_registry_register; an id the registry does not know is not
 * transient. */
const struct cv_schema *cv_avro_registry_lookup(struct cv_avro_registry *reg, uint32_t id,
                                                int *transient, char *errstr, size_t errstr_size);

/* Makes a framed value decodable by cv_avro_decode: if it is Confluent-framed with an id the
 * catalogue lacks, looks the id up. Returns 0 (also for other framings or too short input: the
 * decoder reports those), or -1 as cv_avro_registry_lookup. */
int cv_avro_registry_prepare(struct cv_avro_registry *reg, const void *value, size_t len,
                             int *transient, char *errstr, size_t errstr_size);

#endif
