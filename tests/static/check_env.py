#!/usr/bin/python3
"""Checks the environment that deployment files give Conveyor's services against the
services' own documentation of their configuration (`<name>-service --help`).

    check_env.py [--bin-dir DIR] compose FILE        a docker-compose file
    check_env.py [--bin-dir DIR] kustomize DIR       what `kubectl kustomize DIR` renders
    check_env.py [--bin-dir DIR] dockerfile FILE     the ENV of a Dockerfile's last stage

For every container that runs one of the services (found by its command: order-service,
/usr/local/bin/inventory-service, ...) it checks that
  - every variable set is one that service's --help documents (a typo or a stale name would
    otherwise be ignored silently: the services read only the variables they know);
  - every variable --help marks "required" is set;
  - the variables whose defaults only make sense outside a container (loopback addresses:
    DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, HTTP_BIND) are set, by the file or by the image;
  - literal values fit the documented type: integers within their range, booleans.
A Dockerfile's ENV applies to all four services, so each of its variables must be documented
by every one of them. Prints one line per problem on stdout; exits 1 if there is any, 2 on
bad usage or when the service binaries are missing (build them with `make`).
"""

import argparse
import os
import re
import shlex
import subprocess
import sys

import yaml

SERVICES = ("order", "inventory", "shipping", "audit")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The image's Dockerfile: its ENV is set in every container (compose build: dockerfile).
IMAGE_DOCKERFILE = "deploy/docker/Dockerfile"
# Defaults that point at 127.0.0.1: fine for a native run, wrong in any container.
CONTAINER_REQUIRED = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "HTTP_BIND")
BOOL_WORDS = {"1", "0", "true", "false", "yes", "no", "on", "off"}

HELP_LINE = re.compile(
    r"^  ([A-Z][A-Z0-9_]*)  \((string|int|bool|secret)(?: (-?\d+)\.\.(-?\d+))?, "
    r'(required|has a default|default "(.*)")\)$'
)


class Var:
    def __init__(self, name, vtype, lo, hi, required):
        self.name, self.type, self.lo, self.hi, self.required = name, vtype, lo, hi, required


