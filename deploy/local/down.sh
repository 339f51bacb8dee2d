#!/usr/bin/env bash
# Stops what deploy/local/up.sh started: the four services and their replicas (SIGTERM: they
# finish in-flight work and commit their offsets) and then the broker. Data stays in the run directory and databases.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
run_dir=${CONVEYOR_RUN_DIR:-$root/run}
export KAFKA_DIR=$run_dir/kafka

pids=()
for f in "$run_dir"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        pids+=("$pid")
    fi
    rm -f "$f"
done
for _ in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.2
done
for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done

if [ -f "$KAFKA_DIR/kafka.pid" ]; then
    deploy/local/kafka.sh stop >/dev/null 2>&1 || true
fi
echo "down: stopped"
