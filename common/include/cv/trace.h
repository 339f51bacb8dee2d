/* W3C Trace Context (traceparent) for requests and events: taken from an HTTP request or a
 * consumed record, carried into every event emitted while handling it, and into the logs. */
#ifndef CV_TRACE_H
#define CV_TRACE_H

#include <stdint.h>

struct cv_trace {
    char trace_id[33]; /* 32 lower-case hex digits */
    char span_id[17];  /* 16 lower-case hex digits */
    uint8_t flags;     /* 01: sampled */
};

#define CV_TRACEPARENT_LEN 55 /* "00-" 32 "-" 16 "-" 2 */

/* Parses a traceparent header ("00-<trace id>-<span id>-<flags>"). 0, or -1 when it is not a
 * valid version-00 value (wrong length or separators, upper-case or non-hex digits, an
 * all-zero trace or span id). */
int cv_trace_parse(const char *traceparent, struct cv_trace *out);
/* A new trace with random ids, sampled. */
void cv_trace_new(struct cv_trace *out);
/* The same trace with a new span id: the context of work caused by parent. */
void cv_trace_child(const struct cv_trace *parent, struct cv_trace *out);
/* Formats t as a traceparent header value; out has room for CV_TRACEPARENT_LEN + 1 bytes. */
void cv_trace_format(const struct cv_trace *t, char *out);

/* The trace this thread is working for (NULL clears it); also put on this thread's log lines. */
void cv_trace_set_current(const struct cv_trace *t);
/* This thread's trace, or NULL. */
const struct cv_trace *cv_trace_current(void);

#endif
