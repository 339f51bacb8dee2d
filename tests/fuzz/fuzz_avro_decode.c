/* libFuzzer harness: the Avro decoder on arbitrary bytes, as a Kafka record's value reaches it.
 * Both framings (single-object, Confluent with ids 1..N given to the catalogue), a stream of
 * values end to end, bare bodies, explicit readers (schema resolution), and a re-encode of
 * every value decoded. The catalogue holds the event schemas plus tests/fuzz/schemas/ (every
 * Avro kind, and a reader that promotes, renames, drops and adds fields). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/avro.h"
#include "cv/embed.h"

/* tests/fuzz/schemas/ *.avsc, embedded by tests/fuzz/run.sh. */
extern const struct cv_embedded_file cv_fuzz_schemas[];
extern const size_t cv_fuzz_schemas_count;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *errstr)
{
    fprintf(stderr, "fuzz_avro_decode: %s: %s\n", what, errstr);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char errstr[512];

    if (cv_avro_catalog_load(errstr, sizeof(errstr)) != 0)
        die("catalogue", errstr);
    /* Confluent framing (tests/fuzz/seeds.py relies on these): schema id i + 1 is the i-th
     * schema of the catalogue as loaded, id 1001 + k the k-th file of tests/fuzz/schemas/. */
    for (size_t i = 0; i < cv_avro_catalog_count(); i++)
        cv_avro_schema_set_id(cv_avro_catalog_get(i), (uint32_t)i + 1);
    for (size_t k = 0; k < cv_fuzz_schemas_count; k++) {
        struct cv_schema *s = cv_avro_schema_new(cv_fuzz_schemas[k].data, errstr, sizeof(errstr));
        if (s == NULL)
            die(cv_fuzz_schemas[k].path, errstr);
        cv_avro_schema_set_id(s, (uint32_t)k + 1001);
        if (cv_avro_catalog_add(s, errstr, sizeof(errstr)) != 0)
            die(cv_fuzz_schemas[k].path, errstr);
    }
    return 0;
}

/* A value decoded as reader must encode with reader and decode back to the same JSON. The
 * encoder may refuse what the decoder accepts (the decoder does not check logical types, such
 * as a uuid string that is no UUID): only a value it accepts is checked. */
static void check_round_trip(const struct cv_schema *reader, const json_t *value)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    json_t *again = NULL;
    const struct cv_schema *writer = NULL;
    char errstr[512];

    if (cv_avro_encode(reader, value, CV_AVRO_SINGLE_OBJECT, &buf, &len, errstr, sizeof(errstr)) !=
        0)
        return;
    if (cv_avro_decode(buf, len, reader, &again, &writer, errstr, sizeof(errstr)) != 0)
        die("a value re-encoded does not decode", errstr);
    if (!json_equal(value, again) ||
        cv_avro_schema_fingerprint(writer) != cv_avro_schema_fingerprint(reader))
        die("a value re-encoded decodes differently", cv_avro_schema_full_name(reader));
    json_decref(again);
    free(buf);
}

/* Decodes data exactly; on success checks the results and the round trip. */
static void decode_exact(const uint8_t *data, size_t size, const struct cv_schema *reader)
{
    const struct cv_schema *writer = NULL;
    json_t *out = NULL;
    char errstr[512];

    if (cv_avro_decode(data, size, reader, &out, &writer, errstr, sizeof(errstr)) != 0) {
        if (out != NULL || writer != NULL || errstr[0] == '\0')
            die("failed decode left results or no message", errstr);
        return;
    }
    if (!json_is_object(out) || writer == NULL)
        die("decode succeeded without an object and a writer", "");
    if (reader == NULL)
        reader = cv_avro_schema_by_type(cv_avro_schema_full_name(writer));
    check_round_trip(reader != NULL ? reader : writer, out);
    json_decref(out);
}

/* The writer's schema named by the framing, or NULL (what decode_framed looks up). */
static const struct cv_schema *framed_writer(const uint8_t *data, size_t size)
{
    uint64_t fp = 0;
    uint32_t id = 0;

    if (size >= CV_AVRO_SINGLE_OBJECT_HEADER && data[0] == 0xC3 && data[1] == 0x01) {
        for (int i = 7; i >= 0; i--)
            fp = (fp << 8) | data[2 + i];
        return cv_avro_schema_by_fingerprint(fp);
    }
    if (size >= CV_AVRO_CONFLUENT_HEADER && data[0] == 0x00) {
        for (int i = 1; i <= 4; i++)
            id = (id << 8) | data[i];
        return cv_avro_schema_by_id(id);
    }
    return NULL;
}

/* Reads data with every catalogue version of writer's type as the reader, then (for the
 * refusals of incompatible pairs) with the schema at index pick. */
static void decode_as_versions(const uint8_t *data, size_t size, const struct cv_schema *writer,
                               size_t pick)
{
    size_t count = cv_avro_catalog_count();

    for (size_t i = 0; writer != NULL && i < count; i++) {
        const struct cv_schema *reader = cv_avro_catalog_get(i);
        if (strcmp(cv_avro_schema_full_name(reader), cv_avro_schema_full_name(writer)) == 0)
            decode_exact(data, size, reader);
    }
    decode_exact(data, size, cv_avro_catalog_get(pick % count));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t count = cv_avro_catalog_count(), off = 0, sum = 0;
    char errstr[512];
    json_t *out = NULL;

    decode_exact(data, size, NULL);
    for (size_t i = 0; i < size; i++)
        sum += data[i];
    decode_as_versions(data, size, framed_writer(data, size), sum);

    /* Values end to end, as `kcat -f '%s'` prints them. */
    while (off < size) {
        size_t used = 0;
        if (cv_avro_decode_next(data + off, size - off, &used, NULL, &out, NULL, errstr,
                                sizeof(errstr)) != 0)
            break;
        if (used == 0 || used > size - off)
            die("decode_next consumed a wrong length", "");
        json_decref(out);
        off += used;
    }

    /* A bare body: the first byte picks the writer, read as every version of its type. */
    if (size > 0) {
        const struct cv_schema *writer = cv_avro_catalog_get(data[0] % count);
        for (size_t i = 0; i < count; i++) {
            const struct cv_schema *reader = cv_avro_catalog_get(i);
            if (strcmp(cv_avro_schema_full_name(reader), cv_avro_schema_full_name(writer)) != 0)
                continue;
            if (cv_avro_decode_body(writer, data + 1, size - 1, reader, &out, errstr,
                                    sizeof(errstr)) == 0)
                json_decref(out);
        }
    }
    return 0;
}
