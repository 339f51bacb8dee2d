#!/usr/bin/env bash
# A real schema registry on 127.0.0.1: Apicurio Registry, run from its own distribution
# (the Quarkus application fetched from Maven Central with Maven) on in-memory storage, with
# its Confluent-compatible API under /apis/ccompat/v7. For development, tests and CI. The
# storage is lost when it stops: a restarted registry hands out ids anew (see README).
#
# Usage:
#   registry.sh fetch            fetch the distribution once (Maven, quiet)
#   registry.sh start            start a registry; prints REGISTRY_DIR=... on stdout
#   registry.sh stop [DIR]       stop the registry of DIR (default $REGISTRY_DIR)
#
#   eval "$(deploy/local/registry.sh start)" && export REGISTRY_DIR
#   SCHEMA_REGISTRY_URL=http://127.0.0.1:8081/apis/ccompat/v7 build/bin/order-service
#   deploy/local/registry.sh stop
#
# Environment (defaults in brackets):
#   REGISTRY_VERSION         Apicurio Registry version [3.3.3]
#   REGISTRY_PORT            HTTP port on 127.0.0.1 [8081]
#   REGISTRY_DIR             run directory: registry.pid, registry.log
#                            [a fresh temporary directory, removed by stop]
#   REGISTRY_HEAP            heap [-Xmx384m]
#   REGISTRY_JAVA            java of version 21 or newer [the first found: java on PATH,
#                            $JAVA_HOME, /usr/lib/jvm/*]
#   REGISTRY_START_TIMEOUT   seconds to wait for the API to answer [120]
#   REGISTRY_STOP_TIMEOUT    seconds to wait after SIGTERM before SIGKILL [20]
#   CONVEYOR_CACHE           where the distribution is kept [~/.cache/conveyor]
#
# Requires java 21+ (Apicurio Registry 3.x is built for it), mvn (first fetch only), curl.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/local/lib.sh
. "$here/lib.sh"

REGISTRY_VERSION=${REGISTRY_VERSION:-3.3.3}
REGISTRY_PORT=${REGISTRY_PORT:-8081}
REGISTRY_HEAP=${REGISTRY_HEAP:--Xmx384m}
REGISTRY_START_TIMEOUT=${REGISTRY_START_TIMEOUT:-120}
REGISTRY_STOP_TIMEOUT=${REGISTRY_STOP_TIMEOUT:-20}

cache=${CONVEYOR_CACHE:-$HOME/.cache/conveyor}
home=$cache/apicurio-registry-$REGISTRY_VERSION
app=$home/app
artifact=io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all

# For lib.sh.
server=registry pid_file=registry.pid log_file=registry.log dir_var=REGISTRY_DIR
stop_timeout=$REGISTRY_STOP_TIMEOUT
commands=(fetch)

[[ $REGISTRY_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+(\.Final)?$ ]] || die "bad REGISTRY_VERSION: $REGISTRY_VERSION"
numbers REGISTRY_PORT REGISTRY_START_TIMEOUT REGISTRY_STOP_TIMEOUT

# ---------------------------------------------------------------- fetch
# The registry's Maven artifact is a library; what runs is its attached distribution
# (classifier "all"): a Quarkus fast-jar tree with quarkus-run.jar and lib/.
fetch() {
    [[ -f $app/.complete ]] && return 0
    command -v mvn >/dev/null || die "mvn not found: needed once to fetch Apicurio Registry $REGISTRY_VERSION"
    mkdir -p "$home"
    exec 9>"$home/.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if [[ ! -f $app/.complete ]]; then
        local partial=$home/app.partial dl=$home/download
        log "fetching Apicurio Registry $REGISTRY_VERSION with Maven into $app"
        rm -rf "$partial" "$dl"
        mkdir -p "$partial" "$dl"
        if ! mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
                "-Dartifact=$artifact" "-DoutputDirectory=$dl" 2>&1 | sed 's/\x1b\[0m//g' >&2; then
            rm -rf "$partial" "$dl"
            die "Maven could not fetch $artifact"
        fi
        tar -xzf "$dl"/*.tar.gz -C "$partial" || die "cannot unpack the registry distribution"
        rm -rf "$dl"
        [[ -f $partial/quarkus-run.jar ]] || die "fetch incomplete: no quarkus-run.jar in $partial"
        touch "$partial/.complete"
        rm -rf "$app"
        mv "$partial" "$app"
    fi
    exec 9>&-
}

# ---------------------------------------------------------------- java
java_major() { # $1: a java binary; prints its feature version
    "$1" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}

find_java() {
    local candidates=() j m
    if [[ -n ${REGISTRY_JAVA:-} ]]; then
        m=$(java_major "$REGISTRY_JAVA") || true
        [[ ${m:-0} -ge 21 ]] || die "REGISTRY_JAVA=$REGISTRY_JAVA is not Java 21 or newer"
        echo "$REGISTRY_JAVA"
        return
    fi
    command -v java >/dev/null && candidates+=("$(command -v java)")
    [[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME/bin/java")
    for j in /usr/lib/jvm/*/bin/java; do [[ -x $j ]] && candidates+=("$j"); done
    for j in "${candidates[@]}"; do
        m=$(java_major "$j" 2>/dev/null) || continue
        if [[ ${m:-0} -ge 21 ]]; then echo "$j"; return; fi
    done
    die "no Java 21 or newer found (Apicurio Registry 3.x needs it): set REGISTRY_JAVA"
}

# ---------------------------------------------------------------- start
# The registry of run directory $1: its command line names the directory.
server_pid() { owned_pid "$1/registry.pid" "-Dconveyor.registry.dir=$1 "; }

server_ready() {
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects"
}

start() {
    command -v curl >/dev/null || die "curl not found (used to tell when the registry is ready)"
    local java
    java=$(find_java)
    fetch
    open_run_dir registry
    port_in_use "$REGISTRY_PORT" && start_failed "port $REGISTRY_PORT on 127.0.0.1 is already in use"

    local heap t0=$SECONDS
    read -r -a heap <<<"$REGISTRY_HEAP"
    rm -f "$run_dir/registry.pid"
    trap 'start_failed "interrupted"' INT TERM
    # In-memory (H2) storage is the default. The management interface (health, metrics) would
    # listen on 0.0.0.0:9000: keep it on loopback, on a port the kernel picks.
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$1"; cd "$2" || exit 1; shift 2; exec "$@"' registry \
        "$run_dir/registry.pid" "$app" "$java" "${heap[@]}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError \
        "-Dconveyor.registry.dir=$run_dir" \
        -Dquarkus.http.host=127.0.0.1 "-Dquarkus.http.port=$REGISTRY_PORT" \
        -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port=0 \
        -jar quarkus-run.jar </dev/null >>"$run_dir/registry.log" 2>&1 &

    wait_ready "$REGISTRY_START_TIMEOUT"
    trap - INT TERM
    log "Apicurio Registry $REGISTRY_VERSION ready on http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7 after $((SECONDS - t0))s (pid $(<"$run_dir/registry.pid"), log $run_dir/registry.log)"
    printf 'REGISTRY_DIR=%q\n' "$run_dir"
}

main "$@"
