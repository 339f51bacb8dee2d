"""Start to ready: the four services started together against a broker and a database that are
up, each timed from its process start to its first 200 on /readyz, polled every 10 ms (the test
harness polls every 200 ms, which would round every figure up by as much)."""

import time

from conveyor import http


def start_timed(system, timeout=60.0):
    """Starts every service of system; returns {name: seconds from start to ready}."""
    started = {}
    for name, svc in system.services.items():
        started[name] = time.monotonic()
        svc.start(wait=False)
    ready = {}
    deadline = time.monotonic() + timeout
    while len(ready) < len(started):
        for name, svc in system.services.items():
            if name in ready:
                continue
            if svc.proc.poll() is not None:
                raise AssertionError(f"{name} exited with {svc.proc.returncode}: see"
                                     f" {svc.log_path}")
            try:
                if http("GET", svc.url + "/readyz", timeout=2).status == 200:
                    ready[name] = time.monotonic() - started[name]
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {timeout} s: {set(started) - set(ready)}")
        time.sleep(0.01)
    return ready
