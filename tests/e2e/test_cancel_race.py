"""A cancel racing a dispatch: for each of many scheduled orders, POST /orders/{id}/cancel and
POST /shipments/{id}/dispatch are fired at the same moment. Shipping decides under the
shipment's row lock, so whichever wins, the order and the shipment agree, goods that left are
counted as shipped and never as available again, and each HTTP answer matches the outcome."""

import concurrent.futures
import random
import threading
import time
import uuid

import saga_checks
from conveyor import wait_until

ORDERS = 120


def test_cancel_racing_dispatch(system):
    tag = uuid.uuid4().hex[:6]
    skus = {f"RACE-{tag}-{i}": 1000 for i in range(3)}
    for sku, n in skus.items():
        system.set_stock(sku, n)
    orders = {}
    for i in range(ORDERS):
        items = [{"sku": sku, "quantity": 1 + (i + k) % 3}
                 for k, sku in enumerate(sorted(skus)) if (i + k) % 2 == 0]
        orders[system.place(items, customer=f"race-{i}")["id"]] = items
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda oid: system.wait_status(oid, "SHIPMENT_SCHEDULED", 60), orders))

    answers = {}
    # The cancel travels order -> outbox -> Kafka -> shipping while the dispatch is one call:
    # fired at the very same moment the dispatch nearly always wins. Holding the dispatch back
    # by a spread of delays makes the two meet anywhere in the cancel's journey.
    rng = random.Random(5)
    # A third at once, a third within the first quarter second, a third later (the cancel
    # takes longer on a loaded machine).
    spans = ((0, 0), (0, 0.25), (0.25, 1.5))
    delays = {oid: rng.uniform(*spans[i % 3]) for i, oid in enumerate(orders)}

    def race(oid):
        go = threading.Barrier(2)

        def cancel():
            go.wait()
            return system.order.post(f"/orders/{oid}/cancel")

        def dispatch():
            go.wait()
            time.sleep(delays[oid])
            return system.shipping.post(f"/shipments/{oid}/dispatch")
        with concurrent.futures.ThreadPoolExecutor(2) as both:
            c, d = both.submit(cancel), both.submit(dispatch)
            answers[oid] = (c.result(), d.result())
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(race, orders))

    finals = {}
    for oid, (c, d) in answers.items():
        assert c.status in (202, 409), c.body
        assert d.status in (200, 409), d.body
        # The dispatch answers for the shipment: 200 means the goods left.
        order = system.wait_status(oid, ("CANCELLED", "DISPATCHED"), 60)
        finals[oid] = order["status"]
        assert order["status"] == ("DISPATCHED" if d.status == 200 else "CANCELLED"), (order, d)
        if c.status == 409:  # the order had already heard of the dispatch
            assert order["status"] == "DISPATCHED"
        elif order["status"] == "DISPATCHED":  # accepted as a request, refused by shipping
            wait_until(lambda: system.order.get(f"/orders/{oid}").json()
                       .get("cancellation", {}).get("status") == "refused", 20,
                       what=f"the refusal of {oid}")
        else:  # the shipment was cancelled first: the dispatch was refused
            assert d.status == 409 and "CANCELLED" in d.json()["detail"], d.body

    # Inventory applies the releases and shipments asynchronously: wait for it to settle.
    problems, figures = saga_checks.settle(system, orders, skus, 60)
    assert not problems, problems[:20]
    assert figures, "stock still reserved after every order was decided"
    # Both outcomes happened: the race is real.
    counts = figures["statuses"]
    print(f"\ncancel racing dispatch, {ORDERS} orders: {figures}")
    assert counts.get("CANCELLED", 0) + counts.get("DISPATCHED", 0) == ORDERS, counts
    assert counts.get("CANCELLED") and counts.get("DISPATCHED"), counts
