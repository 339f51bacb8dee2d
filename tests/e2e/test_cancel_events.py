"""The cancellation saga against events injected straight onto the topics, as another (or an
older) producer would send them: a request that reaches shipping before the order's other
events still wins, release 1's OrderCancelled is still understood, and consumed events that
no request could have made are dead-lettered with the reason instead of applied."""

import uuid

from conveyor import kcat_records, wait_until
from injector import metadata, order_placed, send, shipment


BAD_ID = "not-a-uuid-" + "0" * 25  # as long as a UUID


def send_malformed(system, topic, type_name, event, key, malformed_id):
    """Sends event with the (valid) UUID malformed_id replaced by BAD_ID in its encoding."""
    send(system, topic, type_name, event, key, replace=(malformed_id.encode(), BAD_ID.encode()))


def placed(order_id, sku, qty):
    return order_placed(order_id, sku, qty, "injector", {"city": "Gouda"})


def test_request_before_order_and_reservation_wins(system):
    sku = "EARLY-" + uuid.uuid4().hex[:6]
    system.set_stock(sku, 10)
    oid = str(uuid.uuid4())
    send(system, "orders", "OrderCancellationRequested",
         {"metadata": metadata(oid, "order"), "order_id": oid, "reason": "changed my mind"}, oid)
    s = wait_until(lambda: (lambda s: s if s and s["status"] == "CANCELLED" else None)(
        shipment(system, oid)), 30, 0.2, "the shipment cancelled")
    assert s["reason"] == "changed my mind"
    # StockReserved arriving later must not schedule it; OrderPlaced only fills in the items.
    send(system, "inventory", "StockReserved", {"metadata": metadata(oid, "injected"),
                                                "order_id": oid,
                                                "items": [{"sku": sku, "quantity": 2}]}, oid)
    send(system, "orders", "OrderPlaced", placed(oid, sku, 2), oid)
    wait_until(lambda: shipment(system, oid)["items"], 30, 0.2, "the items")
    s = shipment(system, oid)
    assert s["status"] == "CANCELLED" and s["carrier"] is None
    assert s["shipping_address"] == {"city": "Gouda"}
    # Inventory either heard of the cancelled shipment first (and never reserves this order)
    # or reserved it and releases it: either way nothing stays reserved, released once.
    wait_until(lambda: system.stock(sku) == {"sku": sku, "name": sku, "available": 10,
                                             "reserved": 0, "shipped": 0}, 30, 0.2,
               "nothing reserved")
    assert system.shipping.post(f"/shipments/{oid}/dispatch").status == 409

    def inventory_events():
        evs = [e["type"] for e in system.audit_events(order_id=oid)
               if e["topic"] == system.prefix + "inventory" and e["producer"] != "injected"]
        return (evs,) if evs.count("StockReserved") == evs.count("StockReleased") else None
    decided, = wait_until(inventory_events, 30, 0.5, "inventory's events in audit")
    assert decided.count("StockReleased") <= 1 and "StockRejected" not in decided, decided
    types = [e["type"] for e in system.audit_events(order_id=oid)]
    assert types.count("ShipmentCancelled") == 1 and "ShipmentScheduled" not in types, types


def test_release_1_order_cancelled_is_a_request(system):
    sku = "V1-" + uuid.uuid4().hex[:6]
    system.set_stock(sku, 5)
    oid = system.place([{"sku": sku, "quantity": 3}])["id"]
    system.wait_status(oid, "SHIPMENT_SCHEDULED")
    send(system, "orders", "OrderCancelled",
         {"metadata": metadata(oid, "order"), "order_id": oid, "reason": "old producer"}, oid)
    wait_until(lambda: shipment(system, oid)["status"] == "CANCELLED", 30, 0.2,
               "the shipment cancelled")
    wait_until(lambda: system.stock(sku)["available"] == 5, 30, 0.2, "the stock released")
    assert system.stock(sku)["reserved"] == 0
    # Dispatched goods are never released by an old OrderCancelled: it is refused instead.
    oid2 = system.place([{"sku": sku, "quantity": 1}])["id"]
    system.wait_status(oid2, "SHIPMENT_SCHEDULED")
    assert system.shipping.post(f"/shipments/{oid2}/dispatch").status == 200
    send(system, "orders", "OrderCancelled",
         {"metadata": metadata(oid2, "order"), "order_id": oid2, "reason": "old producer"}, oid2)
    wait_until(lambda: shipment(system, oid2)["cancellation_refused"] == "already dispatched",
               30, 0.2, "the refusal")
    wait_until(lambda: system.stock(sku)["shipped"] == 1, 30, 0.2, "stock shipped")
    assert system.stock(sku)["available"] == 4 and system.stock(sku)["reserved"] == 0


