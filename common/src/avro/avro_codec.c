/* The codec: event JSON <-> framed Avro values. Framing is single-object encoding (0xC3 0x01,
 * CRC-64-AVRO fingerprint little-endian) or the Confluent wire format (0x00, schema id
 * big-endian); the body is checked by our walker before avro-c decodes it, then resolved to the
 * reader's schema by avro_resolve.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_int.h"

int cv_avro_encode(const struct cv_schema *schema, const json_t *event,
                   enum cv_avro_framing framing, unsigned char **out, size_t *out_len, char *errstr,
                   size_t errstr_size)
{
    struct cv_avro_path path = {.len = 0};
    size_t header, size = 0;
    avro_writer_t writer = NULL;
    unsigned char *buf = NULL;
    avro_value_t value;
    int have_value = 0, rc = -1;
    uint32_t id = 0;

    if (out != NULL)
        *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    if (schema == NULL || event == NULL || out == NULL || out_len == NULL) {
        snprintf(errstr, errstr_size, "encode: missing argument");
        return -1;
    }
    if (framing == CV_AVRO_CONFLUENT && cv_avro_schema_get_id(schema, &id) != 0) {
        snprintf(errstr, errstr_size, "%s has no schema registry id", schema->full_name);
        return -1;
    }
    header = framing == CV_AVRO_CONFLUENT ? CV_AVRO_CONFLUENT_HEADER : CV_AVRO_SINGLE_OBJECT_HEADER;
    if (avro_generic_value_new(schema->iface, &value) != 0) {
        snprintf(errstr, errstr_size, "avro: %s", avro_strerror());
        return -1;
    }
    have_value = 1;
    if (cv_avro_json_to_value(schema->tree.root, event, &value, &path, errstr, errstr_size) != 0)
        goto cleanup;
    if (avro_value_sizeof(&value, &size) != 0) {
        snprintf(errstr, errstr_size, "avro: %s", avro_strerror());
        goto cleanup;
    }
    if (size > CV_AVRO_MAX_VALUE) {
        snprintf(errstr, errstr_size, "%s value of %zu bytes exceeds the limit of %d",
                 schema->full_name, size, CV_AVRO_MAX_VALUE);
        goto cleanup;
    }
    buf = malloc(header + size);
    if (buf == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    if (framing == CV_AVRO_CONFLUENT) {
        buf[0] = 0x00;
        for (int i = 0; i < 4; i++)
            buf[1 + i] = (unsigned char)(id >> (24 - 8 * i));
    } else {
        buf[0] = 0xC3;
        buf[1] = 0x01;
        for (int i = 0; i < 8; i++)
            buf[2 + i] = (unsigned char)(schema->fingerprint >> (8 * i));
    }
    if (size > 0) {
        writer = avro_writer_memory((const char *)buf + header, (int64_t)size);
        if (writer == NULL || avro_value_write(writer, &value) != 0 ||
            (size_t)avro_writer_tell(writer) != size) {
            snprintf(errstr, errstr_size, "avro: %s", avro_strerror());
            goto cleanup;
        }
    }
    *out = buf;
    *out_len = header + size;
    buf = NULL;
    rc = 0;
cleanup:
    if (writer != NULL)
        avro_writer_free(writer);
    if (have_value)
        avro_value_decref(&value);
    free(buf);
    return rc;
}

/* Body of exactly len bytes (exact) or a prefix of it: walked, decoded with writer, resolved. */
static int decode_body(const struct cv_schema *writer, const unsigned char *body, size_t len,
                       int exact, size_t *consumed, const struct cv_schema *reader, json_t **out,
                       char *errstr, size_t errstr_size)
{
    struct cv_avro_path path = {.len = 0};
    avro_reader_t areader = NULL;
    avro_value_t value;
    size_t used = 0;
    int rc;

    if (len > CV_AVRO_MAX_VALUE) {
        if (exact) {
            snprintf(errstr, errstr_size, "value of %zu bytes exceeds the limit of %d", len,
                     CV_AVRO_MAX_VALUE);
            return -1;
        }
        len = CV_AVRO_MAX_VALUE;
    }
    if (cv_avro_walk(writer->tree.root, body, len, &used, errstr, errstr_size) != 0)
        return -1;
    if (exact && used != len) {
        snprintf(errstr, errstr_size, "%zu trailing bytes after the %s value", len - used,
                 writer->full_name);
        return -1;
    }
    if (avro_generic_value_new(writer->iface, &value) != 0) {
        snprintf(errstr, errstr_size, "avro: %s", avro_strerror());
        return -1;
    }
    if (used > 0) {
        areader = avro_reader_memory((const char *)body, (int64_t)used);
        if (areader == NULL) {
            snprintf(errstr, errstr_size, "out of memory");
            avro_value_decref(&value);
            return -1;
        }
        rc = avro_value_read(areader, &value);
        avro_reader_free(areader);
        if (rc != 0) {
            /* Unreachable after the walk; reported, never trusted. */
            snprintf(errstr, errstr_size, "avro: %s", avro_strerror());
            avro_value_decref(&value);
            return -1;
        }
    }
    *out = cv_avro_value_to_json(writer->tree.root, &value,
                                 reader != NULL ? reader->tree.root : writer->tree.root, &path,
                                 errstr, errstr_size);
    avro_value_decref(&value);
    if (*out == NULL)
        return -1;
    if (consumed != NULL)
        *consumed = used;
    return 0;
}

