#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, broker + controller in one JVM) on
# 127.0.0.1, run from Apache Kafka's own jars fetched from Maven Central with
# Maven: no Docker, no tarball. For development, tests and CI.
#
# Usage:
#   kafka.sh fetch                  fetch the jars once (Maven, quiet)
#   kafka.sh start                  start a broker; prints KAFKA_DIR=... on stdout
#   kafka.sh topics NAME...         create topics (idempotent)
#   kafka.sh tool NAME [ARGS...]    run a Kafka CLI tool from the same jars
#   kafka.sh stop [DIR]             stop the broker of DIR (default $KAFKA_DIR)
#
#   eval "$(deploy/local/kafka.sh start)" && export KAFKA_DIR
#   deploy/local/kafka.sh topics orders inventory shipments
#   deploy/local/kafka.sh tool consumer-groups --bootstrap-server 127.0.0.1:9092 \
#       --describe --group inventory
#   deploy/local/kafka.sh stop
#
# Tools: topics, console-consumer, console-producer, consumer-groups, configs,
# get-offsets, producer-perf-test, consumer-perf-test, metadata-quorum, and
# avro-console-consumer: the console consumer with Apicurio Registry's Avro
# deserializer, printing registry-mode values as JSON (pass the registry's
# --formatter-property value.deserializer.apicurio.registry.url=.../apis/registry/v3).
#
# Environment (defaults in brackets):
#   KAFKA_VERSION          Apache Kafka version [4.4.0, see docs/kafka-version.md]
#   KAFKA_PORT             client listener on 127.0.0.1 [9092]
#   KAFKA_CONTROLLER_PORT  KRaft controller listener [9093]
#   KAFKA_DIR              run directory: server.properties, kafka.pid, kafka.log,
#                          data/ [a fresh temporary directory, removed by stop]
#                          An existing formatted DIR is started again as it is.
#   KAFKA_HEAP             broker heap [-Xmx384m -Xms384m]
#   KAFKA_PARTITIONS       partitions of new topics [6]
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to answer [60]
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL [20]
#   APICURIO_SERDE_VERSION the Avro deserializer's version [3.1.7]
#   CONVEYOR_CACHE         where jars are kept [~/.cache/conveyor]
#   KAFKA_SECURITY         plaintext, or sasl_ssl: the client listener on
#                          KAFKA_PORT then takes only TLS with SASL/SCRAM-SHA-512
#                          (the broker talks to itself through it too) [plaintext]
#   KAFKA_SSL_KEYSTORE     sasl_ssl: PEM file, the broker's unencrypted PKCS#8 key
#                          then its certificate (valid for 127.0.0.1)
#   KAFKA_SSL_CA           sasl_ssl: PEM file of the CA that clients trust
#   KAFKA_SCRAM_USERS      sasl_ssl: file of "user password" lines, created as
#                          SCRAM-SHA-512 users when the storage is formatted; the
#                          first is the broker's own. start writes client.properties
#                          (librdkafka, kcat -F) and client-java.properties (the
#                          tools' --command-config) for that user into KAFKA_DIR.
#
# Requires java (17+), mvn (first fetch only) and kcat (readiness check).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/local/lib.sh
. "$here/lib.sh"

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}  # keep in step with pom.xml
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP=${KAFKA_HEAP:--Xmx384m -Xms384m}
KAFKA_PARTITIONS=${KAFKA_PARTITIONS:-6}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-20}
KAFKA_SECURITY=${KAFKA_SECURITY:-plaintext}

cache=${CONVEYOR_CACHE:-$HOME/.cache/conveyor}
kafka_home=$cache/kafka-$KAFKA_VERSION
libs=$kafka_home/libs
APICURIO_SERDE_VERSION=${APICURIO_SERDE_VERSION:-3.1.7}  # keep in step with kafka/serde-pom.xml
serde_libs=$cache/apicurio-serde-$APICURIO_SERDE_VERSION/libs
major=${KAFKA_VERSION%%.*}
minor=${KAFKA_VERSION#*.}
minor=${minor%%.*}
# For lib.sh.
server=broker pid_file=kafka.pid log_file=kafka.log dir_var=KAFKA_DIR
stop_timeout=$KAFKA_STOP_TIMEOUT
commands=(fetch topics tool)

[[ $KAFKA_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "bad KAFKA_VERSION: $KAFKA_VERSION"
numbers KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_PARTITIONS KAFKA_START_TIMEOUT KAFKA_STOP_TIMEOUT

case $KAFKA_SECURITY in
    plaintext) ;;
    sasl_ssl)
        for v in KAFKA_SSL_KEYSTORE KAFKA_SSL_CA KAFKA_SCRAM_USERS; do
            [[ -n ${!v:-} && -r ${!v} ]] || die "KAFKA_SECURITY=sasl_ssl needs $v, a readable file"
        done ;;
    *) die "KAFKA_SECURITY must be plaintext or sasl_ssl, not '$KAFKA_SECURITY'" ;;
