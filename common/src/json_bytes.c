/* Untrusted bytes (Kafka keys, header values, decoded strings) on their way into jsonb: jsonb
 * refuses invalid UTF-8 and the NUL character, so anything else is hex-encoded or escaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/json.h"
#include "cv/util.h"

int cv_json_is_text(const void *bytes, size_t len)
{
    const unsigned char *p = bytes;
    for (size_t i = 0, n; i < len; i += n) {
        n = cv_utf8_sequence_length(p + i, len - i);
        if (n == 0 || p[i] == 0)
            return 0;
    }
    return 1;
}

char *cv_hex_encode(const void *bytes, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = bytes;
    char *hex = malloc(len * 2 + 1);
    if (!hex)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        hex[2 * i] = digits[p[i] >> 4];
        hex[2 * i + 1] = digits[p[i] & 0xf];
    }
    hex[2 * len] = '\0';
    return hex;
}

json_t *cv_json_bytes(const void *bytes, size_t len)
{
    if (cv_json_is_text(bytes, len))
        return json_stringn(bytes, len);
    char *hex = cv_hex_encode(bytes, len);
    json_t *v = hex ? json_pack("{s:s}", "hex", hex) : NULL;
    free(hex);
    return v;
}

/* The string with each NUL replaced by the six characters \u0000. */
static json_t *escaped_string(const char *s, size_t len)
{
    size_t nul = 0;
    for (size_t i = 0; i < len; i++)
        nul += s[i] == '\0';
    char *out = malloc(len + nul * 5 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0') {
            memcpy(out + o, "\\u0000", 6);
            o += 6;
        } else {
            out[o++] = s[i];
        }
    }
    json_t *v = json_stringn(out, o);
    free(out);
    return v;
}

size_t cv_json_escape_nul(json_t *value)
{
    size_t changed = 0;
    if (json_is_object(value)) {
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(value, tmp, k, v)
        {
            if (json_is_string(v) && memchr(json_string_value(v), '\0', json_string_length(v))) {
                json_object_set_new(value, k,
                                    escaped_string(json_string_value(v), json_string_length(v)));
                changed++;
            } else {
                changed += cv_json_escape_nul(v);
            }
        }
    } else if (json_is_array(value)) {
        for (size_t i = 0; i < json_array_size(value); i++) {
            json_t *v = json_array_get(value, i);
            if (json_is_string(v) && memchr(json_string_value(v), '\0', json_string_length(v))) {
                json_array_set_new(value, i,
                                   escaped_string(json_string_value(v), json_string_length(v)));
                changed++;
            } else {
                changed += cv_json_escape_nul(v);
            }
        }
    }
    return changed;
}
