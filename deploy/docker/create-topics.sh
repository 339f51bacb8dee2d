#!/bin/bash
# Creates Conveyor's seven topics if they are missing: the event topics orders, inventory and
# shipments, and the dead-letter topics order.dlq, inventory.dlq, shipping.dlq and audit.dlq.
# Idempotent (--if-not-exists); an existing topic is left as it is, even with another partition
# count: adding partitions moves keys to other partitions and would break the per-order ordering
# of events still in flight, so that stays a deliberate, manual step (kafka-topics.sh --alter).
# Run by the one-shot `topics` service of docker-compose.yml in the apache/kafka image; works
# anywhere Kafka's command-line tools are.
#   BOOTSTRAP_SERVERS         broker to talk to [kafka:19092]
#   TOPIC_PARTITIONS          partitions of each topic [6]; bounds the replicas of a consumer
#   TOPIC_REPLICATION_FACTOR  replicas of each partition [1]
#   KAFKA_BIN                 directory of kafka-topics.sh [/opt/kafka/bin]
set -euo pipefail

bootstrap=${BOOTSTRAP_SERVERS:-kafka:19092}
partitions=${TOPIC_PARTITIONS:-6}
replication=${TOPIC_REPLICATION_FACTOR:-1}
kafka_topics=${KAFKA_BIN:-/opt/kafka/bin}/kafka-topics.sh
topics=(orders inventory shipments order.dlq inventory.dlq shipping.dlq audit.dlq)

# The broker reports healthy before it may accept admin requests: retry the first one.
existing=
for attempt in $(seq 1 30); do
    if existing=$("$kafka_topics" --bootstrap-server "$bootstrap" --list 2>/dev/null); then
        break
    fi
    if [ "$attempt" -eq 30 ]; then
        echo "topics: the broker at $bootstrap does not answer" >&2
        exit 1
    fi
    sleep 2
done

for topic in "${topics[@]}"; do
    if grep -qxF -- "$topic" <<<"$existing"; then
        echo "topics: $topic exists"
        continue
    fi
    "$kafka_topics" --bootstrap-server "$bootstrap" --create --if-not-exists --topic "$topic" \
        --partitions "$partitions" --replication-factor "$replication"
done

# One line per topic with its partition count; a warning where it differs from the request.
"$kafka_topics" --bootstrap-server "$bootstrap" --describe \
    --topic 'orders|inventory|shipments|order\.dlq|inventory\.dlq|shipping\.dlq|audit\.dlq' |
    awk -v want="$partitions" '
        $1 == "Topic:" && /PartitionCount:/ {
            for (i = 1; i < NF; i++) if ($i == "PartitionCount:") n = $(i + 1)
            printf "topics: %s: %s partitions%s\n", $2, n,
                (n == want ? "" : " (TOPIC_PARTITIONS is " want "; left unchanged)")
        }'
