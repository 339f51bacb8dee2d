/* Schema resolution, ours because avro-c's is unsafe (see docs/dependencies.md): a value
 * decoded with the writer's schema becomes JSON shaped by the reader's schema (fields by name or
 * alias, reader defaults for fields the writer lacks, writer-only fields dropped, promotions),
 * and the same rules decide statically whether a writer/reader pair is compatible. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_int.h"

static int has_alias(char **aliases, const char *name)
{
    for (size_t i = 0; aliases != NULL && aliases[i] != NULL; i++)
        if (strcmp(aliases[i], name) == 0)
            return 1;
    return 0;
}

/* Named types match by unqualified name (Avro 1.11 specification) or a reader alias. */
static int names_match(const struct cv_avro_node *w, const struct cv_avro_node *r)
{
    return strcmp(w->short_name, r->short_name) == 0 || has_alias(r->aliases, w->full_name);
}

static int promotable(enum cv_avro_kind w, enum cv_avro_kind r)
{
    switch (w) {
    case CV_AVRO_INT:
        return r == CV_AVRO_LONG || r == CV_AVRO_FLOAT || r == CV_AVRO_DOUBLE;
    case CV_AVRO_LONG:
        return r == CV_AVRO_FLOAT || r == CV_AVRO_DOUBLE;
    case CV_AVRO_FLOAT:
        return r == CV_AVRO_DOUBLE;
    case CV_AVRO_STRING:
        return r == CV_AVRO_BYTES;
    case CV_AVRO_BYTES:
        return r == CV_AVRO_STRING;
    default:
        return 0;
    }
}

/* Same kind (and name, and size for fixed) at this level; neither is a union. */
static int same_type(const struct cv_avro_node *w, const struct cv_avro_node *r)
{
    if (w->kind != r->kind)
        return 0;
    if (w->kind == CV_AVRO_RECORD || w->kind == CV_AVRO_ENUM)
        return names_match(w, r);
    if (w->kind == CV_AVRO_FIXED)
        return names_match(w, r) && w->fixed_size == r->fixed_size;
    return 1;
}

static const char *type_name(const struct cv_avro_node *n)
{
    return n->full_name != NULL ? n->full_name : cv_avro_kind_name(n->kind);
}

/* The reader union's branch for a writer's (non-union) type: the first of the same type, else
 * the first it promotes to; NULL with errstr if none. */
static const struct cv_avro_node *reader_branch(const struct cv_avro_node *w,
                                                const struct cv_avro_node *r,
                                                const struct cv_avro_path *path, char *errstr,
                                                size_t errstr_size)
{
    size_t i;

    for (i = 0; i < r->nbranches; i++)
        if (same_type(w, r->branches[i]))
            return r->branches[i];
    for (i = 0; i < r->nbranches; i++)
        if (promotable(w->kind, r->branches[i]->kind))
            return r->branches[i];
    cv_avro_path_error(path, errstr, errstr_size,
                       "the writer's %s is in no branch of the reader's union", type_name(w));
    return NULL;
}

static const struct cv_avro_field *writer_field(const struct cv_avro_node *w,
                                                const struct cv_avro_field *rf, size_t *index)
{
    for (size_t i = 0; i < w->nfields; i++) {
        if (strcmp(w->fields[i].name, rf->name) == 0 || has_alias(rf->aliases, w->fields[i].name)) {
            *index = i;
            return &w->fields[i];
        }
    }
    return NULL;
}

/* A float or a double value, as a double: the reader's number_json takes either. */
static int get_real(avro_value_t *value, enum cv_avro_kind kind, double *d)
{
    if (kind == CV_AVRO_DOUBLE)
        return avro_value_get_double(value, d);
    float f = 0;
    int rc = avro_value_get_float(value, &f);
    *d = f;
    return rc;
}

static json_t *number_json(enum cv_avro_kind r, double d, const struct cv_avro_path *path,
                           char *errstr, size_t errstr_size)
{
    if (r == CV_AVRO_FLOAT)
        d = (float)d;
    if (!isfinite(d)) {
        cv_avro_path_error(path, errstr, errstr_size,
                           "%s is not finite (JSON has no NaN or infinity)", cv_avro_kind_name(r));
        return NULL;
    }
    return json_real(d);
}

