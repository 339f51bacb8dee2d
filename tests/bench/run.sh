#!/usr/bin/env bash
# make bench: starts a throwaway broker and databases like tests/run.sh, then runs
# tests/bench/bench.py, which prints Conveyor's figures beside the machine's own ceilings
# measured in the same run. Figures, not assertions: this machine is shared and noisy.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
BUILD=${BUILD:-build}
# shellcheck source=tests/harness/env.sh
. tests/harness/env.sh

pg_ensure || exit 1
"$KAFKA_SH" start >/dev/null || exit 1
# The last run's figures are kept for docs/performance.md to quote (BENCH_OUT to write elsewhere).
/usr/bin/python3 -u tests/bench/bench.py "$@" | tee "${BENCH_OUT:-docs/bench-last-run.txt}"
