"""Invariants of the cancellation saga, checked after a run: an order is CANCELLED exactly when
its shipment is, DISPATCHED/DELIVERED exactly when its shipment is, goods that left are counted
as shipped (never as available), and available + reserved + shipped only changes by
adjustments."""

import collections

from conveyor import wait_until


def outcomes(system, orders):
    """order id -> (order, shipment) as the services show them."""
    return {oid: (system.order.get(f"/orders/{oid}").json(),
                  system.shipping.get(f"/shipments/{oid}").json()) for oid in orders}


def check(system, orders, stock_total, seen=None):
    """orders: id -> items; stock_total: sku -> start plus adjustments. Returns (problems,
    figures): the violations (empty when every invariant holds) and the counts behind them."""
    seen = seen or outcomes(system, orders)
    problems = []
    dispatched_units = collections.Counter()
    statuses = collections.Counter()
    refused = 0
    for oid, (order, shipment) in seen.items():
        o, s = order["status"], shipment.get("status")
        statuses[o] += 1
        if (o == "CANCELLED") != (s == "CANCELLED"):
            problems.append(f"{oid}: order {o}, shipment {s}")
        if o in ("DISPATCHED", "DELIVERED") and s != o:
            problems.append(f"{oid}: order {o}, shipment {s}")
        if s in ("DISPATCHED", "DELIVERED"):
            for it in orders[oid]:
                dispatched_units[it["sku"]] += it["quantity"]
        if order.get("cancellation", {}).get("status") == "refused":
            refused += 1
            if s not in ("DISPATCHED", "DELIVERED"):
                problems.append(f"{oid}: cancellation refused but shipment {s}")
    figures = {"orders": len(seen), "statuses": dict(statuses), "refused": refused, "stock": {}}
    for sku, total in stock_total.items():
        st = system.stock(sku)
        figures["stock"][sku] = dict(st, dispatched_units=dispatched_units[sku], start=total)
        if st["shipped"] != dispatched_units[sku]:
            problems.append(f"{sku}: shipped {st['shipped']} != units of dispatched shipments "
                            f"{dispatched_units[sku]}")
        if st["available"] + st["reserved"] + st["shipped"] != total:
            problems.append(f"{sku}: {st} does not add up to {total}")
    return problems, figures


def settle(system, orders, stock_total, timeout):
    """Waits (at most timeout seconds) for inventory to apply the releases and shipments it
    receives asynchronously: until every invariant holds and nothing stays reserved. Returns
    (problems, figures) of the last check; figures None if it did not settle in time."""
    problems = []

    def settled():
        nonlocal problems
        problems, figures = check(system, orders, stock_total)
        return figures if not problems and all(
            system.stock(sku)["reserved"] == 0 for sku in stock_total) else None
    try:
        return problems, wait_until(settled, timeout, 1.0, "the stock to settle")
    except AssertionError:
        return problems, None
