/* TLS and SASL of a Kafka client, from settings by name: the librdkafka properties that every
 * client of a service or a tool gets. The SASL password comes from the settings or a file and
 * is never put in a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/kafka.h"

static const char *const protocols[] = {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl", NULL};
static const char *const mechanisms[] = {"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", NULL};

/* 1 if value is one of allowed (NULL-terminated), else 0 with errstr listing them. */
static int one_of(const char *name, const char *value, const char *const *allowed, char *errstr,
                  size_t errstr_size)
{
    char list[128] = "";
    for (size_t i = 0; allowed[i]; i++) {
        if (strcmp(value, allowed[i]) == 0)
            return 1;
        size_t len = strlen(list);
        snprintf(list + len, sizeof(list) - len, "%s%s",
                 i == 0           ? ""
                 : allowed[i + 1] ? ", "
                                  : " or ",
                 allowed[i]);
    }
    snprintf(errstr, errstr_size, "%s: expected %s, got \"%s\"", name, list, value);
    return 0;
}

/* Reads the first line of path into a new string (caller frees). NULL with errstr set. */
static char *read_secret_file(const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, errstr_size, "KAFKA_SASL_PASSWORD_FILE: cannot open %s", path);
        return NULL;
    }
    char buf[1024];
    char *secret = NULL;
    if (fgets(buf, sizeof(buf), f)) {
        buf[strcspn(buf, "\r\n")] = '\0';
        if (buf[0] != '\0')
            secret = strdup(buf);
    }
    memset(buf, 0, sizeof(buf));
    fclose(f);
    if (!secret)
        snprintf(errstr, errstr_size, "KAFKA_SASL_PASSWORD_FILE: %s is empty", path);
    return secret;
}

static void add(struct cv_kafka_security *sec, const char *name, const char *value)
{
    size_t n = 0;
    while (sec->props[n])
        n++;
    /* at most 7 pairs are ever added: props holds 16 entries */
    sec->props[n] = name;
    sec->props[n + 1] = value;
    sec->props[n + 2] = NULL;
}

static const char *setting(cv_kafka_setting_fn get, void *arg, const char *name,
                           const char *fallback)
{
    const char *v = get(name, arg);
    return v && v[0] ? v : fallback;
}

int cv_kafka_security_init(struct cv_kafka_security *sec, cv_kafka_setting_fn get, void *arg,
                           char *errstr, size_t errstr_size)
{
    memset(sec, 0, sizeof(*sec));
    const char *protocol = setting(get, arg, "KAFKA_SECURITY_PROTOCOL", "plaintext");
    const char *mechanism = setting(get, arg, "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512");
    const char *user = setting(get, arg, "KAFKA_SASL_USERNAME", "");
    const char *password = setting(get, arg, "KAFKA_SASL_PASSWORD", "");
    const char *password_file = setting(get, arg, "KAFKA_SASL_PASSWORD_FILE", "");
    const char *ca = setting(get, arg, "KAFKA_SSL_CA_LOCATION", "");
    const char *cert = setting(get, arg, "KAFKA_SSL_CERTIFICATE_LOCATION", "");
    const char *key = setting(get, arg, "KAFKA_SSL_KEY_LOCATION", "");

    if (!one_of("KAFKA_SECURITY_PROTOCOL", protocol, protocols, errstr, errstr_size))
        return -1;
    int sasl = strncmp(protocol, "sasl_", 5) == 0;
    int tls = strcmp(protocol, "ssl") == 0 || strcmp(protocol, "sasl_ssl") == 0;
    add(sec, "security.protocol", protocol);
    if (sasl) {
        if (!one_of("KAFKA_SASL_MECHANISM", mechanism, mechanisms, errstr, errstr_size))
            return -1;
        if (user[0] == '\0') {
            snprintf(errstr, errstr_size, "KAFKA_SASL_USERNAME: required with %s", protocol);
            return -1;
        }
        if (password[0] != '\0' && password_file[0] != '\0') {
            snprintf(errstr, errstr_size,
                     "KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE: set only one");
            return -1;
        }
        if (password_file[0] != '\0') {
            sec->password = read_secret_file(password_file, errstr, errstr_size);
            if (!sec->password)
                return -1;
            password = sec->password;
        } else if (password[0] == '\0') {
            snprintf(errstr, errstr_size,
                     "KAFKA_SASL_PASSWORD: required with %s (or KAFKA_SASL_PASSWORD_FILE)",
                     protocol);
            return -1;
        }
        add(sec, "sasl.mechanism", mechanism);
        add(sec, "sasl.username", user);
        add(sec, "sasl.password", password);
    }
    if (!tls && (ca[0] || cert[0] || key[0])) {
        snprintf(errstr, errstr_size, "KAFKA_SSL_*: set, but KAFKA_SECURITY_PROTOCOL is %s",
                 protocol);
        cv_kafka_security_free(sec);
        return -1;
    }
    if ((cert[0] == '\0') != (key[0] == '\0')) {
        snprintf(errstr, errstr_size,
                 "KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION: set both or neither");
        cv_kafka_security_free(sec);
        return -1;
    }
    if (ca[0])
        add(sec, "ssl.ca.location", ca);
    if (cert[0]) {
        add(sec, "ssl.certificate.location", cert);
        add(sec, "ssl.key.location", key);
    }
    return 0;
}

void cv_kafka_security_free(struct cv_kafka_security *sec)
{
    if (sec->password) {
        memset(sec->password, 0, strlen(sec->password));
        free(sec->password);
        sec->password = NULL;
    }
    sec->props[0] = NULL;
}
