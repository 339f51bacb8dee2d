#!/bin/bash
# kafka-run-class.sh CLASS [ARGS...]: a Kafka main class on the jars of /opt/kafka/libs.
# KAFKA_HEAP_OPTS, KAFKA_OPTS and KAFKA_LOG4J_OPTS as in Kafka's own script.
set -eu
class=$1
shift
heap=${KAFKA_HEAP_OPTS:--Xmx256m}
log4j=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.properties}
# shellcheck disable=SC2086
exec java -Djava.awt.headless=true $heap ${KAFKA_JVM_PERFORMANCE_OPTS:-} $log4j ${KAFKA_OPTS:-} \
    -cp '/opt/kafka/libs/*' "$class" "$@"
