/* Entity tags (RFC 9110 section 8.8.3) for conditional requests: matching the list of an
 * If-Match or If-None-Match header against a resource's current tag. */
#include <string.h>

#include "cv/http.h"

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int cv_http_etag_match(const char *header, const char *etag, int weak)
{
    if (header == NULL)
        return -1;
    const char *p = skip_ows(header);
    if (*p == '*')
        return *skip_ows(p + 1) == '\0' ? 1 : -1;
    size_t etag_len = strlen(etag);
    int tags = 0, matched = 0;
    for (;;) {
        /* The list syntax allows empty elements ("a, , b"); recipients skip them. */
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        int is_weak = p[0] == 'W' && p[1] == '/';
        if (is_weak)
            p += 2;
        if (*p != '"')
            return -1;
        const char *open = p++;
        for (; *p != '"'; p++) {
            unsigned char c = (unsigned char)*p;
            if (c < 0x21 || c == 0x7f) /* also the end of the string: unterminated */
                return -1;
        }
        p++;
        tags++;
        /* Strong comparison (If-Match): both tags strong and equal; weak (If-None-Match): the
         * opaque parts equal. */
        if ((weak || !is_weak) && (size_t)(p - open) == etag_len &&
            memcmp(open, etag, etag_len) == 0)
            matched = 1;
        p = skip_ows(p);
        if (*p != '\0' && *p != ',')
            return -1;
    }
    return tags > 0 ? matched : -1;
}