/* Bytes read as r: base64 for bytes and fixed, text for a string (checked to be UTF-8). */
static json_t *bytes_json(enum cv_avro_kind r, const void *data, size_t len,
                          const struct cv_avro_path *path, char *errstr, size_t errstr_size)
{
    json_t *out;

    if (r == CV_AVRO_STRING) {
        out = json_stringn(data, len);
        if (out == NULL)
            cv_avro_path_error(path, errstr, errstr_size, "string is not UTF-8");
        return out;
    }
    char *text = cv_avro_base64_encode(data, len);
    out = text != NULL ? json_string(text) : NULL;
    free(text);
    if (out == NULL)
        cv_avro_path_error(path, errstr, errstr_size, "out of memory");
    return out;
}

static json_t *record_json(const struct cv_avro_node *w, avro_value_t *value,
                           const struct cv_avro_node *r, struct cv_avro_path *path, char *errstr,
                           size_t errstr_size)
{
    size_t saved = path->len;
    json_t *out = json_object();

    for (size_t i = 0; out != NULL && i < r->nfields; i++) {
        const struct cv_avro_field *rf = &r->fields[i];
        const struct cv_avro_field *wf;
        avro_value_t child;
        size_t wi = 0;
        json_t *item;

        cv_avro_path_field(path, rf->name);
        wf = writer_field(w, rf, &wi);
        if (wf != NULL) {
            int rc = avro_value_get_by_index(value, wi, &child, NULL);
            if (rc != 0) {
                cv_avro_path_error(path, errstr, errstr_size, "avro: %s", avro_strerror());
                item = NULL;
            } else {
                item = cv_avro_value_to_json(wf->type, &child, rf->type, path, errstr, errstr_size);
            }
        } else if (rf->dflt != NULL) {
            item = json_deep_copy(rf->dflt);
        } else {
            cv_avro_path_error(path, errstr, errstr_size,
                               "not in the writer's schema and has no default");
            item = NULL;
        }
        if (item == NULL || json_object_set_new(out, rf->name, item) != 0) {
            json_decref(out);
            return NULL;
        }
        cv_avro_path_reset(path, saved);
    }
    return out;
}

static json_t *items_json(const struct cv_avro_node *w, avro_value_t *value,
                          const struct cv_avro_node *r, struct cv_avro_path *path, char *errstr,
                          size_t errstr_size)
{
    size_t saved = path->len, size = 0;
    json_t *out = w->kind == CV_AVRO_ARRAY ? json_array() : json_object();

    if (out == NULL || avro_value_get_size(value, &size) != 0) {
        cv_avro_path_error(path, errstr, errstr_size, "avro: cannot read %s",
                           cv_avro_kind_name(w->kind));
        json_decref(out);
        return NULL;
    }
    for (size_t i = 0; i < size; i++) {
        const char *key = NULL;
        avro_value_t child;
        json_t *item = NULL;
        int rc;

        if (w->kind == CV_AVRO_ARRAY)
            cv_avro_path_index(path, i);
        rc = avro_value_get_by_index(value, i, &child, &key);
        if (rc == 0 && w->kind == CV_AVRO_MAP)
            cv_avro_path_key(path, key);
        if (rc != 0)
            cv_avro_path_error(path, errstr, errstr_size, "avro: %s", avro_strerror());
        else
            item = cv_avro_value_to_json(w->items, &child, r->items, path, errstr, errstr_size);
        if (item == NULL) {
            json_decref(out);
            return NULL;
        }
        rc = w->kind == CV_AVRO_ARRAY ? json_array_append_new(out, item)
                                      : json_object_set_new(out, key, item);
        if (rc != 0) {
            cv_avro_path_error(path, errstr, errstr_size, "out of memory");
            json_decref(out);
            return NULL;
        }
        cv_avro_path_reset(path, saved);
    }
    return out;
}

