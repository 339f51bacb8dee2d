/* Avro events: the catalogue of the schemas compiled into the library (the .avsc files under
 * schemas/, current and released), their Parsing Canonical Form and CRC-64-AVRO fingerprints,
 * and the codec that turns an event given as JSON into a framed Avro value and back, resolving
 * the writer's schema to the reader's. avro-c does the binary encoding; the rest is ours. */
#ifndef CV_AVRO_H
#define CV_AVRO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Largest Avro body (framing excluded) that is encoded or decoded. */
#define CV_AVRO_MAX_VALUE (1024 * 1024)

/* Length of the single-object header: 0xC3 0x01 and the 8-byte fingerprint. */
#define CV_AVRO_SINGLE_OBJECT_HEADER 10
/* Length of the Confluent header: 0x00 and the 4-byte big-endian schema id. */
#define CV_AVRO_CONFLUENT_HEADER 5

/* One parsed schema version: the avro-c schema and value class, our own tree of it, its full
 * and short names, canonical form and fingerprint. Immutable once built, except its registry
 * id; shared freely between threads. */
struct cv_schema;

/* The catalogue: every event schema embedded in the library (a record with a `metadata` field;
 * the other files are shared types, inlined at their first reference), current and released.
 * cv_avro_catalog_load loads it once (later calls return 0) and is thread-safe; so are the
 * lookups. Returns 0, or -1 with errstr naming the file at fault. */
int cv_avro_catalog_load(char *errstr, size_t errstr_size);
/* Frees the catalogue and every schema in it (for leak-clean tests). No other thread may use
 * it at the time; a later cv_avro_catalog_load loads it again. */
void cv_avro_catalog_free(void);
/* Adds a schema to the catalogue (for instance one fetched from a schema registry, or a test's
 * newer version) so that cv_avro_decode recognises its fingerprint or id. It never becomes the
 * current version of its type. Takes ownership of s, also on failure. Returns 0 or -1. */
int cv_avro_catalog_add(struct cv_schema *s, char *errstr, size_t errstr_size);
/* Number of schemas in the catalogue and the i-th of them (current versions first, then the
 * released ones, then added ones); NULL past the end. */
size_t cv_avro_catalog_count(void);
const struct cv_schema *cv_avro_catalog_get(size_t i);

/* Current version of an event type, by short name ("OrderPlaced") or full name
 * ("conveyor.OrderPlaced"); NULL if unknown or the catalogue is not loaded. */
const struct cv_schema *cv_avro_schema_by_type(const char *type);
/* Any catalogue schema with that fingerprint (the current version first); NULL if none. */
const struct cv_schema *cv_avro_schema_by_fingerprint(uint64_t fp);
/* The catalogue schema given that schema-registry id by cv_avro_schema_set_id; NULL if none. */
const struct cv_schema *cv_avro_schema_by_id(uint32_t confluent_id);
/* Records the schema registry's id for s (thread-safe). Only catalogue schemas are found by
 * cv_avro_schema_by_id. */
void cv_avro_schema_set_id(const struct cv_schema *s, uint32_t confluent_id);
/* The id recorded by cv_avro_schema_set_id: 0 and *id set, or -1 if none. */
int cv_avro_schema_get_id(const struct cv_schema *s, uint32_t *id);

const char *cv_avro_schema_type(const struct cv_schema *s);      /* "OrderPlaced" */
const char *cv_avro_schema_full_name(const struct cv_schema *s); /* "conveyor.OrderPlaced" */
const char *cv_avro_schema_canonical(const struct cv_schema *s); /* Parsing Canonical Form */
uint64_t cv_avro_schema_fingerprint(const struct cv_schema *s);  /* CRC-64-AVRO of it */
/* Where the schema comes from: "current" (schemas/), a release ("v1" for schemas/released/v1/),
 * or "added" (cv_avro_schema_new). */
const char *cv_avro_schema_origin(const struct cv_schema *s);
/* The schema's JSON with shared types inlined, docs and defaults kept: what a schema registry
 * is given (owned by s). */
const char *cv_avro_schema_json(const struct cv_schema *s);

