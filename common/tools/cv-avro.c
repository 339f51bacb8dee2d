/* cv-avro: looks at Conveyor's Avro events from a shell.
 *   cv-avro schemas                lists the catalogue: fingerprint, full name, canonical form
 *   cv-avro decode [--hex] [--id ID=TYPE]...
 *                                  framed values on stdin -> one JSON object per line, with _type
 *   cv-avro encode [--hex] [--confluent ID] [TYPE]
 *                                  JSON objects on stdin -> framed values on stdout
 * decode reads values laid end to end (what `kcat -C -t orders -e -f '%s'` prints; newlines
 * between them are skipped), or with --hex one hex-encoded value per line. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cv/avro.h"

static void usage(void)
{
    /* clang-format off */
    fputs("usage: cv-avro schemas\n"
          "       cv-avro decode [--hex] [--id ID=TYPE]...\n"
          "       cv-avro encode [--hex] [--confluent ID] [TYPE]\n"
          "schemas: one line per catalogue schema: fingerprint, full name, canonical form.\n"
          "decode: framed Avro values on stdin (single-object or Confluent, end to end as\n"
          "  kcat -f '%s' prints them), one JSON object per line on stdout with \"_type\";\n"
          "  --hex: one hex-encoded value per input line instead;\n"
          "  --id: the schema registry id of a type, to read Confluent framing.\n"
          "encode: JSON objects on stdin shaped like TYPE (or naming it in \"_type\"),\n"
          "  single-object encoded on stdout; --confluent: Confluent framing with that id;\n"
          "  --hex: one hex line per value.\n",
          stderr);
    /* clang-format on */
}

/* All of a stream; caller frees. NULL if out of memory or unreadable. */
static unsigned char *read_all(FILE *in, size_t *len)
{
    size_t cap = 65536, n = 0;
    unsigned char *buf = malloc(cap);

    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n, in);
        n += got;
        if (got == 0) {
            if (ferror(in)) {
                free(buf);
                return NULL;
            }
            *len = n;
            return buf;
        }
        if (n == cap) {
            unsigned char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL)
                free(buf);
            buf = bigger;
            cap *= 2;
        }
    }
    return NULL;
}

static int print_event(const struct cv_schema *writer, json_t *event)
{
    json_t *out = json_pack("{s:s}", "_type", cv_avro_schema_type(writer));
    char *text;

    if (out == NULL || json_object_update(out, event) != 0) {
        json_decref(out);
        return -1;
    }
    text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    if (text == NULL)
        return -1;
    puts(text);
    free(text);
    return 0;
}

static int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hex text (spaces allowed between digit pairs) -> bytes in place; -1 if not hex. */
static int unhex(char *text, size_t *len)
{
    size_t n = 0;
    int hi = -1;

    for (char *p = text; *p != '\0'; p++) {
        int d = hex_digit((unsigned char)*p);
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            if (hi >= 0)
                return -1;
            continue;
        }
        if (d < 0)
            return -1;
        if (hi < 0) {
            hi = d;
        } else {
            text[n++] = (char)(hi << 4 | d);
            hi = -1;
        }
    }
    *len = n;
    return hi < 0 ? 0 : -1;
}

static int decode_hex_lines(void)
{
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    int failed = 0;

    while (getline(&line, &cap, stdin) >= 0) {
        const struct cv_schema *writer;
        char errstr[512];
        json_t *event;
        size_t len;

        lineno++;
        if (unhex(line, &len) != 0) {
            fprintf(stderr, "cv-avro: line %zu: not hex\n", lineno);
            failed = 1;
            continue;
        }
        if (len == 0)
            continue;
        if (cv_avro_decode(line, len, NULL, &event, &writer, errstr, sizeof(errstr)) != 0) {
            fprintf(stderr, "cv-avro: line %zu: %s\n", lineno, errstr);
            failed = 1;
            continue;
        }
        if (print_event(writer, event) != 0)
            failed = 1;
        json_decref(event);
    }
    free(line);
    return failed;
}

/* Reads values as they arrive (kcat may still be running), in a buffer of two maximal values:
 * a failure with less than a whole maximal value buffered may just need more input. */
static int decode_stream(void)
{
    const size_t window = CV_AVRO_SINGLE_OBJECT_HEADER + CV_AVRO_MAX_VALUE;
    size_t cap = 2 * window, len = 0, off = 0, count = 0, total = 0;
    unsigned char *buf = malloc(cap);
    int failed = 0, eof = 0, need_more = 1;

    if (buf == NULL) {
        fprintf(stderr, "cv-avro: out of memory\n");
        return 1;
    }
    for (;;) {
        const struct cv_schema *writer;
        char errstr[512];
        json_t *event;
        size_t used;

        while (off < len && (buf[off] == '\n' || buf[off] == '\r')) /* kcat -f '%s\n' */
            off++;
        if (off == len)
            need_more = 1;
        if (need_more && !eof) {
            ssize_t got;
            memmove(buf, buf + off, len - off);
            total += off;
            len -= off;
            off = 0;
            got = read(STDIN_FILENO, buf + len, cap - len);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0) {
                fprintf(stderr, "cv-avro: cannot read stdin: %s\n", strerror(errno));
                failed = 1;
                break;
            }
            if (got == 0)
                eof = 1;
            len += (size_t)got;
            need_more = 0;
            continue;
        }
        if (off == len)
            break; /* end of input */
        if (cv_avro_decode_next(buf + off, len - off, &used, NULL, &event, &writer, errstr,
                                sizeof(errstr)) != 0) {
            if (!eof && len - off < window) {
                need_more = 1; /* perhaps the rest of it has not arrived yet */
                continue;
            }
            /* Values are not delimited: after a bad one the rest cannot be found. */
            fprintf(stderr, "cv-avro: value %zu (byte %zu): %s\n", count + 1, total + off, errstr);
            failed = 1;
            break;
        }
        count++;
        if (print_event(writer, event) != 0)
            failed = 1;
        json_decref(event);
        fflush(stdout);
        off += used;
    }
    free(buf);
    return failed;
}

