#!/usr/bin/python3
"""Checks the security policy of what a kustomization renders (`kubectl kustomize DIR`):

    check_policy.py DIR...
    check_policy.py --self-test DIR   the checks must catch weakened copies of DIR's objects

Every workload (Deployment, StatefulSet, DaemonSet, Job, CronJob) must, for each of its
containers and init containers:
  - run as non-root (runAsNonRoot true, on the container or the pod, and no runAsUser 0);
  - have a read-only root filesystem;
  - not allow privilege escalation (allowPrivilegeEscalation false), nor be privileged;
  - drop ALL capabilities and add none;
  - set CPU and memory limits.
Every such pod must be selected by a NetworkPolicy of its namespace that governs both its
ingress and its egress. The Ingress exposes only /orders. Prints one line per problem on
stdout; exits 1 if there is any, 2 on bad usage.
"""

import subprocess
import sys

import yaml

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
EXPOSED_PATHS = {"/orders"}


def pod_template(obj):
    spec = obj.get("spec") or {}
    if obj["kind"] == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return spec.get("template") or {}


def selects(selector, labels):
    """Whether a LabelSelector matches labels (matchLabels and matchExpressions)."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def check_container(where, c, pod_sc):
    problems = []
    sc = c.get("securityContext") or {}
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if non_root is not True:
        problems.append(f"{where}: runAsNonRoot is not true")
    if user == 0:
        problems.append(f"{where}: runAsUser is 0 (root)")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation is not false")
    if sc.get("privileged"):
        problems.append(f"{where}: privileged")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        problems.append(f"{where}: capabilities do not drop ALL")
    if caps.get("add"):
        problems.append(f"{where}: adds capabilities {caps['add']}")
    limits = (c.get("resources") or {}).get("limits") or {}
    for r in ("cpu", "memory"):
        if r not in limits:
            problems.append(f"{where}: no {r} limit")
    return problems


def render(directory):
    """The objects kubectl kustomize renders, or a problem string."""
    try:
        out = subprocess.run(["kubectl", "kustomize", directory], capture_output=True, text=True,
                             check=True).stdout
    except subprocess.CalledProcessError as e:
        return f"{directory}: kubectl kustomize failed: {e.stderr.strip()}"
    return [o for o in yaml.safe_load_all(out) if isinstance(o, dict)]


def check(directory):
    objects = render(directory)
    if isinstance(objects, str):
        return [objects]
    return check_objects(directory, objects)


def self_test(directory):
    """Each weakening of the rendered objects must be reported; returns what was missed."""
    import copy
    objects = render(directory)
    if isinstance(objects, str):
        return [objects]
    if check_objects(directory, objects):
        return [f"{directory}: not clean to begin with"]

    def first_container(objs):
        d = next(o for o in objs if o.get("kind") == "Deployment")
        return pod_template(d)["spec"]["containers"][0]

    def drop_key(objs, key):
        first_container(objs)["securityContext"].pop(key)

    def set_key(objs, key, value):
        first_container(objs)["securityContext"][key] = value

    cases = {
        "writable root filesystem": lambda o: drop_key(o, "readOnlyRootFilesystem"),
        "privilege escalation": lambda o: set_key(o, "allowPrivilegeEscalation", True),
        "capabilities kept": lambda o: set_key(o, "capabilities", {"drop": ["NET_RAW"]}),
        "root user": lambda o: set_key(o, "runAsUser", 0),
        "no memory limit": lambda o: first_container(o)["resources"]["limits"].pop("memory"),
        "no NetworkPolicy": lambda o: o.__setitem__(
            slice(None), [x for x in o if x.get("kind") != "NetworkPolicy"]),
        "another path exposed": lambda o: next(x for x in o if x.get("kind") == "Ingress")[
            "spec"]["rules"][0]["http"]["paths"].append({"path": "/inventory"}),
    }
    missed = []
    for name, weaken in cases.items():
        objs = copy.deepcopy(objects)
        weaken(objs)
        if not check_objects(directory, objs):
            missed.append(f"{directory}: self-test: {name} was not reported")
    return missed


def check_objects(directory, objects):
    policies = [o for o in objects if o.get("kind") == "NetworkPolicy"]
    problems, seen = [], 0
    for obj in objects:
        if obj.get("kind") not in WORKLOADS:
            continue
        seen += 1
        name = f"{directory}: {obj['kind']} {obj['metadata']['name']}"
        template = pod_template(obj)
        pod = template.get("spec") or {}
        pod_sc = pod.get("securityContext") or {}
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            problems.append(f"{name}: shares a host namespace")
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            problems += check_container(f"{name} container {c.get('name')}", c, pod_sc)
        labels = (template.get("metadata") or {}).get("labels") or {}
        namespace = obj["metadata"].get("namespace")
        types = set()
        for p in policies:
            if p["metadata"].get("namespace") != namespace:
                continue
            spec = p.get("spec") or {}
            if selects(spec.get("podSelector") or {}, labels):
                types |= set(spec.get("policyTypes") or ["Ingress"])
        for t in ("Ingress", "Egress"):
            if t not in types:
                problems.append(f"{name}: no NetworkPolicy governs its pods' {t.lower()}")
    if seen == 0:
        problems.append(f"{directory}: no workload rendered")
    for ing in (o for o in objects if o.get("kind") == "Ingress"):
        for rule in (ing.get("spec") or {}).get("rules") or []:
            for path in ((rule.get("http") or {}).get("paths")) or []:
                if path.get("path") not in EXPOSED_PATHS:
                    problems.append(f"{directory}: Ingress {ing['metadata']['name']} exposes "
                                    f"{path.get('path')} (only {sorted(EXPOSED_PATHS)} may be)")
    return problems


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "--self-test":
        if len(sys.argv) != 3:
            print(__doc__, file=sys.stderr)
            return 2
        missed = self_test(sys.argv[2])
        for m in missed:
            print(m)
        return 1 if missed else 0
    problems = []
    for d in sys.argv[1:]:
        problems += check(d)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
