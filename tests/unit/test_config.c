/* Unit tests of environment configuration: defaults, required variables, integer and boolean
 * validation with one-line messages, table overrides, and that secrets never reach --help. */
#include "cv/config.h"

#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runner.h"

static const struct cv_config_var shared_vars[] = {
    {"CVT_HTTP_PORT", "8080", "Port of the HTTP API.", CV_CONFIG_INT, 1, 65535},
    {"CVT_LOG_LEVEL", "info", "debug, info, warn or error.", CV_CONFIG_STRING, 0, 0},
    {"CVT_DATABASE_URL", NULL, "libpq connection string.", CV_CONFIG_SECRET, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0},
};

static const struct cv_config_var service_vars[] = {
    {"CVT_HTTP_PORT", "8081", "Port of the inventory API.", CV_CONFIG_INT, 1, 65535},
    {"CVT_STRICT", "off", "Reject unknown fields.", CV_CONFIG_BOOL, 0, 0},
    {"CVT_OFFSET", "-5", "Any integer.", CV_CONFIG_INT, 0, 0},
    {NULL, NULL, NULL, 0, 0, 0},
};

static const struct cv_config_var *const tables[] = {shared_vars, service_vars, NULL};

static char errstr[256];

static void setup(void)
{
    static const char *const names[] = {"CVT_HTTP_PORT", "CVT_LOG_LEVEL", "CVT_DATABASE_URL",
                                        "CVT_STRICT", "CVT_OFFSET"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unsetenv(names[i]);
    setenv("CVT_DATABASE_URL", "postgres://user:hunter2@db/orders", 1);
    errstr[0] = '\0';
}

static void teardown(void)
{
}

/* Sets name to value and checks that loading fails, with want as the message (NULL: any). */
static void refused(const char *name, const char *value, const char *want)
{
    setenv(name, value, 1);
    ck_assert_ptr_null(cv_config_load(tables, errstr, sizeof(errstr)));
    if (want)
        ck_assert_str_eq(errstr, want);
}

START_TEST(test_defaults_and_override)
{
    struct cv_config *cfg = cv_config_load(tables, errstr, sizeof(errstr));
    ck_assert_msg(cfg != NULL, "%s", errstr);
    /* The service table's later entry replaces the shared default. */
    ck_assert_int_eq(cv_config_int(cfg, "CVT_HTTP_PORT"), 8081);
    ck_assert_str_eq(cv_config_str(cfg, "CVT_HTTP_PORT"), "8081");
    ck_assert_str_eq(cv_config_str(cfg, "CVT_LOG_LEVEL"), "info");
    ck_assert_str_eq(cv_config_str(cfg, "CVT_DATABASE_URL"), "postgres://user:hunter2@db/orders");
    ck_assert_int_eq(cv_config_bool(cfg, "CVT_STRICT"), 0);
    ck_assert_int_eq(cv_config_int(cfg, "CVT_OFFSET"), -5);
    cv_config_destroy(cfg);
    cv_config_destroy(NULL);
}
END_TEST

START_TEST(test_environment_wins)
{
    setenv("CVT_HTTP_PORT", "9090", 1);
    setenv("CVT_OFFSET", "-123456789012", 1);
    setenv("CVT_LOG_LEVEL", "", 1); /* empty: the default */
    struct cv_config *cfg = cv_config_load(tables, errstr, sizeof(errstr));
    ck_assert_msg(cfg != NULL, "%s", errstr);
    ck_assert_int_eq(cv_config_int(cfg, "CVT_HTTP_PORT"), 9090);
    ck_assert_int_eq(cv_config_int(cfg, "CVT_OFFSET"), -123456789012L);
    ck_assert_str_eq(cv_config_str(cfg, "CVT_LOG_LEVEL"), "info");
    cv_config_destroy(cfg);
}
END_TEST

START_TEST(test_required_missing)
{
    unsetenv("CVT_DATABASE_URL");
    ck_assert_ptr_null(cv_config_load(tables, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr, "CVT_DATABASE_URL: required");
    refused("CVT_DATABASE_URL", "", "CVT_DATABASE_URL: required");
}
END_TEST

START_TEST(test_bad_int)
{
    refused("CVT_HTTP_PORT", "80a", "CVT_HTTP_PORT: expected an integer in 1..65535, got \"80a\"");
    refused("CVT_HTTP_PORT", " 80", NULL);
    refused("CVT_HTTP_PORT", "99999999999999999999999", NULL);
    setenv("CVT_HTTP_PORT", "8080", 1);
    refused("CVT_OFFSET", "1e3", "CVT_OFFSET: expected an integer, got \"1e3\"");
}
END_TEST

START_TEST(test_out_of_range)
{
    refused("CVT_HTTP_PORT", "0", "CVT_HTTP_PORT: expected an integer in 1..65535, got \"0\"");
    refused("CVT_HTTP_PORT", "65536",
            "CVT_HTTP_PORT: expected an integer in 1..65535, got \"65536\"");
    setenv("CVT_HTTP_PORT", "65535", 1);
    struct cv_config *cfg = cv_config_load(tables, errstr, sizeof(errstr));
    ck_assert_msg(cfg != NULL, "%s", errstr);
    ck_assert_int_eq(cv_config_int(cfg, "CVT_HTTP_PORT"), 65535);
    cv_config_destroy(cfg);
}
END_TEST

START_TEST(test_bool_forms)
{
    static const char *const truthy[] = {"1", "true", "TRUE", "yes", "Yes", "on"};
    static const char *const falsy[] = {"0", "false", "False", "no", "NO", "off"};
    for (size_t i = 0; i < 6; i++) {
        setenv("CVT_STRICT", truthy[i], 1);
        struct cv_config *cfg = cv_config_load(tables, errstr, sizeof(errstr));
        ck_assert_msg(cfg != NULL, "%s", errstr);
        ck_assert_msg(cv_config_bool(cfg, "CVT_STRICT") == 1, "%s", truthy[i]);
        cv_config_destroy(cfg);
        setenv("CVT_STRICT", falsy[i], 1);
        cfg = cv_config_load(tables, errstr, sizeof(errstr));
        ck_assert_msg(cfg != NULL, "%s", errstr);
        ck_assert_msg(cv_config_bool(cfg, "CVT_STRICT") == 0, "%s", falsy[i]);
        cv_config_destroy(cfg);
    }
    refused("CVT_STRICT", "maybe",
            "CVT_STRICT: expected a boolean (1/0, true/false, yes/no, on/off), "
            "got \"maybe\"");
}
END_TEST

START_TEST(test_bad_default_is_reported)
{
    static const struct cv_config_var broken[] = {
        {"CVT_WORKERS", "many", "Workers.", CV_CONFIG_INT, 1, 64},
        {NULL, NULL, NULL, 0, 0, 0},
    };
    static const struct cv_config_var *const t[] = {broken, NULL};
    unsetenv("CVT_WORKERS");
    ck_assert_ptr_null(cv_config_load(t, errstr, sizeof(errstr)));
    ck_assert_str_eq(errstr,
                     "CVT_WORKERS: expected an integer in 1..64, got \"many\" (the default)");
}
END_TEST

START_TEST(test_help_lists_vars_but_no_secret)
{
    static const struct cv_config_var with_secret_default[] = {
        {"CVT_TOKEN", "s3cr3t-default", "API token.", CV_CONFIG_SECRET, 0, 0},
        {NULL, NULL, NULL, 0, 0, 0},
    };
    static const struct cv_config_var *const t[] = {shared_vars, service_vars, with_secret_default,
                                                    NULL};
    setenv("CVT_TOKEN", "s3cr3t-env", 1);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(out);
    cv_config_print_help(out, "inventory-service", "Keeps stock.", t);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "Usage: inventory-service"));
    ck_assert_ptr_nonnull(strstr(text, "Keeps stock."));
    ck_assert_ptr_nonnull(strstr(text, "  CVT_HTTP_PORT  (int 1..65535, default \"8081\")\n"
                                       "      Port of the inventory API.\n"));
    ck_assert_ptr_nonnull(strstr(text, "  CVT_DATABASE_URL  (secret, required)\n"));
    ck_assert_ptr_nonnull(strstr(text, "  CVT_STRICT  (bool, default \"off\")\n"));
    ck_assert_ptr_nonnull(strstr(text, "  CVT_TOKEN  (secret, has a default)\n"));
    /* Each name once: the override replaced the shared entry. */
    ck_assert_ptr_null(strstr(strstr(text, "CVT_HTTP_PORT") + 1, "CVT_HTTP_PORT"));
    ck_assert_ptr_null(strstr(text, "s3cr3t"));
    ck_assert_ptr_null(strstr(text, "hunter2"));
    free(text);
    unsetenv("CVT_TOKEN");
}
END_TEST

