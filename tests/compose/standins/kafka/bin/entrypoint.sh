#!/bin/bash
# Entry point of the Kafka stand-in, after the official image's: when KAFKA_* variables are set
# they alone make server.properties (KAFKA_FOO_BAR -> foo.bar, __ -> _, ___ -> -), except
# those that configure the JVM; an unformatted log directory is formatted with CLUSTER_ID; then
# the command runs (the broker by default).
set -euo pipefail
conf=/opt/kafka/config/server.properties
# The official image's exclusions (and this image's own KAFKA_TOOL_HEAP_OPTS).
jvm_vars=' KAFKA_VERSION KAFKA_HEAP_OPTS KAFKA_LOG4J_OPTS KAFKA_OPTS KAFKA_JMX_OPTS
    KAFKA_JVM_PERFORMANCE_OPTS KAFKA_GC_LOG_OPTS KAFKA_LOG4J_ROOT_LOGLEVEL KAFKA_LOG4J_LOGGERS
    KAFKA_TOOLS_LOG4J_LOGLEVEL KAFKA_TOOL_HEAP_OPTS '
: >"$conf"
while IFS='=' read -r name _; do
    case $name in KAFKA_*) ;; *) continue ;; esac
    case $jvm_vars in *[[:space:]]"$name"[[:space:]]*) continue ;; esac
    key=${name#KAFKA_}
    key=${key,,}
    key=${key//___/-}
    key=${key//__/@}
    key=${key//_/.}
    key=${key//@/_}
    printf '%s=%s\n' "$key" "${!name}" >>"$conf"
done < <(env)

if [ "${1:-}" = /opt/kafka/bin/kafka-server-start.sh ]; then
    log_dirs=$(sed -n 's/^log\.dirs=//p' "$conf")
    first=${log_dirs%%,*}
    if [ ! -f "${first:-/var/lib/kafka/data}/meta.properties" ]; then
        : "${CLUSTER_ID:?CLUSTER_ID is needed to format an empty log directory}"
        /opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$CLUSTER_ID" -c "$conf"
    fi
fi
exec "$@"
