"""The outbox relay's advisory lock is released when its holder vanishes silently. Two order
service replicas; the session holding the relay lock is cut off with iptables (its packets
dropped both ways on the loopback, as when a host is lost: no FIN, no RST). The keepalives the
services set on the server's end of their sessions end that session within seconds, the lock
goes with it, and a relay takes over: an order placed afterwards completes.

Needs root and iptables (skipped otherwise); the rules match only the cut session's port and are
removed at the end."""

import os
import shutil
import subprocess
import time

import pytest

from conftest import make_system
from conveyor import Service, free_port, psql, wait_until

# Keepalives as short as the settings allow, so the test takes seconds (defaults: 10/3/3, 20 s).
ENV = {"DB_KEEPALIVES_IDLE_S": "1", "DB_KEEPALIVES_INTERVAL_S": "1", "DB_KEEPALIVES_COUNT": "2",
       "DB_TCP_USER_TIMEOUT_MS": "3000"}
LOCK_HOLDER = ("SELECT a.pid, a.client_port FROM pg_locks l JOIN pg_stat_activity a"
               " USING (pid) WHERE l.locktype = 'advisory' AND l.objid = 7424542"
               " AND l.granted AND a.datname = current_database()")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables"),
                                reason="needs root and iptables to cut a connection silently")


@pytest.fixture(scope="module")
def pair(request, log_dir):
    system = make_system(request, log_dir, {"order": ENV})
    system.start()
    base = system.order
    twin = Service("order", base.db, free_port(), log_dir,
                   {k: v for k, v in base.env.items() if k in ("TOPIC_PREFIX", *ENV)})
    twin.start()
    yield system, twin
    codes = {**system.stop(), "order-twin": twin.stop()}
    system.drop()
    assert set(codes.values()) == {0}, f"exit codes {codes} (logs in {log_dir})"


def holder(db):
    rows = psql(db, LOCK_HOLDER)
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def iptables(verb, port):
    for rule in (["--sport", str(port)], ["--dport", str(port)]):
        subprocess.run(["iptables", verb, "INPUT", "-i", "lo", "-p", "tcp", *rule, "-j", "DROP"],
                       check=verb == "-I", capture_output=True)


def test_a_silently_cut_relay_session_loses_its_lock(pair):
    system, _ = pair
    db = system.dbs["order"]
    system.set_stock("FAILOVER-1", 100)
    first = system.place([{"sku": "FAILOVER-1", "quantity": 1}])
    system.wait_status(first["id"], "SHIPMENT_SCHEDULED")

    pid, port = wait_until(lambda: holder(db), 10, 0.2, "a relay to hold the lock")
    iptables("-I", port)
    cut = time.monotonic()
    try:
        # The server notices the silent peer through its keepalives and ends the session.
        new = wait_until(lambda: (h := holder(db)) and h[0] != pid and h, 30, 0.2,
                         "another session to take the relay lock")
        took = time.monotonic() - cut
    finally:
        iptables("-D", port)
    assert new[1] != port
    print(f"\nrelay lock held by a new session {took:.1f}s after its holder was cut off")
    # Events flow again: an order placed now completes.
    order = system.place([{"sku": "FAILOVER-1", "quantity": 1}])
    system.wait_status(order["id"], "SHIPMENT_SCHEDULED", timeout=60)
