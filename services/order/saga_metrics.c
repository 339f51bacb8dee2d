/* Saga latency: how long an order takes from OrderPlaced to each later status. Observed when
 * the status changes, inside the transaction that changes it (a batch rolled back and retried
 * observes again; rare, and it only errs towards slower). */
#include "order.h"

#include "cv/metrics.h"

void order_saga_observe(const char *status, double seconds)
{
    static const double buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                     2.5,  5,     10,   30,  60,   120, 300};
    char labels[64] = "";
    if (cv_metrics_label_append(labels, sizeof(labels), "status", status) < 0)
        return;
    cv_histogram_observe(
        cv_metrics_histogram("order_saga_seconds",
                             "Time from OrderPlaced to the order reaching the status", labels,
                             buckets, sizeof(buckets) / sizeof(buckets[0])),
        seconds < 0 ? 0 : seconds);
}
