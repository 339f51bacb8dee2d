#!/usr/bin/python3
"""Checks that every file the documentation names exists: README.md and docs/*.md.

    check_doc_paths.py [FILE.md...]

Looked at: markdown link targets that are not URLs, and `code spans` that look like a path of
the repository (contain a slash, or end in a source or document extension). A name with a
slash must exist from the repository root, from the document's directory, or as the tail of a
tracked path (`order/events.c`); a bare name (`outbox_relay.c`, `grafana/`) must be the name
of a tracked file or directory. `file::test_name` must name a test defined in that file.
Globs, placeholders (<x>, NAME), URLs, media types, files the tools write at run time (run/,
build*/, the generated client properties), image names and command lines are skipped. Prints one line per
dangling reference; exits 1 if there is any.
"""

import os
import re
import subprocess
import sys

EXTENSIONS = (".c", ".h", ".md", ".py", ".sh", ".sql", ".avsc", ".yml", ".yaml", ".json",
              ".properties", ".in", ".txt", ".toml")
SKIP_PREFIXES = ("build", "run/", "/", "~", "http:", "https:", "$", "-", ".", "application/",
                 "text/")
# Written at run time or names of something else than a file of ours.
NOT_FILES = {"client.properties", "client-java.properties", "apache/kafka"}


def tracked():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         check=True, capture_output=True, text=True).stdout
    return [p for p in out.splitlines() if os.path.exists(p)]


def candidates(text):
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        yield m.group(1).split("#")[0], True
    for m in re.finditer(r"`([^`\n]+)`", text):
        yield m.group(1), False


def looks_like_path(ref):
    if not ref or ref in NOT_FILES or " " in ref or any(c in ref for c in "*<>{}$=|,;()'\"@"):
        return False
    if ref.startswith(SKIP_PREFIXES) or re.search(r"[A-Z]{3,}", ref.split("/")[-1]):
        return False
    return "/" in ref or ref.endswith(EXTENSIONS)


def main(argv):
    docs = argv[1:] or ["README.md"] + sorted(
        os.path.join("docs", f) for f in os.listdir("docs") if f.endswith(".md"))
    files = tracked()
    dirs = {os.path.dirname(p) for p in files}
    dirs |= {d[:i] for d in dirs for i in range(len(d)) if d[i] == "/"}
    names = {os.path.basename(p) for p in files} | {os.path.basename(d) for d in dirs}
    everything = set(files) | dirs
    problems = 0
    for doc in docs:
        text = open(doc, encoding="utf-8").read()
        base = os.path.dirname(doc)
        for ref, is_link in candidates(text):
            if is_link and (not ref or re.match(r"[a-z]+:", ref)):
                continue
            if not is_link and not looks_like_path(ref.partition("::")[0]):
                continue
            path, _, test = ref.partition("::")
            path = path.rstrip("/")
            if "/" not in path:
                ok = path in names or path in everything or os.path.exists(
                    os.path.join(base, path))
            else:
                ok = (path in everything or os.path.exists(path)
                      or os.path.exists(os.path.normpath(os.path.join(base, path)))
                      or any(p.endswith("/" + path) for p in everything))
            if not ok:
                print(f"{doc}: {ref} does not exist")
                problems += 1
            elif test and not re.search(r"\b" + re.escape(test) + r"\b", open(
                    next(p for p in files if p == path or p.endswith("/" + path)),
                    encoding="utf-8").read()):
                print(f"{doc}: {ref}: no such test in {path}")
                problems += 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
