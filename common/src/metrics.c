/* The process-wide metrics registry and its Prometheus text rendering (format 0.0.4).
 * Families keep registration order for rendering; a hash table on name+labels makes the repeated
 * look-ups of per-request series (for example one per HTTP status) cheap. */
#include "cv/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

struct family {
    struct family *next;
    char *name;
    char *help;
    enum metric_kind kind;
    struct series *first, *last;
};

/* Header shared by every series; the kind-specific struct embeds it first. */
struct series {
    struct family *family;
    struct series *next_in_family;
    struct series *next_in_slot; /* hash chain */
    uint64_t hash;
    char *labels; /* "" when there are none */
};

struct cv_counter {
    struct series s;
    _Atomic uint64_t value;
};

struct cv_gauge {
    struct series s;
    _Atomic uint64_t bits; /* the double's bit pattern, so that updates can be atomic */
};

struct cv_histogram {
    struct series s;
    size_t nbuckets;
    double *bounds;
    _Atomic uint64_t *counts; /* nbuckets + 1 (the last is +Inf), not cumulative */
    _Atomic uint64_t sum_bits;
};

static const double default_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,    1,     2.5,  5,     10};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct family *families_first, *families_last;
static struct series **slots;
static size_t nslots, nseries;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Misuse of the registry is a programming error: say what and stop. */
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cv_metrics: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        die("out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        die("out of memory");
    return p;
}

static uint64_t double_bits(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    return bits;
}