def dead_letters(system, service, key):
    return [r for r in kcat_records(system.prefix + service + ".dlq") if r["key"] == key.encode()]


def test_invalid_events_are_dead_lettered_not_applied(system):
    sku = "FORGED-" + uuid.uuid4().hex[:6]
    system.set_stock(sku, 5)
    # A forged OrderPlaced with a negative quantity would raise available if applied.
    negative = str(uuid.uuid4())
    send(system, "orders", "OrderPlaced", placed(negative, sku, -4), negative)
    zero = str(uuid.uuid4())
    send(system, "orders", "OrderPlaced", placed(zero, sku, 0), zero)
    # A malformed order id.
    bad = str(uuid.uuid4())
    send_malformed(system, "orders", "OrderPlaced", placed(bad, sku, 1), bad, bad)
    for key, why in ((negative, "quantity must be"), (zero, "quantity must be"),
                     (bad, "malformed order_id")):
        for service in ("inventory", "shipping"):
            recs = wait_until(lambda: dead_letters(system, service, key), 30, 0.5,
                              f"{key} in {service}.dlq")
            assert why in recs[0]["headers"]["dlq_reason"], recs[0]["headers"]
    # Consumers of the inventory topic check the order id too.
    bad2 = str(uuid.uuid4())
    forged = {"metadata": metadata(bad2, "inventory"), "order_id": bad2,
              "items": [{"sku": sku, "quantity": 1}]}
    send_malformed(system, "inventory", "StockReserved", forged, "forged-reserved", bad2)
    for service in ("order", "shipping"):
        recs = wait_until(lambda: dead_letters(system, service, "forged-reserved"), 30, 0.5,
                          f"the forged StockReserved in {service}.dlq")
        assert "malformed order_id" in recs[0]["headers"]["dlq_reason"], recs[0]["headers"]
    # A decision with a quantity no order can have: the order and shipping refuse it too.
    zero_reserved = str(uuid.uuid4())
    send(system, "inventory", "StockReserved",
         {"metadata": metadata(zero_reserved, "inventory"), "order_id": zero_reserved,
          "items": [{"sku": sku, "quantity": 0}]}, zero_reserved)
    for service in ("order", "shipping"):
        recs = wait_until(lambda: dead_letters(system, service, zero_reserved), 30, 0.5,
                          f"the zero StockReserved in {service}.dlq")
        assert "quantity must be" in recs[0]["headers"]["dlq_reason"], recs[0]["headers"]
    # Nothing was applied.
    assert system.stock(sku) == {"sku": sku, "name": sku, "available": 5, "reserved": 0,
                                 "shipped": 0}
    for oid in (negative, zero):
        assert system.shipping.get(f"/shipments/{oid}").status == 404
    # The partitions moved on.
    oid = system.place([{"sku": sku, "quantity": 1}])["id"]
    system.wait_status(oid, "SHIPMENT_SCHEDULED")


def test_dispatch_waits_for_the_order(system):
    """Shipping dispatches only a shipment whose order it has seen (items, address)."""
    sku = "UNSEEN-" + uuid.uuid4().hex[:6]
    system.set_stock(sku, 5)
    oid = str(uuid.uuid4())
    send(system, "inventory", "StockReserved", {"metadata": metadata(oid, "inventory"),
                                                "order_id": oid,
                                                "items": [{"sku": sku, "quantity": 1}]}, oid)
    wait_until(lambda: (shipment(system, oid) or {}).get("status") == "SCHEDULED", 30, 0.2,
               "the shipment scheduled")
    r = system.shipping.post(f"/shipments/{oid}/dispatch")
    assert r.status == 409 and "not known yet" in r.json()["detail"], r.body
    assert r.headers.get("Retry-After") == "1"
    assert shipment(system, oid)["status"] == "SCHEDULED"
    send(system, "orders", "OrderPlaced", placed(oid, sku, 1), oid)
    wait_until(lambda: shipment(system, oid)["items"], 30, 0.2, "the order seen")
    r = system.shipping.post(f"/shipments/{oid}/dispatch")
    assert r.status == 200 and r.json()["status"] == "DISPATCHED", r.body
    assert r.json()["shipping_address"] == {"city": "Gouda"}
