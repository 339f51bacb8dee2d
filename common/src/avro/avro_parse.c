/* Schema JSON -> our tree of it (struct cv_avro_node): names resolved to full names, defaults
 * checked and converted to the event JSON shape, minimal encoded sizes computed for the
 * bounds-checking walker. Follows the Avro 1.11 specification. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_int.h"

struct parse_ctx {
    struct cv_avro_tree *tree;
    int flags;
    struct cv_avro_node **named; /* defined named types, in definition order */
    size_t nnamed;
    size_t named_cap;
    char *errstr;
    size_t errstr_size;
};

static const char *const primitive_names[] = {"null",  "boolean", "int",   "long",
                                              "float", "double",  "bytes", "string"};
static const enum cv_avro_kind primitive_kinds[] = {CV_AVRO_NULL,  CV_AVRO_BOOLEAN, CV_AVRO_INT,
                                                    CV_AVRO_LONG,  CV_AVRO_FLOAT,   CV_AVRO_DOUBLE,
                                                    CV_AVRO_BYTES, CV_AVRO_STRING};

const char *cv_avro_kind_name(enum cv_avro_kind kind)
{
    switch (kind) {
    case CV_AVRO_NULL:
        return "null";
    case CV_AVRO_BOOLEAN:
        return "boolean";
    case CV_AVRO_INT:
        return "int";
    case CV_AVRO_LONG:
        return "long";
    case CV_AVRO_FLOAT:
        return "float";
    case CV_AVRO_DOUBLE:
        return "double";
    case CV_AVRO_BYTES:
        return "bytes";
    case CV_AVRO_STRING:
        return "string";
    case CV_AVRO_RECORD:
        return "record";
    case CV_AVRO_ENUM:
        return "enum";
    case CV_AVRO_ARRAY:
        return "array";
    case CV_AVRO_MAP:
        return "map";
    case CV_AVRO_UNION:
        return "union";
    case CV_AVRO_FIXED:
        return "fixed";
    }
    return "?";
}

