/* UUIDs and clocks. */
#include "cv/util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void cv_uuid_v4(char out[37])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int cv_uuid_valid(const char *text)
{
    if (!text || strlen(text) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)text[i])) {
            return 0;
        }
    }
    return 1;
}

int cv_sku_valid(const char *sku)
{
    size_t len = sku ? strlen(sku) : 0;
    if (len < 1 || len > 64)
        return 0;
    for (const char *p = sku; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return 0;
    return 1;
}

size_t cv_utf8_sequence_length(const unsigned char *s, size_t avail)
{
    if (avail == 0)
        return 0;
    unsigned char c = s[0];
    size_t n = c < 0x80                 ? 1
               : c >= 0xc2 && c <= 0xdf ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (n == 0 || n > avail)
        return 0;
    for (size_t k = 1; k < n; k++)
        if ((s[k] & 0xc0) != 0x80)
            return 0;
    /* The second byte's range rules out overlong forms, surrogates and past U+10FFFF. */
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

int64_t cv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cv_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cv_format_time(int64_t ms, char out[25])
{
    time_t secs = (time_t)(ms / 1000);
    int millis = (int)(ms % 1000);
    if (millis < 0) {
        millis += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[20];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 25, "%.19s.%03dZ", date, millis);
}

/* 1 if p[0..n) are all decimal digits (stops at a NUL, which is not a digit). */
static int digits(const char *p, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i]))
            return 0;
    return 1;
}

static int two(const char *p)
{
    return (p[0] - '0') * 10 + (p[1] - '0');
}

int cv_parse_time(const char *text, int64_t *ms)
{
    /* Exactly YYYY-MM-DDTHH:MM:SS, checked character by character: every test stops at the
     * terminating NUL, so nothing past it is read. */
    const char *p = text;
    if (!digits(p, 4) || p[4] != '-' || !digits(p + 5, 2) || p[7] != '-' || !digits(p + 8, 2) ||
        (p[10] != 'T' && p[10] != 't') || !digits(p + 11, 2) || p[13] != ':' ||
        !digits(p + 14, 2) || p[16] != ':' || !digits(p + 17, 2))
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + two(p + 2) - 1900;
    tm.tm_mon = two(p + 5) - 1;
    tm.tm_mday = two(p + 8);
    tm.tm_hour = two(p + 11);
    tm.tm_min = two(p + 14);
    tm.tm_sec = two(p + 17);
    p += 19;
    int64_t frac = 0;
    if (*p == '.') {
        int n = 0;
        for (p++; isdigit((unsigned char)*p); p++, n++)
            if (n < 3)
                frac = frac * 10 + (*p - '0');
        if (n == 0)
            return -1;
        for (; n < 3; n++)
            frac *= 10;
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        if (!digits(p + 1, 2) || p[3] != ':' || !digits(p + 4, 2))
            return -1;
        int hh = two(p + 1), mm = two(p + 4);
        if (hh > 23 || mm > 59)
            return -1;
        offset = (hh * 60L + mm) * 60L * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    /* Out-of-range fields (February 31st, hour 24) do not survive the round trip. */
    struct tm check = tm;
    time_t secs = timegm(&check);
    if (check.tm_year != tm.tm_year || check.tm_mon != tm.tm_mon || check.tm_mday != tm.tm_mday ||
        check.tm_hour != tm.tm_hour || check.tm_min != tm.tm_min || check.tm_sec != tm.tm_sec)
        return -1;
    *ms = ((int64_t)secs - offset) * 1000 + frac;
    return 0;
}

void cv_sleep_ms(int ms, const volatile int *stop)
{
    for (int slept = 0; slept < ms; slept += 50) {
        if (stop && *stop)
            return;
        int slice = ms - slept < 50 ? ms - slept : 50;
        struct timespec ts = {0, slice * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int cv_backoff_next(struct cv_backoff *b)
{
    int now = b->next_ms;
    b->next_ms = now <= b->max_ms / 2 ? now * 2 : b->max_ms;
    return now;
}

void cv_backoff_reset(struct cv_backoff *b)
{
    b->next_ms = b->first_ms;
}
