/* Field paths for the Avro codec's error messages: "items[2].quantity: expected int". A path
 * too long for its buffer is cut short, never overflowed. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "avro_int.h"

static void path_append(struct cv_avro_path *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void path_append(struct cv_avro_path *path, const char *fmt, ...)
{
    size_t room = sizeof(path->text) - path->len;
    va_list ap;
    int n;

    if (path->len >= sizeof(path->text) - 1) {
        path->len = sizeof(path->text) - 1;
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(path->text + path->len, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        path->text[path->len] = '\0';
    else if ((size_t)n >= room)
        path->len = sizeof(path->text) - 1;
    else
        path->len += (size_t)n;
}

void cv_avro_path_field(struct cv_avro_path *path, const char *name)
{
    path_append(path, path->len > 0 ? ".%s" : "%s", name);
}

void cv_avro_path_index(struct cv_avro_path *path, size_t index)
{
    path_append(path, "[%zu]", index);
}

void cv_avro_path_suffix(struct cv_avro_path *path, const char *suffix)
{
    path_append(path, "%s", suffix);
}

void cv_avro_path_key(struct cv_avro_path *path, const char *key)
{
    path_append(path, "[\"%.64s\"]", key);
}

void cv_avro_path_error(const struct cv_avro_path *path, char *errstr, size_t errstr_size,
                        const char *fmt, ...)
{
    size_t off = 0;
    va_list ap;
    int n;

    if (errstr == NULL || errstr_size == 0)
        return;
    errstr[0] = '\0';
    if (path != NULL && path->len > 0) {
        n = snprintf(errstr, errstr_size, "%.*s: ", (int)path->len, path->text);
        if (n < 0 || (size_t)n >= errstr_size)
            return;
        off = (size_t)n;
    }
    va_start(ap, fmt);
    vsnprintf(errstr + off, errstr_size - off, fmt, ap);
    va_end(ap);
}
