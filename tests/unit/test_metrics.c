/* Unit tests of the metrics registry: identity of series, the exact exposition text, a small
 * parser that checks every rendered line is valid format 0.0.4, and concurrent updates. */
#include "cv/metrics.h"
#include "cv/stages.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

static void setup(void)
{
    cv_metrics_reset();
}

static void teardown(void)
{
    cv_metrics_reset();
}

/* ---- a strict parser of the text format, enough to validate what we render ---- */

struct family_seen {
    char name[128];
    char type[16];
    int help, samples;
};

static int valid_metric_name(const char *s, size_t n)
{
    if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:", s[i]))
            return 0;
    return 1;
}

/* Parses `{a="x",b="y"}` at p; returns the position after it or NULL. Unescaped values of the
 * label named want (if any) are copied to out. */
static const char *parse_labels(const char *p, const char *want, char *out, size_t out_size)
{
    if (*p != '{')
        return p;
    p++;
    while (*p != '}') {
        const char *name = p;
        while (*p && *p != '=')
            p++;
        size_t name_len = (size_t)(p - name);
        if (*p != '=' || p[1] != '"' || !valid_metric_name(name, name_len))
            return NULL;
        p += 2;
        char value[256];
        size_t n = 0;
        while (*p != '"') {
            if (*p == '\0' || *p == '\n')
                return NULL;
            if (*p == '\\') {
                p++;
                if (*p == 'n')
                    value[n++] = '\n';
                else if (*p == '\\' || *p == '"')
                    value[n++] = *p;
                else
                    return NULL;
            } else {
                value[n++] = *p;
            }
            p++;
            if (n >= sizeof(value))
                return NULL;
        }
        value[n] = '\0';
        if (want && strlen(want) == name_len && strncmp(name, want, name_len) == 0) {
            ck_assert_uint_lt(n, out_size);
            memcpy(out, value, n + 1);
        }
        p++;
        if (*p == ',')
            p++;
        else if (*p != '}')
            return NULL;
    }
    return p + 1;
}

/* Validates a whole exposition; fails the test on the first bad line. Returns the number of
 * samples. */
static int check_exposition(const char *text)
{
    struct family_seen fam[64];
    int nfam = 0, samples = 0;
    char *copy = strdup(text);
    ck_assert_ptr_nonnull(copy);
    ck_assert_msg(text[0] == '\0' || text[strlen(text) - 1] == '\n', "must end with a newline");
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            int is_help = line[2] == 'H';
            char *name = line + 7;
            size_t n = strcspn(name, " ");
            ck_assert_msg(valid_metric_name(name, n), "bad name in: %s", line);
            int f;
            for (f = 0; f < nfam; f++)
                if (strlen(fam[f].name) == n && strncmp(fam[f].name, name, n) == 0)
                    break;
            if (f == nfam) {
                ck_assert_int_lt(nfam, 64);
                memset(&fam[nfam], 0, sizeof(fam[nfam]));
                memcpy(fam[nfam].name, name, n);
                nfam++;
            }
            ck_assert_msg(fam[f].samples == 0, "HELP/TYPE after samples: %s", line);
            if (is_help) {
                ck_assert_msg(!fam[f].help, "HELP twice: %s", line);
                fam[f].help = 1;
                /* Only \\ and \n escapes are allowed in help text. */
                for (const char *p = name + n + 1; *p; p++)
                    if (*p == '\\') {
                        ck_assert_msg(p[1] == '\\' || p[1] == 'n', "bad escape: %s", line);
                        p++;
                    }
            } else {
                ck_assert_msg(fam[f].type[0] == '\0', "TYPE twice: %s", line);
                const char *type = name + n + 1;
                ck_assert_msg(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
                                  !strcmp(type, "histogram"),
                              "bad type: %s", line);
                snprintf(fam[f].type, sizeof(fam[f].type), "%s", type);
            }
            continue;
        }
        ck_assert_msg(line[0] != '#', "unexpected comment: %s", line);
        size_t n = strcspn(line, "{ ");
        ck_assert_msg(valid_metric_name(line, n), "bad sample name: %s", line);
        int f;
        for (f = 0; f < nfam; f++) {
            size_t fl = strlen(fam[f].name);
            if (strncmp(line, fam[f].name, fl) != 0)
                continue;
            const char *suffix = line + fl;
            size_t sl = n - fl;
            if (sl == 0 && strcmp(fam[f].type, "histogram") != 0)
                break;
            if (!strcmp(fam[f].type, "histogram") && ((sl == 7 && !strncmp(suffix, "_bucket", 7)) ||
                                                      (sl == 4 && !strncmp(suffix, "_sum", 4)) ||
                                                      (sl == 6 && !strncmp(suffix, "_count", 6))))
                break;
        }
        ck_assert_msg(f < nfam, "sample without TYPE: %s", line);
        fam[f].samples++;
        char le[64] = "";
        const char *p = parse_labels(line + n, "le", le, sizeof(le));
        ck_assert_msg(p != NULL, "bad labels: %s", line);
        ck_assert_msg(*p == ' ', "no space before value: %s", line);
        char *end;
        double v = strtod(p + 1, &end);
        ck_assert_msg(end != p + 1 && *end == '\0', "bad value: %s", line);
        (void)v;
        if (strstr(line, "_bucket") == line + strlen(fam[f].name))
            ck_assert_msg(le[0] != '\0', "bucket without le: %s", line);
        samples++;
    }
    free(copy);
    return samples;
}

