#!/usr/bin/env bash
# Makes sure the Debian packages that building and testing Conveyor need are installed: installs
# the missing ones when run as root, otherwise prints the exact command and fails.
set -euo pipefail

packages=(
    build-essential pkg-config libssl-dev
    librdkafka-dev libavro-dev libmicrohttpd-dev libjansson-dev libpq-dev check
    kcat postgresql-client maven default-jdk-headless wrk libcurl4-openssl-dev
    python3 python3-avro python3-confluent-kafka python3-pytest python3-yaml python3-jwt
    python3-cryptography
    clang libclang-rt-14-dev clang-tidy clang-format cppcheck shellcheck yamllint docker-compose
    debootstrap prometheus
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
# kubectl (for `kubectl kustomize` in the static checks) is not always a Debian package of its
# own; Debian's kubernetes-client provides it where nothing else does.
if ! command -v kubectl >/dev/null 2>&1; then
    missing+=(kubernetes-client)
fi
# npm (make lint installs the OpenAPI linter with it): Debian's npm, unless Node.js came with
# one from elsewhere (NodeSource's nodejs includes npm and conflicts with Debian's package).
if ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi
# A Docker engine for make compose-test: Debian's docker.io, unless one is installed already
# (Docker's own docker-ce packages conflict with it).
if ! command -v dockerd >/dev/null 2>&1; then
    missing+=(docker.io)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages; install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