esac

# Logging: Kafka 3.x logs through log4j 1 (reload4j), 4.x through log4j 2.
log_opt() { # $1: broker | tools
    local name=log4j.properties
    [[ $1 == tools ]] && name=tools-$name
    if (( major >= 4 )); then
        printf '%s' "-Dlog4j2.configurationFile=$here/kafka/${name/log4j/log4j2}"
    else
        printf '%s' "-Dlog4j.configuration=file:$here/kafka/$name"
    fi
}

# ---------------------------------------------------------------- fetch
fetch() {
    if [[ -f $libs/.complete ]]; then fetch_serde; return 0; fi
    command -v mvn >/dev/null || die "mvn not found: needed once to fetch Kafka $KAFKA_VERSION"
    mkdir -p "$kafka_home"
    # Concurrent fetches (parallel test runs) wait for each other.
    exec 9>"$kafka_home/.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if [[ ! -f $libs/.complete ]]; then
        local partial=$kafka_home/libs.partial
        local args=(-q -B -f "$here/pom.xml" "-Dkafka.version=$KAFKA_VERSION"
                    "-Dkafka.cache=$cache" "-Dkafka.libs.dir=$partial")
        (( major >= 4 )) || args+=(-Dkafka.logging=log4j1)
        log "fetching Apache Kafka $KAFKA_VERSION with Maven into $libs"
        rm -rf "$partial"
        # (Maven 3.8 prints stray colour resets even in batch mode: drop them.)
        if ! mvn "${args[@]}" 2>&1 | sed 's/\x1b\[0m//g' >&2; then
            rm -rf "$partial"
            die "Maven could not fetch Apache Kafka $KAFKA_VERSION"
        fi
        [[ -f $partial/kafka_2.13-$KAFKA_VERSION.jar ]] || die "fetch incomplete: $partial"
        touch "$partial/.complete"
        rm -rf "$libs"
        mv "$partial" "$libs"
    fi
    exec 9>&-
    fetch_serde
}

# The Avro deserializer of avro-console-consumer, in a directory of its own so that the broker's
# classpath stays Kafka's.
fetch_serde() {
    [[ -f $serde_libs/.complete ]] && return 0
    local partial=$serde_libs.partial
    mkdir -p "${serde_libs%/*}"
    exec 8>"${serde_libs%/*}/.lock"
    if command -v flock >/dev/null; then flock 8; fi
    if [[ ! -f $serde_libs/.complete ]]; then
        log "fetching Apicurio's Avro deserializer $APICURIO_SERDE_VERSION with Maven into $serde_libs"
        rm -rf "$partial"
        if ! mvn -q -B -f "$here/kafka/serde-pom.xml" "-Dserde.version=$APICURIO_SERDE_VERSION" \
                "-Dserde.cache=$cache" "-Dserde.libs.dir=$partial" 2>&1 | sed 's/\x1b\[0m//g' >&2; then
            rm -rf "$partial"
            die "Maven could not fetch Apicurio's Avro deserializer $APICURIO_SERDE_VERSION"
        fi
        touch "$partial/.complete"
        rm -rf "$serde_libs"
        mv "$partial" "$serde_libs"
    fi
    exec 8>&-
}

# ---------------------------------------------------------------- java
java_base=(java -Djava.awt.headless=true)

# The main class of a tool name: some moved from core to kafka-tools over time.
tool_class() {
    case $1 in
        topics)             echo org.apache.kafka.tools.TopicCommand ;;
        console-consumer|avro-console-consumer)
                            echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
        console-producer)
            if (( major >= 4 )); then echo org.apache.kafka.tools.ConsoleProducer
            else echo kafka.tools.ConsoleProducer; fi ;;
        consumer-groups)    echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
        configs)
            if (( major > 4 || (major == 4 && minor >= 4) )); then echo org.apache.kafka.tools.ConfigCommand
            else echo kafka.admin.ConfigCommand; fi ;;
        get-offsets)        echo org.apache.kafka.tools.GetOffsetShell ;;
        producer-perf-test) echo org.apache.kafka.tools.ProducerPerformance ;;
        consumer-perf-test) echo org.apache.kafka.tools.ConsumerPerformance ;;
        metadata-quorum)    echo org.apache.kafka.tools.MetadataQuorumCommand ;;
        *) return 1 ;;
    esac
}