def load_help(bin_dir, service):
    """The variables service documents, parsed from its --help: {name: Var}."""
    path = os.path.join(bin_dir, service + "-service")
    if not os.access(path, os.X_OK):
        print(f"check_env: {path} is missing: build the services first (make)", file=sys.stderr)
        sys.exit(2)
    out = subprocess.run([path, "--help"], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        m = HELP_LINE.match(line)
        if m:
            lo = int(m.group(3)) if m.group(3) is not None else None
            hi = int(m.group(4)) if m.group(4) is not None else None
            found[m.group(1)] = Var(m.group(1), m.group(2), lo, hi, m.group(5) == "required")
    if not found:
        print(f"check_env: no variables in `{path} --help`: has its format changed?", file=sys.stderr)
        sys.exit(2)
    return found


def service_of(command):
    """The service a container command runs, or None."""
    if isinstance(command, str):
        try:
            command = shlex.split(command)
        except ValueError:
            return None
    if not command:
        return None
    program = os.path.basename(str(command[0]))
    for s in SERVICES:
        if program == s + "-service":
            return s
    return None


def check_value(where, var, value):
    """A problem with a literal value, or None. Values with ${...} are left alone."""
    if value is None or "${" in value or value == "":
        return None
    if var.type == "int":
        try:
            n = int(value, 10)
        except ValueError:
            return f"{where}: {var.name}={value!r}: expected an integer"
        if var.lo is not None and not var.lo <= n <= var.hi:
            return f"{where}: {var.name}={value}: outside {var.lo}..{var.hi}"
    elif var.type == "bool" and value.lower() not in BOOL_WORDS:
        return f"{where}: {var.name}={value!r}: expected a boolean"
    return None


def check_container(where, service, env, docs, image_env):
    """env: {name: literal value or None (from a Secret, unknown)}. Returns problems."""
    problems = []
    for name in sorted(env):
        var = docs[service].get(name)
        if var is None:
            problems.append(f"{where}: {name} is not a variable of {service}-service (see --help)")
            continue
        p = check_value(where, var, env[name])
        if p:
            problems.append(p)
    for var in docs[service].values():
        if var.required and var.name not in env and var.name not in image_env:
            problems.append(f"{where}: {var.name} is required by {service}-service but not set")
    for name in CONTAINER_REQUIRED:
        if name in docs[service] and name not in env and name not in image_env:
            problems.append(f"{where}: {name} is not set (its default only works outside a container)")
    return problems


def scalar(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def dockerfile_env(path):
    """{name: value} of the ENV instructions of the last stage of a Dockerfile."""
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if not words:
            continue
        if words[0].upper() == "FROM":
            env = {}
        elif words[0].upper() == "ENV" and len(words) == 2:
            rest = shlex.split(words[1])
            if rest and "=" not in rest[0]:  # legacy form: ENV NAME value
                env[rest[0]] = " ".join(rest[1:])
            else:
                for item in rest:
                    name, _, value = item.partition("=")
                    env[name] = value
    return env


def check_compose(path, docs, image_env):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    problems, seen = [], 0
    for name, svc in (doc.get("services") or {}).items():
        service = service_of(svc.get("command"))
        if service is None:
            build = svc.get("build")
            if isinstance(build, dict) and build.get("dockerfile") == IMAGE_DOCKERFILE:
                problems.append(f"{path}: service {name}: builds the Conveyor image but its command "
                                "names no service")
            continue
        seen += 1
        raw = svc.get("environment") or {}
        if isinstance(raw, list):
            env = {}
            for item in raw:
                key, sep, value = str(item).partition("=")
                env[key] = value if sep else None
        else:
            env = {k: scalar(v) for k, v in raw.items()}
        if svc.get("env_file"):
            problems.append(f"{path}: service {name}: env_file cannot be checked; set environment")
        problems += check_container(f"{path}: service {name}", service, env, docs, image_env)
    if seen == 0:
        problems.append(f"{path}: no service runs a Conveyor binary")
    return problems


def check_kustomize(directory, docs, image_env):
    try:
        out = subprocess.run(["kubectl", "kustomize", directory], capture_output=True, text=True,
                             check=True).stdout
    except subprocess.CalledProcessError as e:
        return [f"{directory}: kubectl kustomize failed: {e.stderr.strip()}"]
    objects = [o for o in yaml.safe_load_all(out) if isinstance(o, dict)]
    configmaps = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o.get("data") or {}
                  for o in objects if o.get("kind") == "ConfigMap"}
    problems, seen = [], 0
    for obj in objects:
        spec = obj.get("spec") or {}
        pod = (spec.get("template") or {}).get("spec")
        if obj.get("kind") == "CronJob":
            pod = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
        if not pod:
            continue
        namespace = obj["metadata"].get("namespace")
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            service = service_of(c.get("command") or c.get("args"))
            where = f"{directory}: {obj['kind']} {obj['metadata']['name']} container {c.get('name')}"
            if service is None:
                if str(c.get("image", "")).split(":")[0].endswith("conveyor"):
                    problems.append(f"{where}: runs the Conveyor image but names no service in command")
                continue
            seen += 1
            env = {}
            for source in c.get("envFrom") or []:
                prefix = source.get("prefix", "")
                if "configMapRef" in source:
                    ref = source["configMapRef"]["name"]
                    data = configmaps.get((namespace, ref))
                    if data is None:
                        if not source["configMapRef"].get("optional"):
                            problems.append(f"{where}: envFrom ConfigMap {ref} is not in the rendered output")
                        continue
                    env.update({prefix + k: scalar(v) for k, v in data.items()})
                else:
                    problems.append(f"{where}: envFrom {sorted(source)} cannot be checked; use env")
            for e in c.get("env") or []:
                env[e["name"]] = scalar(e.get("value")) if "valueFrom" not in e else None
            problems += check_container(where, service, env, docs, image_env)
    if seen == 0:
        problems.append(f"{directory}: no container runs a Conveyor binary")
    return problems


def check_dockerfile(path, docs):
    problems = []
    for name, value in sorted(dockerfile_env(path).items()):
        for service in SERVICES:
            var = docs[service].get(name)
            if var is None:
                problems.append(f"{path}: ENV {name} is not a variable of {service}-service")
            else:
                p = check_value(f"{path}: ENV (for {service})", var, value)
                if p:
                    problems.append(p)
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", default=os.path.join(os.environ.get("BUILD", "build"), "bin"))
    parser.add_argument("kind", choices=("compose", "kustomize", "dockerfile"))
    parser.add_argument("path")
    args = parser.parse_args()

    docs = {s: load_help(args.bin_dir, s) for s in SERVICES}
    image_dockerfile = os.path.join(ROOT, IMAGE_DOCKERFILE)
    image_env = dockerfile_env(image_dockerfile) if os.path.exists(image_dockerfile) else {}
    if args.kind == "compose":
        problems = check_compose(args.path, docs, image_env)
    elif args.kind == "kustomize":
        problems = check_kustomize(args.path, docs, image_env)
    else:
        problems = check_dockerfile(args.path, docs)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
