/* libFuzzer harness: text from HTTP headers and query strings. cv_trace_parse (a traceparent
 * header, also carried in Kafka record headers) and cv_parse_time (the audit service's since
 * and until), each checked to round-trip through its formatter. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/trace.h"
#include "cv/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Milliseconds that cv_format_time writes with four year digits: 1000-01-01 .. 9999-12-31
 * (strftime does not pad smaller years). */
#define MIN_MS (-30610224000000LL)
#define MAX_MS 253402300799999LL

static void die(const char *what, const char *text)
{
    fprintf(stderr, "fuzz_traceparent: %s: \"%s\"\n", what, text);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exactly size bytes in their own allocation, so that ASan sees any read past the end. */
    char *text = malloc(size + 1);
    struct cv_trace trace;
    int64_t ms, again;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    if (cv_trace_parse(text, &trace) == 0) {
        char formatted[CV_TRACEPARENT_LEN + 1];
        struct cv_trace child;
        cv_trace_format(&trace, formatted);
        if (strcmp(formatted, text) != 0)
            die("a traceparent does not format back to itself", text);
        cv_trace_child(&trace, &child);
        if (strcmp(child.trace_id, trace.trace_id) != 0 || child.flags != trace.flags)
            die("a child changed the trace", text);
    }

    if (cv_parse_time(text, &ms) == 0 && ms >= MIN_MS && ms <= MAX_MS) {
        char formatted[25];
        cv_format_time(ms, formatted);
        if (cv_parse_time(formatted, &again) != 0 || again != ms)
            die("a time does not format and parse back to itself", text);
    }
    free(text);
    return 0;
}