/* ---- tests ---- */

START_TEST(test_same_name_and_labels_same_metric)
{
    struct cv_counter *a = cv_metrics_counter("jobs_total", "Jobs.", "queue=\"a\"");
    struct cv_counter *b = cv_metrics_counter("jobs_total", "Jobs.", "queue=\"a\"");
    struct cv_counter *c = cv_metrics_counter("jobs_total", "Jobs.", "queue=\"b\"");
    struct cv_counter *d = cv_metrics_counter("jobs_total", "Jobs.", NULL);
    ck_assert_ptr_eq(a, b);
    ck_assert_ptr_ne(a, c);
    ck_assert_ptr_ne(a, d);
    cv_counter_add(a, 2);
    cv_counter_add(b, 3);
    ck_assert_uint_eq(cv_counter_value(a), 5);
    ck_assert_uint_eq(cv_counter_value(c), 0);
}
END_TEST

START_TEST(test_render_exact)
{
    cv_counter_add(cv_metrics_counter("orders_total", "Orders placed.", "result=\"ok\""), 3);
    cv_counter_add(cv_metrics_counter("orders_total", "ignored", "result=\"rejected\""), 1);
    cv_gauge_set(cv_metrics_gauge("lag", "Consumer lag.", NULL), 1.5);
    const double buckets[] = {0.1, 1};
    struct cv_histogram *h =
        cv_metrics_histogram("latency_seconds", "Latency.", "route=\"/x\"", buckets, 2);
    cv_histogram_observe(h, 0.05);
    cv_histogram_observe(h, 0.1); /* le is inclusive */
    cv_histogram_observe(h, 0.5);
    cv_histogram_observe(h, 7);
    char *text = cv_metrics_render();
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "# HELP orders_total Orders placed.\n"
                           "# TYPE orders_total counter\n"
                           "orders_total{result=\"ok\"} 3\n"
                           "orders_total{result=\"rejected\"} 1\n"
                           "# HELP lag Consumer lag.\n"
                           "# TYPE lag gauge\n"
                           "lag 1.5\n"
                           "# HELP latency_seconds Latency.\n"
                           "# TYPE latency_seconds histogram\n"
                           "latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n"
                           "latency_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"
                           "latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"
                           "latency_seconds_sum{route=\"/x\"} 7.65\n"
                           "latency_seconds_count{route=\"/x\"} 4\n");
    ck_assert_int_eq(check_exposition(text), 8);
    free(text);
}
END_TEST

