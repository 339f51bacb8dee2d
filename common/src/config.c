/* Environment-driven configuration: merges the service's tables, reads and validates every
 * variable once at start-up, and answers typed look-ups afterwards. */
#include "cv/config.h"

#include "cv/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct config_entry {
    const struct cv_config_var *var; /* borrowed from the caller's tables */
    char *text;                      /* the value as given, or the default */
    long ival;                       /* CV_CONFIG_INT and CV_CONFIG_BOOL */
};

struct cv_config {
    struct config_entry *entries;
    size_t n;
};

static const char *const type_names[] = {"string", "int", "bool", "secret"};

/* Calls fn on each effective variable: a later entry of the same name wins, keeping the place of
 * the first. Returns the number of distinct names. */
static size_t merged_vars(const struct cv_config_var *const *tables,
                          void (*fn)(const struct cv_config_var *var, void *ctx), void *ctx)
{
    size_t count = 0;
    for (size_t t = 0; tables[t] != NULL; t++) {
        for (const struct cv_config_var *var = tables[t]; var->name != NULL; var++) {
            /* Skip this entry if an earlier one of the same name exists: it is handled there. */
            int seen = 0;
            for (size_t u = 0; u <= t && !seen; u++)
                for (const struct cv_config_var *w = tables[u]; w->name != NULL && w != var; w++)
                    if (strcmp(w->name, var->name) == 0) {
                        seen = 1;
                        break;
                    }
            if (seen)
                continue;
            /* Find the last entry of this name. */
            const struct cv_config_var *last = var;
            for (size_t u = t; tables[u] != NULL; u++)
                for (const struct cv_config_var *w = tables[u]; w->name != NULL; w++)
                    if (strcmp(w->name, var->name) == 0)
                        last = w;
            count++;
            if (fn)
                fn(last, ctx);
        }
    }
    return count;
}

/* Parses one of the accepted boolean spellings; returns 0/1, or -1 if it is none of them. */
static int parse_bool(const char *s)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* Parses a whole decimal integer (no spaces) within the variable's range. Returns 0, or -1 with
 * errstr. */
static int parse_int(const struct cv_config_var *var, const char *text, const char *origin,
                     long *out, char *errstr, size_t errstr_size)
{
    int ranged = !(var->min == 0 && var->max == 0);
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    int digits_only = (text[0] == '-' || text[0] == '+') ? isdigit((unsigned char)text[1])
                                                         : isdigit((unsigned char)text[0]);
    if (digits_only && errno == 0 && *end == '\0' &&
        (!ranged || (v >= var->min && v <= var->max))) {
        *out = v;
        return 0;
    }
    if (ranged)
        snprintf(errstr, errstr_size, "%s: expected an integer in %ld..%ld, got \"%s\"%s",
                 var->name, var->min, var->max, text, origin);
    else
        snprintf(errstr, errstr_size, "%s: expected an integer, got \"%s\"%s", var->name, text,
                 origin);
    return -1;
}

struct load_ctx {
    struct cv_config *cfg;
    char *errstr;
    size_t errstr_size;
    int failed;
};

static void load_one(const struct cv_config_var *var, void *arg)
{
    struct load_ctx *ctx = arg;
    if (ctx->failed)
        return;
    const char *text = getenv(var->name);
    const char *origin = "";
    if (text == NULL || text[0] == '\0') {
        text = var->default_value;
        origin = " (the default)";
    }
    if (text == NULL) {
        snprintf(ctx->errstr, ctx->errstr_size, "%s: required", var->name);
        ctx->failed = 1;
        return;
    }
    struct config_entry *e = &ctx->cfg->entries[ctx->cfg->n];
    e->var = var;
    if (var->type == CV_CONFIG_INT) {
        if (parse_int(var, text, origin, &e->ival, ctx->errstr, ctx->errstr_size) < 0) {
            ctx->failed = 1;
            return;
        }
    } else if (var->type == CV_CONFIG_BOOL) {
        int b = parse_bool(text);
        if (b < 0) {
            snprintf(ctx->errstr, ctx->errstr_size,
                     "%s: expected a boolean (1/0, true/false, yes/no, on/off), got \"%s\"%s",
                     var->name, text, origin);
            ctx->failed = 1;
            return;
        }
        e->ival = b;
    }
    e->text = strdup(text);
    if (e->text == NULL) {
        snprintf(ctx->errstr, ctx->errstr_size, "%s: out of memory", var->name);
        ctx->failed = 1;
        return;
    }
    ctx->cfg->n++;
}