static json_t *enum_json(const struct cv_avro_node *w, avro_value_t *value,
                         const struct cv_avro_node *r, const struct cv_avro_path *path,
                         char *errstr, size_t errstr_size)
{
    int index = -1;
    const char *symbol;

    if (avro_value_get_enum(value, &index) != 0 || index < 0 || (size_t)index >= w->nsymbols) {
        cv_avro_path_error(path, errstr, errstr_size, "bad enum value");
        return NULL;
    }
    symbol = w->symbols[index];
    for (size_t i = 0; i < r->nsymbols; i++)
        if (strcmp(r->symbols[i], symbol) == 0)
            return json_string(symbol);
    if (r->enum_default >= 0)
        return json_string(r->symbols[r->enum_default]);
    cv_avro_path_error(path, errstr, errstr_size, "symbol %s is not in the reader's %s", symbol,
                       r->full_name);
    return NULL;
}

json_t *cv_avro_value_to_json(const struct cv_avro_node *w, avro_value_t *value,
                              const struct cv_avro_node *r, struct cv_avro_path *path, char *errstr,
                              size_t errstr_size)
{
    const void *data = NULL;
    size_t size = 0;
    int rc = 0;

    if (w->kind == CV_AVRO_UNION) {
        avro_value_t branch;
        int disc = -1;
        if (avro_value_get_discriminant(value, &disc) != 0 || disc < 0 ||
            (size_t)disc >= w->nbranches || avro_value_get_current_branch(value, &branch) != 0) {
            cv_avro_path_error(path, errstr, errstr_size, "bad union value");
            return NULL;
        }
        return cv_avro_value_to_json(w->branches[disc], &branch, r, path, errstr, errstr_size);
    }
    if (r->kind == CV_AVRO_UNION) {
        const struct cv_avro_node *b = reader_branch(w, r, path, errstr, errstr_size);
        return b ? cv_avro_value_to_json(w, value, b, path, errstr, errstr_size) : NULL;
    }
    if (!same_type(w, r) && !promotable(w->kind, r->kind)) {
        cv_avro_path_error(path, errstr, errstr_size, "the writer's %s cannot be read as %s",
                           type_name(w), type_name(r));
        return NULL;
    }
    switch (w->kind) {
    case CV_AVRO_NULL:
        return json_null();
    case CV_AVRO_BOOLEAN: {
        int b = 0;
        rc = avro_value_get_boolean(value, &b);
        if (rc == 0)
            return json_boolean(b);
        break;
    }
    case CV_AVRO_INT: {
        int32_t i = 0;
        rc = avro_value_get_int(value, &i);
        if (rc == 0)
            return r->kind == CV_AVRO_INT || r->kind == CV_AVRO_LONG
                       ? json_integer(i)
                       : number_json(r->kind, i, path, errstr, errstr_size);
        break;
    }
    case CV_AVRO_LONG: {
        int64_t l = 0;
        rc = avro_value_get_long(value, &l);
        if (rc == 0)
            return r->kind == CV_AVRO_LONG
                       ? json_integer(l)
                       : number_json(r->kind, (double)l, path, errstr, errstr_size);
        break;
    }
    case CV_AVRO_FLOAT:
    case CV_AVRO_DOUBLE: {
        double d = 0;
        rc = get_real(value, w->kind, &d);
        if (rc == 0)
            return number_json(r->kind, d, path, errstr, errstr_size);
        break;
    }
    case CV_AVRO_STRING: {
        const char *s = NULL;
        rc = avro_value_get_string(value, &s, &size);
        if (rc == 0) /* avro-c counts the terminating NUL */
            return bytes_json(r->kind, s, size > 0 ? size - 1 : 0, path, errstr, errstr_size);
        break;
    }
    case CV_AVRO_BYTES:
    case CV_AVRO_FIXED:
        rc = w->kind == CV_AVRO_BYTES ? avro_value_get_bytes(value, &data, &size)
                                      : avro_value_get_fixed(value, &data, &size);
        if (rc == 0)
            return bytes_json(r->kind, data, size, path, errstr, errstr_size);
        break;
    case CV_AVRO_ENUM:
        return enum_json(w, value, r, path, errstr, errstr_size);
    case CV_AVRO_ARRAY:
    case CV_AVRO_MAP:
        return items_json(w, value, r, path, errstr, errstr_size);
    case CV_AVRO_RECORD:
        return record_json(w, value, r, path, errstr, errstr_size);
    case CV_AVRO_UNION:
        break;
    }
    cv_avro_path_error(path, errstr, errstr_size, "avro: cannot read %s (%d)", type_name(w), rc);
    return NULL;
}

