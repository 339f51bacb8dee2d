/* Topic creation through librdkafka's admin API, so that a service can make sure its own
 * topics exist at start-up (brokers run with automatic topic creation off). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_int.h"

int cv_kafka_create_topics(rd_kafka_t *rk, const char *const *topics, int partitions,
                           int replication_factor, int timeout_ms, char *errstr, size_t errstr_size)
{
    size_t n = 0;
    while (topics[n])
        n++;
    if (n == 0)
        return 0;
    rd_kafka_NewTopic_t **newts = calloc(n, sizeof(*newts));
    if (!newts) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        newts[i] =
            rd_kafka_NewTopic_new(topics[i], partitions, replication_factor, errstr, errstr_size);
        if (!newts[i]) {
            rc = -1;
            goto cleanup;
        }
    }
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, NULL, 0);
    rd_kafka_CreateTopics(rk, newts, n, opts, queue);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(queue, timeout_ms + 2000);
    if (!ev) {
        snprintf(errstr, errstr_size, "create topics: no answer from the broker");
        rc = -1;
    } else if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "create topics: %s", rd_kafka_event_error_string(ev));
        rc = -1;
    } else {
        size_t cnt = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
            if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                snprintf(errstr, errstr_size, "create topic %s: %s",
                         rd_kafka_topic_result_name(res[i]),
                         rd_kafka_topic_result_error_string(res[i]));
                rc = -1;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(queue);
cleanup:
    for (size_t i = 0; i < n; i++)
        if (newts[i])
            rd_kafka_NewTopic_destroy(newts[i]);
    free(newts);
    return rc;
}

int cv_kafka_topic_retention_ms(rd_kafka_t *rk, const char *topic, int64_t *retention_ms,
                                int timeout_ms, char *errstr, size_t errstr_size)
{
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, NULL, 0);
    rd_kafka_DescribeConfigs(rk, &res, 1, opts, queue);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(queue, timeout_ms + 2000);
    int rc = -1;
    snprintf(errstr, errstr_size, "describe topic %s: no retention.ms in the answer", topic);
    if (!ev) {
        snprintf(errstr, errstr_size, "describe topic %s: no answer from the broker", topic);
    } else if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "describe topic %s: %s", topic,
                 rd_kafka_event_error_string(ev));
    } else {
        size_t cnt = 0;
        const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(
            rd_kafka_event_DescribeConfigs_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
            if (rd_kafka_ConfigResource_error(rs[i]) == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                snprintf(errstr, errstr_size, "topic %s does not exist", topic);
                rc = 1;
                break;
            }
            if (rd_kafka_ConfigResource_error(rs[i])) {
                snprintf(errstr, errstr_size, "describe topic %s: %s", topic,
                         rd_kafka_ConfigResource_error_string(rs[i]));
                break;
            }
            size_t nentries = 0;
            const rd_kafka_ConfigEntry_t **entries =
                rd_kafka_ConfigResource_configs(rs[i], &nentries);
            for (size_t k = 0; k < nentries; k++) {
                const char *value = rd_kafka_ConfigEntry_value(entries[k]);
                if (strcmp(rd_kafka_ConfigEntry_name(entries[k]), "retention.ms") == 0 && value) {
                    *retention_ms = strtoll(value, NULL, 10);
                    rc = 0;
                }
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(queue);
    rd_kafka_ConfigResource_destroy(res);
    return rc;
}
