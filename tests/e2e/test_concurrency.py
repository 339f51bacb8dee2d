"""Hundreds of concurrent orders racing for scarce SKUs never oversell: for every SKU,
initial + adjustments = available + reserved + shipped, and reserved + shipped equals the
quantities of the orders that hold stock."""

import collections
import concurrent.futures
import random
import uuid

from conveyor import wait_until

HOLDING = ("CONFIRMED", "SHIPMENT_SCHEDULED", "DISPATCHED", "DELIVERED")
ORDERS = 300


def check_invariants(system, skus, stock_total, orders):
    """Returns a list of violations (empty when all hold)."""
    held = collections.Counter()
    shipped = collections.Counter()
    for oid, items in orders.items():
        status = system.order.get(f"/orders/{oid}").json()["status"]
        for it in items:
            if status in HOLDING:
                held[it["sku"]] += it["quantity"]
            if status in ("DISPATCHED", "DELIVERED"):
                shipped[it["sku"]] += it["quantity"]
    problems = []
    for sku in skus:
        s = system.stock(sku)
        if s["available"] + s["reserved"] + s["shipped"] != stock_total[sku]:
            problems.append(f"{sku}: {s} does not add up to {stock_total[sku]}")
        if s["reserved"] + s["shipped"] != held[sku]:
            problems.append(f"{sku}: reserved+shipped {s['reserved'] + s['shipped']} != held "
                            f"{held[sku]}")
        if s["shipped"] != shipped[sku]:
            problems.append(f"{sku}: shipped {s['shipped']} != dispatched {shipped[sku]}")
    return problems


def test_concurrent_orders_never_oversell(system):
    rng = random.Random(7)
    tag = uuid.uuid4().hex[:6]
    skus = [f"RACE-{tag}-{i}" for i in range(3)]
    stock_total = {}
    for sku, n in zip(skus, (40, 25, 15)):
        system.set_stock(sku, n)
        stock_total[sku] = n

    def place(i):
        items = [{"sku": sku, "quantity": rng.randint(1, 3)}
                 for sku in rng.sample(skus, rng.randint(1, 2))]
        return system.place(items, customer=f"racer-{i % 17}")["id"], items

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        placed = list(pool.map(place, range(ORDERS)))
        # An adjustment while the race is on.
        system.set_stock(skus[0], system.stock(skus[0])["available"] + 10)
    orders = dict(placed)

    def final(oid):
        return system.wait_status(oid, ("SHIPMENT_SCHEDULED", "REJECTED"), timeout=90)["status"]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = dict(zip(orders, pool.map(final, orders)))
    counts = collections.Counter(statuses.values())
    assert counts["SHIPMENT_SCHEDULED"] > 0 and counts["REJECTED"] > 0, counts

    # The adjustment's effect on the total: read it back from the audit trail of StockAdjusted.
    adjusted = wait_until(lambda: (lambda evs: evs if len(evs) >= len(skus) + 1 else None)(
        [e for e in system.audit_events(type="StockAdjusted") if e["data"]["sku"] in skus]),
        30, 0.5, "the StockAdjusted events in audit")
    for sku in skus:
        last = [e for e in adjusted if e["data"]["sku"] == sku]
        stock_total[sku] += sum(e["data"]["available"] - e["data"]["previous_available"]
                                for e in last[1:])

    # Some cancel, some are dispatched, while others are still in flight.
    scheduled = [o for o, s in statuses.items() if s == "SHIPMENT_SCHEDULED"]
    rng.shuffle(scheduled)
    for oid in scheduled[:10]:
        r = system.order.post(f"/orders/{oid}/cancel")
        assert r.status == 202 and r.json()["status"] == "CANCELLING", r.body
    for oid in scheduled[10:20]:
        assert system.shipping.post(f"/shipments/{oid}/dispatch").status == 200

    for oid in scheduled[:10]:
        assert system.wait_status(oid, ("CANCELLED", "DISPATCHED"))["status"] == "CANCELLED"
    try:
        wait_until(lambda: not check_invariants(system, skus, stock_total, orders), 60, 1.0,
                   "the stock to settle")
    except AssertionError:
        pass
    assert check_invariants(system, skus, stock_total, orders) == []
    # Nothing oversold, counted from the orders' side: the quantities of the orders that hold or
    # shipped stock never exceed what the SKU ever had (available >= 0 alone proves nothing: a
    # CHECK constraint guarantees it).
    committed = collections.Counter()
    for oid, items in orders.items():
        if system.order.get(f"/orders/{oid}").json()["status"] in HOLDING:
            for it in items:
                committed[it["sku"]] += it["quantity"]
    for sku in skus:
        assert committed[sku] <= stock_total[sku], (sku, committed[sku], stock_total[sku])
