/* Per-hop latency histograms: one pipeline_stage_seconds series per stage, with buckets fine
 * enough below 10 ms to tell a tuned Kafka hop (about 1 ms) from a client's batching wait. */
#include "cv/stages.h"

#include "cv/metrics.h"

static const char *const stage_labels[CV_STAGE_COUNT] = {
    "stage=\"outbox_to_relay\"",  "stage=\"produce_to_ack\"",    "stage=\"produce_to_fetch\"",
    "stage=\"fetch_to_applied\"", "stage=\"applied_to_commit\"",
};

static const double buckets[] = {0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02,
                                 0.03,   0.05,  0.075, 0.1,   0.2,   0.5,    1,    2,     5};

void cv_stage_observe(enum cv_stage stage, int64_t from_ms, int64_t to_ms)
{
    if ((unsigned)stage >= CV_STAGE_COUNT)
        return;
    /* Registration is idempotent and takes the registry's mutex: cheap next to a hop. */
    struct cv_histogram *h = cv_metrics_histogram(
        "pipeline_stage_seconds", "Latency of one event through one hop of the pipeline, by stage",
        stage_labels[stage], buckets, sizeof(buckets) / sizeof(buckets[0]));
    int64_t ms = to_ms - from_ms;
    cv_histogram_observe(h, ms > 0 ? (double)ms / 1000.0 : 0.0);
}