# JVM options of a tool: short-lived admin tools start faster with C1 only and
# the serial GC; the perf tools keep the full JIT so they measure Kafka, not us.
tool_jvm_opts() {
    local opts=(-Xmx256m "$(log_opt tools)")
    # log4j 2 otherwise may warn on stderr that it cannot add its hook at exit.
    (( major >= 4 )) && opts+=(-Dlog4j2.shutdownHookEnabled=false)
    case $1 in
        *-perf-test) ;;
        *) opts+=(-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto) ;;
    esac
    printf '%s\n' "${opts[@]}"
}

tool() {
    (( $# >= 1 )) || usage
    local name=$1 cls
    shift
    cls=$(tool_class "$name") || die "unknown tool '$name' (topics, console-consumer, avro-console-consumer, console-producer, consumer-groups, configs, get-offsets, producer-perf-test, consumer-perf-test, metadata-quorum)"
    fetch
    local opts cp="$libs/*"
    mapfile -t opts < <(tool_jvm_opts "$name")
    if [[ $name == avro-console-consumer ]]; then
        # The deserializer's own jars (Jackson, Avro) first: it was built against those.
        cp="$serde_libs/*:$libs/*"
        set -- --formatter-property \
            value.deserializer=io.apicurio.registry.serde.avro.AvroKafkaDeserializer "$@"
    fi
    exec "${java_base[@]}" "${opts[@]}" -cp "$cp" "$cls" "$@"
}

# ---------------------------------------------------------------- start
server_pid() { owned_pid "$1/kafka.pid" "kafka.Kafka $1/server.properties"; }

# A Kafka cluster id: 16 random bytes, base64url without padding, not
# starting with '-' (it would read as an option).
cluster_id() {
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        [[ $id == -* ]] || break
    done
    echo "$id"
}

server_ready() {
    local auth=()
    [[ $KAFKA_SECURITY == sasl_ssl ]] && auth=(-F "$run_dir/client.properties")
    kcat "${auth[@]}" -b "127.0.0.1:$KAFKA_PORT" -L -m 2 2>/dev/null | grep -q 'broker 1 at'
}

# sasl_ssl: the listener's settings appended to server.properties, the SCRAM users
# given to the storage format, and the client configurations of the first user.
scram_args=()
secure_conf() {
    local user password first_user='' first_password='' abs_ks abs_ca
    abs_ks=$(cd "$(dirname "$KAFKA_SSL_KEYSTORE")" && pwd)/${KAFKA_SSL_KEYSTORE##*/}
    abs_ca=$(cd "$(dirname "$KAFKA_SSL_CA")" && pwd)/${KAFKA_SSL_CA##*/}
    while read -r user password _; do
        [[ -n $user && $user != \#* ]] || continue
        [[ $user =~ ^[A-Za-z0-9._-]+$ && $password =~ ^[A-Za-z0-9._~+-]+$ ]] ||
            die "KAFKA_SCRAM_USERS: user names and passwords of letters, digits and ._~+- only"
        scram_args+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$password]")
        if [[ -z $first_user ]]; then first_user=$user; first_password=$password; fi
    done <"$KAFKA_SCRAM_USERS"
    [[ -n $first_user ]] || die "KAFKA_SCRAM_USERS: no user in $KAFKA_SCRAM_USERS"
    conf=${conf//PLAINTEXT:\/\/127.0.0.1:$KAFKA_PORT/SASL_SSL:\/\/127.0.0.1:$KAFKA_PORT}
    conf=${conf//inter.broker.listener.name=PLAINTEXT/inter.broker.listener.name=SASL_SSL}
    conf=${conf//listener.security.protocol.map=PLAINTEXT:PLAINTEXT,/listener.security.protocol.map=SASL_SSL:SASL_SSL,}
    conf+="
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$first_user\" password=\"$first_password\";
ssl.keystore.type=PEM
ssl.keystore.location=$abs_ks
ssl.truststore.type=PEM
ssl.truststore.location=$abs_ca
ssl.endpoint.identification.algorithm=https"
    (umask 077
     printf '%s\n' security.protocol=SASL_SSL sasl.mechanisms=SCRAM-SHA-512 \
         "sasl.username=$first_user" "sasl.password=$first_password" \
         "ssl.ca.location=$abs_ca" >"$run_dir/client.properties"
     printf '%s\n' security.protocol=SASL_SSL sasl.mechanism=SCRAM-SHA-512 \
         "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$first_user\" password=\"$first_password\";" \
         ssl.truststore.type=PEM "ssl.truststore.location=$abs_ca" >"$run_dir/client-java.properties")
}

start() {
    command -v java >/dev/null || die "java not found (Java 17 or newer is needed)"
    command -v kcat >/dev/null || die "kcat not found (used to tell when the broker is ready)"
    fetch
    open_run_dir kafka
    for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        port_in_use "$port" && start_failed "port $port on 127.0.0.1 is already in use"
    done

    local conf
    conf=$(<"$here/kafka/server.properties.in")
    conf=${conf//@KAFKA_DIR@/$run_dir}
    conf=${conf//@KAFKA_PORT@/$KAFKA_PORT}
    conf=${conf//@KAFKA_CONTROLLER_PORT@/$KAFKA_CONTROLLER_PORT}
    conf=${conf//@KAFKA_PARTITIONS@/$KAFKA_PARTITIONS}
    if (( major >= 4 )); then
        conf+=$'\n'"share.coordinator.state.topic.replication.factor=1"
        conf+=$'\n'"share.coordinator.state.topic.min.isr=1"
    fi
    [[ $KAFKA_SECURITY == sasl_ssl ]] && secure_conf
    (umask 077; printf '%s\n' "$conf" >"$run_dir/server.properties")

    local t0=$SECONDS
    trap 'start_failed "interrupted"' INT TERM
    # The format prints the bootstrap records: the SCRAM users' salted keys stay out of the log.
    if [[ ! -f $run_dir/data/meta.properties ]]; then
        if ! "${java_base[@]}" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "$(log_opt tools)" \
                -cp "$libs/*" kafka.tools.StorageTool format -t "$(cluster_id)" \
                -c "$run_dir/server.properties" "${scram_args[@]}" 2>&1 |
                sed 's/UserScramCredentialRecord([^)]*)/UserScramCredentialRecord(...)/g' \
                >>"$run_dir/kafka.log"; then
            start_failed "formatting the storage failed"
        fi
    fi

    local heap
    read -r -a heap <<<"$KAFKA_HEAP"
    rm -f "$run_dir/kafka.pid"
    # setsid: the broker leads its own session and process group, so stop can
    # signal the group; the inner shell writes the pid and becomes the JVM.
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka "$run_dir/kafka.pid" \
        "${java_base[@]}" -server "${heap[@]}" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
        "$(log_opt broker)" -Dkafka.logs.dir="$run_dir" \
        -cp "$libs/*" kafka.Kafka "$run_dir/server.properties" \
        </dev/null >>"$run_dir/kafka.log" 2>&1 &

    wait_ready "$KAFKA_START_TIMEOUT"
    trap - INT TERM
    log "Kafka $KAFKA_VERSION ($KAFKA_SECURITY) ready on 127.0.0.1:$KAFKA_PORT after $((SECONDS - t0))s (pid $(<"$run_dir/kafka.pid"), log $run_dir/kafka.log)"
    printf 'KAFKA_DIR=%q\n' "$run_dir"
}

# ---------------------------------------------------------------- topics
topics() {
    (( $# >= 1 )) || usage
    fetch
    # One JVM per topic (TopicCommand creates one at a time): run them side by side.
    local command_config=()
    if [[ $KAFKA_SECURITY == sasl_ssl ]]; then
        [[ -n ${KAFKA_DIR:-} ]] || die "topics: KAFKA_SECURITY=sasl_ssl needs KAFKA_DIR"
        command_config=(--command-config "$KAFKA_DIR/client-java.properties")
    fi
    local out name i=0 rc=0
    local pids=()
    out=$(mktemp -d)
    for name; do
        (tool topics --bootstrap-server "127.0.0.1:$KAFKA_PORT" "${command_config[@]}" \
            --create --if-not-exists \
            --topic "$name" --partitions "$KAFKA_PARTITIONS" --replication-factor 1) \
            >"$out/$i" 2>&1 &
        pids+=($!)
        i=$((i + 1))
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || rc=1
        cat "$out/$i" >&2
    done
    rm -rf "$out"
    (( rc == 0 )) || die "could not create all topics"
}

main "$@"
