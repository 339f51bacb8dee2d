/* One schema version (struct cv_schema): shared named types inlined at their first reference,
 * as Avro IDL imports do, then our tree, canonical form and fingerprint, and avro-c's schema
 * (parsed from the canonical form) and value class, checked to have the same shape as our tree. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_int.h"

struct expand_ctx {
    const json_t *shared;
    json_t *defined; /* full names defined so far, as keys */
    char *errstr;
    size_t errstr_size;
};

static int is_primitive(const char *s)
{
    static const char *const names[] = {"null",  "boolean", "int",   "long",
                                        "float", "double",  "bytes", "string"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i]) == 0)
            return 1;
    return 0;
}

/* The namespace a definition gives its insides; malloc'd, NULL for the null namespace. */
static char *inner_namespace(const json_t *j, const char *ns)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    const json_t *nsj = json_object_get(j, "namespace");
    const char *dot;

    if (name != NULL && (dot = strrchr(name, '.')) != NULL)
        return strndup(name, (size_t)(dot - name));
    if (json_is_string(nsj))
        return json_string_length(nsj) > 0 ? strdup(json_string_value(nsj)) : NULL;
    return ns != NULL ? strdup(ns) : NULL;
}

static json_t *expand(struct expand_ctx *ctx, const json_t *j, const char *ns, int depth);

