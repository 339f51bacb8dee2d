/* librdkafka configuration shared by the producer and the consumer: properties, and librdkafka's
 * own log and error messages routed into our JSON log. */
#include "kafka_int.h"

#include <stdio.h>
#include <string.h>

#include "cv/log.h"

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* syslog levels: 0-3 errors, 4 warning, 5-6 notice/info, 7 debug. */
    if (level <= 3)
        cv_log_error("kafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
    else if (level == 4)
        cv_log_warn("kafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
    else if (level <= 6)
        cv_log_info("kafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
    else
        cv_log_debug("kafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    /* Most errors are transient (broker down, all brokers down) and librdkafka retries them;
     * a fatal one (idempotence broken) leaves the producer unusable. */
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512];
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        cv_log_error("kafka %s: fatal error: %s", rd_kafka_name(rk), fatal);
    } else if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL) {
        /* Wrong credentials or certificates do not heal by retrying: say so plainly. */
        cv_log_error("kafka %s: %s failed (check KAFKA_SASL_* and KAFKA_SSL_*): %s",
                     rd_kafka_name(rk), err == RD_KAFKA_RESP_ERR__SSL ? "TLS" : "authentication",
                     reason);
    } else {
        cv_log_warn("kafka %s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name(err), reason);
    }
}

/* Properties whose value is a secret: an error message names them but never shows the value. */
static int sensitive(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") || strstr(name, ".pem") ||
           strstr(name, "oauthbearer.config");
}

int cv_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                      size_t errstr_size)
{
    char why[256];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "kafka property %s=%s: %s", name,
                 sensitive(name) ? "(secret)" : value, why);
        return -1;
    }
    return 0;
}

rd_kafka_conf_t *cv_kafka_conf_new(const char *brokers, const char *client_id,
                                   const char *const *defaults, const char *const *extra,
                                   char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    if (cv_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) < 0 ||
        cv_kafka_conf_set(conf, "client.id", client_id, errstr, errstr_size) < 0)
        goto cleanup;
    for (const char *const *kv = defaults; kv && kv[0]; kv += 2)
        if (cv_kafka_conf_set(conf, kv[0], kv[1], errstr, errstr_size) < 0)
            goto cleanup;
    for (const char *const *kv = extra; kv && kv[0]; kv += 2) {
        if (!kv[1]) {
            snprintf(errstr, errstr_size, "kafka property %s has no value", kv[0]);
            goto cleanup;
        }
        if (cv_kafka_conf_set(conf, kv[0], kv[1], errstr, errstr_size) < 0)
            goto cleanup;
    }
    return conf;
cleanup:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int cv_kafka_reachable(rd_kafka_t *rk, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    /* all_topics=0 with no topic asks for brokers only: cheap. */
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    if (md)
        rd_kafka_metadata_destroy(md);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

rd_kafka_t *cv_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr,
                         size_t errstr_size)
{
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, errstr_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}
