#!/bin/bash
# Run once by the official postgres image (/docker-entrypoint-initdb.d/) when its data volume is
# empty: creates, for each Conveyor service, a login role and a database of the same name owned
# by it (conveyor_order, conveyor_inventory, conveyor_shipping, conveyor_audit). Each role has
# its own password, from ORDER_DB_PASSWORD, INVENTORY_DB_PASSWORD, SHIPPING_DB_PASSWORD and
# AUDIT_DB_PASSWORD; no role may connect to another service's database. The services create
# their tables themselves (their migrations run at start).
# The passwords are read only on that first start: to change them later, ALTER ROLE, or
# `docker compose down -v` to start from empty volumes.
# The entrypoint may source this file rather than run it: the work happens in a subshell so
# that neither the shell options nor an exit leak into it.
conveyor_init_databases() (
    set -euo pipefail
    for svc in order inventory shipping audit; do
        var=${svc^^}_DB_PASSWORD
        password=${!var:-}
        if [ -z "$password" ]; then
            echo "postgres-init: $var is empty; set it in the postgres service's environment" >&2
            exit 1
        fi
        echo "postgres-init: creating role and database conveyor_$svc"
        psql -v ON_ERROR_STOP=1 -X -q --username "${POSTGRES_USER:-postgres}" \
            --dbname "${POSTGRES_DB:-postgres}" \
            -v name="conveyor_$svc" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"name" TO :"name";
SQL
    done
)
conveyor_init_databases
