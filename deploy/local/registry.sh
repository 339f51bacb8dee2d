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

prog=${0##*/}

REGISTRY_VERSION=${REGISTRY_VERSION:-3.3.3}
REGISTRY_PORT=${REGISTRY_PORT:-8081}
REGISTRY_HEAP=${REGISTRY_HEAP:--Xmx384m}
REGISTRY_START_TIMEOUT=${REGISTRY_START_TIMEOUT:-120}
REGISTRY_STOP_TIMEOUT=${REGISTRY_STOP_TIMEOUT:-20}

cache=${CONVEYOR_CACHE:-$HOME/.cache/conveyor}
home=$cache/apicurio-registry-$REGISTRY_VERSION
app=$home/app
temp_marker=.conveyor-temp-dir
artifact=io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; exit 2; }

[[ $REGISTRY_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+(\.Final)?$ ]] || die "bad REGISTRY_VERSION: $REGISTRY_VERSION"
for v in REGISTRY_PORT REGISTRY_START_TIMEOUT REGISTRY_STOP_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number, not '${!v}'"
done

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
registry_pid() {
    local dir=$1 pid
    [[ -f $dir/registry.pid ]] || return 1
    pid=$(<"$dir/registry.pid")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
    # Never signal a recycled pid: it must be the registry of this directory.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-Dconveyor.registry.dir=$dir " || return 1
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
    echo "$pid"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

registry_ready() {
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects"
}

start_failed() {
    log "$1"
    if [[ -f $run_dir/registry.log ]]; then
        log "last lines of $run_dir/registry.log:"
        tail -n 30 "$run_dir/registry.log" >&2
    fi
    local pid
    if pid=$(registry_pid "$run_dir"); then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$run_dir/registry.pid"
    if (( made_temp )); then rm -rf "$run_dir"; fi
    exit 1
}

start() {
    command -v curl >/dev/null || die "curl not found (used to tell when the registry is ready)"
    local java
    java=$(find_java)
    fetch
    made_temp=0
    if [[ -n ${REGISTRY_DIR:-} ]]; then
        mkdir -p "$REGISTRY_DIR"
        run_dir=$(cd "$REGISTRY_DIR" && pwd)
    else
        run_dir=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-registry.XXXXXX")
        made_temp=1
        touch "$run_dir/$temp_marker"
    fi
    local pid
    if pid=$(registry_pid "$run_dir"); then
        die "a registry already runs from $run_dir (pid $pid)"
    fi
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

    local deadline=$((SECONDS + REGISTRY_START_TIMEOUT))
    until [[ -s $run_dir/registry.pid ]] && registry_pid "$run_dir" >/dev/null && registry_ready; do
        if [[ -s $run_dir/registry.pid ]] && ! registry_pid "$run_dir" >/dev/null; then
            start_failed "the registry exited during start-up"
        fi
        (( SECONDS < deadline )) || start_failed "the registry did not answer within ${REGISTRY_START_TIMEOUT}s"
        sleep 0.5
    done
    trap - INT TERM
    log "Apicurio Registry $REGISTRY_VERSION ready on http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7 after $((SECONDS - t0))s (pid $(<"$run_dir/registry.pid"), log $run_dir/registry.log)"
    printf 'REGISTRY_DIR=%q\n' "$run_dir"
}

# ---------------------------------------------------------------- stop
stop() {
    local dir=${1:-${REGISTRY_DIR:-}} pid
    [[ -n $dir ]] || die "stop: no run directory (set REGISTRY_DIR or pass it)"
    if [[ ! -d $dir ]]; then
        log "nothing to stop: $dir does not exist"
        return 0
    fi
    dir=$(cd "$dir" && pwd)
    if pid=$(registry_pid "$dir"); then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + REGISTRY_STOP_TIMEOUT))
        while registry_pid "$dir" >/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
        if registry_pid "$dir" >/dev/null; then
            log "registry (pid $pid) still running after ${REGISTRY_STOP_TIMEOUT}s: SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
            while registry_pid "$dir" >/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
            registry_pid "$dir" >/dev/null && die "could not stop pid $pid"
        fi
        log "stopped the registry of $dir"
    fi
    rm -f "$dir/registry.pid"
    if [[ -f $dir/$temp_marker ]]; then rm -rf "$dir"; fi
}

# ---------------------------------------------------------------- main
(( $# >= 1 )) || usage
cmd=$1
shift
case $cmd in
    fetch) fetch ;;
    start) (( $# == 0 )) || usage; start ;;
    stop) (( $# <= 1 )) || usage; stop "$@" ;;
    -h|--help|help) usage ;;
    *) usage ;;
esac
