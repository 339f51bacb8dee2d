"""Helpers of the chaos test: a client that behaves like a real one while services die under it
(retries on a dead connection, the same Idempotency-Key for the same logical order, another
replica when one is gone), the broker switch, and a log of what happened when."""

import http.client as httplib
import subprocess
import threading
import time

from conveyor import KAFKA_SH, http

# Order statuses by how far along they are; REJECTED and CANCELLED are final. CANCELLING
# waits for shipping's decision: CANCELLED, or the goods left (DISPATCHED, DELIVERED).
RANK = {"PENDING": 0, "CONFIRMED": 1, "SHIPMENT_SCHEDULED": 2, "CANCELLING": 3, "DISPATCHED": 4,
        "DELIVERED": 5, "REJECTED": 9, "CANCELLED": 9}
# The statuses each status may be followed by (itself included).
FORWARD = {
    "PENDING": set(RANK),
    "CONFIRMED": {"CONFIRMED", "SHIPMENT_SCHEDULED", "CANCELLING", "DISPATCHED", "DELIVERED",
                  "CANCELLED"},
    "SHIPMENT_SCHEDULED": {"SHIPMENT_SCHEDULED", "CANCELLING", "DISPATCHED", "DELIVERED",
                           "CANCELLED"},
    "CANCELLING": {"CANCELLING", "CANCELLED", "DISPATCHED", "DELIVERED"},
    "DISPATCHED": {"DISPATCHED", "DELIVERED"},
    "DELIVERED": {"DELIVERED"},
    "REJECTED": {"REJECTED"},
    "CANCELLED": {"CANCELLED"},
}

# What a client sees when the process it talks to is killed: refused, reset, cut short.
CONNECTION_ERRORS = (OSError, httplib.HTTPException)


def broker(verb):
    subprocess.run([KAFKA_SH, verb], check=True, capture_output=True, timeout=120)


class Journal:
    """Timestamped notes of the chaos (kills, restarts, outage) and of trouble the clients
    met; printed with a failure so that a run can be read back against the service logs."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.lines = []

    def note(self, text):
        with self.lock:
            self.lines.append(f"{time.monotonic() - self.t0:7.2f}s {time.strftime('%H:%M:%S')}"
                              f" {text}")

    def __str__(self):
        with self.lock:
            return "\n".join(self.lines)


class Client:
    """Calls a service, trying again while the connection fails (and on 5xx) until deadline;
    urls() gives the base URLs to try (the live replicas), rotated on every failure. Returns
    (response, failed attempts)."""

    def __init__(self, timeout=120.0):
        self.timeout = timeout
        self.lock = threading.Lock()
        self.server_errors = []  # (what, status, body) of every 5xx seen

    def call(self, urls, method, path, body=None, headers=None, what=""):
        deadline = time.monotonic() + self.timeout
        failures, turn = 0, 0
        while True:
            bases = urls()
            base = bases[turn % len(bases)]
            try:
                r = http(method, base + path, body=body, headers=headers, timeout=30)
                if r.status < 500:
                    return r, failures
                with self.lock:
                    self.server_errors.append((what or path, r.status, r.body[:300]))
            except CONNECTION_ERRORS:
                pass
            failures += 1
            turn += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{what or path}: no answer from {bases} within "
                                     f"{self.timeout}s")
            time.sleep(min(0.1 * failures, 0.5))
