#!/usr/bin/env bash
# Sourced by tests/compose/run.sh: a Docker engine and the images the compose test needs, on a
# machine where no image registry may be reachable.
#   engine_start       uses the engine that answers, or starts dockerd (engine_stop stops only
#                      one started here)
#   base_images        debian:bookworm and debian:bookworm-slim: pulled if possible, otherwise
#                      made with debootstrap from the Debian mirror of this machine's apt
#                      configuration; kept by the engine, so made once
#   standin_images     images that stand in for apache/kafka, postgres and nginx
#                      (tests/compose/standins/), built from Debian packages and Kafka's jars
# Needs: log (a function printing one line) from the caller.

COMPOSE_DIR=${COMPOSE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
ENGINE_STARTED_PID=
ENGINE_LOG=
# The classic builder: the Debian engine needs no buildx plugin for it, and docker-compose 1.29
# builds with it too.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

engine_start() {
    if docker info >/dev/null 2>&1; then
        log "engine: using the running Docker engine ($(docker version -f '{{.Server.Version}}'))"
        return 0
    fi
    command -v dockerd >/dev/null || { log "engine: no engine answers and dockerd is missing"; return 1; }
    ENGINE_LOG=$(mktemp "${TMPDIR:-/tmp}/conveyor-dockerd.XXXXXX")
    dockerd --host unix:///var/run/docker.sock >"$ENGINE_LOG" 2>&1 &
    ENGINE_STARTED_PID=$!
    local i
    for i in $(seq 1 120); do
        if docker info >/dev/null 2>&1; then
            log "engine: started dockerd (pid $ENGINE_STARTED_PID, log $ENGINE_LOG) in $((i / 2)) s"
            return 0
        fi
        if ! kill -0 "$ENGINE_STARTED_PID" 2>/dev/null; then
            log "engine: dockerd exited; its log:"
            tail -n 30 "$ENGINE_LOG" >&2
            ENGINE_STARTED_PID=
            return 1
        fi
        sleep 0.5
    done
    log "engine: dockerd did not answer within 60 s"
    return 1
}

engine_stop() {
    [ -n "$ENGINE_STARTED_PID" ] || return 0
    kill -TERM "$ENGINE_STARTED_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 60); do
        kill -0 "$ENGINE_STARTED_PID" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL "$ENGINE_STARTED_PID" 2>/dev/null || true
    wait "$ENGINE_STARTED_PID" 2>/dev/null || true
    log "engine: stopped the dockerd started here"
    rm -f "$ENGINE_LOG"
    ENGINE_STARTED_PID=
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror this machine's apt uses for bookworm (deb822 .sources or one-line lists).
debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'BEGIN { RS = ""; IGNORECASE = 1 }
            /Suites:[^\n]*bookworm([ \n]|$)/ && !/Enabled: *no/ {
                if (match($0, /URIs: *[^ \n]+/)) {
                    u = substr($0, RSTART, RLENGTH); sub(/URIs: */, "", u)
                    if (u !~ /security/) { print u; exit }
                }
            }' "$f"
    done
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
        awk '$1 == "deb" && $0 ~ / bookworm / && $0 !~ /security/ {
            for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }'
}

base_images() {
    if image_exists debian:bookworm && image_exists debian:bookworm-slim; then
        log "base: debian:bookworm present"
        return 0
    fi
    if docker pull -q debian:bookworm >/dev/null 2>&1 && docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
        log "base: pulled debian:bookworm and debian:bookworm-slim"
        return 0
    fi
    command -v debootstrap >/dev/null || { log "base: no registry and no debootstrap"; return 1; }
    local mirror rootfs
    mirror=$(debian_mirror | head -n 1) || true
    [ -n "$mirror" ] || { log "base: no bookworm mirror in the apt configuration"; return 1; }
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-rootfs.XXXXXX")
    log "base: no registry; debootstrap --variant=minbase bookworm from $mirror"
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
        tail -n 20 "$rootfs.log" >&2
        rm -rf "$rootfs" "$rootfs.log"
        return 1
    fi
    # The image's apt uses the same mirror; no package lists inside, like the official images.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - debian:bookworm >/dev/null
    docker tag debian:bookworm debian:bookworm-slim
    rm -rf "$rootfs" "$rootfs.log"
    log "base: imported debian:bookworm (also tagged debian:bookworm-slim)"
}

# build_quietly TAG CONTEXT: docker build, its output shown only if it fails.
build_quietly() {
    local out
    out=$(mktemp "${TMPDIR:-/tmp}/conveyor-build.XXXXXX")
    if ! docker build -t "$1" "$2" >"$out" 2>&1; then
        tail -n 40 "$out" >&2
        rm -f "$out"
        log "standins: building $1 failed"
        return 1
    fi
    rm -f "$out"
}

# Build context of the Kafka stand-in: its files plus the jars of deploy/local/kafka.sh fetch.
standin_images() {
    local root=$1 kafka_version=$2 libs ctx
    libs=${CONVEYOR_CACHE:-$HOME/.cache/conveyor}/kafka-$kafka_version/libs
    if [ ! -f "$libs/.complete" ]; then
        KAFKA_VERSION=$kafka_version "$root/deploy/local/kafka.sh" fetch
    fi
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-kafka-ctx.XXXXXX")
    cp -r "$COMPOSE_DIR/standins/kafka/." "$ctx/"
    mkdir -p "$ctx/libs"
    cp "$libs"/*.jar "$ctx/libs/"
    build_quietly conveyor-standin/kafka:"$kafka_version" "$ctx" || { rm -rf "$ctx"; return 1; }
    rm -rf "$ctx"
    build_quietly conveyor-standin/postgres:15 "$COMPOSE_DIR/standins/postgres" || return 1
    build_quietly conveyor-standin/nginx:1 "$COMPOSE_DIR/standins/nginx" || return 1
    log "standins: conveyor-standin/kafka:$kafka_version, conveyor-standin/postgres:15, conveyor-standin/nginx:1"
}
