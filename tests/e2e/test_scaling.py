"""Independent scaling: three inventory and two shipping replicas share the same databases and
topics. Each gets partitions and does part of the work; one is killed (SIGKILL) in the middle
of a burst of orders, its partitions move to the others, and every order still reaches its
final status with the stock invariants holding and no event applied twice."""

import collections
import concurrent.futures
import random
import signal
import threading
import uuid

import pytest

from conftest import make_system
from conveyor import Service, free_port, psql, wait_until

ORDERS = 240
FAST_FAILOVER = {"KAFKA_SESSION_TIMEOUT_MS": "6000"}


@pytest.fixture(scope="module")
def scaled(request, log_dir):
    system = make_system(request, log_dir, {s: FAST_FAILOVER for s in ("inventory", "shipping")})
    system.start()
    replicas = {"inventory": [system.inventory], "shipping": [system.shipping]}
    for name, extra in (("inventory", 2), ("shipping", 1)):
        for _ in range(extra):
            base = system.services[name]
            r = Service(name, base.db, free_port(), log_dir, {
                k: v for k, v in base.env.items() if k in ("TOPIC_PREFIX", "INVENTORY_SEED",
                                                           "KAFKA_SESSION_TIMEOUT_MS")})
            replicas[name].append(r.start())
    system.replicas = replicas
    yield system
    for rs in replicas.values():
        for r in rs[1:]:
            r.stop()
    system.stop()
    system.drop()


def assigned(replica):
    return replica.metric("consumer_assigned_partitions")


def test_replicas_share_partitions_and_survive_a_kill(scaled):
    inv, ship = scaled.replicas["inventory"], scaled.replicas["shipping"]
    # orders + shipments: 12 partitions over three inventory replicas; orders + inventory over
    # two shipping replicas. Each replica gets some.
    wait_until(lambda: all(assigned(r) > 0 for r in inv) and sum(map(assigned, inv)) == 12,
               60, 0.5, "inventory replicas to share the partitions")
    wait_until(lambda: all(assigned(r) > 0 for r in ship) and sum(map(assigned, ship)) == 12,
               60, 0.5, "shipping replicas to share the partitions")

    tag = uuid.uuid4().hex[:6]
    skus = {f"SCALE-{tag}-{i}": n for i, n in enumerate((400, 60, 30))}
    for sku, n in skus.items():
        scaled.set_stock(sku, n)
    rng = random.Random(11)
    plans = [[{"sku": s, "quantity": rng.randint(1, 4)} for s in rng.sample(sorted(skus), 2)]
             for _ in range(ORDERS)]
    placed = {}
    lock = threading.Lock()
    victim = inv[1]

    def place(i):
        order = scaled.place(plans[i], customer=f"scale-{i}")
        with lock:
            placed[order["id"]] = plans[i]
            if len(placed) == ORDERS // 3:
                victim.stop(signal.SIGKILL)  # mid-burst, no goodbye

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        list(pool.map(place, range(ORDERS)))
    assert victim.proc.returncode == -signal.SIGKILL
    survivors = [r for r in inv if r is not victim]

    def final(oid):
        return scaled.wait_status(oid, ("SHIPMENT_SCHEDULED", "REJECTED"), timeout=120)["status"]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = dict(zip(placed, pool.map(final, placed)))
    counts = collections.Counter(statuses.values())
    assert counts["SHIPMENT_SCHEDULED"] > 0, counts

    # The dead replica's partitions moved to the survivors.
    wait_until(lambda: sum(map(assigned, survivors)) == 12, 30, 0.5, "partitions to move")
    # Every live replica did part of the work.
    for r in survivors + ship:
        assert r.metric("consumer_records_total") > 0, f"{r.name}:{r.port} did nothing"

    # Each order decided once: one reservation row, one decision event.
    db = scaled.dbs["inventory"]
    rows = psql(db, "SELECT status, count(*) FROM reservations GROUP BY status")
    by_status = {s: int(n) for s, n in rows}
    assert sum(by_status.values()) == ORDERS
    assert by_status.get("RESERVED", 0) == counts["SHIPMENT_SCHEDULED"]
    decisions = collections.Counter()
    for e in wait_until(lambda: (lambda evs: evs if len(evs) >= ORDERS else None)(
            [e for e in scaled.audit_events(topic=scaled.prefix + "inventory")
             if e["type"] in ("StockReserved", "StockRejected")]), 60, 1.0, "decisions in audit"):
        decisions[e["order_id"]] += 1
    assert set(decisions) == set(placed) and set(decisions.values()) == {1}

    # Stock invariants: nothing oversold, nothing reserved twice.
    held = collections.Counter()
    for oid, items in placed.items():
        if statuses[oid] == "SHIPMENT_SCHEDULED":
            for it in items:
                held[it["sku"]] += it["quantity"]
    for sku, total in skus.items():
        s = scaled.stock(sku)
        assert s["available"] + s["reserved"] + s["shipped"] == total, s
        assert s["reserved"] == held[sku], (s, held[sku])
        assert held[sku] <= total, (sku, held[sku], total)  # nothing oversold

    # Every shipment scheduled exactly for the reserved orders.
    sdb = scaled.dbs["shipping"]
    scheduled = int(psql(sdb, "SELECT count(*) FROM shipments WHERE status = 'SCHEDULED'")[0][0])
    assert scheduled == counts["SHIPMENT_SCHEDULED"]
