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

/* Replaces, in the string v itself, each NUL by the six characters \u0000. 1 if it changed,
 * 0 if it holds no NUL (or memory ran out: it is left as it was). */
static size_t escape_string(json_t *v)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v), nul = 0;
    for (size_t i = 0; i < len; i++)
        nul += s[i] == '\0';
    if (nul == 0)
        return 0;
    char *out = malloc(len + nul * 5 + 1);
    if (!out)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0') {
            memcpy(out + o, "\\u0000", 6);
            o += 6;
        } else {
            out[o++] = s[i];
        }
    }
    int rc = json_string_setn(v, out, o);
    free(out);
    return rc == 0;
}

size_t cv_json_escape_nul(json_t *value)
{
    size_t changed = 0;
    json_t *v;
    if (json_is_object(value)) {
        const char *k;
        json_object_foreach(value, k, v)
        {
            changed += json_is_string(v) ? escape_string(v) : cv_json_escape_nul(v);
        }
    } else if (json_is_array(value)) {
        size_t i;
        json_array_foreach(value, i, v)
        {
            changed += json_is_string(v) ? escape_string(v) : cv_json_escape_nul(v);
        }
    }
    return changed;
}