START_TEST(test_default_buckets_cumulative)
{
    struct cv_histogram *h = cv_metrics_histogram("d_seconds", "D.", NULL, NULL, 0);
    for (int i = 0; i < 100; i++)
        cv_histogram_observe(h, i * 0.002);
    cv_histogram_observe(h, 60);
    char *text = cv_metrics_render();
    ck_assert_ptr_nonnull(text);
    check_exposition(text);
    ck_assert_ptr_nonnull(strstr(text, "d_seconds_bucket{le=\"0.001\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "d_seconds_bucket{le=\"10\"} 100\n"));
    ck_assert_ptr_nonnull(strstr(text, "d_seconds_bucket{le=\"+Inf\"} 101\n"));
    ck_assert_ptr_nonnull(strstr(text, "d_seconds_count 101\n"));
    /* Bucket counts never decrease. */
    unsigned long long prev = 0;
    int buckets = 0;
    const char *key = "d_seconds_bucket";
    for (const char *p = strstr(text, key); p != NULL; p = strstr(p + 1, key)) {
        unsigned long long v = strtoull(strchr(p, '}') + 2, NULL, 10);
        ck_assert_uint_ge(v, prev);
        prev = v;
        buckets++;
    }
    ck_assert_int_eq(buckets, 14); /* 13 defaults and +Inf */
    free(text);
}
END_TEST

START_TEST(test_label_escaping)
{
    char labels[128] = "";
    ck_assert_int_eq(cv_metrics_label_append(labels, sizeof(labels), "path", "a\"b\\c\nd"), 0);
    ck_assert_int_eq(cv_metrics_label_append(labels, sizeof(labels), "x", "y"), 0);
    ck_assert_str_eq(labels, "path=\"a\\\"b\\\\c\\nd\",x=\"y\"");
    cv_counter_add(cv_metrics_counter("esc_total", "Help with \\ and\nnewline.", labels), 1);

    char *text = cv_metrics_render();
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "# HELP esc_total Help with \\\\ and\\nnewline.\n"));
    check_exposition(text);
    /* The parser gets the original value back. */
    char value[64] = "";
    const char *line = strstr(text, "esc_total{");
    ck_assert_ptr_nonnull(parse_labels(line + strlen("esc_total"), "path", value, sizeof(value)));
    ck_assert_str_eq(value, "a\"b\\c\nd");
    free(text);

    /* Too small: -1 and the buffer unchanged. */
    char small[12] = "a=\"b\"";
    ck_assert_int_eq(cv_metrics_label_append(small, sizeof(small), "long", "value"), -1);
    ck_assert_str_eq(small, "a=\"b\"");
}
END_TEST

START_TEST(test_gauge_special_values)
{
    struct cv_gauge *g = cv_metrics_gauge("g", "G.", NULL);
    cv_gauge_set(g, INFINITY);
    char *text = cv_metrics_render();
    ck_assert_ptr_nonnull(strstr(text, "\ng +Inf\n"));
    check_exposition(text);
    free(text);
    cv_gauge_set(g, 0.1);
    cv_gauge_add(g, 0.2);
    text = cv_metrics_render();
    ck_assert_ptr_nonnull(strstr(text, "\ng 0.30000000000000004\n")); /* exact, round-trips */
    free(text);
}
END_TEST

#define THREADS 4
#define ROUNDS 100000

static void *hammer(void *arg)
{
    (void)arg;
    /* Registration races too: every thread looks the series up itself. */
    struct cv_counter *c = cv_metrics_counter("hits_total", "Hits.", "k=\"v\"");
    struct cv_gauge *g = cv_metrics_gauge("level", "Level.", NULL);
    struct cv_histogram *h = cv_metrics_histogram("h_seconds", "H.", NULL, NULL, 0);
    for (int i = 0; i < ROUNDS; i++) {
        cv_counter_add(c, 1);
        cv_gauge_add(g, 1);
        cv_histogram_observe(h, 0.5);
    }
    return NULL;
}

