/* Event JSON -> avro-c value, the encoding half of the codec: checks every field against our
 * schema tree, fills the defaults the schema declares (avro-c applies none), and names the path
 * of the first problem. Also base64, our JSON shape for bytes and fixed. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "avro_int.h"
#include "cv/util.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *cv_avro_base64_encode(const unsigned char *data, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1);
    size_t i, o = 0;

    if (out == NULL)
        return NULL;
    for (i = 0; i + 2 < len; i += 3) {
        unsigned long v =
            ((unsigned long)data[i] << 16) | ((unsigned long)data[i + 1] << 8) | data[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (i < len) {
        unsigned long v = (unsigned long)data[i] << 16;
        if (i + 1 < len)
            v |= (unsigned long)data[i + 1] << 8;
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p = c != '\0' ? strchr(b64_alphabet, c) : NULL;
    return p != NULL ? (int)(p - b64_alphabet) : -1;
}

unsigned char *cv_avro_base64_decode(const char *text, size_t text_len, size_t *out_len)
{
    unsigned char *out;
    size_t i, o = 0;

    if (text_len % 4 != 0)
        return NULL;
    out = malloc(text_len / 4 * 3 + 1);
    if (out == NULL)
        return NULL;
    for (i = 0; i < text_len; i += 4) {
        int last = i + 4 == text_len;
        int pad2 = last && text[i + 2] == '=' && text[i + 3] == '=';
        int pad1 = last && !pad2 && text[i + 3] == '=';
        int a = b64_value(text[i]), b = b64_value(text[i + 1]);
        int c = pad2 ? 0 : b64_value(text[i + 2]);
        int d = pad2 || pad1 ? 0 : b64_value(text[i + 3]);
        unsigned long v;

        if (a < 0 || b < 0 || c < 0 || d < 0) {
            free(out);
            return NULL;
        }
        v = ((unsigned long)a << 18) | ((unsigned long)b << 12) | ((unsigned long)c << 6) |
            (unsigned long)d;
        out[o++] = (unsigned char)(v >> 16);
        if (!pad2)
            out[o++] = (unsigned char)(v >> 8);
        if (!pad2 && !pad1)
            out[o++] = (unsigned char)v;
    }
    *out_len = o;
    return out;
}

/* What the JSON for n looks like, for "expected ..." messages. */
static const char *expected_name(const struct cv_avro_node *n)
{
    switch (n->kind) {
    case CV_AVRO_RECORD:
    case CV_AVRO_MAP:
        return "object";
    case CV_AVRO_BYTES:
    case CV_AVRO_FIXED:
        return "base64 string";
    case CV_AVRO_ENUM:
        return "enum symbol";
    case CV_AVRO_STRING:
        return n->is_uuid ? "uuid string" : "string";
    default:
        return cv_avro_kind_name(n->kind);
    }
}

/* Whether j has the JSON type a value of n has, looking no deeper. */
static int json_kind_fits(const struct cv_avro_node *n, const json_t *j)
{
    switch (n->kind) {
    case CV_AVRO_NULL:
        return json_is_null(j);
    case CV_AVRO_BOOLEAN:
        return json_is_boolean(j);
    case CV_AVRO_INT:
    case CV_AVRO_LONG:
        return json_is_integer(j);
    case CV_AVRO_FLOAT:
    case CV_AVRO_DOUBLE:
        return json_is_number(j);
    case CV_AVRO_STRING:
    case CV_AVRO_BYTES:
    case CV_AVRO_FIXED:
    case CV_AVRO_ENUM:
        return json_is_string(j);
    case CV_AVRO_RECORD:
    case CV_AVRO_MAP:
        return json_is_object(j);
    case CV_AVRO_ARRAY:
        return json_is_array(j);
    case CV_AVRO_UNION:
        return 1;
    }
    return 0;
}

static int avro_failed(const struct cv_avro_path *path, char *errstr, size_t errstr_size, int rc)
{
    cv_avro_path_error(path, errstr, errstr_size, "avro: %s (%d)", avro_strerror(), rc);
    return -1;
}

static int union_to_value(const struct cv_avro_node *n, const json_t *j, avro_value_t *value,
                          struct cv_avro_path *path, char *errstr, size_t errstr_size)
{
    size_t i, fits = 0, chosen = 0;
    avro_value_t branch;
    char expected[256] = "";
    int rc;

