/* Consumer lag per partition for /metrics, from what librdkafka already knows: the position
 * (next offset to hand to the application) and the high watermark carried by every fetch
 * response. No request goes to the broker, so this is cheap enough to run every second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv/metrics.h"
#include "kafka_int.h"

struct cv_lag_series {
    struct cv_gauge *gauge;
    int assigned; /* seen in the current assignment during this update */
};

static struct cv_lag_series *lag_series(struct cv_kafka_consumer *c, const char *topic,
                                        int32_t partition)
{
    char labels[384] = "", part[16];
    snprintf(part, sizeof(part), "%d", (int)partition);
    if (cv_metrics_label_append(labels, sizeof(labels), "topic", topic) < 0 ||
        cv_metrics_label_append(labels, sizeof(labels), "partition", part) < 0)
        return NULL;
    struct cv_gauge *g = cv_metrics_gauge(
        "consumer_lag_records",
        "Records in the partition after this member's position (high watermark - position)",
        labels);
    for (size_t i = 0; i < c->nlag; i++)
        if (c->lag[i].gauge == g)
            return &c->lag[i];
    struct cv_lag_series *grown = realloc(c->lag, (c->nlag + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    c->lag = grown;
    c->lag[c->nlag] = (struct cv_lag_series){.gauge = g};
    return &c->lag[c->nlag++];
}

void cv_kafka_consumer_report_lag(struct cv_kafka_consumer *c)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    for (size_t i = 0; i < c->nlag; i++)
        c->lag[i].assigned = 0;
    if (rd_kafka_position(c->rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t *p = &parts->elems[i];
            int64_t lo = -1, hi = -1;
            if (rd_kafka_get_watermark_offsets(c->rk, p->topic, p->partition, &lo, &hi) !=
                    RD_KAFKA_RESP_ERR_NO_ERROR ||
                hi < 0)
                continue; /* nothing fetched yet */
            struct cv_lag_series *s = lag_series(c, p->topic, p->partition);
            if (s == NULL)
                continue;
            s->assigned = 1;
            /* Before the first record, the position is unknown: everything after the low
             * watermark may be unread, but so may nothing; report only what is known. */
            if (p->offset >= 0)
                cv_gauge_set(s->gauge, (double)(hi > p->offset ? hi - p->offset : 0));
            else if (hi == lo)
                cv_gauge_set(s->gauge, 0); /* an empty partition */
        }
    }
    rd_kafka_topic_partition_list_destroy(parts);
    for (size_t i = 0; i < c->nlag; i++)
        if (!c->lag[i].assigned)
            cv_gauge_set(c->lag[i].gauge, 0);
}

void cv_kafka_lag_free(struct cv_kafka_consumer *c)
{
    free(c->lag);
    c->lag = NULL;
    c->nlag = 0;
}
