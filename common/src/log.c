/* JSON-lines logger. Each line is formatted into one buffer and written with a single write(2)
 * so that lines from different threads never interleave. */
#include "cv/log.h"
#include "cv/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum cv_log_level cv_log_min_level = CV_LOG_INFO;

static char log_service[64] = "conveyor";
static _Thread_local char ctx_order_id[64];
static _Thread_local char ctx_event_id[64];
static _Thread_local char ctx_trace_id[40];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void cv_log_init(const char *service, enum cv_log_level min_level)
{
    snprintf(log_service, sizeof(log_service), "%s", service);
    cv_log_min_level = min_level;
}

int cv_log_level_parse(const char *text, enum cv_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (enum cv_log_level)i;
            return 0;
        }
    }
    return -1;
}

void cv_log_set_context(const char *order_id, const char *event_id)
{
    snprintf(ctx_order_id, sizeof(ctx_order_id), "%s", order_id ? order_id : "");
    snprintf(ctx_event_id, sizeof(ctx_event_id), "%s", event_id ? event_id : "");
}

void cv_log_set_trace(const char *trace_id)
{
    snprintf(ctx_trace_id, sizeof(ctx_trace_id), "%s", trace_id ? trace_id : "");
}

/* Appends src to buf as the inside of a JSON string, escaping what JSON requires. Bytes that
 * are not UTF-8 (a Kafka key, a header, a cut-off message) become U+FFFD, so that every line
 * stays valid JSON whatever was logged. */
static size_t append_escaped(char *buf, size_t pos, size_t cap, const char *src)
{
    const unsigned char *p = (const unsigned char *)src;
    size_t left = strlen(src);
    while (left > 0 && pos + 7 < cap) {
        size_t n = cv_utf8_sequence_length(p, left);
        if (n == 0) {
            memcpy(buf + pos, "\\ufffd", 6);
            pos += 6;
            n = 1;
        } else if (*p == '"' || *p == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            pos += (size_t)snprintf(buf + pos, cap - pos, "\\u%04x", *p);
        } else {
            memcpy(buf + pos, p, n);
            pos += n;
        }
        p += n;
        left -= n;
    }
    return pos;
}

static size_t append_raw(char *buf, size_t pos, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (pos + n >= cap)
        n = cap - pos - 1;
    memcpy(buf + pos, src, n);
    return pos + n;
}

void cv_log_write(enum cv_log_level level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(tv.tv_usec / 1000));

    char line[4096];
    size_t cap = sizeof(line) - 2; /* room for "}\n" */
    size_t pos = 0;
    pos = append_raw(line, pos, cap, "{\"time\":\"");
    pos = append_raw(line, pos, cap, ts);
    pos = append_raw(line, pos, cap, "\",\"level\":\"");
    pos = append_raw(line, pos, cap, level_names[level]);
    pos = append_raw(line, pos, cap, "\",\"service\":\"");
    pos = append_escaped(line, pos, cap, log_service);
    if (ctx_order_id[0]) {
        pos = append_raw(line, pos, cap, "\",\"order_id\":\"");
        pos = append_escaped(line, pos, cap, ctx_order_id);
    }
    if (ctx_event_id[0]) {
        pos = append_raw(line, pos, cap, "\",\"event_id\":\"");
        pos = append_escaped(line, pos, cap, ctx_event_id);
    }
    if (ctx_trace_id[0]) {
        pos = append_raw(line, pos, cap, "\",\"trace_id\":\"");
        pos = append_escaped(line, pos, cap, ctx_trace_id);
    }
    pos = append_raw(line, pos, cap, "\",\"msg\":\"");
    pos = append_escaped(line, pos, cap, msg);
    pos = append_raw(line, pos, cap, "\"");
    line[pos++] = '}';
    line[pos++] = '\n';
    ssize_t ignored = write(STDOUT_FILENO, line, pos);
    (void)ignored;
}