/* Static check: pairs of records being compared, so that recursive types terminate. */
struct compat_stack {
    const struct cv_avro_node *w;
    const struct cv_avro_node *r;
    const struct compat_stack *up;
};

static int compat(const struct cv_avro_node *w, const struct cv_avro_node *r,
                  const struct compat_stack *stack, struct cv_avro_path *path, char *errstr,
                  size_t errstr_size)
{
    size_t saved = path->len, i, k;

    if (w->kind == CV_AVRO_UNION) {
        for (i = 0; i < w->nbranches; i++)
            if (!compat(w->branches[i], r, stack, path, errstr, errstr_size))
                return 0;
        return 1;
    }
    if (r->kind == CV_AVRO_UNION) {
        const struct cv_avro_node *b = reader_branch(w, r, path, errstr, errstr_size);
        return b ? compat(w, b, stack, path, errstr, errstr_size) : 0;
    }
    if (!same_type(w, r) && !promotable(w->kind, r->kind)) {
        cv_avro_path_error(path, errstr, errstr_size, "the writer's %s cannot be read as %s",
                           type_name(w), type_name(r));
        return 0;
    }
    switch (w->kind) {
    case CV_AVRO_ARRAY:
    case CV_AVRO_MAP:
        cv_avro_path_suffix(path, w->kind == CV_AVRO_ARRAY ? "[]" : "{}");
        if (!compat(w->items, r->items, stack, path, errstr, errstr_size))
            return 0;
        cv_avro_path_reset(path, saved);
        return 1;
    case CV_AVRO_ENUM:
        if (r->enum_default >= 0)
            return 1;
        for (i = 0; i < w->nsymbols; i++) {
            for (k = 0; k < r->nsymbols; k++)
                if (strcmp(w->symbols[i], r->symbols[k]) == 0)
                    break;
            if (k == r->nsymbols) {
                cv_avro_path_error(path, errstr, errstr_size,
                                   "symbol %s is not in the reader's %s, which has no default",
                                   w->symbols[i], r->full_name);
                return 0;
            }
        }
        return 1;
    case CV_AVRO_RECORD: {
        struct compat_stack top = {w, r, stack};
        for (const struct compat_stack *s = stack; s != NULL; s = s->up)
            if (s->w == w && s->r == r)
                return 1; /* already being checked further up */
        for (i = 0; i < r->nfields; i++) {
            const struct cv_avro_field *rf = &r->fields[i];
            const struct cv_avro_field *wf = writer_field(w, rf, &k);
            cv_avro_path_field(path, rf->name);
            if (wf == NULL && rf->dflt == NULL) {
                cv_avro_path_error(path, errstr, errstr_size,
                                   "not in the writer's schema and has no default");
                return 0;
            }
            if (wf != NULL && !compat(wf->type, rf->type, &top, path, errstr, errstr_size))
                return 0;
            cv_avro_path_reset(path, saved);
        }
        return 1;
    }
    default:
        return 1;
    }
}

int cv_avro_schema_compatible(const struct cv_schema *writer, const struct cv_schema *reader,
                              char *errstr, size_t errstr_size)
{
    struct cv_avro_path path = {.len = 0};

    if (writer == NULL || reader == NULL) {
        snprintf(errstr, errstr_size, "no schema");
        return 0;
    }
    return compat(writer->tree.root, reader->tree.root, NULL, &path, errstr, errstr_size);
}
