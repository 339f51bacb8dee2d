#!/usr/bin/env bash
# Static checks of Conveyor's deployment files and scripts; nothing is started, no container
# runs. Prints one line per check and ends with "static: N passed, M failed"; exits 1 if any
# check failed. The checks:
#   compose      docker-compose.yml is accepted by `docker-compose config -q`
#   kustomize    the Kubernetes base and every overlay render with `kubectl kustomize`
#   env          every variable set for a service (docker-compose.yml, each rendered
#                kustomization, the image's Dockerfile) is one its --help documents, with a
#                valid literal value, and none it requires is missing (tests/static/check_env.py)
#   policy       each rendered kustomization: every workload non-root, read-only root
#                filesystem, no privilege escalation, capabilities dropped, CPU and memory
#                limits; a NetworkPolicy governs every pod's ingress and egress; the Ingress
#                exposes only /orders (tests/static/check_policy.py)
#   docs         every file README.md and docs/*.md name exists, and every test they name is in
#                its file (tests/static/check_doc_paths.py)
#   scripts      `shellcheck -x` (sourced files followed, from the repository root) on every
#                *.sh of the repository (tracked, or untracked and not ignored)
#   yamllint     docker-compose.yml, .yamllint, the YAML of deploy/k8s, deploy/docker,
#                deploy/observability, .ci and tests/compose, with the configuration .yamllint
#   observability  deploy/observability: `promtool check config` on both scrape configurations,
#                `promtool check rules` and `promtool test rules` on the alerts, the compose
#                override with the observability profile, and the dashboard's JSON
#   BUILD   build directory holding bin/<name>-service, read by the env checks [build]
# Needs: docker-compose (v1 is enough), kubectl, shellcheck, yamllint, promtool (Debian's
# prometheus), python3 with PyYAML,
# git, and the service binaries (make).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
BUILD=${BUILD:-build}
export BUILD

passed=0
failed=0

# check NAME COMMAND...: runs COMMAND, prints "ok NAME" or "FAIL NAME" and its output.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        printf 'ok    %s\n' "$name"
        passed=$((passed + 1))
    else
        printf 'FAIL  %s\n' "$name"
        [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/      /'
        failed=$((failed + 1))
    fi
}

# Repository files matching the git pathspecs given: tracked or untracked, not ignored,
# present on disk.
repo_files() {
    local f
    git ls-files -z --cached --others --exclude-standard -- "$@" |
        sort -zu | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\n' "$f"; done
}

check "compose: docker-compose config -q" docker-compose -f docker-compose.yml config -q

kustomizations=(deploy/k8s/base)
for d in deploy/k8s/overlays/*/; do
    [ -f "${d}kustomization.yaml" ] && kustomizations+=("${d%/}")
done
for k in "${kustomizations[@]}"; do
    check "kustomize: $k" kubectl kustomize "$k" -o /dev/null
done

check "policy: the check catches weakened manifests" \
    /usr/bin/python3 tests/static/check_policy.py --self-test deploy/k8s/base
for k in "${kustomizations[@]}"; do
    check "policy: $k" /usr/bin/python3 tests/static/check_policy.py "$k"
done

check "env: docker-compose.yml" /usr/bin/python3 tests/static/check_env.py compose docker-compose.yml
for k in "${kustomizations[@]}"; do
    check "env: $k" /usr/bin/python3 tests/static/check_env.py kustomize "$k"
done
check "env: deploy/docker/Dockerfile" \
    /usr/bin/python3 tests/static/check_env.py dockerfile deploy/docker/Dockerfile

check "docs: every file and test named exists" /usr/bin/python3 tests/static/check_doc_paths.py

mapfile -t scripts < <(repo_files '*.sh')
for f in "${scripts[@]}"; do
    check "shellcheck: $f" shellcheck -x "$f"
done

mapfile -t yamls < <(repo_files docker-compose.yml .yamllint 'deploy/k8s/*.yaml' 'deploy/k8s/*.yml' \
    'deploy/docker/*.yaml' 'deploy/docker/*.yml' 'deploy/observability/*.yml' '.ci/*.yaml' \
    '.ci/*.yml' 'tests/compose/*.yml')
for f in "${yamls[@]}"; do
    check "yamllint: $f" yamllint --strict -c .yamllint "$f"
done

obs=deploy/observability
check "promtool: check config $obs/prometheus.yml" promtool check config "$obs/prometheus.yml"
check "promtool: check config $obs/prometheus-compose.yml" \
    promtool check config "$obs/prometheus-compose.yml"
check "promtool: check rules $obs/alerts.yml" promtool check rules "$obs/alerts.yml"
check "promtool: test rules $obs/alerts_test.yml" promtool test rules "$obs/alerts_test.yml"
check "compose: tools and observability profiles" docker-compose -f docker-compose.yml \
    --profile tools --profile observability config -q
check "json: $obs/grafana/dashboards/conveyor.json" \
    /usr/bin/python3 -m json.tool "$obs/grafana/dashboards/conveyor.json" /dev/null

echo "static: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