START_TEST(test_log_hides_secrets)
{
    struct cv_config *cfg = cv_config_load(tables, errstr, sizeof(errstr));
    ck_assert_msg(cfg != NULL, "%s", errstr);
    /* The logger writes to stdout: capture it in a temporary file. */
    fflush(stdout);
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    int saved = dup(STDOUT_FILENO);
    dup2(fileno(tmp), STDOUT_FILENO);
    cv_config_log(cfg);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    char text[4096] = "";
    rewind(tmp);
    size_t n = fread(text, 1, sizeof(text) - 1, tmp);
    text[n] = '\0';
    fclose(tmp);
    ck_assert_ptr_nonnull(strstr(text, " CVT_HTTP_PORT=8081"));
    ck_assert_ptr_nonnull(strstr(text, " CVT_DATABASE_URL=(set)"));
    ck_assert_ptr_null(strstr(text, "hunter2"));
    cv_config_destroy(cfg);
}
END_TEST

START_TEST(test_unknown_name_aborts)
{
    struct cv_config *cfg = cv_config_load(tables, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(cfg);
    cv_config_str(cfg, "CVT_NOT_DECLARED");
}
END_TEST

START_TEST(test_wrong_type_aborts)
{
    struct cv_config *cfg = cv_config_load(tables, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(cfg);
    cv_config_int(cfg, "CVT_LOG_LEVEL");
}
END_TEST

static Suite *config_suite(int with_misuse)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults_and_override);
    tcase_add_test(tc, test_environment_wins);
    tcase_add_test(tc, test_required_missing);
    tcase_add_test(tc, test_bad_int);
    tcase_add_test(tc, test_out_of_range);
    tcase_add_test(tc, test_bool_forms);
    tcase_add_test(tc, test_bad_default_is_reported);
    tcase_add_test(tc, test_help_lists_vars_but_no_secret);
    tcase_add_test(tc, test_log_hides_secrets);
    if (with_misuse) {
        tcase_add_test_raise_signal(tc, test_unknown_name_aborts, SIGABRT);
        tcase_add_test_raise_signal(tc, test_wrong_type_aborts, SIGABRT);
    }
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Under CK_FORK=no an abort would end the whole run: leave those tests out. */
    const char *fork_env = getenv("CK_FORK");
    return tu_run_suite(config_suite(!(fork_env && strcmp(fork_env, "no") == 0)));
}
