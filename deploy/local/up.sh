#!/usr/bin/env bash
# Runs the whole of Conveyor natively on this machine: a Kafka broker from the jar cache, one
# database per service on the local PostgreSQL (created if missing, migrated by the services),
# and the four services in the background. Returns once every /readyz answers 200.
# Stop it all with deploy/local/down.sh (make down). State survives down/up.
#   CONVEYOR_RUN_DIR   logs, pids and the broker's data [./run]
#   KAFKA_PORT         broker port on 127.0.0.1 [9092] (KAFKA_CONTROLLER_PORT [9093])
#   ORDER_PORT INVENTORY_PORT SHIPPING_PORT AUDIT_PORT   HTTP ports [8081 8082 8083 8084]
#   PGHOST PGPORT PGUSER   PostgreSQL [127.0.0.1 5432 postgres]
#   BUILD              build directory of the binaries [build]
#   AUTH_REQUIRED      true: bearer tokens required, verified with a local HS256 secret
#                      (run/auth/), ready-made tokens printed [true]; false: no authentication
#                      (each service warns and listens on 127.0.0.1 only)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=tests/harness/pg.sh
. tests/harness/pg.sh
BUILD=${BUILD:-build}
run_dir=${CONVEYOR_RUN_DIR:-$root/run}
export KAFKA_PORT=${KAFKA_PORT:-9092}
export KAFKA_DIR=$run_dir/kafka
services=(order inventory shipping audit)
declare -A ports=(
    [order]=${ORDER_PORT:-8081} [inventory]=${INVENTORY_PORT:-8082}
    [shipping]=${SHIPPING_PORT:-8083} [audit]=${AUDIT_PORT:-8084}
)
topics=(orders inventory shipments order.dlq inventory.dlq shipping.dlq audit.dlq)

mkdir -p "$run_dir/logs" "$KAFKA_DIR"
auth_required=${AUTH_REQUIRED:-true}
auth_dir=$run_dir/auth
auth_env=()
if [ "$auth_required" = true ]; then
    (umask 077; mkdir -p "$auth_dir"
     if [ ! -s "$auth_dir/hs256.secret" ]; then
         head -c 48 /dev/urandom | base64 -w0 >"$auth_dir/hs256.secret"
     fi)
    auth_env=(AUTH_REQUIRED=true AUTH_ISSUER=conveyor-local AUTH_AUDIENCE=conveyor
              AUTH_HS256_SECRET_FILE="$auth_dir/hs256.secret")
else
    auth_env=(AUTH_REQUIRED=false)
fi
for s in "${services[@]}"; do
    if [ -f "$run_dir/$s.pid" ] && kill -0 "$(cat "$run_dir/$s.pid")" 2>/dev/null; then
        echo "up: $s-service is already running (pid $(cat "$run_dir/$s.pid")); make down first" >&2
        exit 1
    fi
done

pg_ensure
for s in "${services[@]}"; do
    db=conveyor_$s
    if [ -z "$(psql -X -At -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
        psql -X -q -d postgres -c "CREATE DATABASE $db" >/dev/null
        echo "up: created database $db"
    fi
done

if [ -f "$KAFKA_DIR/kafka.pid" ] && kill -0 "$(cat "$KAFKA_DIR/kafka.pid")" 2>/dev/null; then
    echo "up: Kafka already running"
else
    deploy/local/kafka.sh start >/dev/null
fi
deploy/local/kafka.sh topics "${topics[@]}" >/dev/null

for s in "${services[@]}"; do
    env HTTP_PORT="${ports[$s]}" \
        DATABASE_URL="postgresql://$PGUSER@$PGHOST:$PGPORT/conveyor_$s" \
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT" "${auth_env[@]}" \
        setsid "$BUILD/bin/$s-service" >>"$run_dir/logs/$s.log" 2>&1 </dev/null &
    echo $! >"$run_dir/$s.pid"
done

for s in "${services[@]}"; do
    url=http://127.0.0.1:${ports[$s]}/readyz
    for i in $(seq 1 120); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then
            break
        fi
        if ! kill -0 "$(cat "$run_dir/$s.pid")" 2>/dev/null; then
            echo "up: $s-service exited; the end of $run_dir/logs/$s.log:" >&2
            tail -n 20 "$run_dir/logs/$s.log" >&2
            exit 1
        fi
        [ "$i" -eq 120 ] && { echo "up: $s-service not ready after 60 s ($url)" >&2; exit 1; }
        sleep 0.5
    done
done

cat <<MSG
Conveyor is up.
  order      http://127.0.0.1:${ports[order]}/orders
  inventory  http://127.0.0.1:${ports[inventory]}/inventory
  shipping   http://127.0.0.1:${ports[shipping]}/shipments
  audit      http://127.0.0.1:${ports[audit]}/events
  kafka      127.0.0.1:$KAFKA_PORT   logs: $run_dir/logs/   stop: make down
MSG
if [ "$auth_required" = true ]; then
    mint() { /usr/bin/python3 deploy/local/token.py --secret-file "$auth_dir/hs256.secret" "$@"; }
    (umask 077
     {
         echo "export CUSTOMER_TOKEN=$(mint --sub alice --roles customer)"
         echo "export OPERATOR_TOKEN=$(mint --sub operator-1 --roles operator)"
         echo "export AUDITOR_TOKEN=$(mint --sub auditor-1 --roles auditor)"
     } >"$auth_dir/tokens.env")
    cat <<MSG
Authentication is on. Local tokens (valid 12 h; customer alice, an operator, an auditor):
  . $auth_dir/tokens.env     # exports CUSTOMER_TOKEN, OPERATOR_TOKEN, AUDITOR_TOKEN
$(sed 's/^export /  /' "$auth_dir/tokens.env")
MSG
else
    echo "Authentication is OFF (AUTH_REQUIRED=false): every API listens on 127.0.0.1 only."
fi
