"""Runs after every other end-to-end module (file order): the logs of all the services the
run started contain no bearer token, private key or password."""

import glob
import os
import re

PATTERNS = {
    "a JWT": re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}"),
    "a private key": re.compile(rb"PRIVATE KEY"),
    "an Authorization header": re.compile(rb"Bearer [A-Za-z0-9_-]{16,}"),
    "a password parameter": re.compile(rb"password\s*[=:]\s*[^\s,;\"')(]+", re.I),
    "a password in a URL": re.compile(rb"://[^/\s:@\"]+:[^/\s@\"]+@"),
}


def test_service_logs_hold_no_secret(log_dir):
    paths = glob.glob(os.path.join(log_dir, "*.log"))
    found = []
    for path in paths:
        with open(path, "rb") as f:
            text = f.read()
        for what, pattern in PATTERNS.items():
            m = pattern.search(text)
            if m:
                found.append(f"{os.path.basename(path)}: {what} at byte {m.start()}")
    print(f"\nsecrets grep: {len(paths)} service logs, {len(found)} findings")
    assert not found, found
