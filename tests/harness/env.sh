#!/usr/bin/env bash
# The environment of a test or benchmark run (source this file from the repository root with
# BUILD set): a throwaway broker directory, a unique database prefix, and a trap that stops the
# broker and drops the run's databases on exit, also on failure or interruption. The broker
# itself is started by the caller ("$KAFKA_SH" start), after pg_ensure.
#   CV_TEST_KAFKA_PORT, CV_TEST_KAFKA_CONTROLLER_PORT   broker ports [19092, 19093]
#   PGHOST, PGPORT, PGUSER   PostgreSQL server [127.0.0.1, 5432, postgres]
# shellcheck source=tests/harness/pg.sh
. tests/harness/pg.sh

export CV_TEST_BIN=$PWD/$BUILD/bin
export CV_TEST_DB_PREFIX=cvt_$$_
export KAFKA_SH=$PWD/deploy/local/kafka.sh
export KAFKA_PORT=${CV_TEST_KAFKA_PORT:-19092}
export KAFKA_CONTROLLER_PORT=${CV_TEST_KAFKA_CONTROLLER_PORT:-19093}
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
export CV_TEST_PG="host=$PGHOST port=$PGPORT user=$PGUSER"
KAFKA_DIR=$(mktemp -d)
export KAFKA_DIR

cv_env_cleanup() {
    "$KAFKA_SH" stop >/dev/null 2>&1 || true
    rm -rf "$KAFKA_DIR"
    local dbs db
    dbs=$(psql -X -At -d postgres -c \
        "SELECT datname FROM pg_database WHERE datname LIKE '${CV_TEST_DB_PREFIX}%'" 2>/dev/null)
    for db in $dbs; do pg_drop_db "$db" 2>/dev/null || true; done
}
trap cv_env_cleanup EXIT
trap 'exit 130' INT TERM