static void parse_error(struct parse_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void parse_error(struct parse_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    if (ctx->errstr == NULL || ctx->errstr_size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(ctx->errstr, ctx->errstr_size, fmt, ap);
    va_end(ap);
}

/* Puts "record.field: what" before the message already in errstr. */
static void prefix_error(struct parse_ctx *ctx, const char *record, const char *field,
                         const char *what)
{
    char reason[512];

    if (ctx->errstr == NULL || ctx->errstr_size == 0)
        return;
    snprintf(reason, sizeof(reason), "%s", ctx->errstr);
    parse_error(ctx, "%s.%s: %s%s", record, field, what, reason);
}

static int primitive_kind(const char *name, enum cv_avro_kind *kind)
{
    for (size_t i = 0; i < sizeof(primitive_names) / sizeof(primitive_names[0]); i++) {
        if (strcmp(name, primitive_names[i]) == 0) {
            *kind = primitive_kinds[i];
            return 0;
        }
    }
    return -1;
}

/* [A-Za-z_][A-Za-z0-9_]* */
static int valid_name(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (!alpha && (i == 0 || c < '0' || c > '9'))
            return 0;
    }
    return 1;
}

/* Dot-separated names. */
static int valid_full_name(const char *s)
{
    const char *dot;

    while ((dot = strchr(s, '.')) != NULL) {
        if (!valid_name(s, (size_t)(dot - s)))
            return 0;
        s = dot + 1;
    }
    return valid_name(s, strlen(s));
}

static struct cv_avro_node *node_new(struct parse_ctx *ctx, enum cv_avro_kind kind)
{
    struct cv_avro_node *n = calloc(1, sizeof(*n));

    if (n == NULL) {
        parse_error(ctx, "out of memory");
        return NULL;
    }
    n->kind = kind;
    n->enum_default = -1;
    n->next_alloc = ctx->tree->nodes;
    ctx->tree->nodes = n;
    return n;
}

static struct cv_avro_node *find_named(struct parse_ctx *ctx, const char *full_name)
{
    for (size_t i = 0; i < ctx->nnamed; i++)
        if (strcmp(ctx->named[i]->full_name, full_name) == 0)
            return ctx->named[i];
    return NULL;
}

char *cv_avro_full_name(const char *name, const char *ns)
{
    size_t nslen, len;
    char *full;

    if (strchr(name, '.') != NULL || ns == NULL || ns[0] == '\0')
        return strdup(name);
    nslen = strlen(ns);
    len = strlen(name);
    full = malloc(nslen + 1 + len + 1);
    if (full == NULL)
        return NULL;
    memcpy(full, ns, nslen);
    full[nslen] = '.';
    memcpy(full + nslen + 1, name, len + 1);
    return full;
}

/* A reference to a named type, resolved against the enclosing namespace, then the null one. */
static struct cv_avro_node *resolve_reference(struct parse_ctx *ctx, const char *name,
                                              const char *ns)
{
    struct cv_avro_node *n = NULL;

    if (strchr(name, '.') == NULL && ns != NULL) {
        char *full = cv_avro_full_name(name, ns);
        if (full == NULL) {
            parse_error(ctx, "out of memory");
            return NULL;
        }
        n = find_named(ctx, full);
        free(full);
    }
    if (n == NULL)
        n = find_named(ctx, name);
    if (n == NULL)
        parse_error(ctx, "unknown type \"%s\"", name);
    return n;
}

/* Copies a JSON array of alias names into a NULL-terminated array of full names. */
static int parse_aliases(struct parse_ctx *ctx, const json_t *j, const char *ns, int qualify,
                         char ***out)
{
    size_t i, count;
    char **aliases;

    *out = NULL;
    if (j == NULL)
        return 0;
    if (!json_is_array(j)) {
        parse_error(ctx, "aliases must be an array of names");
        return -1;
    }
    count = json_array_size(j);
    aliases = calloc(count + 1, sizeof(*aliases));
    if (aliases == NULL) {
        parse_error(ctx, "out of memory");
        return -1;
    }
    *out = aliases;
    for (i = 0; i < count; i++) {
        const char *alias = json_string_value(json_array_get(j, i));
        if (alias == NULL || !valid_full_name(alias)) {
            parse_error(ctx, "invalid alias");
            return -1;
        }
        aliases[i] = qualify ? cv_avro_full_name(alias, ns) : strdup(alias);
        if (aliases[i] == NULL) {
            parse_error(ctx, "out of memory");
            return -1;
        }
    }
    return 0;
}

static void free_strings(char **strings)
{
    if (strings == NULL)
        return;
    for (size_t i = 0; strings[i] != NULL; i++)
        free(strings[i]);
    free(strings);
}

/* Decodes one UTF-8 sequence of a valid string (jansson validated it). */
static unsigned long utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    unsigned long c = s[0];

    if (c < 0x80) {
        *p += 1;
    } else if (c < 0xE0) {
        c = ((c & 0x1F) << 6) | (s[1] & 0x3F);
        *p += 2;
    } else if (c < 0xF0) {
        c = ((c & 0x0F) << 12) | ((unsigned long)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        *p += 3;
    } else {
        c = ((c & 0x07) << 18) | ((unsigned long)(s[1] & 0x3F) << 12) |
            ((unsigned long)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        *p += 4;
    }
    return c;
}

/* A bytes/fixed default is a JSON string whose code points 0-255 are the bytes; ours is base64. */
static json_t *bytes_default(struct parse_ctx *ctx, const json_t *d, long want_len)
{
    const unsigned char *p, *end;
    unsigned char *bytes;
    size_t len = 0;
    char *text;
    json_t *out;

    if (!json_is_string(d)) {
        parse_error(ctx, "expected a string");
        return NULL;
    }
    p = (const unsigned char *)json_string_value(d);
    end = p + json_string_length(d);
    bytes = malloc(json_string_length(d) + 1);
    if (bytes == NULL) {
        parse_error(ctx, "out of memory");
        return NULL;
    }
    while (p < end) {
        unsigned long c = utf8_next(&p);
        if (c > 0xFF) {
            free(bytes);
            parse_error(ctx, "bytes default has a character above U+00FF");
            return NULL;
        }
        bytes[len++] = (unsigned char)c;
    }
    if (want_len >= 0 && len != (size_t)want_len) {
        free(bytes);
        parse_error(ctx, "fixed default has %zu bytes, not %ld", len, want_len);
        return NULL;
    }
    text = cv_avro_base64_encode(bytes, len);
    free(bytes);
    if (text == NULL) {
        parse_error(ctx, "out of memory");
        return NULL;
    }
    out = json_string(text);
    free(text);
    return out;
}

/* Checks a field default (Avro's JSON encoding, union defaults for the first branch) and
 * returns it in our event shape; NULL with the error set. */
static json_t *convert_default(struct parse_ctx *ctx, const struct cv_avro_node *n, const json_t *d,
                               int depth)
{
    json_t *out;
    size_t i;

    if (depth > CV_AVRO_MAX_DEPTH || n == NULL) {
        parse_error(ctx, "default nested too deeply");
        return NULL;
    }
    switch (n->kind) {
    case CV_AVRO_NULL:
        if (json_is_null(d))
            return json_null();
        break;
    case CV_AVRO_BOOLEAN:
        if (json_is_boolean(d))
            return json_deep_copy(d);
        break;
    case CV_AVRO_INT:
        if (json_is_integer(d) && json_integer_value(d) >= INT32_MIN &&
            json_integer_value(d) <= INT32_MAX)
            return json_deep_copy(d);
        break;
    case CV_AVRO_LONG:
        if (json_is_integer(d))
            return json_deep_copy(d);
        break;
    case CV_AVRO_FLOAT:
    case CV_AVRO_DOUBLE:
        if (json_is_number(d))
            return json_deep_copy(d);
        break;
    case CV_AVRO_STRING:
        if (json_is_string(d))
            return json_deep_copy(d);
        break;
    case CV_AVRO_BYTES:
        return bytes_default(ctx, d, -1);
    case CV_AVRO_FIXED:
        return bytes_default(ctx, d, (long)n->fixed_size);
    case CV_AVRO_ENUM:
        if (json_is_string(d))
            for (i = 0; i < n->nsymbols; i++)
                if (strcmp(n->symbols[i], json_string_value(d)) == 0)
                    return json_deep_copy(d);
        break;
    case CV_AVRO_UNION:
        /* The specification: a union's default is a value of its first branch. */
        if (n->nbranches > 0)
            return convert_default(ctx, n->branches[0], d, depth + 1);
        break;
    case CV_AVRO_ARRAY:
        if (!json_is_array(d))
            break;
        out = json_array();
        for (i = 0; out != NULL && i < json_array_size(d); i++) {
            json_t *item = convert_default(ctx, n->items, json_array_get(d, i), depth + 1);
            if (item == NULL || json_array_append_new(out, item) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    case CV_AVRO_MAP: {
        const char *key;
        json_t *value;
        if (!json_is_object(d))
            break;
        out = json_object();
        json_object_foreach((json_t *)d, key, value)
        {
            json_t *item = convert_default(ctx, n->items, value, depth + 1);
            if (item == NULL || json_object_set_new(out, key, item) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    case CV_AVRO_RECORD:
        if (!json_is_object(d))
            break;
        out = json_object();
        for (i = 0; out != NULL && i < n->nfields; i++) {
            const struct cv_avro_field *f = &n->fields[i];
            const json_t *v = json_object_get(d, f->name);
            json_t *item;
            if (v != NULL)
                item = convert_default(ctx, f->type, v, depth + 1);
            else if (f->dflt != NULL)
                item = json_deep_copy(f->dflt);
            else {
                parse_error(ctx, "record default lacks field %s", f->name);
                item = NULL;
            }
            if (item == NULL || json_object_set_new(out, f->name, item) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    parse_error(ctx, "default is not a valid %s",
                n->full_name != NULL ? n->full_name : cv_avro_kind_name(n->kind));
    return NULL;
}

static struct cv_avro_node *parse_schema(struct parse_ctx *ctx, const json_t *j, const char *ns,
                                         int depth);

/* Declares a record, enum or fixed: full name from name and namespace, duplicates refused. */
static struct cv_avro_node *parse_named(struct parse_ctx *ctx, const json_t *j, const char *ns,
                                        enum cv_avro_kind kind)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    const json_t *nsj = json_object_get(j, "namespace");
    struct cv_avro_node *n;
    enum cv_avro_kind prim;
    char *full;

    if (name == NULL) {
        parse_error(ctx, "%s without a name", cv_avro_kind_name(kind));
        return NULL;
    }
    if (strchr(name, '.') != NULL)
        full = strdup(name);
    else if (json_is_string(nsj) && json_string_length(nsj) > 0)
        full = cv_avro_full_name(name, json_string_value(nsj));
    else if (nsj != NULL && !json_is_null(nsj) && !json_is_string(nsj)) {
        parse_error(ctx, "namespace of %s is not a string", name);
        return NULL;
    } else if (json_is_string(nsj))
        full = strdup(name); /* "namespace": "" is the null namespace */
    else
        full = cv_avro_full_name(name, ns);
    if (full == NULL) {
        parse_error(ctx, "out of memory");
        return NULL;
    }
    if (!valid_full_name(full) || primitive_kind(full, &prim) == 0) {
        parse_error(ctx, "invalid name \"%s\"", full);
        free(full);
        return NULL;
    }
    if (find_named(ctx, full) != NULL) {
        parse_error(ctx, "%s is defined twice", full);
        free(full);
        return NULL;
    }
    n = node_new(ctx, kind);
    if (n == NULL) {
        free(full);
        return NULL;
    }
    n->full_name = full;
    n->short_name = strrchr(full, '.') != NULL ? strrchr(full, '.') + 1 : full;
    if (ctx->nnamed == ctx->named_cap) {
        size_t cap = ctx->named_cap ? ctx->named_cap * 2 : 16;
        struct cv_avro_node **named = realloc(ctx->named, cap * sizeof(*named));
        if (named == NULL) {
            parse_error(ctx, "out of memory");
            return NULL;
        }
        ctx->named = named;
        ctx->named_cap = cap;
    }
    ctx->named[ctx->nnamed++] = n;
    return n;
}

/* The namespace a named node gives the types nested in it: a malloc'd copy, NULL for none. */
static char *namespace_of(const struct cv_avro_node *n, int *oom)
{
    const char *dot = strrchr(n->full_name, '.');
    char *ns;

    *oom = 0;
    if (dot == NULL)
        return NULL;
    ns = strndup(n->full_name, (size_t)(dot - n->full_name));
    if (ns == NULL)
        *oom = 1;
    return ns;
}

/* The aliases of named type n (an enum or a fixed), qualified in n's namespace. 0, or -1 after
 * parse_error. */
static int parse_own_aliases(struct parse_ctx *ctx, struct cv_avro_node *n, const json_t *j)
{
    int oom, rc;
    char *ns = namespace_of(n, &oom);

    if (oom) {
        parse_error(ctx, "out of memory");
        return -1;
    }
    rc = parse_aliases(ctx, json_object_get(j, "aliases"), ns, 1, &n->aliases);
    free(ns);
    return rc;
}

static int parse_record(struct parse_ctx *ctx, struct cv_avro_node *n, const json_t *j, int depth)
{
    const json_t *fields = json_object_get(j, "fields");
    int oom, rc = -1;
    char *ns = namespace_of(n, &oom);
    size_t count, i, k;

    if (oom) {
        parse_error(ctx, "out of memory");
        return -1;
    }
    if (parse_aliases(ctx, json_object_get(j, "aliases"), ns, 1, &n->aliases) != 0)
        goto cleanup;
    if (!json_is_array(fields)) {
        parse_error(ctx, "record %s has no fields array", n->full_name);
        goto cleanup;
    }
    count = json_array_size(fields);
    n->fields = calloc(count ? count : 1, sizeof(*n->fields));
    if (n->fields == NULL) {
        parse_error(ctx, "out of memory");
        goto cleanup;
    }
    for (i = 0; i < count; i++) {
        const json_t *fj = json_array_get(fields, i);
        struct cv_avro_field *f = &n->fields[i];
        const char *name = json_string_value(json_object_get(fj, "name"));
        const json_t *dflt;

        if (name == NULL || !valid_name(name, strlen(name))) {
            parse_error(ctx, "record %s: field %zu has no valid name", n->full_name, i);
            goto cleanup;
        }
        for (k = 0; k < i; k++) {
            if (strcmp(n->fields[k].name, name) == 0) {
                parse_error(ctx, "record %s: field %s appears twice", n->full_name, name);
                goto cleanup;
            }
        }
        f->name = strdup(name);
        n->nfields = i + 1; /* so that the field is freed from here on */
        if (f->name == NULL) {
            parse_error(ctx, "out of memory");
            goto cleanup;
        }
        if (parse_aliases(ctx, json_object_get(fj, "aliases"), NULL, 0, &f->aliases) != 0)
            goto cleanup;
        f->type = parse_schema(ctx, json_object_get(fj, "type"), ns, depth + 1);
        if (f->type == NULL) {
            prefix_error(ctx, n->full_name, name, "");
            goto cleanup;
        }
        dflt = json_object_get(fj, "default");
        if (dflt != NULL && !(ctx->flags & CV_AVRO_PARSE_NO_DEFAULTS)) {
            f->dflt = convert_default(ctx, f->type, dflt, 0);
            if (f->dflt == NULL) {
                prefix_error(ctx, n->full_name, name, "bad default: ");
                goto cleanup;
            }
        }
    }
    rc = 0;
cleanup:
    free(ns);
    return rc;
}

static int parse_enum(struct parse_ctx *ctx, struct cv_avro_node *n, const json_t *j)
{
    const json_t *symbols = json_object_get(j, "symbols");
    const json_t *dflt = json_object_get(j, "default");
    size_t i, k;

    if (parse_own_aliases(ctx, n, j) != 0)
        return -1;
    if (!json_is_array(symbols) || json_array_size(symbols) == 0) {
        parse_error(ctx, "enum %s has no symbols", n->full_name);
        return -1;
    }
    n->symbols = calloc(json_array_size(symbols), sizeof(*n->symbols));
    if (n->symbols == NULL) {
        parse_error(ctx, "out of memory");
        return -1;
    }
    for (i = 0; i < json_array_size(symbols); i++) {
        const char *sym = json_string_value(json_array_get(symbols, i));
        if (sym == NULL || !valid_name(sym, strlen(sym))) {
            parse_error(ctx, "enum %s: invalid symbol", n->full_name);
            return -1;
        }
        for (k = 0; k < i; k++) {
            if (strcmp(n->symbols[k], sym) == 0) {
                parse_error(ctx, "enum %s: symbol %s appears twice", n->full_name, sym);
                return -1;
            }
        }
        n->symbols[i] = strdup(sym);
        n->nsymbols = i + 1;
        if (n->symbols[i] == NULL) {
            parse_error(ctx, "out of memory");
            return -1;
        }
        if (json_is_string(dflt) && strcmp(json_string_value(dflt), sym) == 0)
            n->enum_default = (long)i;
    }
    if (dflt != NULL && n->enum_default < 0) {
        parse_error(ctx, "enum %s: default is not one of its symbols", n->full_name);
        return -1;
    }
    return 0;
}

static int parse_fixed(struct parse_ctx *ctx, struct cv_avro_node *n, const json_t *j)
{
    const json_t *size = json_object_get(j, "size");

    if (parse_own_aliases(ctx, n, j) != 0)
        return -1;
    if (!json_is_integer(size) || json_integer_value(size) < 0 ||
        json_integer_value(size) > CV_AVRO_MAX_VALUE) {
        parse_error(ctx, "fixed %s: size must be an integer from 0 to %d", n->full_name,
                    CV_AVRO_MAX_VALUE);
        return -1;
    }
    n->fixed_size = (size_t)json_integer_value(size);
    return 0;
}

static struct cv_avro_node *parse_union(struct parse_ctx *ctx, const json_t *j, const char *ns,
                                        int depth)
{
    size_t count = json_array_size(j), i, k;
    struct cv_avro_node *n;

    n = node_new(ctx, CV_AVRO_UNION);
    if (n == NULL)
        return NULL;
    n->branches = calloc(count ? count : 1, sizeof(*n->branches)); /* [] is valid, if useless */
    if (n->branches == NULL) {
        parse_error(ctx, "out of memory");
        return NULL;
    }
    for (i = 0; i < count; i++) {
        struct cv_avro_node *b = parse_schema(ctx, json_array_get(j, i), ns, depth + 1);
        if (b == NULL)
            return NULL;
        if (b->kind == CV_AVRO_UNION) {
            parse_error(ctx, "a union directly inside a union");
            return NULL;
        }
        /* At most one branch of each unnamed kind, and one per name. */
        for (k = 0; k < i; k++) {
            const struct cv_avro_node *o = n->branches[k];
            int named = b->full_name != NULL;
            if (o->kind == b->kind && (!named || strcmp(o->full_name, b->full_name) == 0)) {
                parse_error(ctx, "union has two %s branches",
                            named ? b->full_name : cv_avro_kind_name(b->kind));
                return NULL;
            }
        }
        n->branches[i] = b;
        n->nbranches = i + 1;
    }
    return n;
}

static struct cv_avro_node *parse_schema(struct parse_ctx *ctx, const json_t *j, const char *ns,
                                         int depth)
{
    enum cv_avro_kind kind;
    struct cv_avro_node *n;
    const json_t *type;
    const char *t;

    if (depth > CV_AVRO_MAX_DEPTH) {
        parse_error(ctx, "schema nested too deeply");
        return NULL;
    }
    if (json_is_string(j)) {
        if (primitive_kind(json_string_value(j), &kind) == 0)
            return node_new(ctx, kind);
        return resolve_reference(ctx, json_string_value(j), ns);
    }
    if (json_is_array(j))
        return parse_union(ctx, j, ns, depth);
    if (!json_is_object(j)) {
        parse_error(ctx, "a schema must be a string, an array or an object");
        return NULL;
    }
    type = json_object_get(j, "type");
    if (!json_is_string(type)) {
        if (type == NULL) {
            parse_error(ctx, "schema object without a type");
            return NULL;
        }
        return parse_schema(ctx, type, ns, depth + 1); /* {"type": {...}} or {"type": [...]} */
    }
    t = json_string_value(type);
    if (primitive_kind(t, &kind) == 0) {
        const char *logical = json_string_value(json_object_get(j, "logicalType"));
        n = node_new(ctx, kind);
        if (n != NULL && kind == CV_AVRO_STRING && logical != NULL && strcmp(logical, "uuid") == 0)
            n->is_uuid = 1;
        return n;
    }
    if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0) {
        n = parse_named(ctx, j, ns, CV_AVRO_RECORD);
        return n != NULL && parse_record(ctx, n, j, depth) == 0 ? n : NULL;
    }
    if (strcmp(t, "enum") == 0) {
        n = parse_named(ctx, j, ns, CV_AVRO_ENUM);
        return n != NULL && parse_enum(ctx, n, j) == 0 ? n : NULL;
    }
    if (strcmp(t, "fixed") == 0) {
        n = parse_named(ctx, j, ns, CV_AVRO_FIXED);
        return n != NULL && parse_fixed(ctx, n, j) == 0 ? n : NULL;
    }
    if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
        const json_t *inner = json_object_get(j, t[0] == 'a' ? "items" : "values");
        n = node_new(ctx, t[0] == 'a' ? CV_AVRO_ARRAY : CV_AVRO_MAP);
        if (n == NULL)
            return NULL;
        if (inner == NULL) {
            parse_error(ctx, "%s without %s", t, t[0] == 'a' ? "items" : "values");
            return NULL;
        }
        n->items = parse_schema(ctx, inner, ns, depth + 1);
        return n->items != NULL ? n : NULL;
    }
    return resolve_reference(ctx, t, ns); /* {"type": "conveyor.OrderItem"} */
}

/* Fewest bytes a value encodes to; a record being computed counts 0 (it recurses through a
 * union or an array, which count at least 1 anyway). */
static size_t min_size(struct cv_avro_node *n, int depth)
{
    size_t size = 0, i;

    if (n->size_state != 0 || depth > CV_AVRO_MAX_DEPTH)
        return n->min_size; /* done, or in progress (0 so far) */
    n->size_state = 1;
    switch (n->kind) {
    case CV_AVRO_NULL:
        size = 0;
        break;
    case CV_AVRO_FLOAT:
        size = 4;
        break;
    case CV_AVRO_DOUBLE:
        size = 8;
        break;
    case CV_AVRO_FIXED:
        size = n->fixed_size;
        break;
    case CV_AVRO_RECORD:
        for (i = 0; i < n->nfields; i++)
            size += min_size(n->fields[i].type, depth + 1);
        break;
    case CV_AVRO_UNION:
        size = SIZE_MAX;
        for (i = 0; i < n->nbranches; i++) {
            size_t b = min_size(n->branches[i], depth + 1);
            if (b < size)
                size = b;
        }
        size = n->nbranches > 0 ? size + 1 : 1;
        break;
    case CV_AVRO_ARRAY:
    case CV_AVRO_MAP:
        min_size(n->items, depth + 1);
        size = 1;
        break;
    default:
        size = 1; /* boolean, int, long, enum index, string and bytes length */
        break;
    }
    n->min_size = size;
    n->size_state = 2;
    return size;
}

int cv_avro_tree_parse(const json_t *json, int flags, struct cv_avro_tree *tree, char *errstr,
                       size_t errstr_size)
{
    struct parse_ctx ctx = {
        .tree = tree, .flags = flags, .errstr = errstr, .errstr_size = errstr_size};

    tree->root = NULL;
    tree->nodes = NULL;
    tree->root = parse_schema(&ctx, json, NULL, 0);
    free(ctx.named);
    if (tree->root == NULL) {
        cv_avro_tree_free(tree);
        return -1;
    }
    for (struct cv_avro_node *n = tree->nodes; n != NULL; n = n->next_alloc)
        min_size(n, 0);
    return 0;
}

void cv_avro_tree_free(struct cv_avro_tree *tree)
{
    struct cv_avro_node *n, *next;
    size_t i;

    if (tree == NULL)
        return;
    for (n = tree->nodes; n != NULL; n = next) {
        next = n->next_alloc;
        for (i = 0; i < n->nfields; i++) {
            free(n->fields[i].name);
            free_strings(n->fields[i].aliases);
            json_decref(n->fields[i].dflt);
        }
        free(n->fields);
        for (i = 0; i < n->nsymbols; i++)
            free(n->symbols[i]);
        free(n->symbols);
        free_strings(n->aliases);
        free(n->branches);
        free(n->full_name);
        free(n);
    }
    tree->nodes = NULL;
    tree->root = NULL;
}

json_t *cv_avro_json_load(const char *text, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    if (text == NULL) {
        snprintf(errstr, errstr_size, "no schema");
        return NULL;
    }
    json_t *json = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (json == NULL)
        snprintf(errstr, errstr_size, "schema is not JSON: %s (line %d)", jerr.text, jerr.line);
    return json;
}
