/* Transport security of the service's clients: the librdkafka properties of TLS and SASL that
 * every Kafka client of the service gets (producer, consumer, admin requests), and the libpq
 * TLS settings. The SASL password comes from the environment or a file, never from a log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service_int.h"

static const char *const protocols[] = {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl", NULL};
static const char *const mechanisms[] = {"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", NULL};
static const char *const sslmodes[] = {"disable", "allow",     "prefer",
                                       "require", "verify-ca", "verify-full", NULL};

static int one_of(const char *value, const char *const *allowed)
{
    for (; *allowed; allowed++)
        if (strcmp(value, *allowed) == 0)
            return 1;
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

static void add(struct cv_service *svc, const char *name, const char *value)
{
    size_t n = 0;
    while (svc->kafka_props[n])
        n++;
    /* at most 7 pairs are ever added: the array holds 16 entries */
    svc->kafka_props[n] = name;
    svc->kafka_props[n + 1] = value;
    svc->kafka_props[n + 2] = NULL;
}

int cv_service_security_init(struct cv_service *svc, char *errstr, size_t errstr_size)
{
    const struct cv_config *cfg = svc->cfg;
    const char *protocol = cv_config_str(cfg, "KAFKA_SECURITY_PROTOCOL");
    const char *mechanism = cv_config_str(cfg, "KAFKA_SASL_MECHANISM");
    const char *user = cv_config_str(cfg, "KAFKA_SASL_USERNAME");
    const char *password = cv_config_str(cfg, "KAFKA_SASL_PASSWORD");
    const char *password_file = cv_config_str(cfg, "KAFKA_SASL_PASSWORD_FILE");
    const char *ca = cv_config_str(cfg, "KAFKA_SSL_CA_LOCATION");
    const char *cert = cv_config_str(cfg, "KAFKA_SSL_CERTIFICATE_LOCATION");
    const char *key = cv_config_str(cfg, "KAFKA_SSL_KEY_LOCATION");
    const char *sslmode = cv_config_str(cfg, "DB_SSLMODE");
    const char *rootcert = cv_config_str(cfg, "DB_SSLROOTCERT");

    svc->kafka_props[0] = NULL;
    if (!one_of(protocol, protocols)) {
        snprintf(errstr, errstr_size, "KAFKA_SECURITY_PROTOCOL: expected plaintext, ssl, "
                 "sasl_plaintext or sasl_ssl, got \"%s\"", protocol);
        return -1;
    }
    int sasl = strncmp(protocol, "sasl_", 5) == 0;
    int tls = strcmp(protocol, "ssl") == 0 || strcmp(protocol, "sasl_ssl") == 0;
    add(svc, "security.protocol", protocol);
    if (sasl) {
        if (!one_of(mechanism, mechanisms)) {
            snprintf(errstr, errstr_size, "KAFKA_SASL_MECHANISM: expected SCRAM-SHA-512, "
                     "SCRAM-SHA-256 or PLAIN, got \"%s\"", mechanism);
            return -1;
        }
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
            svc->kafka_password = read_secret_file(password_file, errstr, errstr_size);
            if (!svc->kafka_password)
                return -1;
            password = svc->kafka_password;
        } else if (password[0] == '\0') {
            snprintf(errstr, errstr_size,
                     "KAFKA_SASL_PASSWORD: required with %s (or KAFKA_SASL_PASSWORD_FILE)",
                     protocol);
            return -1;
        }
        add(svc, "sasl.mechanism", mechanism);
        add(svc, "sasl.username", user);
        add(svc, "sasl.password", password);
    }
    if (!tls && (ca[0] || cert[0] || key[0])) {
        snprintf(errstr, errstr_size, "KAFKA_SSL_*: set, but KAFKA_SECURITY_PROTOCOL is %s",
                 protocol);
        return -1;
    }
    if ((cert[0] == '\0') != (key[0] == '\0')) {
        snprintf(errstr, errstr_size,
                 "KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION: set both or neither");
        return -1;
    }
    if (ca[0])
        add(svc, "ssl.ca.location", ca);
    if (cert[0]) {
        add(svc, "ssl.certificate.location", cert);
        add(svc, "ssl.key.location", key);
    }

    /* libpq reads these for every connection whose conninfo does not name them: the pool, the
     * outbox relay's and the LISTEN connection alike. Set before any thread starts. */
    if (sslmode[0] != '\0') {
        if (!one_of(sslmode, sslmodes)) {
            snprintf(errstr, errstr_size, "DB_SSLMODE: expected disable, allow, prefer, require, "
                     "verify-ca or verify-full, got \"%s\"", sslmode);
            return -1;
        }
        setenv("PGSSLMODE", sslmode, 1);
    }
    if (rootcert[0] != '\0')
        setenv("PGSSLROOTCERT", rootcert, 1);
    return 0;
}

void cv_service_security_free(struct cv_service *svc)
{
    if (svc->kafka_password) {
        memset(svc->kafka_password, 0, strlen(svc->kafka_password));
        free(svc->kafka_password);
        svc->kafka_password = NULL;
    }
}