START_TEST(test_concurrent_updates)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_eq(cv_counter_value(cv_metrics_counter("hits_total", "", "k=\"v\"")),
                      THREADS * ROUNDS);
    ck_assert(cv_gauge_value(cv_metrics_gauge("level", "", NULL)) == THREADS * ROUNDS);
    char *text = cv_metrics_render();
    ck_assert_ptr_nonnull(strstr(text, "h_seconds_count 400000\n"));
    ck_assert_ptr_nonnull(strstr(text, "h_seconds_sum 200000\n"));
    ck_assert_ptr_nonnull(strstr(text, "h_seconds_bucket{le=\"0.25\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "h_seconds_bucket{le=\"0.5\"} 400000\n"));
    check_exposition(text);
    free(text);
}
END_TEST

START_TEST(test_many_series)
{
    /* Enough series to grow the hash table several times; each stays distinct. */
    for (int i = 0; i < 1000; i++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        cv_counter_add(cv_metrics_counter("many_total", "Many.", labels), (uint64_t)i);
    }
    for (int i = 0; i < 1000; i += 97) {
        char labels[32];
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        ck_assert_uint_eq(cv_counter_value(cv_metrics_counter("many_total", "", labels)),
                          (uint64_t)i);
    }
    char *text = cv_metrics_render();
    ck_assert_int_eq(check_exposition(text), 1000);
    free(text);
}
END_TEST

START_TEST(test_type_conflict_aborts)
{
    cv_metrics_counter("thing", "Thing.", NULL);
    cv_metrics_gauge("thing", "Thing.", NULL);
}
END_TEST

START_TEST(test_bad_labels_abort)
{
    cv_metrics_counter("bad_total", "Bad.", "a=b");
}
END_TEST

/* A hop lands in its stage's series and bucket; a clock step backwards counts as 0, not as a
 * negative span that no bucket holds. */
START_TEST(test_stage_histograms)
{
    cv_stage_observe(CV_STAGE_PRODUCE_TO_ACK, 1000, 1004);
    cv_stage_observe(CV_STAGE_PRODUCE_TO_ACK, 2000, 1990);
    cv_stage_observe(CV_STAGE_COUNT, 0, 1); /* not a stage: ignored */
    char *text = cv_metrics_render();
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(
        strstr(text, "pipeline_stage_seconds_bucket{stage=\"produce_to_ack\",le=\"0.0005\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "pipeline_stage_seconds_bucket{stage=\"produce_to_ack\",le=\"0.003\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "pipeline_stage_seconds_bucket{stage=\"produce_to_ack\",le=\"0.005\"} 2\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "pipeline_stage_seconds_count{stage=\"produce_to_ack\"} 2\n"));
    ck_assert_ptr_null(strstr(text, "stage=\"fetch_to_applied\""));
    free(text);
}
END_TEST

START_TEST(test_empty_render)
{
    char *text = cv_metrics_render();
    ck_assert_str_eq(text, "");
    free(text);
}
END_TEST

/* with_misuse: include the tests that expect an abort, which need Check's fork mode. */
static Suite *metrics_suite(int with_misuse)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("registry");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_same_name_and_labels_same_metric);
    tcase_add_test(tc, test_render_exact);
    tcase_add_test(tc, test_default_buckets_cumulative);
    tcase_add_test(tc, test_label_escaping);
    tcase_add_test(tc, test_gauge_special_values);
    tcase_add_test(tc, test_concurrent_updates);
    tcase_add_test(tc, test_many_series);
    tcase_add_test(tc, test_empty_render);
    tcase_add_test(tc, test_stage_histograms);
    suite_add_tcase(s, tc);

    if (with_misuse) {
        TCase *misuse = tcase_create("misuse");
        tcase_add_checked_fixture(misuse, setup, teardown);
        tcase_add_test_raise_signal(misuse, test_type_conflict_aborts, SIGABRT);
        tcase_add_test_raise_signal(misuse, test_bad_labels_abort, SIGABRT);
        suite_add_tcase(s, misuse);
    }
    return s;
}

int main(void)
{
    /* Under CK_FORK=no (valgrind) an abort would end the whole run: leave those tests out. */
    const char *fork_env = getenv("CK_FORK");
    int forking = !(fork_env && strcmp(fork_env, "no") == 0);
    return tu_run_suite(metrics_suite(forking));
}
