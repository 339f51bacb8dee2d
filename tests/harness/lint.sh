#!/usr/bin/env bash
# Static analysis of the C sources: formatting (format.sh), clang-tidy (with the compiler flags
# the build uses) and cppcheck; and the OpenAPI documents of docs/openapi with Redocly CLI
# (installed from the npm registry, at a pinned version, into $BUILD/tools/openapi-lint: nothing
# global). Fails on any finding. Checks left out give false positives on idioms used on
# purpose here (calloc(n, sizeof(*p)) of pointer arrays, counted memcpy into a sized buffer).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BUILD=${BUILD:-build}

mapfile -t sources < <(git ls-files 'common/src/*.c' 'common/tools/*.c' 'services/*/*.c')
read -r -a pkg_cflags <<<"$(pkg-config --cflags rdkafka avro-c libmicrohttpd jansson libpq libcurl \
    libcrypto)"
flags=(-std=c11 -D_GNU_SOURCE -Icommon/include -I"$BUILD/gen" "${pkg_cflags[@]}")

status=0
tests/harness/format.sh || status=1

checks='clang-analyzer-*,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-bugprone-narrowing-conversions,-bugprone-assignment-in-if-condition,-bugprone-sizeof-expression,-bugprone-implicit-widening-of-multiplication-result,-bugprone-branch-clone,-bugprone-not-null-terminated-result'
for f in "${sources[@]}"; do
    svc_inc=()
    case $f in services/*) svc_inc=(-I"$(dirname "$f")") ;; esac
    if ! clang-tidy --quiet --warnings-as-errors='*' --checks="$checks" "$f" -- "${flags[@]}" \
        "${svc_inc[@]}" 2>/dev/null; then
        status=1
    fi
done
echo "lint: clang-tidy done"

if ! cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
    --inline-suppr --std=c11 -D_GNU_SOURCE -Icommon/include \
    --suppress=missingIncludeSystem --suppress=unknownMacro --suppress=ctuuninitvar "${sources[@]}"; then
    status=1
fi
echo "lint: cppcheck done"

redocly_version=1.34.7
tools="$BUILD/tools/openapi-lint"
if [ "$(cat "$tools/version" 2>/dev/null)" != "$redocly_version" ]; then
    rm -rf "$tools"
    mkdir -p "$tools"
    npm install --prefix "$tools" --no-audit --no-fund --loglevel=error \
        "@redocly/cli@$redocly_version" >&2
    echo "$redocly_version" >"$tools/version"
fi
if ! REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true "$tools/node_modules/.bin/redocly" \
    lint --config docs/openapi/redocly.yaml --format=summary docs/openapi/*.json; then
    status=1
fi
echo "lint: openapi done"
exit "$status"
