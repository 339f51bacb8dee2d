"""The cancellation saga under replicas: two replicas each of order, inventory and shipping
(roundrobin assignment, so one replica can hold `orders` partition N while the other holds
`inventory` or `shipments` partition N and both apply events of one order at once), with
bursts of place+cancel (the request can reach shipping before OrderPlaced or StockReserved),
place+dispatch, and place+cancel racing a dispatch. Afterwards every invariant of the saga
holds for every order, and each order's outcome was emitted once."""

import collections
import concurrent.futures
import itertools
import random
import time
import uuid

import pytest

import saga_checks
from conftest import make_system
from conveyor import Service, free_port, psql, wait_until

ORDERS = 540
# Six service processes share one PostgreSQL server (with other work): small pools.
ROUNDROBIN = {"KAFKA_ASSIGNMENT_STRATEGY": "roundrobin", "DB_POOL_SIZE": "6"}


@pytest.fixture(scope="module")
def replicated(request, log_dir):
    system = make_system(request, log_dir, {s: ROUNDROBIN for s in ("order", "inventory",
                                                                    "shipping")})
    system.start()
    replicas = {}
    for name in ("order", "inventory", "shipping"):
        base = system.services[name]
        twin = Service(name, base.db, free_port(), log_dir, {
            k: v for k, v in base.env.items()
            if k in ("TOPIC_PREFIX", "INVENTORY_SEED", *ROUNDROBIN)})
        replicas[name] = [base, twin.start()]
    system.replicas = replicas
    yield system
    codes = [r.stop() for rs in replicas.values() for r in rs[1:]]
    system.stop()
    system.drop()
    assert codes == [0] * len(codes)


def test_replicas_keep_the_saga_invariants(replicated):
    s = replicated
    orders_r, ship_r = s.replicas["order"], s.replicas["shipping"]
    for name, rs in s.replicas.items():
        wait_until(lambda: all(r.metric("consumer_assigned_partitions") > 0 for r in rs), 60,
                   0.5, f"both {name} replicas to get partitions")
    tag = uuid.uuid4().hex[:6]
    skus = {f"REP-{tag}-{i}": 5000 for i in range(4)}
    for sku, n in skus.items():
        s.set_stock(sku, n)
    rng = random.Random(13)
    plans = []
    for i in range(ORDERS):
        items = [{"sku": sku, "quantity": rng.randint(1, 3)}
                 for sku in rng.sample(sorted(skus), rng.randint(1, 2))]
        plans.append((f"rep-{tag}-{i}", ("cancel", "dispatch", "race")[i % 3], items))
    rr = itertools.count()

    def pick(rs):
        return rs[next(rr) % len(rs)]

    def post(rs, path, body=None, headers=None):
        """As a client does: another replica and again after a 503 (database busy: nothing
        was done)."""
        for _ in range(100):
            r = pick(rs).post(path, body, headers=headers)
            if r.status != 503:
                return r
            time.sleep(0.1)
        return r

    def dispatch(oid):
        """Dispatches, retrying while shipping has not seen the order yet."""
        for _ in range(200):
            r = post(ship_r, f"/shipments/{oid}/dispatch")
            if r.status != 409 or "not known yet" not in r.json()["detail"] and \
                    "PENDING" not in r.json()["detail"]:
                return r
            time.sleep(0.05)
        return r

    def run(plan):
        key, kind, items = plan
        r = post(orders_r, "/orders", {"customer_id": "rep", "items": items},
                 {"Idempotency-Key": key})
        assert r.status in (200, 201), r.body
        oid = r.json()["id"]
        if kind == "cancel":  # at once: it may reach shipping before the order does
            c = post(orders_r, f"/orders/{oid}/cancel")
            assert c.status == 202, c.body
            return oid, items, kind, c.status, None
        s.wait_status(oid, "SHIPMENT_SCHEDULED", 120)
        if kind == "dispatch":
            d = dispatch(oid)
            assert d.status == 200, d.body
            return oid, items, kind, None, d.status
        with concurrent.futures.ThreadPoolExecutor(2) as both:
            c = both.submit(post, orders_r, f"/orders/{oid}/cancel")
            time.sleep(rng.uniform(0, 0.1))
            d = both.submit(dispatch, oid)
            return oid, items, kind, c.result().status, d.result().status

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        done = list(pool.map(run, plans))
    orders = {oid: items for oid, items, *_ in done}

    def final(oid):
        return s.wait_status(oid, ("CANCELLED", "DISPATCHED"), 120)["status"]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        finals = dict(zip(orders, pool.map(final, orders)))
    for oid, _, kind, c, d in done:
        if kind == "cancel":
            assert finals[oid] == "CANCELLED", oid
        elif kind == "dispatch":
            assert finals[oid] == "DISPATCHED", oid
        else:
            assert c in (202, 409) and d in (200, 409)
            assert finals[oid] == ("DISPATCHED" if d == 200 else "CANCELLED"), (oid, c, d)

    problems, figures = saga_checks.settle(s, orders, skus, 90)
    assert not problems, problems[:20]
    assert figures, "stock still reserved after every order was decided"

    # Each outcome emitted once per order, whichever replica applied what.
    def outcome_counts():
        sdb, idb = s.dbs["shipping"], s.dbs["inventory"]
        return (psql(sdb, "SELECT status, count(*) FROM shipments GROUP BY status"),
                psql(idb, "SELECT status, count(*) FROM reservations GROUP BY status"))
    events = wait_until(lambda: (lambda evs: evs if sum(
        1 for e in evs if e["type"] in ("ShipmentCancelled", "ShipmentDispatched")) >= ORDERS
        else None)(s.audit_events()), 90, 1.0, "audit to record every outcome")
    per_order = collections.defaultdict(collections.Counter)
    for e in events:
        if e["order_id"] in orders:
            per_order[e["order_id"]][e["type"]] += 1
    for oid in orders:
        c = per_order[oid]
        # Inventory may see the shipment cancelled before the order: then it never reserves.
        assert c["OrderPlaced"] == 1 and c["StockReserved"] <= 1 and c["StockRejected"] == 0
        assert c["ShipmentScheduled"] <= 1 and c["StockReleased"] <= 1, (oid, c)
        assert c["OrderCancellationRequested"] <= 1 and c["ShipmentCancellationRefused"] <= 1
        if finals[oid] == "CANCELLED":
            assert c["ShipmentCancelled"] == 1 and c["ShipmentDispatched"] == 0, (oid, c)
            assert c["StockReleased"] == c["StockReserved"], (oid, c)
        else:
            assert c["ShipmentDispatched"] == 1 and c["ShipmentCancelled"] == 0, (oid, c)
            assert c["StockReleased"] == 0 and c["StockReserved"] == 1, (oid, c)
    print(f"\n{ORDERS} orders over two replicas of order, inventory and shipping in "
          f"{time.monotonic() - started:.0f}s: {figures}; {outcome_counts()}")
    # Every replica did part of the work.
    for name, rs in s.replicas.items():
        for r in rs:
            assert r.metric("consumer_records_total") > 0, f"{name}:{r.port} did nothing"