/* Builds a schema from JSON text (tests, evolution, a registry). Named types it references but
 * does not define are taken from the current catalogue's shared types when it is loaded.
 * Caller owns the result (cv_avro_schema_destroy); NULL with errstr on error. */
struct cv_schema *cv_avro_schema_new(const char *json, char *errstr, size_t errstr_size);
void cv_avro_schema_destroy(struct cv_schema *s);

enum cv_avro_framing {
    CV_AVRO_SINGLE_OBJECT, /* 0xC3 0x01, 8-byte fingerprint little-endian, body */
    CV_AVRO_CONFLUENT      /* 0x00, 4-byte schema id big-endian (cv_avro_schema_set_id), body */
};

/* Encodes event, a JSON object shaped like the schema:
 *   record -> object (keys not in the schema are refused), int/long -> integer (timestamp-millis
 *   in milliseconds), float/double -> number, string -> string (logicalType uuid: checked to be
 *   a UUID), boolean -> true/false, enum -> symbol string, array -> array, map -> object,
 *   bytes/fixed -> base64 string, union -> the value of the first branch that accepts it
 *   directly (null, or the value for ["null", X]).
 * A field may be left out only if the schema declares a default, which is then written. On
 * success *out is malloc'd (caller frees), *out_len set and 0 returned; otherwise -1 and errstr
 * names the field path, e.g. "items[2].quantity: expected int". */
int cv_avro_encode(const struct cv_schema *schema, const json_t *event,
                   enum cv_avro_framing framing, unsigned char **out, size_t *out_len, char *errstr,
                   size_t errstr_size);

/* Decodes a framed value (either framing, told apart by its first byte): finds the writer's
 * schema in the catalogue, checks the body against it with bounds on every length, decodes it,
 * and resolves it to reader (NULL: the current version of the writer's type, or the writer
 * itself if its type has none): reader fields by name (or alias), reader defaults for fields the
 * writer lacks, writer-only fields dropped, int->long->float->double and string<->bytes
 * promotions, enum symbols by name. *out is a new JSON object in the shape above (caller
 * json_decref's); *writer_out (may be NULL) the writer's schema. Returns 0, or -1 with errstr
 * for: too short, bad magic, unknown fingerprint or id, truncated input or trailing bytes, a body
 * over CV_AVRO_MAX_VALUE, lengths beyond the input, invalid data, incompatible schemas. Any
 * input is safe. */
int cv_avro_decode(const void *buf, size_t len, const struct cv_schema *reader, json_t **out,
                   const struct cv_schema **writer_out, char *errstr, size_t errstr_size);
/* The same for the first of several framed values laid end to end (what `kcat -f '%s'` prints):
 * bytes after the value are allowed and *consumed says how many bytes the value took. */
int cv_avro_decode_next(const void *buf, size_t len, size_t *consumed,
                        const struct cv_schema *reader, json_t **out,
                        const struct cv_schema **writer_out, char *errstr, size_t errstr_size);
/* Decodes a bare Avro body (no framing) written with writer, resolving to reader (NULL: writer),
 * with the same checks as cv_avro_decode. */
int cv_avro_decode_body(const struct cv_schema *writer, const void *body, size_t len,
                        const struct cv_schema *reader, json_t **out, char *errstr,
                        size_t errstr_size);

/* 1 if everything written with writer can be read with reader (fields the reader adds have
 * defaults, types are equal or promotable, names match, enum symbols are known or the reader has
 * an enum default); 0 otherwise, with errstr saying where. */
int cv_avro_schema_compatible(const struct cv_schema *writer, const struct cv_schema *reader,
                              char *errstr, size_t errstr_size);

/* Building blocks, exported for tests. */
/* Parsing Canonical Form of a self-contained schema: malloc'd (caller frees), or NULL with
 * errstr. */
char *cv_avro_canonical_form(const char *schema_json, char *errstr, size_t errstr_size);
/* CRC-64-AVRO (Rabin) fingerprint of data. */
uint64_t cv_avro_crc64(const void *data, size_t len);

#endif
