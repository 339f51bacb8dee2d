/* Transport security of the service's clients: the Kafka TLS and SASL settings
 * (kafka_security.c) read from the service's configuration, and the libpq TLS settings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service_int.h"

static const char *const sslmodes[] = {"disable",   "allow",       "prefer", "require",
                                       "verify-ca", "verify-full", NULL};

static const char *config_setting(const char *name, void *arg)
{
    return cv_config_str(arg, name);
}

int cv_service_security_init(struct cv_service *svc, char *errstr, size_t errstr_size)
{
    if (cv_kafka_security_init(&svc->kafka_sec, config_setting, svc->cfg, errstr, errstr_size) < 0)
        return -1;
    /* libpq reads these for every connection whose conninfo does not name them: the pool, the
     * outbox relay's and the LISTEN connection alike. Set before any thread starts. */
    const char *sslmode = cv_config_str(svc->cfg, "DB_SSLMODE");
    const char *rootcert = cv_config_str(svc->cfg, "DB_SSLROOTCERT");
    if (sslmode[0] != '\0') {
        const char *const *m = sslmodes;
        while (*m && strcmp(*m, sslmode) != 0)
            m++;
        if (!*m) {
            snprintf(errstr, errstr_size,
                     "DB_SSLMODE: expected disable, allow, prefer, require, "
                     "verify-ca or verify-full, got \"%s\"",
                     sslmode);
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
    cv_kafka_security_free(&svc->kafka_sec);
}