struct cv_config *cv_config_load(const struct cv_config_var *const *tables, char *errstr,
                                 size_t errstr_size)
{
    size_t count = merged_vars(tables, NULL, NULL);
    struct cv_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || (cfg->entries = calloc(count ? count : 1, sizeof(*cfg->entries))) == NULL) {
        snprintf(errstr, errstr_size, "configuration: out of memory");
        free(cfg);
        return NULL;
    }
    struct load_ctx ctx = {.cfg = cfg, .errstr = errstr, .errstr_size = errstr_size};
    merged_vars(tables, load_one, &ctx);
    if (ctx.failed) {
        cv_config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

void cv_config_destroy(struct cv_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n; i++)
        free(cfg->entries[i].text);
    free(cfg->entries);
    free(cfg);
}

/* Returns the entry for name; aborts if there is none, or if it is not of the type wanted
 * (want < 0: any type). */
static const struct config_entry *find(const struct cv_config *cfg, const char *name, int want)
{
    for (size_t i = 0; i < cfg->n; i++) {
        const struct config_entry *e = &cfg->entries[i];
        if (strcmp(e->var->name, name) != 0)
            continue;
        if (want >= 0 && (int)e->var->type != want) {
            fprintf(stderr, "cv_config: %s is of type %s, read as %s\n", name,
                    type_names[e->var->type], type_names[want]);
            abort();
        }
        return e;
    }
    fprintf(stderr, "cv_config: %s is not in the configuration tables\n", name);
    abort();
}

const char *cv_config_str(const struct cv_config *cfg, const char *name)
{
    return find(cfg, name, -1)->text;
}

long cv_config_int(const struct cv_config *cfg, const char *name)
{
    return find(cfg, name, CV_CONFIG_INT)->ival;
}

int cv_config_bool(const struct cv_config *cfg, const char *name)
{
    return (int)find(cfg, name, CV_CONFIG_BOOL)->ival;
}

void cv_config_log(const struct cv_config *cfg)
{
    char line[1800];
    size_t pos = 0;
    line[0] = '\0';
    for (size_t i = 0; i < cfg->n; i++) {
        const struct config_entry *e = &cfg->entries[i];
        const char *value = e->var->type == CV_CONFIG_SECRET ? "(set)" : e->text;
        size_t need = strlen(e->var->name) + strlen(value) + 2;
        if (pos > 0 && pos + need >= sizeof(line)) {
            cv_log_info("configuration:%s", line);
            pos = 0;
            line[0] = '\0';
        }
        int n = snprintf(line + pos, sizeof(line) - pos, " %s=%s", e->var->name, value);
        if (n > 0)
            pos += (size_t)n < sizeof(line) - pos ? (size_t)n : sizeof(line) - pos - 1;
    }
    if (pos > 0)
        cv_log_info("configuration:%s", line);
}

struct help_ctx {
    FILE *out;
};

static void help_one(const struct cv_config_var *var, void *arg)
{
    FILE *out = ((struct help_ctx *)arg)->out;
    fprintf(out, "  %s  (%s", var->name, type_names[var->type]);
    if (var->type == CV_CONFIG_INT && !(var->min == 0 && var->max == 0))
        fprintf(out, " %ld..%ld", var->min, var->max);
    if (var->default_value == NULL)
        fprintf(out, ", required)\n");
    else if (var->type == CV_CONFIG_SECRET)
        fprintf(out, ", has a default)\n");
    else
        fprintf(out, ", default \"%s\")\n", var->default_value);
    if (var->doc != NULL && var->doc[0] != '\0')
        fprintf(out, "      %s\n", var->doc);
}

void cv_config_print_help(FILE *out, const char *program, const char *summary,
                          const struct cv_config_var *const *tables)
{
    fprintf(out, "Usage: %s [--help]\n", program);
    if (summary != NULL && summary[0] != '\0')
        fprintf(out, "%s\n", summary);
    fprintf(out, "\nConfigured by these environment variables (unset or empty: the default):\n");
    struct help_ctx ctx = {.out = out};
    merged_vars(tables, help_one, &ctx);
}