static int decode_framed(const void *buf, size_t len, int exact, size_t *consumed,
                         const struct cv_schema *reader, json_t **out,
                         const struct cv_schema **writer_out, char *errstr, size_t errstr_size)
{
    const unsigned char *p = buf;
    const struct cv_schema *writer;
    size_t header, used = 0;

    if (out != NULL)
        *out = NULL;
    if (writer_out != NULL)
        *writer_out = NULL;
    if (out == NULL || (buf == NULL && len > 0)) {
        snprintf(errstr, errstr_size, "decode: missing argument");
        return -1;
    }
    if (len < 1) {
        snprintf(errstr, errstr_size, "too short for an Avro value (0 bytes)");
        return -1;
    }
    if (p[0] == 0xC3) {
        uint64_t fp = 0;
        header = CV_AVRO_SINGLE_OBJECT_HEADER;
        if (len < header) {
            snprintf(errstr, errstr_size, "too short for a single-object value (%zu bytes)", len);
            return -1;
        }
        if (p[1] != 0x01) {
            snprintf(errstr, errstr_size, "bad magic 0x%02x 0x%02x", p[0], p[1]);
            return -1;
        }
        for (int i = 7; i >= 0; i--)
            fp = (fp << 8) | p[2 + i];
        writer = cv_avro_schema_by_fingerprint(fp);
        if (writer == NULL) {
            snprintf(errstr, errstr_size, "unknown schema fingerprint %016" PRIx64, fp);
            return -1;
        }
    } else if (p[0] == 0x00) {
        uint32_t id = 0;
        header = CV_AVRO_CONFLUENT_HEADER;
        if (len < header) {
            snprintf(errstr, errstr_size, "too short for a Confluent value (%zu bytes)", len);
            return -1;
        }
        for (int i = 0; i < 4; i++)
            id = (id << 8) | p[1 + i];
        writer = cv_avro_schema_by_id(id);
        if (writer == NULL) {
            snprintf(errstr, errstr_size, "unknown schema id %" PRIu32, id);
            return -1;
        }
    } else {
        snprintf(errstr, errstr_size, "bad magic byte 0x%02x (not an Avro value)", p[0]);
        return -1;
    }
    if (reader == NULL)
        reader = cv_avro_schema_by_type(writer->full_name);
    if (decode_body(writer, p + header, len - header, exact, &used, reader, out, errstr,
                    errstr_size) != 0)
        return -1;
    if (consumed != NULL)
        *consumed = header + used;
    if (writer_out != NULL)
        *writer_out = writer;
    return 0;
}

int cv_avro_decode(const void *buf, size_t len, const struct cv_schema *reader, json_t **out,
                   const struct cv_schema **writer_out, char *errstr, size_t errstr_size)
{
    return decode_framed(buf, len, 1, NULL, reader, out, writer_out, errstr, errstr_size);
}

int cv_avro_decode_next(const void *buf, size_t len, size_t *consumed,
                        const struct cv_schema *reader, json_t **out,
                        const struct cv_schema **writer_out, char *errstr, size_t errstr_size)
{
    return decode_framed(buf, len, 0, consumed, reader, out, writer_out, errstr, errstr_size);
}

int cv_avro_decode_body(const struct cv_schema *writer, const void *body, size_t len,
                        const struct cv_schema *reader, json_t **out, char *errstr,
                        size_t errstr_size)
{
    static const unsigned char empty[1];

    if (out != NULL)
        *out = NULL;
    if (writer == NULL || out == NULL || (body == NULL && len > 0)) {
        snprintf(errstr, errstr_size, "decode: missing argument");
        return -1;
    }
    return decode_body(writer, body != NULL ? body : empty, len, 1, NULL, reader, out, errstr,
                       errstr_size);
}
