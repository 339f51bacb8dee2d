"""The order saga end to end: four services as processes, a real broker and PostgreSQL."""

import uuid


def sku(name):
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_happy_path_to_delivered(system):
    widget = sku("WIDGET")
    system.set_stock(widget, 10, "Widget")
    order = system.place([{"sku": widget, "quantity": 3, "unit_price_cents": 250}],
                         shipping_address={"city": "Utrecht", "street": "Oudegracht 1"})
    assert order["status"] == "PENDING"
    assert order["total_cents"] == 750
    oid = order["id"]

    order = system.wait_status(oid, "SHIPMENT_SCHEDULED")
    assert system.stock(widget) == {"sku": widget, "name": "Widget", "available": 7,
                                    "reserved": 3, "shipped": 0}
    shipment = system.shipping.get(f"/shipments/{oid}").json()
    assert shipment["status"] == "SCHEDULED"
    assert shipment["carrier"] and shipment["tracking_number"].startswith("CV")
    assert shipment["shipping_address"] == {"city": "Utrecht", "street": "Oudegracht 1"}

    r = system.shipping.post(f"/shipments/{oid}/dispatch")
    assert r.status == 200 and r.json()["status"] == "DISPATCHED"
    system.wait_status(oid, "DISPATCHED")
    r = system.shipping.post(f"/shipments/{oid}/deliver")
    assert r.status == 200 and r.json()["status"] == "DELIVERED"
    order = system.wait_status(oid, "DELIVERED")
    assert "reason" not in order

    def shipped():
        s = system.stock(widget)
        return s if s["shipped"] == 3 else None
    from conveyor import wait_until
    assert wait_until(shipped, 20, what="stock shipped") == {
        "sku": widget, "name": "Widget", "available": 7, "reserved": 0, "shipped": 3}
    # Delivered is final: delivering or dispatching again conflicts.
    assert system.shipping.post(f"/shipments/{oid}/deliver").status == 409
    assert system.shipping.post(f"/shipments/{oid}/dispatch").status == 409


def test_rejection_names_short_skus_and_changes_no_stock(system):
    a, b, c = sku("A"), sku("B"), sku("C")
    system.set_stock(a, 5)
    system.set_stock(b, 1)
    order = system.place([{"sku": a, "quantity": 2}, {"sku": b, "quantity": 4},
                          {"sku": c, "quantity": 1}])
    order = system.wait_status(order["id"], "REJECTED")
    reason = order["reason"]
    assert f"{b} (requested 4, available 1)" in reason
    assert f"{c} (requested 1, available 0, unknown SKU)" in reason
    assert a not in reason
    assert system.stock(a)["available"] == 5 and system.stock(a)["reserved"] == 0
    assert system.stock(b)["available"] == 1

    from conveyor import wait_until
    shipment = wait_until(lambda: (lambda s: s if s.get("status") == "CANCELLED" else None)(
        system.shipping.get(f"/shipments/{order['id']}").json()), 20, what="shipment cancelled")
    assert shipment["carrier"] is None
    # A rejected order cannot be cancelled.
    assert system.order.post(f"/orders/{order['id']}/cancel").status == 409


def test_same_sku_twice_is_summed(system):
    a = sku("SUM")
    system.set_stock(a, 5)
    order = system.place([{"sku": a, "quantity": 3}, {"sku": a, "quantity": 3}])
    order = system.wait_status(order["id"], "REJECTED")
    assert f"{a} (requested 6, available 5)" in order["reason"]


def test_cancellation_releases_stock_and_cancels_shipment(system):
    from conveyor import wait_until
    a = sku("CANCEL")
    system.set_stock(a, 4)
    order = system.place([{"sku": a, "quantity": 4}])
    oid = order["id"]
    system.wait_status(oid, "SHIPMENT_SCHEDULED")
    assert system.stock(a)["reserved"] == 4

    # The cancel is a request: 202 CANCELLING; shipping decides.
    r = system.order.post(f"/orders/{oid}/cancel")
    assert r.status == 202 and r.json()["status"] == "CANCELLING", r.body
    assert r.json()["cancellation"]["status"] == "requested"
    # A repeated request answers the same while the saga runs; once shipping has decided (it
    # can be that quick), the order is CANCELLED, which is final: 409.
    again = system.order.post(f"/orders/{oid}/cancel")
    if again.status == 409:
        assert "CANCELLED" in again.json()["detail"], again.body
    else:
        assert again.status == 202 and again.json()["status"] == "CANCELLING", again.body
    order = system.wait_status(oid, ["CANCELLED", "DISPATCHED"])
    assert order["status"] == "CANCELLED"
    assert order["reason"] == "cancelled by customer"
    assert order["cancellation"]["status"] == "accepted"
    wait_until(lambda: system.stock(a)["available"] == 4, 20, what="stock released")
    assert system.stock(a)["reserved"] == 0 and system.stock(a)["shipped"] == 0
    shipment = system.shipping.get(f"/shipments/{oid}").json()
    assert shipment["status"] == "CANCELLED" and shipment["reason"] == "cancelled by customer"
    # A cancelled shipment keeps its carrier and tracking number.
    assert shipment["carrier"] and shipment["tracking_number"].startswith("CV")
    # Cancelled is final, and late events never move it back.
    assert system.order.post(f"/orders/{oid}/cancel").status == 409
    r = system.shipping.post(f"/shipments/{oid}/dispatch")
    assert r.status == 409 and "CANCELLED" in r.json()["detail"]
    assert system.order.get(f"/orders/{oid}").json()["status"] == "CANCELLED"
    # One request, one answer, one release.
    from conveyor import wait_until as wu
    events = wu(lambda: (lambda e: e if {"OrderCancellationRequested", "ShipmentCancelled",
                                         "StockReleased"} <= {x["type"] for x in e} else None)(
        system.audit_events(order_id=oid)), 20, what="audit has the cancellation")
    types = [e["type"] for e in events]
    assert types.count("OrderCancellationRequested") == 1
    assert types.count("ShipmentCancelled") == 1 and types.count("StockReleased") == 1