/* A copy of object j where the schema under each key in keys is expanded too. */
static json_t *expand_object(struct expand_ctx *ctx, const json_t *j, const char *ns, int depth,
                             const char *const *keys)
{
    json_t *out = json_deep_copy(j);

    for (size_t i = 0; out != NULL && keys[i] != NULL; i++) {
        const json_t *inner = json_object_get(j, keys[i]);
        json_t *x;
        if (inner == NULL)
            continue;
        x = expand(ctx, inner, ns, depth + 1);
        if (x == NULL || json_object_set_new(out, keys[i], x) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *expand_named(struct expand_ctx *ctx, const json_t *j, const char *ns, int depth,
                            int record)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    char *inner = inner_namespace(j, ns);
    const json_t *fields = json_object_get(j, "fields");
    json_t *out = NULL, *new_fields;
    char *full;

    if (name == NULL) {
        free(inner);
        return json_deep_copy(j); /* the tree parser reports it */
    }
    full = cv_avro_full_name(name, inner);
    if (full == NULL || json_object_set_new(ctx->defined, full, json_true()) != 0)
        goto cleanup;
    out = json_deep_copy(j);
    if (out == NULL || !record || !json_is_array(fields))
        goto cleanup;
    new_fields = json_array();
    if (new_fields == NULL || json_object_set_new(out, "fields", new_fields) != 0) {
        json_decref(out);
        out = NULL;
        goto cleanup;
    }
    for (size_t i = 0; i < json_array_size(fields); i++) {
        static const char *const keys[] = {"type", NULL};
        const json_t *f = json_array_get(fields, i);
        json_t *x =
            json_is_object(f) ? expand_object(ctx, f, inner, depth, keys) : json_deep_copy(f);
        if (x == NULL || json_array_append_new(new_fields, x) != 0) {
            json_decref(out);
            out = NULL;
            goto cleanup;
        }
    }
cleanup:
    free(full);
    free(inner);
    return out;
}

/* A reference to a named type not defined yet: the shared definition, expanded in turn. */
static json_t *expand_reference(struct expand_ctx *ctx, const json_t *j, const char *ns, int depth)
{
    const char *name = json_string_value(j);
    const json_t *def = NULL;
    char *full = cv_avro_full_name(name, ns);

    if (full == NULL)
        return NULL;
    if (json_object_get(ctx->defined, full) == NULL && ctx->shared != NULL) {
        def = json_object_get(ctx->shared, full);
        if (def == NULL && strchr(name, '.') == NULL)
            def = json_object_get(ctx->shared, name);
    }
    free(full);
    if (def == NULL)
        return json_deep_copy(j);
    if (ns != NULL && json_is_string(json_object_get(def, "name")) &&
        strchr(json_string_value(json_object_get(def, "name")), '.') == NULL &&
        json_string_length(json_object_get(def, "namespace")) == 0) {
        /* Inlined into our namespace, a shared type of the null namespace would change name. */
        snprintf(ctx->errstr, ctx->errstr_size, "shared type %s needs a namespace", name);
        return NULL;
    }
    return expand(ctx, def, NULL, depth + 1);
}

static json_t *expand(struct expand_ctx *ctx, const json_t *j, const char *ns, int depth)
{
    static const char *const type_key[] = {"type", NULL};
    static const char *const items_key[] = {"items", NULL};
    static const char *const values_key[] = {"values", NULL};
    const char *t;

    if (depth > CV_AVRO_MAX_DEPTH) {
        snprintf(ctx->errstr, ctx->errstr_size, "schema nested too deeply");
        return NULL;
    }
    if (json_is_string(j))
        return is_primitive(json_string_value(j)) ? json_deep_copy(j)
                                                  : expand_reference(ctx, j, ns, depth);
    if (json_is_array(j)) {
        json_t *out = json_array();
        for (size_t i = 0; out != NULL && i < json_array_size(j); i++) {
            json_t *x = expand(ctx, json_array_get(j, i), ns, depth + 1);
            if (x == NULL || json_array_append_new(out, x) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (!json_is_object(j))
        return json_deep_copy(j);
    t = json_string_value(json_object_get(j, "type"));
    if (t == NULL)
        return expand_object(ctx, j, ns, depth, type_key);
    if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0)
        return expand_named(ctx, j, ns, depth, 1);
    if (strcmp(t, "enum") == 0 || strcmp(t, "fixed") == 0)
        return expand_named(ctx, j, ns, depth, 0);
    if (strcmp(t, "array") == 0)
        return expand_object(ctx, j, ns, depth, items_key);
    if (strcmp(t, "map") == 0)
        return expand_object(ctx, j, ns, depth, values_key);
    if (is_primitive(t))
        return json_deep_copy(j);
    return expand_object(ctx, j, ns, depth, type_key); /* {"type": "conveyor.OrderItem"} */
}

/* avro-c's schema has our tree's shape: kinds, names, field counts, branches, sizes. Records
 * are compared once each (seen), which also ends recursion. */
static int same_shape(const struct cv_avro_node *n, avro_schema_t s, json_t *seen, int depth)
{
    size_t i;

    if (depth > CV_AVRO_MAX_DEPTH + 1)
        return 0;
    if (is_avro_link(s))
        s = avro_schema_link_target(s);
    switch (n->kind) {
    case CV_AVRO_NULL:
        return is_avro_null(s);
    case CV_AVRO_BOOLEAN:
        return is_avro_boolean(s);
    case CV_AVRO_INT:
        return is_avro_int32(s);
    case CV_AVRO_LONG:
        return is_avro_int64(s);
    case CV_AVRO_FLOAT:
        return is_avro_float(s);
    case CV_AVRO_DOUBLE:
        return is_avro_double(s);
    case CV_AVRO_BYTES:
        return is_avro_bytes(s);
    case CV_AVRO_STRING:
        return is_avro_string(s);
    case CV_AVRO_FIXED:
        return is_avro_fixed(s) && (size_t)avro_schema_fixed_size(s) == n->fixed_size;
    case CV_AVRO_ENUM:
        return is_avro_enum(s) && (size_t)avro_schema_enum_number_of_symbols(s) == n->nsymbols;
    case CV_AVRO_ARRAY:
        return is_avro_array(s) &&
               same_shape(n->items, avro_schema_array_items(s), seen, depth + 1);
    case CV_AVRO_MAP:
        return is_avro_map(s) && same_shape(n->items, avro_schema_map_values(s), seen, depth + 1);
    case CV_AVRO_UNION:
        if (!is_avro_union(s) || avro_schema_union_size(s) != n->nbranches)
            return 0;
        for (i = 0; i < n->nbranches; i++)
            if (!same_shape(n->branches[i], avro_schema_union_branch(s, (int)i), seen, depth + 1))
                return 0;
        return 1;
    case CV_AVRO_RECORD:
        if (!is_avro_record(s) || avro_schema_record_size(s) != n->nfields ||
            strcmp(avro_schema_name(s), n->short_name) != 0)
            return 0;
        if (json_object_get(seen, n->full_name) != NULL)
            return 1;
        if (json_object_set_new(seen, n->full_name, json_true()) != 0)
            return 0;
        for (i = 0; i < n->nfields; i++) {
            if (strcmp(avro_schema_record_field_name(s, (int)i), n->fields[i].name) != 0 ||
                !same_shape(n->fields[i].type, avro_schema_record_field_get_by_index(s, (int)i),
                            seen, depth + 1))
                return 0;
        }
        return 1;
    }
    return 0;
}

struct cv_schema *cv_avro_schema_build(const json_t *json, const json_t *shared, const char *origin,
                                       char *errstr, size_t errstr_size)
{
    struct expand_ctx ctx = {.shared = shared, .errstr = errstr, .errstr_size = errstr_size};
    struct cv_schema *s = calloc(1, sizeof(*s));
    json_t *expanded = NULL, *seen = NULL;
    int rc;

    if (s == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    snprintf(s->origin, sizeof(s->origin), "%s", origin);
    ctx.defined = json_object();
    if (ctx.defined == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    snprintf(errstr, errstr_size, "out of memory");
    expanded = expand(&ctx, json, NULL, 0);
    if (expanded == NULL)
        goto cleanup;
    if (cv_avro_tree_parse(expanded, 0, &s->tree, errstr, errstr_size) != 0)
        goto cleanup;
    s->canonical = cv_avro_tree_canonical(s->tree.root);
    s->json = json_dumps(expanded, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s->canonical == NULL || s->json == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    s->fingerprint = cv_avro_crc64(s->canonical, strlen(s->canonical));
    if (s->tree.root->full_name != NULL) {
        s->full_name = s->tree.root->full_name;
        s->type = s->tree.root->short_name;
    } else {
        s->full_name = s->type = cv_avro_kind_name(s->tree.root->kind);
    }
    /* avro-c gets the canonical form: it ignores the rest, and its JSON parser refuses what
     * ours accepts (\u0000 in a bytes default). */
    rc = avro_schema_from_json_length(s->canonical, strlen(s->canonical), &s->avro);
    if (rc != 0) {
        snprintf(errstr, errstr_size, "avro-c refuses %s: %s", s->full_name, avro_strerror());
        s->avro = NULL;
        goto cleanup;
    }
    seen = json_object();
    if (seen == NULL || !same_shape(s->tree.root, s->avro, seen, 0)) {
        snprintf(errstr, errstr_size, "avro-c reads %s differently", s->full_name);
        goto cleanup;
    }
    s->iface = avro_generic_class_from_schema(s->avro);
    if (s->iface == NULL) {
        snprintf(errstr, errstr_size, "avro-c value class for %s: %s", s->full_name,
                 avro_strerror());
        goto cleanup;
    }
    json_decref(seen);
    json_decref(expanded);
    json_decref(ctx.defined);
    return s;
cleanup:
    json_decref(seen);
    json_decref(expanded);
    json_decref(ctx.defined);
    cv_avro_schema_destroy(s);
    return NULL;
}

struct cv_schema *cv_avro_schema_new(const char *json, char *errstr, size_t errstr_size)
{
    struct cv_schema *s;
    json_t *j = cv_avro_json_load(json, errstr, errstr_size);

    if (j == NULL)
        return NULL;
    s = cv_avro_schema_build(j, cv_avro_catalog_shared(), "added", errstr, errstr_size);
    json_decref(j);
    return s;
}

void cv_avro_schema_destroy(struct cv_schema *s)
{
    if (s == NULL)
        return;
    if (s->iface != NULL)
        avro_value_iface_decref(s->iface);
    if (s->avro != NULL)
        avro_schema_decref(s->avro);
    cv_avro_tree_free(&s->tree);
    free(s->json);
    free(s->canonical);
    free(s);
}

const char *cv_avro_schema_type(const struct cv_schema *s)
{
    return s != NULL ? s->type : NULL;
}

const char *cv_avro_schema_full_name(const struct cv_schema *s)
{
    return s != NULL ? s->full_name : NULL;
}

const char *cv_avro_schema_canonical(const struct cv_schema *s)
{
    return s != NULL ? s->canonical : NULL;
}

uint64_t cv_avro_schema_fingerprint(const struct cv_schema *s)
{
    return s != NULL ? s->fingerprint : 0;
}

const char *cv_avro_schema_origin(const struct cv_schema *s)
{
    return s != NULL ? s->origin : NULL;
}

const char *cv_avro_schema_json(const struct cv_schema *s)
{
    return s != NULL ? s->json : NULL;
}

void cv_avro_schema_set_id(const struct cv_schema *s, uint32_t confluent_id)
{
    /* The id is the one mutable part of a shared, otherwise immutable schema. */
    if (s != NULL)
        atomic_store(&((struct cv_schema *)s)->registry_id, (UINT64_C(1) << 32) | confluent_id);
}

int cv_avro_schema_get_id(const struct cv_schema *s, uint32_t *id)
{
    uint64_t v = s != NULL ? atomic_load(&((struct cv_schema *)s)->registry_id) : 0;

    if (v == 0)
        return -1;
    if (id != NULL)
        *id = (uint32_t)v;
    return 0;
}
