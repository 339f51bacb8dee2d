#!/bin/bash
# cv-healthcheck [PATH]: exits 0 when this container's Conveyor service answers GET PATH
# (default /healthz) with 200, 1 otherwise. Used by the image's HEALTHCHECK and by
# docker-compose.yml. Needs nothing beyond bash (no curl in the image): the request goes through
# bash's /dev/tcp.
# The port is HTTP_PROBE_PORT when set (probes answered whatever the API's load), else HTTP_PORT,
# or else the default of the service running as PID 1 (order 8081, inventory 8082, shipping
# 8083, audit 8084). The address is HTTP_BIND unless that is a
# wildcard (0.0.0.0, ::) or unset, then 127.0.0.1.
set -u
path=${1:-/healthz}

port=${HTTP_PROBE_PORT:-}
[ "$port" = 0 ] && port=
[ -z "$port" ] && port=${HTTP_PORT:-}
if [ -z "$port" ]; then
    cmdline=$(tr '\0' ' ' </proc/1/cmdline 2>/dev/null)
    case $cmdline in
    *order-service*) port=8081 ;;
    *inventory-service*) port=8082 ;;
    *shipping-service*) port=8083 ;;
    *audit-service*) port=8084 ;;
    *)
        echo "cv-healthcheck: no HTTP_PORT and no Conveyor service running as PID 1" >&2
        exit 1
        ;;
    esac
fi
host=${HTTP_BIND:-}
case $host in
'' | 0.0.0.0 | :: | '[::]') host=127.0.0.1 ;;
esac

if ! exec 3<>"/dev/tcp/$host/$port"; then
    echo "cv-healthcheck: cannot connect to $host:$port" >&2
    exit 1
fi
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
status=
IFS= read -r -t 5 status <&3
exec 3<&-
case $status in
'HTTP/1.'[01]' 200'*) exit 0 ;;
esac
echo "cv-healthcheck: GET $path on $host:$port: ${status:-no answer}" >&2
exit 1
