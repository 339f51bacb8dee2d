/* W3C Trace Context: traceparent parsing and formatting, and the current thread's trace. */
#include "cv/trace.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "cv/log.h"

static _Thread_local struct cv_trace current;
static _Thread_local int has_current;

static int lower_hex(const char *p, size_t n)
{
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
        nonzero |= c != '0';
    }
    return nonzero;
}

int cv_trace_parse(const char *traceparent, struct cv_trace *out)
{
    const char *p = traceparent;
    if (!p || strlen(p) != CV_TRACEPARENT_LEN || strncmp(p, "00-", 3) != 0 || p[35] != '-' ||
        p[52] != '-')
        return -1;
    if (lower_hex(p + 3, 32) != 1 || lower_hex(p + 36, 16) != 1 || lower_hex(p + 53, 2) < 0)
        return -1;
    memcpy(out->trace_id, p + 3, 32);
    out->trace_id[32] = '\0';
    memcpy(out->span_id, p + 36, 16);
    out->span_id[16] = '\0';
    unsigned flags = 0;
    sscanf(p + 53, "%2x", &flags);
    out->flags = (uint8_t)flags;
    return 0;
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char buf[16];
    do {
        size_t got = 0;
        while (got < bytes) {
            ssize_t n = getrandom(buf + got, bytes - got, 0);
            if (n > 0)
                got += (size_t)n;
        }
        for (size_t i = 0; i < bytes; i++)
            snprintf(out + 2 * i, 3, "%02x", buf[i]);
    } while (lower_hex(out, bytes * 2) != 1); /* all zeros is invalid */
}

void cv_trace_new(struct cv_trace *out)
{
    random_hex(out->trace_id, 16);
    random_hex(out->span_id, 8);
    out->flags = 1;
}

void cv_trace_child(const struct cv_trace *parent, struct cv_trace *out)
{
    memcpy(out->trace_id, parent->trace_id, sizeof(out->trace_id));
    random_hex(out->span_id, 8);
    out->flags = parent->flags;
}

void cv_trace_format(const struct cv_trace *t, char *out)
{
    snprintf(out, CV_TRACEPARENT_LEN + 1, "00-%s-%s-%02x", t->trace_id, t->span_id, t->flags);
}

void cv_trace_set_current(const struct cv_trace *t)
{
    has_current = t != NULL;
    if (t)
        current = *t;
    cv_log_set_trace(t ? t->trace_id : NULL);
}

const struct cv_trace *cv_trace_current(void)
{
    return has_current ? &current : NULL;
}
