#!/usr/bin/env bash
# PostgreSQL helpers for the test harness and the local runner (source this file).
#   pg_ensure              checks the server at PGHOST:PGPORT answers; on a root Debian machine
#                          with a stopped local cluster it starts it; otherwise says what to do
#   pg_create_db NAME...   creates databases (dropping leftovers of the same name first)
#   pg_drop_db NAME...     drops databases, ending their sessions
export PGHOST=${PGHOST:-127.0.0.1}
export PGPORT=${PGPORT:-5432}
export PGUSER=${PGUSER:-postgres}

pg_ensure() {
    if pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 5; then
        return 0
    fi
    if [ "$(id -u)" -eq 0 ] && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        local version
        version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -n 1)
        echo "pg: starting the local PostgreSQL $version cluster" >&2
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 1 30); do
            pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 1 && return 0
            sleep 1
        done
    fi
    cat >&2 <<MSG
pg: no PostgreSQL server answers at $PGHOST:$PGPORT.
    Start one (Debian: sudo apt-get install postgresql && sudo pg_ctlcluster 15 main start),
    or point PGHOST/PGPORT/PGUSER at a server where $PGUSER may create databases.
MSG
    return 1
}

pg_drop_db() {
    local db
    for db in "$@"; do
        psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" \
            >/dev/null
    done
}

pg_create_db() {
    local db
    for db in "$@"; do
        pg_drop_db "$db"
        psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" >/dev/null
    done
}
