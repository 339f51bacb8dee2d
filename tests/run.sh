#!/usr/bin/env bash
# Runs every test of Conveyor: unit tests, integration tests against a real Kafka broker and a
# real PostgreSQL, the Avro cross-check against an independent implementation, and the
# end-to-end tests of the four services running as processes. Starts what it needs (a
# throwaway broker, throwaway databases) and removes all of it on exit, also on failure or
# interruption.
#   BUILD           build directory of the binaries under test [build]
#   CV_TEST_KAFKA_PORT, CV_TEST_KAFKA_CONTROLLER_PORT   broker ports [19092, 19093]
#   PGHOST, PGPORT, PGUSER   PostgreSQL server [127.0.0.1, 5432, postgres]
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
BUILD=${BUILD:-build}
# shellcheck source=tests/harness/env.sh
. tests/harness/env.sh
# Sanitizer builds: fail on the first report, leaks included.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
failed_names=()
run() {
    local name=$1
    shift
    echo "=== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        echo "=== FAILED: $name"
    fi
}

for t in "$BUILD"/tests/unit/test_*; do
    [ -x "$t" ] && run "unit/${t##*/}" "$t"
done
for t in "$BUILD"/tests/services/*/test_*; do
    [ -x "$t" ] && run "services/${t#"$BUILD"/tests/services/}" "$t"
done

run "static" tests/static/run.sh

pg_ensure || exit 1
echo "=== starting Kafka on 127.0.0.1:$KAFKA_PORT"
if ! "$KAFKA_SH" start >/dev/null; then
    echo "=== FAILED: the Kafka broker did not start" >&2
    exit 1
fi

for t in "$BUILD"/tests/integration/test_*; do
    [ -x "$t" ] && run "integration/${t##*/}" "$t"
done
run "crosscheck/avro" /usr/bin/python3 tests/crosscheck/avro_crosscheck.py "$BUILD/bin/cv-avro"
if [ -d tests/e2e ] && ls tests/e2e/test_*.py >/dev/null 2>&1; then
    run "e2e" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e
fi

echo
if [ "$failed" -gt 0 ]; then
    printf 'failed: %s\n' "${failed_names[@]}"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
