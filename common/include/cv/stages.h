/* Per-hop latency of an event through the pipeline, as one histogram per stage
 * (pipeline_stage_seconds{stage="..."} in /metrics), measured with timestamps the pipeline
 * already carries: the outbox row's created_at, the record's CreateTime (set when the relay
 * produces it), wall clock now. All processes of one deployment share a clock on one machine;
 * across machines the cross-process stages include the clock skew. */
#ifndef CV_STAGES_H
#define CV_STAGES_H

#include <stdint.h>

enum cv_stage {
    CV_STAGE_OUTBOX_TO_RELAY,   /* outbox row created -> picked up by the relay */
    CV_STAGE_PRODUCE_TO_ACK,    /* produced -> acknowledged by the broker (acks=all) */
    CV_STAGE_PRODUCE_TO_FETCH,  /* produced (record CreateTime) -> returned by consumer poll */
    CV_STAGE_FETCH_TO_APPLIED,  /* returned by poll -> its batch's transaction committed */
    CV_STAGE_APPLIED_TO_COMMIT, /* transaction committed -> offsets committed to Kafka */
    CV_STAGE_COUNT
};

/* Observes from_ms -> to_ms (wall clock, ms since the epoch) for the stage. Negative spans
 * (clock steps) are counted as 0. Thread-safe. */
void cv_stage_observe(enum cv_stage stage, int64_t from_ms, int64_t to_ms);

#endif
