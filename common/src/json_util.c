/* Validation helpers over jansson values: resolve a path like "items[3].quantity", check the
 * type and bounds of what is there, and describe any problem with the path it concerns. */
#include "cv/json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cv_json_error_set(struct cv_json_err *err, const char *path, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    snprintf(err->field, sizeof(err->field), "%s", path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
    va_end(ap);
    return -1;
}

/* "a string", "an integer", ... for "got ..." messages. */
static const char *type_phrase(const json_t *v)
{
    if (v == NULL)
        return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

/* A malformed path is a programming error in the caller, not bad input: stop loudly. */
static void bad_path(const char *path)
{
    fprintf(stderr, "cv_json: invalid path \"%s\"\n", path);
    abort();
}

/* Like cv_json_error_set, naming only the first prefix_len characters of path. */
static int error_at_prefix(struct cv_json_err *err, const char *path, size_t prefix_len,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int error_at_prefix(struct cv_json_err *err, const char *path, size_t prefix_len,
                           const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    snprintf(err->field, sizeof(err->field), "%.*s", (int)prefix_len, path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
    va_end(ap);
    return -1;
}

/* Walks path from root. Returns 1 with *out set, 0 if some step is absent (or null), or -1 with
 * err naming the step whose parent has the wrong type. */
static int resolve(const json_t *root, const char *path, const json_t **out,
                   struct cv_json_err *err)
{
    const json_t *cur = root;
    const char *p = path;
    if (cur == NULL || json_is_null(cur))
        return 0;
    while (*p != '\0') {
        size_t done = (size_t)(p - path); /* the prefix resolved so far names cur */
        if (*p == '[') {
            char *end;
            unsigned long long idx = strtoull(p + 1, &end, 10);
            if (end == p + 1 || *end != ']' || p[1] == '-' || p[1] == '+')
                bad_path(path);
            if (!json_is_array(cur))
                return error_at_prefix(err, path, done, "expected an array, got %s",
                                       type_phrase(cur));
            if (idx >= json_array_size(cur))
                return 0;
            cur = json_array_get(cur, (size_t)idx);
            p = end + 1;
        } else {
            if (*p == '.') {
                if (p == path)
                    bad_path(path);
                p++;
            }
            size_t n = strcspn(p, ".[");
            if (n == 0)
                bad_path(path);
            if (!json_is_object(cur))
                return error_at_prefix(err, path, done, "expected an object, got %s",
                                       type_phrase(cur));
            char name[256];
            if (n >= sizeof(name))
                return 0; /* no member can have matched a name this long in our schemas */
            memcpy(name, p, n);
            name[n] = '\0';
            cur = json_object_get(cur, name);
            if (cur == NULL)
                return 0;
            p += n;
        }
        if (json_is_null(cur))
            return 0;
    }
    *out = cur;
    return 1;
}

/* Resolves path and handles absence; returns 1 with *v set when there is a value to check. */
static int lookup(const json_t *obj, const char *path, int required, const json_t **v,
                  struct cv_json_err *err)
{
    int rc = resolve(obj, path, v, err);
    if (rc == 0 && required)
        return cv_json_error_set(err, path, "required");
    return rc;
}

/* Number of code points in valid UTF-8 (jansson only produces valid UTF-8). */
static size_t utf8_length(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

/* "1..64", "at most 64", "at least 1" or "exactly 3" for range messages. */
static void size_range(char *dst, size_t size, size_t min, size_t max)
{
    if (min == max)
        snprintf(dst, size, "exactly %zu", min);
    else if (max == SIZE_MAX)
        snprintf(dst, size, "at least %zu", min);
    else if (min == 0)
        snprintf(dst, size, "at most %zu", max);
    else
        snprintf(dst, size, "%zu..%zu", min, max);
}

/* Looks up a string or an array whose size (characters, items) must be in min..max: 1 found
 * and in range, 0 absent and optional, -1 error set. */
static int lookup_sized(const json_t *obj, const char *path, int required, json_type type,
                        size_t min, size_t max, const json_t **out, struct cv_json_err *err)
{
    const char *noun = type == JSON_STRING ? "a string" : "an array";
    const char *unit = type == JSON_STRING ? "characters" : "items";
    const json_t *v = NULL;
    int rc = lookup(obj, path, required, &v, err);
    if (rc <= 0)
        return rc;
    char range[64];
    size_range(range, sizeof(range), min, max);
    if (json_typeof(v) != type)
        return cv_json_error_set(err, path, "expected %s of %s %s, got %s", noun, range, unit,
                                 type_phrase(v));
    size_t n = json_array_size(v);
    if (type == JSON_STRING) {
        const char *s = json_string_value(v);
        size_t bytes = json_string_length(v);
        if (strlen(s) != bytes)
            return cv_json_error_set(err, path, "must not contain NUL characters");
        n = utf8_length(s, bytes);
    }
    if (n < min || n > max)
        return cv_json_error_set(err, path, "expected %s of %s %s, got %zu", noun, range, unit, n);
    *out = v;
    return 1;
}

int cv_json_get_string(const json_t *obj, const char *path, size_t min_len, size_t max_len,
                       int required, const char **out, struct cv_json_err *err)
{
    const json_t *v = NULL;
    int rc = lookup_sized(obj, path, required, JSON_STRING, min_len, max_len, &v, err);
    if (rc == 1)
        *out = json_string_value(v);
    return rc;
}

int cv_json_get_int(const json_t *obj, const char *path, long min, long max, int required,
                    long *out, struct cv_json_err *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, path, required, &v, err);
    if (rc <= 0)
        return rc;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n >= min && n <= max) {
            *out = (long)n;
            return 1;
        }
        return cv_json_error_set(
            err, path, "expected an integer in %ld..%ld, got %" JSON_INTEGER_FORMAT, min, max, n);
    }
    if (json_is_real(v))
        return cv_json_error_set(err, path, "expected an integer in %ld..%ld, got %g", min, max,
                                 json_real_value(v));
    return cv_json_error_set(err, path, "expected an integer in %ld..%ld, got %s", min, max,
                             type_phrase(v));
}

int cv_json_get_bool(const json_t *obj, const char *path, int required, int *out,
                     struct cv_json_err *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, path, required, &v, err);
    if (rc <= 0)
        return rc;
    if (!json_is_boolean(v))
        return cv_json_error_set(err, path, "expected true or false, got %s", type_phrase(v));
    *out = json_is_true(v);
    return 1;
}