    /* Choose the branch: the only one whose JSON type fits (so errors deeper down keep their
     * path), else the first that takes the whole value. */
    for (i = 0; i < n->nbranches; i++) {
        if (json_kind_fits(n->branches[i], j)) {
            if (fits++ == 0)
                chosen = i;
        }
    }
    if (fits > 1) {
        struct cv_avro_path trial = *path; /* a failed trial leaves its path behind */
        for (i = 0; i < n->nbranches; i++)
            if (json_kind_fits(n->branches[i], j) &&
                cv_avro_json_to_value(n->branches[i], j, NULL, &trial, NULL, 0) == 0)
                break;
            else
                trial = *path;
        fits = i < n->nbranches ? 1 : 0;
        chosen = i;
    }
    if (fits == 0) {
        for (i = 0; i < n->nbranches; i++) {
            size_t len = strlen(expected);
            snprintf(expected + len, sizeof(expected) - len, "%s%s", i ? " or " : "",
                     n->branches[i]->full_name != NULL ? n->branches[i]->full_name
                                                       : expected_name(n->branches[i]));
        }
        cv_avro_path_error(path, errstr, errstr_size, "expected %s", expected);
        return -1;
    }
    if (value == NULL)
        return cv_avro_json_to_value(n->branches[chosen], j, NULL, path, errstr, errstr_size);
    rc = avro_value_set_branch(value, (int)chosen, &branch);
    if (rc != 0)
        return avro_failed(path, errstr, errstr_size, rc);
    return cv_avro_json_to_value(n->branches[chosen], j, &branch, path, errstr, errstr_size);
}

static int record_to_value(const struct cv_avro_node *n, const json_t *j, avro_value_t *value,
                           struct cv_avro_path *path, char *errstr, size_t errstr_size)
{
    size_t saved = path->len, i, key_len;
    const char *key;
    json_t *v;

    for (i = 0; i < n->nfields; i++) {
        const struct cv_avro_field *f = &n->fields[i];
        const json_t *fj = json_object_get(j, f->name);
        avro_value_t child;
        int rc;

        cv_avro_path_field(path, f->name);
        if (fj == NULL)
            fj = f->dflt;
        if (fj == NULL) {
            cv_avro_path_error(path, errstr, errstr_size, "missing (expected %s)",
                               expected_name(f->type));
            return -1;
        }
        if (value != NULL) {
            rc = avro_value_get_by_index(value, i, &child, NULL);
            if (rc != 0)
                return avro_failed(path, errstr, errstr_size, rc);
        }
        if (cv_avro_json_to_value(f->type, fj, value != NULL ? &child : NULL, path, errstr,
                                  errstr_size) != 0)
            return -1;
        cv_avro_path_reset(path, saved);
    }
    /* Refuse keys the schema does not have: a misspelt optional field would vanish. */
    json_object_keylen_foreach((json_t *)j, key, key_len, v)
    {
        for (i = 0; i < n->nfields && key_len == strlen(key); i++)
            if (strcmp(n->fields[i].name, key) == 0)
                break;
        if (i == n->nfields) {
            cv_avro_path_field(path, key);
            cv_avro_path_error(path, errstr, errstr_size, "not a field of %s", n->full_name);
            return -1;
        }
    }
    return 0;
}

static int bytes_to_value(const struct cv_avro_node *n, const json_t *j, avro_value_t *value,
                          struct cv_avro_path *path, char *errstr, size_t errstr_size)
{
    size_t len;
    unsigned char *bytes = cv_avro_base64_decode(json_string_value(j), json_string_length(j), &len);
    int rc = 0;

    if (bytes == NULL) {
        cv_avro_path_error(path, errstr, errstr_size, "expected base64 string");
        return -1;
    }
    if (n->kind == CV_AVRO_FIXED && len != n->fixed_size) {
        free(bytes);
        cv_avro_path_error(path, errstr, errstr_size, "expected %zu bytes, got %zu", n->fixed_size,
                           len);
        return -1;
    }
    if (value != NULL) {
        if (n->kind == CV_AVRO_FIXED)
            rc = avro_value_set_fixed(value, bytes, len);
        else
            rc = avro_value_set_bytes(value, bytes, len);
    }
    free(bytes);
    return rc != 0 ? avro_failed(path, errstr, errstr_size, rc) : 0;
}

/* Why a scalar of the right JSON type is still no value of n, or NULL. */
static const char *scalar_refusal(const struct cv_avro_node *n, const json_t *j)
{
    if (n->kind == CV_AVRO_INT &&
        (json_integer_value(j) < INT32_MIN || json_integer_value(j) > INT32_MAX))
        return "expected int (out of 32-bit range)";
    if (n->kind == CV_AVRO_FLOAT && fabs(json_number_value(j)) > FLT_MAX)
        return "expected float (out of range)";
    if (n->kind == CV_AVRO_STRING && n->is_uuid &&
        !(json_string_length(j) == 36 && cv_uuid_valid(json_string_value(j))))
        return "expected uuid string";
    return NULL;
}

/* avro-c's setter for a scalar j that fits n. */
static int set_scalar(const struct cv_avro_node *n, const json_t *j, avro_value_t *value)
{
    switch (n->kind) {
    case CV_AVRO_NULL:
        return avro_value_set_null(value);
    case CV_AVRO_BOOLEAN:
        return avro_value_set_boolean(value, json_is_true(j));
    case CV_AVRO_INT:
        return avro_value_set_int(value, (int32_t)json_integer_value(j));
    case CV_AVRO_LONG:
        return avro_value_set_long(value, (int64_t)json_integer_value(j));
    case CV_AVRO_FLOAT:
        return avro_value_set_float(value, (float)json_number_value(j));
    case CV_AVRO_DOUBLE:
        return avro_value_set_double(value, json_number_value(j));
    case CV_AVRO_STRING: /* avro-c counts the terminating NUL in the size */
        return avro_value_set_string_len(value, json_string_value(j), json_string_length(j) + 1);
    default:
        return EINVAL;
    }
}

