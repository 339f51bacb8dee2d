/* Service configuration from the environment: each service declares tables of variables
 * {name, default, doc, type, min, max}, validated once at start-up and printed by --help.
 * Bad configuration stops the service with one line naming the variable. */
#ifndef CV_CONFIG_H
#define CV_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum cv_config_type {
    CV_CONFIG_STRING,
    CV_CONFIG_INT,
    CV_CONFIG_BOOL,
    CV_CONFIG_SECRET /* a string never printed or logged */
};

struct cv_config_var {
    const char *name;
    const char *default_value; /* NULL = required */
    const char *doc;
    enum cv_config_type type;
    long min; /* CV_CONFIG_INT only; min == max == 0 means any long */
    long max;
};

struct cv_config;

/* tables: a NULL-terminated array of tables, each terminated by an entry whose name is NULL
 * (typically the shared table, then the service's own). A later entry with the same name as an
 * earlier one replaces it (a service may change a shared default). The tables must outlive the
 * returned configuration.
 *
 * Reads each variable from the environment (unset or empty: the default), validates its type
 * and range (defaults too). Returns the configuration (free with cv_config_destroy), or NULL with
 * one line in errstr naming the variable, e.g.
 * `HTTP_PORT: expected an integer in 1..65535, got "80a"` or `DATABASE_URL: required`. The value
 * of a secret never appears in a message. */
struct cv_config *cv_config_load(const struct cv_config_var *const *tables, char *errstr,
                                 size_t errstr_size);
void cv_config_destroy(struct cv_config *cfg);

/* Typed access. A name not in the tables, or an int/bool read of a variable of another type, is
 * a programming error: the process aborts with a message on stderr. Strings borrow from cfg.
 * cv_config_str works for every type (the text as given, or the default). */
const char *cv_config_str(const struct cv_config *cfg, const char *name);
long cv_config_int(const struct cv_config *cfg, const char *name);
/* Booleans accept 1/0, true/false, yes/no, on/off in any case. */
int cv_config_bool(const struct cv_config *cfg, const char *name);

/* Logs the effective configuration at info level, one line, secrets shown as "(set)". */
void cv_config_log(const struct cv_config *cfg);

/* Prints usage: "Usage: program", the summary, then each variable with its type/range, its
 * default (or "required") and its doc. Never prints a secret's default. */
void cv_config_print_help(FILE *out, const char *program, const char *summary,
                          const struct cv_config_var *const *tables);

#endif