def test_cancel_refused_after_dispatch(system):
    a = sku("DISPATCHED")
    system.set_stock(a, 2)
    oid = system.place([{"sku": a, "quantity": 1}])["id"]
    system.wait_status(oid, "SHIPMENT_SCHEDULED")
    assert system.shipping.post(f"/shipments/{oid}/dispatch").status == 200
    system.wait_status(oid, "DISPATCHED")
    r = system.order.post(f"/orders/{oid}/cancel")
    assert r.status == 409
    assert r.content_type.startswith("application/problem+json")
    assert "DISPATCHED" in r.json()["detail"]
    assert system.order.get(f"/orders/{oid}").json()["status"] == "DISPATCHED"


def test_cancel_decided_by_shipping_refused_when_dispatched_first(system):
    """The order has not heard of the dispatch yet: the cancel is accepted as a request, and
    shipping refuses it; the order follows the shipment and shows the refusal."""
    from conveyor import wait_until
    a = sku("REFUSE")
    system.set_stock(a, 3)
    oid = system.place([{"sku": a, "quantity": 2}])["id"]
    system.wait_status(oid, "SHIPMENT_SCHEDULED")
    # The order service must take the cancel before it hears of the dispatch: it runs cut
    # off from the broker meanwhile (its request waits in its outbox).
    from conveyor import Service, http
    system.order.stop()
    assert system.shipping.post(f"/shipments/{oid}/dispatch").status == 200
    cut = Service("order", system.dbs["order"], system.order.port, system.log_dir,
                  dict(system.env["order"], KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9"))
    cut.start(wait=False)

    def alive():
        assert cut.proc.poll() is None, "the cut-off order service exited"
        try:
            return http("GET", cut.url + "/healthz", timeout=2).status == 200
        except OSError:
            return False
    try:
        wait_until(alive, 30, 0.2, "cut-off order service")
        r = cut.post(f"/orders/{oid}/cancel")
    finally:
        cut.stop()
    system.order.start()
    assert r.status == 202 and r.json()["status"] == "CANCELLING", r.body
    order = wait_until(lambda: (lambda o: o if o.get("cancellation", {}).get("status") ==
                                "refused" else None)(system.order.get(f"/orders/{oid}").json()),
                       20, what="refusal recorded")
    assert order["cancellation"]["reason"] == "already dispatched"
    assert system.wait_status(oid, ["CANCELLED", "DISPATCHED"])["status"] == "DISPATCHED"
    shipment = system.shipping.get(f"/shipments/{oid}").json()
    assert shipment["status"] == "DISPATCHED"
    assert shipment["cancellation_refused"] == "already dispatched"
    wait_until(lambda: system.stock(a)["shipped"] == 2, 20, what="stock shipped")
    assert system.stock(a)["available"] == 1 and system.stock(a)["reserved"] == 0
    # Delivered later: the order follows.
    assert system.shipping.post(f"/shipments/{oid}/deliver").status == 200
    system.wait_status(oid, "DELIVERED")


def test_cancel_of_pending_order_wins_over_reservation(system):
    """Cancelled right after placing: whatever reaches shipping and inventory first, the
    order ends CANCELLED, the shipment CANCELLED, and no stock stays reserved."""
    from conveyor import wait_until
    a = sku("EARLY")
    system.set_stock(a, 50)
    ids = []
    for _ in range(10):
        oid = system.place([{"sku": a, "quantity": 1}])["id"]
        r = system.order.post(f"/orders/{oid}/cancel")
        assert r.status in (202, 409), r.body
        ids.append((oid, r.status))
    for oid, status in ids:
        o = system.wait_status(oid, ["CANCELLED", "DISPATCHED", "DELIVERED", "REJECTED"])
        if status == 202:
            assert o["status"] == "CANCELLED", o
        s = system.shipping.get(f"/shipments/{oid}").json()
        assert s["status"] == "CANCELLED", s
    wait_until(lambda: system.stock(a)["reserved"] == 0, 20, what="nothing reserved")
    assert system.stock(a)["available"] == 50 and system.stock(a)["shipped"] == 0


def test_wait_for_accepts_cancelling(system):
    r = system.order.get(f"/orders/{uuid.uuid4()}?wait_for=CANCELLING,CANCELLED&timeout_ms=0")
    assert r.status == 404


def test_cancel_unknown_order_is_404(system):
    r = system.order.post(f"/orders/{uuid.uuid4()}/cancel")
    assert r.status == 404
    assert system.order.get(f"/orders/{uuid.uuid4()}").status == 404
    assert system.order.get("/orders/not-a-uuid").status == 404


def test_idempotency_key(system):
    a = sku("IDEM")
    system.set_stock(a, 10)
    body = {"customer_id": "carol", "items": [{"sku": a, "quantity": 1}]}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = system.order.post("/orders", body, headers=key)
    assert first.status == 201
    again = system.order.post("/orders", body, headers=key)
    assert again.status == 200 and again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == f"/orders/{first.json()['id']}"
    other = system.order.post("/orders", dict(body, customer_id="dave"), headers=key)
    assert other.status == 422
    assert other.content_type.startswith("application/problem+json")
    orders = system.order.get("/orders?customer_id=carol").json()["orders"]
    assert [o["id"] for o in orders] == [first.json()["id"]]


def test_list_orders_with_filters_and_cursor(system):
    customer = "list-" + uuid.uuid4().hex[:6]
    a = sku("LIST")
    system.set_stock(a, 100)
    ids = [system.place([{"sku": a, "quantity": 1}], customer=customer)["id"] for _ in range(5)]
    page1 = system.order.get(f"/orders?customer_id={customer}&limit=3").json()
    assert [o["id"] for o in page1["orders"]] == ids[:3] and page1["next"]
    page2 = system.order.get(f"/orders?customer_id={customer}&limit=3&after={page1['next']}").json()
    assert [o["id"] for o in page2["orders"]] == ids[3:] and page2["next"] is None
    for oid in ids:
        system.wait_status(oid, "SHIPMENT_SCHEDULED")
    scheduled = system.order.get(f"/orders?customer_id={customer}&status=SHIPMENT_SCHEDULED").json()
    assert len(scheduled["orders"]) == 5
    assert system.order.get("/orders?status=NOPE").status == 400
    assert system.order.get("/orders?limit=0").status == 400


def test_long_poll_times_out_with_current_state(system):
    a = sku("POLL")
    system.set_stock(a, 1)
    oid = system.place([{"sku": a, "quantity": 1}])["id"]
    system.wait_status(oid, "SHIPMENT_SCHEDULED")
    import time
    started = time.monotonic()
    r = system.order.get(f"/orders/{oid}?wait_for=DELIVERED&timeout_ms=500")
    assert r.status == 200 and r.json()["status"] == "SHIPMENT_SCHEDULED"
    assert time.monotonic() - started >= 0.45
    assert system.order.get(f"/orders/{oid}?wait_for=BOGUS").status == 400
    assert system.order.get(f"/orders/{oid}?wait_for=DELIVERED&timeout_ms=30001").status == 400


def test_inventory_listing_and_validation(system):
    a = sku("INV")
    system.set_stock(a, 3, "Thing")
    assert system.stock(a)["name"] == "Thing"
    system.set_stock(a, 9)
    assert system.stock(a) == {"sku": a, "name": "Thing", "available": 9, "reserved": 0,
                               "shipped": 0}
    listing = system.inventory.get("/inventory?limit=1000").json()
    assert a in [i["sku"] for i in listing["items"]]
    assert system.inventory.get("/inventory/NOPE-" + uuid.uuid4().hex[:6]).status == 404
    for bad in ({"available": -1}, {"available": "3"}, {}, {"available": 1, "extra": 1},
                {"available": 1.5}):
        r = system.inventory.put(f"/inventory/{a}", bad)
        assert r.status == 400, bad
        assert r.content_type.startswith("application/problem+json")
    assert system.inventory.put("/inventory/bad%20sku", {"available": 1}).status == 400
    assert system.stock(a)["available"] == 9

    # Each adjustment is an event naming the figure it replaced.
    from conveyor import wait_until
    adjusted = wait_until(lambda: (lambda evs: evs if len(evs) >= 2 else None)(
        [e["data"] for e in system.audit_events(type="StockAdjusted") if e["data"]["sku"] == a]),
        20, 0.3, "StockAdjusted in audit")
    assert [(e["previous_available"], e["available"]) for e in adjusted] == [(0, 3), (3, 9)]