/* A null, boolean, number or string; value NULL only checks. */
static int scalar_to_value(const struct cv_avro_node *n, const json_t *j, avro_value_t *value,
                           struct cv_avro_path *path, char *errstr, size_t errstr_size)
{
    const char *refusal = scalar_refusal(n, j);
    if (refusal) {
        cv_avro_path_error(path, errstr, errstr_size, "%s", refusal);
        return -1;
    }
    int rc = value != NULL ? set_scalar(n, j, value) : 0;
    return rc != 0 ? avro_failed(path, errstr, errstr_size, rc) : 0;
}

static int to_value(const struct cv_avro_node *n, const json_t *j, avro_value_t *value,
                    struct cv_avro_path *path, char *errstr, size_t errstr_size);

int cv_avro_json_to_value(const struct cv_avro_node *n, const json_t *j, avro_value_t *value,
                          struct cv_avro_path *path, char *errstr, size_t errstr_size)
{
    int rc;

    /* What the decoder's walker would refuse is not written in the first place. */
    if (path->depth > CV_AVRO_MAX_DEPTH) {
        cv_avro_path_error(path, errstr, errstr_size, "value nested too deeply");
        return -1;
    }
    path->depth++;
    rc = to_value(n, j, value, path, errstr, errstr_size);
    path->depth--;
    return rc;
}

static int to_value(const struct cv_avro_node *n, const json_t *j, avro_value_t *value,
                    struct cv_avro_path *path, char *errstr, size_t errstr_size)
{
    size_t saved = path->len, i;
    avro_value_t child;
    int rc = 0;

    if (j == NULL || !json_kind_fits(n, j)) {
        cv_avro_path_error(path, errstr, errstr_size, "expected %s", expected_name(n));
        return -1;
    }
    switch (n->kind) {
    case CV_AVRO_NULL:
    case CV_AVRO_BOOLEAN:
    case CV_AVRO_INT:
    case CV_AVRO_LONG:
    case CV_AVRO_FLOAT:
    case CV_AVRO_DOUBLE:
    case CV_AVRO_STRING:
        return scalar_to_value(n, j, value, path, errstr, errstr_size);
    case CV_AVRO_BYTES:
    case CV_AVRO_FIXED:
        return bytes_to_value(n, j, value, path, errstr, errstr_size);
    case CV_AVRO_ENUM:
        for (i = 0; i < n->nsymbols; i++)
            if (strcmp(n->symbols[i], json_string_value(j)) == 0)
                break;
        if (i == n->nsymbols) {
            cv_avro_path_error(path, errstr, errstr_size, "\"%.64s\" is not a symbol of %s",
                               json_string_value(j), n->full_name);
            return -1;
        }
        if (value != NULL)
            rc = avro_value_set_enum(value, (int)i);
        break;
    case CV_AVRO_ARRAY:
        for (i = 0; i < json_array_size(j); i++) {
            cv_avro_path_index(path, i);
            if (value != NULL) {
                rc = avro_value_append(value, &child, NULL);
                if (rc != 0)
                    return avro_failed(path, errstr, errstr_size, rc);
            }
            if (cv_avro_json_to_value(n->items, json_array_get(j, i), value != NULL ? &child : NULL,
                                      path, errstr, errstr_size) != 0)
                return -1;
            cv_avro_path_reset(path, saved);
        }
        break;
    case CV_AVRO_MAP: {
        const char *key;
        size_t key_len;
        json_t *v;
        json_object_keylen_foreach((json_t *)j, key, key_len, v)
        {
            cv_avro_path_key(path, key);
            if (key_len != strlen(key)) { /* avro-c keys are C strings */
                cv_avro_path_error(path, errstr, errstr_size, "map key holds a NUL character");
                return -1;
            }
            if (value != NULL) {
                rc = avro_value_add(value, key, &child, NULL, NULL);
                if (rc != 0)
                    return avro_failed(path, errstr, errstr_size, rc);
            }
            if (cv_avro_json_to_value(n->items, v, value != NULL ? &child : NULL, path, errstr,
                                      errstr_size) != 0)
                return -1;
            cv_avro_path_reset(path, saved);
        }
        break;
    }
    case CV_AVRO_RECORD:
        return record_to_value(n, j, value, path, errstr, errstr_size);
    case CV_AVRO_UNION:
        return union_to_value(n, j, value, path, errstr, errstr_size);
    }
    return rc != 0 ? avro_failed(path, errstr, errstr_size, rc) : 0;
}
