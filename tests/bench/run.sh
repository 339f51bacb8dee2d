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
/usr/bin/python3 tests/bench/bench.py "$@"
