/* Bounds-checking walk over an Avro binary body before avro-c decodes it. Input from Kafka is
 * untrusted, and avro-c trusts lengths, leaks on a failed decode (AVRO-4246) and accepts
 * malformed varints; once this walk accepts a body, avro-c's decode of it cannot fail, and
 * its allocations are bounded by the input's length and CV_AVRO_MAX_VALUE elements. */
#include <string.h>

#include "avro_int.h"
#include "cv/util.h"

struct walk {
    const unsigned char *p;
    const unsigned char *end;
    size_t elements; /* array and map items so far */
    struct cv_avro_path path;
    char *errstr;
    size_t errstr_size;
};

static size_t remaining(const struct walk *w)
{
    return (size_t)(w->end - w->p);
}

/* Zig-zag varint of at most max_bytes bytes whose unused high bits of the last byte are 0. */
static int read_varint(struct walk *w, int max_bytes, int64_t *out)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < max_bytes; i++) {
        unsigned char b;
        if (w->p == w->end) {
            cv_avro_path_error(&w->path, w->errstr, w->errstr_size, "truncated input");
            return -1;
        }
        b = *w->p++;
        if (i == max_bytes - 1 && (b >> (max_bytes == 5 ? 4 : 1)) != 0)
            break; /* more than 32 (int) or 64 (long) bits */
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if ((b & 0x80) == 0) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    cv_avro_path_error(&w->path, w->errstr, w->errstr_size, "malformed %s varint",
                       max_bytes == 5 ? "int" : "long");
    return -1;
}

static int read_long(struct walk *w, int64_t *out)
{
    return read_varint(w, 10, out);
}

/* Well-formed UTF-8 (NUL allowed: Avro strings may hold it). */
static int valid_utf8(const unsigned char *s, size_t len)
{
    for (size_t i = 0, n; i < len; i += n)
        if ((n = cv_utf8_sequence_length(s + i, len - i)) == 0)
            return 0;
    return 1;
}

/* A string (utf8: checked) or bytes value; key: a map key, which must hold no NUL either. */
static int walk_bytes(struct walk *w, int utf8, int key)
{
    int64_t len;

    if (read_long(w, &len) != 0)
        return -1;
    if (len < 0 || (uint64_t)len > remaining(w)) {
        cv_avro_path_error(&w->path, w->errstr, w->errstr_size,
                           "length %lld exceeds the %zu bytes left", (long long)len, remaining(w));
        return -1;
    }
    if (utf8 && !valid_utf8(w->p, (size_t)len)) {
        cv_avro_path_error(&w->path, w->errstr, w->errstr_size, "string is not UTF-8");
        return -1;
    }
    if (key && memchr(w->p, '\0', (size_t)len) != NULL) {
        cv_avro_path_error(&w->path, w->errstr, w->errstr_size, "map key holds a NUL byte");
        return -1;
    }
    w->p += len;
    return 0;
}

static int walk_node(struct walk *w, const struct cv_avro_node *n, int depth);

/* Blocks of items: a count (negative: followed by the block's byte size), ending with 0. */
static int walk_blocks(struct walk *w, const struct cv_avro_node *n, int depth)
{
    size_t saved = w->path.len, index = 0;
    size_t item_min = n->items->min_size + (n->kind == CV_AVRO_MAP ? 1 : 0);

    for (;;) {
        int64_t count, size;

        if (read_long(w, &count) != 0)
            return -1;
        if (count == 0)
            return 0;
        if (count < 0) {
            if (count == INT64_MIN || read_long(w, &size) != 0 || size < 0 ||
                (uint64_t)size > remaining(w)) {
                cv_avro_path_error(&w->path, w->errstr, w->errstr_size, "bad block size");
                return -1;
            }
            count = -count;
        }
        if ((uint64_t)count > CV_AVRO_MAX_VALUE - w->elements ||
            (item_min > 0 && (uint64_t)count > remaining(w) / item_min)) {
            cv_avro_path_error(&w->path, w->errstr, w->errstr_size, "%lld items exceed the input",
                               (long long)count);
            return -1;
        }
        w->elements += (size_t)count;
        for (int64_t i = 0; i < count; i++, index++) {
            cv_avro_path_index(&w->path, index);
            if (n->kind == CV_AVRO_MAP && walk_bytes(w, 1, 1) != 0)
                return -1;
            if (walk_node(w, n->items, depth + 1) != 0)
                return -1;
            cv_avro_path_reset(&w->path, saved);
        }
    }
}

static int walk_node(struct walk *w, const struct cv_avro_node *n, int depth)
{
    size_t saved = w->path.len, i;
    int64_t v;

    if (depth > CV_AVRO_MAX_DEPTH) {
        cv_avro_path_error(&w->path, w->errstr, w->errstr_size, "value nested too deeply");
        return -1;
    }
    switch (n->kind) {
    case CV_AVRO_NULL:
        return 0;
    case CV_AVRO_BOOLEAN:
        if (remaining(w) < 1 || *w->p > 1) {
            cv_avro_path_error(&w->path, w->errstr, w->errstr_size,
                               remaining(w) < 1 ? "truncated input" : "bad boolean");
            return -1;
        }
        w->p++;
        return 0;
    case CV_AVRO_INT:
        return read_varint(w, 5, &v);
    case CV_AVRO_LONG:
        return read_long(w, &v);
    case CV_AVRO_FLOAT:
    case CV_AVRO_DOUBLE:
    case CV_AVRO_FIXED: {
        size_t size = n->kind == CV_AVRO_FLOAT ? 4 : n->kind == CV_AVRO_DOUBLE ? 8 : n->fixed_size;
        if (remaining(w) < size) {
            cv_avro_path_error(&w->path, w->errstr, w->errstr_size, "truncated input");
            return -1;
        }
        w->p += size;
        return 0;
    }
    case CV_AVRO_STRING:
        return walk_bytes(w, 1, 0);
    case CV_AVRO_BYTES:
        return walk_bytes(w, 0, 0);
    case CV_AVRO_ENUM:
        if (read_varint(w, 5, &v) != 0)
            return -1;
        if (v < 0 || (uint64_t)v >= n->nsymbols) {
            cv_avro_path_error(&w->path, w->errstr, w->errstr_size, "enum index %lld out of range",
                               (long long)v);
            return -1;
        }
        return 0;
    case CV_AVRO_UNION:
        if (read_long(w, &v) != 0)
            return -1;
        if (v < 0 || (uint64_t)v >= n->nbranches) {
            cv_avro_path_error(&w->path, w->errstr, w->errstr_size,
                               "union branch %lld out of range", (long long)v);
            return -1;
        }
        return walk_node(w, n->branches[v], depth + 1);
    case CV_AVRO_ARRAY:
    case CV_AVRO_MAP:
        return walk_blocks(w, n, depth);
    case CV_AVRO_RECORD:
        for (i = 0; i < n->nfields; i++) {
            cv_avro_path_field(&w->path, n->fields[i].name);
            if (walk_node(w, n->fields[i].type, depth + 1) != 0)
                return -1;
            cv_avro_path_reset(&w->path, saved);
        }
        return 0;
    }
    return -1;
}

int cv_avro_walk(const struct cv_avro_node *n, const unsigned char *body, size_t len,
                 size_t *consumed, char *errstr, size_t errstr_size)
{
    struct walk w = {.p = body, .end = body + len, .errstr = errstr, .errstr_size = errstr_size};

    if (walk_node(&w, n, 0) != 0)
        return -1;
    *consumed = (size_t)(w.p - body);
    return 0;
}