int cv_json_get_array(const json_t *obj, const char *path, size_t min_items, size_t max_items,
                      int required, const json_t **out, struct cv_json_err *err)
{
    return lookup_sized(obj, path, required, JSON_ARRAY, min_items, max_items, out, err);
}

int cv_json_get_object(const json_t *obj, const char *path, int required, const json_t **out,
                       struct cv_json_err *err)
{
    const json_t *v = NULL;
    int rc = lookup(obj, path, required, &v, err);
    if (rc <= 0)
        return rc;
    if (!json_is_object(v))
        return cv_json_error_set(err, path, "expected an object, got %s", type_phrase(v));
    *out = v;
    return 1;
}

int cv_json_only_fields(const json_t *obj, const char *path, const char *const *known,
                        struct cv_json_err *err)
{
    const json_t *v = NULL;
    if (cv_json_get_object(obj, path, 1, &v, err) != 1)
        return -1;
    const char *key;
    json_t *member;
    json_object_foreach((json_t *)v, key, member)
    {
        size_t i = 0;
        while (known[i] != NULL && strcmp(known[i], key) != 0)
            i++;
        if (known[i] == NULL) {
            char field[sizeof(err->field)];
            snprintf(field, sizeof(field), "%s%s%s", path, path[0] ? "." : "", key);
            return cv_json_error_set(err, field, "unknown field");
        }
    }
    return 0;
}

char *cv_json_dumps_compact(const json_t *value)
{
    return json_dumps(value, JSON_COMPACT);
}