static double bits_double(uint64_t bits)
{
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

/* Adds delta to a double stored as bits in an atomic word. */
static void atomic_add_double(_Atomic uint64_t *word, double delta)
{
    uint64_t old = atomic_load_explicit(word, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(word, &old, double_bits(bits_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* FNV-1a over name, a separator and labels. */
static uint64_t series_hash(const char *name, const char *labels)
{
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const unsigned char *p = (const unsigned char *)labels; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static int valid_name(const char *name)
{
    if (name == NULL || name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:") ==
           strlen(name);
}

/* Checks `name="value"(,name="value")*` with only \\ \" \n escapes, so that one bad label string
 * cannot make the whole exposition unparseable. */
static int valid_labels(const char *p)
{
    if (*p == '\0')
        return 1;
    for (;;) {
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (n == 0 || (p[0] >= '0' && p[0] <= '9') || p[n] != '=' || p[n + 1] != '"')
            return 0;
        p += n + 2;
        while (*p != '"') {
            if (*p == '\0' || *p == '\n')
                return 0;
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                    return 0;
                p++;
            }
            p++;
        }
        p++;
        if (*p == '\0')
            return 1;
        if (*p != ',')
            return 0;
        p++;
    }
}

static void table_grow(void)
{
    size_t n = nslots ? nslots * 2 : 64;
    struct series **fresh = xcalloc(n, sizeof(*fresh));
    for (size_t i = 0; i < nslots; i++) {
        struct series *s = slots[i];
        while (s != NULL) {
            struct series *next = s->next_in_slot;
            s->next_in_slot = fresh[s->hash & (n - 1)];
            fresh[s->hash & (n - 1)] = s;
            s = next;
        }
    }
    free(slots);
    slots = fresh;
    nslots = n;
}

/* Returns the series of that name and labels, or NULL. Called with the lock held. */
static struct series *table_find(const char *name, const char *labels, uint64_t hash)
{
    if (nslots == 0)
        return NULL;
    for (struct series *s = slots[hash & (nslots - 1)]; s != NULL; s = s->next_in_slot)
        if (s->hash == hash && strcmp(s->labels, labels) == 0 && strcmp(s->family->name, name) == 0)
            return s;
    return NULL;
}

static struct family *family_get(const char *name, const char *help, enum metric_kind kind)
{
    for (struct family *f = families_first; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            if (f->kind != kind)
                die("%s registered as a %s and as a %s", name, kind_names[f->kind],
                    kind_names[kind]);
            return f;
        }
    }
    struct family *f = xcalloc(1, sizeof(*f));
    f->name = xstrdup(name);
    f->help = xstrdup(help ? help : "");
    f->kind = kind;
    if (families_last)
        families_last->next = f;
    else
        families_first = f;
    families_last = f;
    return f;
}

/* Finds or creates a series; s_new is a zeroed kind-specific struct used only when creating
 * (and freed otherwise). Returns the series. */
static struct series *series_get(const char *name, const char *help, const char *labels,
                                 enum metric_kind kind, struct series *s_new,
                                 void (*free_new)(struct series *))
{
    if (!valid_name(name))
        die("invalid metric name \"%s\"", name ? name : "(null)");
    if (labels == NULL)
        labels = "";
    if (!valid_labels(labels))
        die("%s: invalid label list \"%s\"", name, labels);

    uint64_t hash = series_hash(name, labels);
    pthread_mutex_lock(&registry_lock);
    struct series *s = table_find(name, labels, hash);
    if (s != NULL) {
        enum metric_kind found = s->family->kind;
        pthread_mutex_unlock(&registry_lock);
        if (found != kind)
            die("%s registered as a %s and as a %s", name, kind_names[found], kind_names[kind]);
        free_new(s_new);
        return s;
    }
    struct family *f = family_get(name, help, kind);
    s = s_new;
    s->family = f;
    s->hash = hash;
    s->labels = xstrdup(labels);
    if (f->last)
        f->last->next_in_family = s;
    else
        f->first = s;
    f->last = s;
    if (nseries + 1 > nslots)
        table_grow();
    s->next_in_slot = slots[hash & (nslots - 1)];
    slots[hash & (nslots - 1)] = s;
    nseries++;
    pthread_mutex_unlock(&registry_lock);
    return s;
}

static void free_plain(struct series *s)
{
    free(s);
}

static void free_histogram(struct series *s)
{
    struct cv_histogram *h = (struct cv_histogram *)s;
    free(h->bounds);
    free((void *)h->counts);
    free(h);
}

struct cv_counter *cv_metrics_counter(const char *name, const char *help, const char *labels)
{
    struct cv_counter *c = xcalloc(1, sizeof(*c));
    return (struct cv_counter *)series_get(name, help, labels, KIND_COUNTER, &c->s, free_plain);
}

void cv_counter_add(struct cv_counter *c, uint64_t n)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t cv_counter_value(const struct cv_counter *c)
{
    return atomic_load_explicit(&((struct cv_counter *)c)->value, memory_order_relaxed);
}

struct cv_gauge *cv_metrics_gauge(const char *name, const char *help, const char *labels)
{
    struct cv_gauge *g = xcalloc(1, sizeof(*g));
    atomic_init(&g->bits, double_bits(0.0));
    return (struct cv_gauge *)series_get(name, help, labels, KIND_GAUGE, &g->s, free_plain);
}

void cv_gauge_set(struct cv_gauge *g, double v)
{
    if (g != NULL)
        atomic_store_explicit(&g->bits, double_bits(v), memory_order_relaxed);
}

void cv_gauge_add(struct cv_gauge *g, double delta)
{
    if (g != NULL)
        atomic_add_double(&g->bits, delta);
}

double cv_gauge_value(const struct cv_gauge *g)
{
    return bits_double(atomic_load_explicit(&((struct cv_gauge *)g)->bits, memory_order_relaxed));
}

struct cv_histogram *cv_metrics_histogram(const char *name, const char *help, const char *labels,
                                          const double *buckets, size_t nbuckets)
{
    if (buckets == NULL) {
        buckets = default_buckets;
        nbuckets = sizeof(default_buckets) / sizeof(default_buckets[0]);
    }
    for (size_t i = 0; i < nbuckets; i++)
        if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
            die("%s: buckets must be finite and strictly increasing", name ? name : "(null)");

    struct cv_histogram *h = xcalloc(1, sizeof(*h));
    h->nbuckets = nbuckets;
    h->bounds = xcalloc(nbuckets ? nbuckets : 1, sizeof(double));
    memcpy(h->bounds, buckets, nbuckets * sizeof(double));
    h->counts = xcalloc(nbuckets + 1, sizeof(*h->counts));
    atomic_init(&h->sum_bits, double_bits(0.0));
    return (struct cv_histogram *)series_get(name, help, labels, KIND_HISTOGRAM, &h->s,
                                             free_histogram);
}

void cv_histogram_observe(struct cv_histogram *h, double v)
{
    if (h == NULL)
        return;
    size_t i = 0;
    while (i < h->nbuckets && !(v <= h->bounds[i]))
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
}

int cv_metrics_label_append(char *buf, size_t size, const char *name, const char *value)
{
    size_t start = strlen(buf);
    size_t pos = start;
    int ok = 1;
    /* Writes one character if it fits, keeping room for the NUL. */
#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (pos + 1 < size)                                                                        \
            buf[pos++] = (ch);                                                                     \
        else                                                                                       \
            ok = 0;                                                                                \
    } while (0)
    if (start > 0)
        PUT(',');
    for (const char *p = name; *p; p++)
        PUT(*p);
    PUT('=');
    PUT('"');
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"') {
            PUT('\\');
            PUT(*p);
        } else if (*p == '\n') {
            PUT('\\');
            PUT('n');
        } else {
            PUT(*p);
        }
    }
    PUT('"');
#undef PUT
    if (!ok) {
        if (size > 0)
            buf[start] = '\0';
        return -1;
    }
    buf[pos] = '\0';
    return 0;
}

/* A growing output buffer; after a failed allocation every append is a no-op. */
struct outbuf {
    char *p;
    size_t len, cap;
    int failed;
};

static void out_printf(struct outbuf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void out_printf(struct outbuf *out, const char *fmt, ...)
{
    if (out->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(out->p + out->len, out->cap - out->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            out->failed = 1;
            return;
        }
        if ((size_t)n < out->cap - out->len) {
            out->len += (size_t)n;
            return;
        }
        size_t cap = out->cap * 2 + (size_t)n;
        char *p = realloc(out->p, cap);
        if (p == NULL) {
            out->failed = 1;
            return;
        }
        out->p = p;
        out->cap = cap;
    }
}

/* Formats v as the exposition format expects (Go's ParseFloat syntax), shortest exact form. */
static void format_double(char *dst, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(dst, size, "NaN");
    } else if (isinf(v)) {
        snprintf(dst, size, "%s", v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(dst, size, "%.15g", v);
        if (strtod(dst, NULL) != v)
            snprintf(dst, size, "%.17g", v);
    }
}

static void render_help(struct outbuf *out, const struct family *f)
{
    out_printf(out, "# HELP %s ", f->name);
    for (const char *p = f->help; *p; p++) {
        if (*p == '\\')
            out_printf(out, "\\\\");
        else if (*p == '\n')
            out_printf(out, "\\n");
        else
            out_printf(out, "%c", *p);
    }
    out_printf(out, "\n# TYPE %s %s\n", f->name, kind_names[f->kind]);
}

/* Writes `{labels}` (nothing when empty). */
static void render_labels(struct outbuf *out, const char *labels)
{
    if (labels[0] != '\0')
        out_printf(out, "{%s}", labels);
}

static void render_histogram(struct outbuf *out, const char *name, struct cv_histogram *h)
{
    const char *labels = h->s.labels;
    const char *sep = labels[0] ? "," : "";
    char num[40];
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= h->nbuckets; i++) {
        cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->nbuckets)
            format_double(num, sizeof(num), h->bounds[i]);
        else
            snprintf(num, sizeof(num), "+Inf");
        out_printf(out, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name, labels, sep, num,
                   cumulative);
    }
    format_double(num, sizeof(num),
                  bits_double(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
    out_printf(out, "%s_sum", name);
    render_labels(out, labels);
    out_printf(out, " %s\n", num);
    /* _count is the +Inf bucket just rendered, so the two always agree. */
    out_printf(out, "%s_count", name);
    render_labels(out, labels);
    out_printf(out, " %" PRIu64 "\n", cumulative);
}

char *cv_metrics_render(void)
{
    struct outbuf out = {.p = malloc(4096), .cap = 4096};
    if (out.p == NULL)
        return NULL;
    out.p[0] = '\0';
    char num[40];

    pthread_mutex_lock(&registry_lock);
    for (struct family *f = families_first; f != NULL; f = f->next) {
        render_help(&out, f);
        for (struct series *s = f->first; s != NULL; s = s->next_in_family) {
            switch (f->kind) {
            case KIND_COUNTER:
                out_printf(&out, "%s", f->name);
                render_labels(&out, s->labels);
                out_printf(&out, " %" PRIu64 "\n", cv_counter_value((struct cv_counter *)s));
                break;
            case KIND_GAUGE:
                format_double(num, sizeof(num), cv_gauge_value((struct cv_gauge *)s));
                out_printf(&out, "%s", f->name);
                render_labels(&out, s->labels);
                out_printf(&out, " %s\n", num);
                break;
            case KIND_HISTOGRAM:
                render_histogram(&out, f->name, (struct cv_histogram *)s);
                break;
            }
        }
    }
    pthread_mutex_unlock(&registry_lock);

    if (out.failed) {
        free(out.p);
        return NULL;
    }
    return out.p;
}

void cv_metrics_reset(void)
{
    pthread_mutex_lock(&registry_lock);
    struct family *f = families_first;
    while (f != NULL) {
        struct family *next = f->next;
        struct series *s = f->first;
        while (s != NULL) {
            struct series *next_s = s->next_in_family;
            free(s->labels);
            if (f->kind == KIND_HISTOGRAM)
                free_histogram(s);
            else
                free_plain(s);
            s = next_s;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = next;
    }
    families_first = families_last = NULL;
    free(slots);
    slots = NULL;
    nslots = nseries = 0;
    pthread_mutex_unlock(&registry_lock);
}
