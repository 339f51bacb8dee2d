#!/usr/bin/env bash
# Runs the whole of Conveyor natively on this machine: a Kafka broker from the jar cache, one
# database per service on the local PostgreSQL (created if missing, migrated by the services),
# and the four services in the background. Returns once every /readyz answers 200, listing each
# process with its URL. Stop it all with deploy/local/down.sh (make down). State survives down/up.
#   REPLICAS           processes per service, e.g. "inventory=3 shipping=2" [1 each]. Replicas
#                      share their service's database and consumer group; replica k listens on
#                      the service's port + 10*(k-1) (inventory 8082, 8092, 8102, ...). More
#                      replicas than KAFKA_PARTITIONS [6] leaves the extra ones idle.
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
declare -A replicas=([order]=1 [inventory]=1 [shipping]=1 [audit]=1)
for spec in ${REPLICAS:-}; do
    name=${spec%%=*}
    count=${spec#*=}
    if [ -z "${replicas[$name]:-}" ] || ! [[ $count =~ ^[1-9][0-9]?$ ]] || [ "$count" -gt 20 ]; then
        echo "up: bad REPLICAS entry '$spec': want SERVICE=N, SERVICE one of ${services[*]}, N 1-20" >&2
        exit 2
    fi
    replicas[$name]=$count
done

# Replica k (1-based) of service s: its name, pid file, log and port. Replica 1 keeps the plain
# names of a run without replicas.
replica_name() { if [ "$2" -eq 1 ]; then echo "$1"; else echo "$1-$2"; fi; }
replica_port() { echo $((ports[$1] + 10 * ($2 - 1))); }

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
for f in "$run_dir"/*.pid; do
    [ -f "$f" ] || continue
    if kill -0 "$(cat "$f")" 2>/dev/null; then
        echo "up: $(basename "$f" .pid) is already running (pid $(cat "$f")); make down first" >&2
        exit 1
    fi
    rm -f "$f"
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

procs=()
for s in "${services[@]}"; do
    for k in $(seq 1 "${replicas[$s]}"); do
        r=$(replica_name "$s" "$k")
        port=$(replica_port "$s" "$k")
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "up: port $port for $r is already in use" >&2
            exit 1
        fi
        env HTTP_PORT="$port" \
            DATABASE_URL="postgresql://$PGUSER@$PGHOST:$PGPORT/conveyor_$s" \
            KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT" "${auth_env[@]}" \
            setsid "$BUILD/bin/$s-service" >>"$run_dir/logs/$r.log" 2>&1 </dev/null &
        echo $! >"$run_dir/$r.pid"
        procs+=("$s $r $port")
    done
done

for p in "${procs[@]}"; do
    read -r s r port <<<"$p"
    url=http://127.0.0.1:$port/readyz
    for i in $(seq 1 120); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then
            break
        fi
        if ! kill -0 "$(cat "$run_dir/$r.pid")" 2>/dev/null; then
            echo "up: $r ($s-service) exited; the end of $run_dir/logs/$r.log:" >&2
            tail -n 20 "$run_dir/logs/$r.log" >&2
            exit 1
        fi
        [ "$i" -eq 120 ] && { echo "up: $r ($s-service) not ready after 60 s ($url)" >&2; exit 1; }
        sleep 0.5
    done
done

declare -A paths=([order]=/orders [inventory]=/inventory [shipping]=/shipments [audit]=/events)
echo "Conveyor is up."
for p in "${procs[@]}"; do
    read -r s r port <<<"$p"
    printf '  %-12s http://127.0.0.1:%s%s   pid %s\n' "$r" "$port" "${paths[$s]}" "$(cat "$run_dir/$r.pid")"
done
echo "  kafka        127.0.0.1:$KAFKA_PORT   logs: $run_dir/logs/   stop: make down"
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
