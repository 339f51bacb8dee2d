/* JSON-lines logging to stdout: one object per line with time, level, service, message and the
 * order/event ids in play on this thread. The macros check the level before evaluating
 * arguments. */
#ifndef CV_LOG_H
#define CV_LOG_H

enum cv_log_level { CV_LOG_DEBUG = 0, CV_LOG_INFO, CV_LOG_WARN, CV_LOG_ERROR };

extern enum cv_log_level cv_log_min_level;

/* Sets the service name written on every line and the lowest level written. */
void cv_log_init(const char *service, enum cv_log_level min_level);

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1 for anything else. */
int cv_log_level_parse(const char *text, enum cv_log_level *out);

/* Ids attached to every line this thread logs until cleared with NULLs. The strings are copied. */
void cv_log_set_context(const char *order_id, const char *event_id);

/* The W3C trace id put on every line this thread logs until cleared with NULL (copied). */
void cv_log_set_trace(const char *trace_id);

void cv_log_write(enum cv_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define cv_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= cv_log_min_level)                                                           \
            cv_log_write((level), __VA_ARGS__);                                                    \
    } while (0)
#define cv_log_debug(...) cv_log(CV_LOG_DEBUG, __VA_ARGS__)
#define cv_log_info(...) cv_log(CV_LOG_INFO, __VA_ARGS__)
#define cv_log_warn(...) cv_log(CV_LOG_WARN, __VA_ARGS__)
#define cv_log_error(...) cv_log(CV_LOG_ERROR, __VA_ARGS__)

#endif