static int encode_values(int hex, const char *type, int confluent, uint32_t id)
{
    size_t len, off = 0, count = 0;
    unsigned char *buf = read_all(stdin, &len);
    int failed = 0;

    if (buf == NULL) {
        fprintf(stderr, "cv-avro: cannot read stdin\n");
        return 1;
    }
    for (;;) {
        const struct cv_schema *schema;
        const char *name;
        unsigned char *out;
        json_error_t jerr;
        char errstr[512];
        size_t out_len;
        json_t *event;

        while (off < len && strchr(" \t\r\n", buf[off]) != NULL)
            off++;
        if (off == len)
            break;
        count++;
        event = json_loadb((const char *)buf + off, len - off,
                           JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &jerr);
        if (event == NULL) {
            fprintf(stderr, "cv-avro: value %zu: %s\n", count, jerr.text);
            failed = 1;
            break;
        }
        off += jerr.position;
        name = type != NULL ? type : json_string_value(json_object_get(event, "_type"));
        schema = name != NULL ? cv_avro_schema_by_type(name) : NULL;
        if (schema == NULL) {
            fprintf(stderr, "cv-avro: value %zu: %s\n", count,
                    name != NULL ? "unknown event type" : "no TYPE argument and no _type");
            json_decref(event);
            failed = 1;
            continue;
        }
        json_object_del(event, "_type");
        if (confluent)
            cv_avro_schema_set_id(schema, id);
        if (cv_avro_encode(schema, event, confluent ? CV_AVRO_CONFLUENT : CV_AVRO_SINGLE_OBJECT,
                           &out, &out_len, errstr, sizeof(errstr)) != 0) {
            fprintf(stderr, "cv-avro: value %zu: %s\n", count, errstr);
            json_decref(event);
            failed = 1;
            continue;
        }
        json_decref(event);
        if (hex) {
            for (size_t i = 0; i < out_len; i++)
                printf("%02x", out[i]);
            putchar('\n');
        } else {
            fwrite(out, 1, out_len, stdout);
        }
        free(out);
    }
    free(buf);
    return failed;
}

static int list_schemas(void)
{
    size_t n = cv_avro_catalog_count();

    for (size_t i = 0; i < n; i++) {
        const struct cv_schema *s = cv_avro_catalog_get(i);
        uint64_t fp = cv_avro_schema_fingerprint(s);
        if (cv_avro_schema_by_fingerprint(fp) != s)
            continue; /* a released version identical to another listed already */
        printf("%016" PRIx64 " %s %s\n", fp, cv_avro_schema_full_name(s),
               cv_avro_schema_canonical(s));
    }
    return 0;
}

static int parse_id(const char *text, uint32_t *id)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 10);

    if (end == text || (*end != '\0' && *end != '=') || v > UINT32_MAX)
        return -1;
    *id = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *type = NULL;
    int hex = 0, confluent = 0, rc;
    uint32_t id = 0;
    char errstr[512];

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    if (cv_avro_catalog_load(errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "cv-avro: %s\n", errstr);
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--hex") == 0) {
            hex = 1;
        } else if (strcmp(argv[i], "--confluent") == 0 && i + 1 < argc &&
                   parse_id(argv[i + 1], &id) == 0 && strchr(argv[i + 1], '=') == NULL) {
            confluent = 1;
            i++;
        } else if (strcmp(argv[i], "--id") == 0 && i + 1 < argc &&
                   parse_id(argv[i + 1], &id) == 0 && strchr(argv[i + 1], '=') != NULL) {
            const struct cv_schema *s = cv_avro_schema_by_type(strchr(argv[i + 1], '=') + 1);
            if (s == NULL) {
                fprintf(stderr, "cv-avro: unknown event type in --id %s\n", argv[i + 1]);
                cv_avro_catalog_free();
                return 2;
            }
            cv_avro_schema_set_id(s, id);
            i++;
        } else if (argv[i][0] != '-' && type == NULL) {
            type = argv[i];
        } else {
            usage();
            cv_avro_catalog_free();
            return 2;
        }
    }
    if (strcmp(argv[1], "schemas") == 0 && !hex && !confluent && type == NULL)
        rc = list_schemas();
    else if (strcmp(argv[1], "decode") == 0 && !confluent && type == NULL)
        rc = hex ? decode_hex_lines() : decode_stream();
    else if (strcmp(argv[1], "encode") == 0)
        rc = encode_values(hex, type, confluent, id);
    else {
        usage();
        rc = 2;
    }
    if (fflush(stdout) != 0)
        rc = 1;
    cv_avro_catalog_free();
    return rc;
}
