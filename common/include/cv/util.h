/* Small helpers used across the library and services: ids, clocks and the SKU format. */
#ifndef CV_UTIL_H
#define CV_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A random (version 4) UUID in its 36-character text form; out has room for 37 bytes. */
void cv_uuid_v4(char out[37]);
/* 1 if text is a UUID in canonical text form (any version, lower or upper case). */
int cv_uuid_valid(const char *text);

/* 1 if sku is a SKU as the APIs accept it: 1 to 64 of A-Z a-z 0-9 . _ - (the order and
 * inventory services check the same format). */
int cv_sku_valid(const char *sku);

/* Length (1 to 4) of the well-formed UTF-8 sequence that starts at s, of at most avail bytes;
 * 0 if there is none there: a stray continuation byte, an overlong form, a surrogate, a code
 * point past U+10FFFF, or a sequence cut short. NUL counts as a sequence of 1. */
size_t cv_utf8_sequence_length(const unsigned char *s, size_t avail);

/* Milliseconds since the Unix epoch. */
int64_t cv_now_ms(void);
/* Monotonic milliseconds, for timeouts. */
int64_t cv_monotonic_ms(void);
/* Formats ms since the epoch as RFC 3339 UTC with milliseconds: "2026-11-26T14:20:22.123Z".
 * out has room for 25 bytes. */
void cv_format_time(int64_t ms, char out[25]);
/* Parses RFC 3339 ("2026-11-26T14:20:22Z", optional fraction, Z or +hh:mm). 0 or -1. */
int cv_parse_time(const char *text, int64_t *ms);
/* Sleeps ms milliseconds, in slices, returning early once *stop is set (stop may be NULL). */
void cv_sleep_ms(int ms, const volatile int *stop);

/* Exponential backoff between retries: first_ms, then doubling, capped at max_ms. The one
 * retry schedule of the library: struct cv_backoff b = CV_BACKOFF(100, 5000); */
struct cv_backoff {
    int first_ms;
    int max_ms;
    int next_ms;
};
#define CV_BACKOFF(first_ms, max_ms)                                                               \
    {                                                                                              \
        (first_ms), (max_ms), (first_ms)                                                           \
    }
/* The delay to wait now (ms); the one after is twice as long, up to max_ms. */
int cv_backoff_next(struct cv_backoff *b);
/* Back to first_ms (after a success). */
void cv_backoff_reset(struct cv_backoff *b);

#endif
