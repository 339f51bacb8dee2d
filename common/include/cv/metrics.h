/* Process-wide metrics registry (counters, gauges, histograms) rendered in the Prometheus text
 * exposition format 0.0.4. Registration takes a mutex; updates are lock-free C11 atomics, so the
 * handles may be used from any thread. */
#ifndef CV_METRICS_H
#define CV_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct cv_counter;
struct cv_gauge;
struct cv_histogram;

/* The registry owns every metric it hands out; handles stay valid until cv_metrics_reset().
 *
 * name: a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*). help: one line of text (escaped on
 * output). labels: NULL or a preformatted label list such as
 * `topic="orders",result="ok"`, best built with cv_metrics_label_append(). The same name and
 * labels return the same metric; HELP and TYPE are printed once per name, with the help of the
 * first registration. Registering a name with a different type, or an invalid name, is a
 * programming error: the process aborts with a message on stderr. */
struct cv_counter *cv_metrics_counter(const char *name, const char *help, const char *labels);
void cv_counter_add(struct cv_counter *c, uint64_t n);
uint64_t cv_counter_value(const struct cv_counter *c);

struct cv_gauge *cv_metrics_gauge(const char *name, const char *help, const char *labels);
void cv_gauge_set(struct cv_gauge *g, double v);
void cv_gauge_add(struct cv_gauge *g, double delta); /* negative to decrease */
double cv_gauge_value(const struct cv_gauge *g);

/* buckets: strictly increasing finite upper bounds (copied; +Inf is implicit), or NULL for the
 * default latency buckets in seconds, 0.001 .. 10. A second registration of the same name and
 * labels returns the first histogram and ignores the buckets given. */
struct cv_histogram *cv_metrics_histogram(const char *name, const char *help, const char *labels,
                                          const double *buckets, size_t nbuckets);
void cv_histogram_observe(struct cv_histogram *h, double v);

/* Appends `name="value"` to the label list in buf (a NUL-terminated string, "" to start),
 * preceded by a comma if buf is not empty, escaping backslash, double quote and newline in value
 * as the exposition format requires. Returns 0, or -1 if it does not fit (buf then unchanged). */
int cv_metrics_label_append(char *buf, size_t size, const char *name, const char *value);

/* Renders every metric, families in registration order. Returns a NUL-terminated string the
 * caller frees with free(), or NULL if out of memory. */
char *cv_metrics_render(void);

/* Frees every metric and empties the registry, for tests: no handle may be used afterwards. */
void cv_metrics_reset(void);

#endif
