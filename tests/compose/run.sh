#!/usr/bin/env bash
# make compose-test: docker-compose.yml run for real, scaled, and driven from the host.
#   1. installs what is missing (tests/harness/deps.sh: docker.io, docker-compose, debootstrap,
#      kcat, python3-avro, ...), uses the Docker engine that answers or starts dockerd (and
#      stops only a dockerd it started);
#   2. images that cannot be pulled are made here: debian:bookworm(-slim) with debootstrap from
#      the machine's Debian mirror, and stand-ins for apache/kafka, postgres and nginx
#      (tests/compose/standins/, swapped in by tests/compose/docker-compose.standins.yml only
#      when the official images cannot be pulled);
#   3. tests/compose/scenario.py: up --build scaled, every container healthy, the README's
#      walkthrough through the gateway, bursts of concurrent orders with replicas killed,
#      stopped and restarted, down and up, down -v. It prints each step's time.
# Whatever happens, the project is taken down with its volumes at the end.
#   COMPOSE            compose command [docker-compose, else docker compose]
#   COMPOSE_SCALE      replicas ["inventory=3 shipping=2"]
#   GATEWAY_PORT       gateway on 127.0.0.1 [18080]
#   KAFKA_HOST_PORT    broker's host listener on 127.0.0.1 [18092]
#   COMPOSE_STANDINS   1: always use the stand-ins, 0: never, auto: when a pull fails [auto]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
t_start=$SECONDS
log() { printf 'compose-test: [%4ds] %s\n' "$((SECONDS - t_start))" "$*" >&2; }
# shellcheck source=tests/compose/engine.sh
. tests/compose/engine.sh

tests/harness/deps.sh

if [ -z "${COMPOSE:-}" ]; then
    if command -v docker-compose >/dev/null; then COMPOSE=docker-compose; else COMPOSE="docker compose"; fi
fi
export COMPOSE
export COMPOSE_PROJECT_NAME=conveyor-compose-test
export COMPOSE_SCALE=${COMPOSE_SCALE:-inventory=3 shipping=2}
export GATEWAY_PORT=${GATEWAY_PORT:-18080} KAFKA_HOST_PORT=${KAFKA_HOST_PORT:-18092}
export KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
export CONVEYOR_IMAGE=conveyor-compose-test:latest
CONVEYOR_REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
CONVEYOR_VERSION=$(git describe --always --dirty 2>/dev/null || echo dev)
CONVEYOR_SOURCE=$(git remote get-url origin 2>/dev/null || echo unknown)
export CONVEYOR_REVISION CONVEYOR_VERSION CONVEYOR_SOURCE

for port in "$GATEWAY_PORT" "$KAFKA_HOST_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        log "port $port on 127.0.0.1 is in use; set GATEWAY_PORT / KAFKA_HOST_PORT"
        exit 1
    fi
done

project_down() {
    if docker info >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        $COMPOSE down -v --remove-orphans >/dev/null 2>&1 || true
    fi
}
finish() {
    local rc=$?
    if [ "$rc" -ne 0 ] && docker info >/dev/null 2>&1; then
        log "failed; the last log lines of each service:"
        # shellcheck disable=SC2086
        $COMPOSE logs --no-color --tail=15 >&2 2>/dev/null || true
    fi
    project_down
    engine_stop
    log "total $((SECONDS - t_start)) s"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

t=$SECONDS
engine_start
project_down  # leftovers of an interrupted run
log "step engine: $((SECONDS - t)) s"

t=$SECONDS
base_images
standins=${COMPOSE_STANDINS:-auto}
if [ "$standins" = auto ]; then
    standins=0
    for image in "apache/kafka:$KAFKA_VERSION" postgres:15 nginx:1.28-alpine; do
        image_exists "$image" || docker pull -q "$image" >/dev/null 2>&1 || standins=1
    done
fi
export COMPOSE_FILE=docker-compose.yml
if [ "$standins" = 1 ]; then
    standin_images "$root" "$KAFKA_VERSION"
    COMPOSE_FILE=docker-compose.yml:tests/compose/docker-compose.standins.yml
    log "official images not pullable: using the stand-ins"
fi
log "step images: $((SECONDS - t)) s"
log "$($COMPOSE version 2>/dev/null | head -n 1), engine $(docker version -f '{{.Server.Version}}')"

/usr/bin/python3 -u tests/compose/scenario.py
