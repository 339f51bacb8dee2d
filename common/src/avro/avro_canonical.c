/* A schema's identity: its Parsing Canonical Form (Avro specification, "Parsing Canonical Form
 * for Schemas") and the CRC-64-AVRO fingerprint of that form, which single-object encoding puts
 * in front of every value. avro-c has neither. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_int.h"

/* The specification's fingerprint of empty input, and the polynomial of the reflected CRC. */
#define CRC64_AVRO_EMPTY UINT64_C(0xc15d213aa4d7a795)

uint64_t cv_avro_crc64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t fp = CRC64_AVRO_EMPTY;

    /* Bit at a time: schemas are fingerprinted once, at load, so no table (and no table to
     * initialise thread-safely) is needed. */
    for (size_t i = 0; i < len; i++) {
        fp ^= p[i];
        for (int bit = 0; bit < 8; bit++)
            fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & (0 - (fp & 1)));
    }
    return fp;
}

struct buf {
    char *data;
    size_t len;
    size_t cap;
    int failed;
};

static void buf_add(struct buf *b, const char *s, size_t len)
{
    if (b->failed)
        return;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *data;
        while (cap < b->len + len + 1)
            cap *= 2;
        data = realloc(b->data, cap);
        if (data == NULL) {
            b->failed = 1;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* Names and symbols are checked to be [A-Za-z0-9_.] at parse time: no escaping is needed. */
static void buf_quoted(struct buf *b, const char *s)
{
    buf_add(b, "\"", 1);
    buf_str(b, s);
    buf_add(b, "\"", 1);
}

struct seen {
    const struct cv_avro_node **nodes;
    size_t count;
    size_t cap;
};

/* 1 if n was written already (it is then written as its name), else records it. */
static int seen_before(struct seen *seen, const struct cv_avro_node *n, struct buf *b)
{
    for (size_t i = 0; i < seen->count; i++)
        if (seen->nodes[i] == n)
            return 1;
    if (seen->count == seen->cap) {
        size_t cap = seen->cap ? seen->cap * 2 : 16;
        const struct cv_avro_node **nodes = realloc(seen->nodes, cap * sizeof(*nodes));
        if (nodes == NULL) {
            b->failed = 1;
            return 1;
        }
        seen->nodes = nodes;
        seen->cap = cap;
    }
    seen->nodes[seen->count++] = n;
    return 0;
}

/* [ORDER] name, type, fields, symbols, items, values, size; [STRIP] nothing else. */
static void write_node(struct buf *b, struct seen *seen, const struct cv_avro_node *n)
{
    char size[32];
    size_t i;

    if (n->full_name != NULL) {
        if (seen_before(seen, n, b)) {
            buf_quoted(b, n->full_name); /* [FULLNAMES] a reference to a defined type */
            return;
        }
        buf_str(b, "{\"name\":");
        buf_quoted(b, n->full_name);
        buf_str(b, ",\"type\":");
        buf_quoted(b, cv_avro_kind_name(n->kind));
    }
    switch (n->kind) {
    case CV_AVRO_RECORD:
        buf_str(b, ",\"fields\":[");
        for (i = 0; i < n->nfields; i++) {
            buf_str(b, i ? ",{\"name\":" : "{\"name\":");
            buf_quoted(b, n->fields[i].name);
            buf_str(b, ",\"type\":");
            write_node(b, seen, n->fields[i].type);
            buf_str(b, "}");
        }
        buf_str(b, "]}");
        break;
    case CV_AVRO_ENUM:
        buf_str(b, ",\"symbols\":[");
        for (i = 0; i < n->nsymbols; i++) {
            if (i)
                buf_str(b, ",");
            buf_quoted(b, n->symbols[i]);
        }
        buf_str(b, "]}");
        break;
    case CV_AVRO_FIXED:
        snprintf(size, sizeof(size), ",\"size\":%zu}", n->fixed_size); /* [INTEGERS] */
        buf_str(b, size);
        break;
    case CV_AVRO_ARRAY:
    case CV_AVRO_MAP:
        buf_str(b, n->kind == CV_AVRO_ARRAY ? "{\"type\":\"array\",\"items\":"
                                            : "{\"type\":\"map\",\"values\":");
        write_node(b, seen, n->items);
        buf_str(b, "}");
        break;
    case CV_AVRO_UNION:
        buf_str(b, "[");
        for (i = 0; i < n->nbranches; i++) {
            if (i)
                buf_str(b, ",");
            write_node(b, seen, n->branches[i]);
        }
        buf_str(b, "]");
        break;
    default:
        buf_quoted(b, cv_avro_kind_name(n->kind)); /* [PRIMITIVES] */
        break;
    }
}

char *cv_avro_tree_canonical(const struct cv_avro_node *root)
{
    struct buf b = {0};
    struct seen seen = {0};

    write_node(&b, &seen, root);
    free(seen.nodes);
    if (b.failed || b.data == NULL) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

char *cv_avro_canonical_form(const char *schema_json, char *errstr, size_t errstr_size)
{
    struct cv_avro_tree tree;
    char *form;

    json_t *json = cv_avro_json_load(schema_json, errstr, errstr_size);
    if (json == NULL)
        return NULL;
    if (cv_avro_tree_parse(json, CV_AVRO_PARSE_NO_DEFAULTS, &tree, errstr, errstr_size) != 0) {
        json_decref(json);
        return NULL;
    }
    form = cv_avro_tree_canonical(tree.root);
    if (form == NULL)
        snprintf(errstr, errstr_size, "out of memory");
    cv_avro_tree_free(&tree);
    json_decref(json);
    return form;
}
