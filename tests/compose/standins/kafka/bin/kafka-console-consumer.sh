#!/bin/bash
# Kafka's kafka-console-consumer.sh: org.apache.kafka.tools.consumer.ConsoleConsumer.
export KAFKA_HEAP_OPTS=${KAFKA_TOOL_HEAP_OPTS:--Xmx256m}
export KAFKA_JVM_PERFORMANCE_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.consumer.ConsoleConsumer "$@"
