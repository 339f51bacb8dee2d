"""Events from different topics arrive in any order, and every interleaving ends in the same
state. The events are injected straight onto the topics, as another producer would."""

import time
import uuid

from conveyor import wait_until
from injector import metadata, order_placed, send, shipment


def placed(order_id, sku, qty):
    return order_placed(order_id, sku, qty, "interleaver", {"city": "Leiden"})


def comparable(s):
    return {k: s[k] for k in ("status", "items", "shipping_address", "reason")
            if k in s} | {"scheduled": bool(s.get("carrier") and s.get("tracking_number"))}


def settle(system, order_id, status):
    return wait_until(lambda: (lambda s: s if s and s["status"] == status else None)(
        shipment(system, order_id)), 30, 0.2, f"shipment {order_id} {status}")


def test_stock_reserved_before_order_placed(system):
    sku = "ORD-" + uuid.uuid4().hex[:6]
    system.set_stock(sku, 10)
    early, normal = str(uuid.uuid4()), str(uuid.uuid4())

    # Normal: OrderPlaced; inventory reserves; shipping schedules.
    send(system, "orders", "OrderPlaced", placed(normal, sku, 2), normal)
    reference = comparable(settle(system, normal, "SCHEDULED"))

    # Overtaken: shipping hears StockReserved before the OrderPlaced that caused it.
    reserved = {"metadata": metadata(early, "inventory"), "order_id": early,
                "items": [{"sku": sku, "quantity": 2}]}
    send(system, "inventory", "StockReserved", reserved, early)
    settle(system, early, "SCHEDULED")
    send(system, "orders", "OrderPlaced", placed(early, sku, 2), early)
    wait_until(lambda: comparable(shipment(system, early)) == reference, 30, 0.2,
               "the overtaken shipment to match")
    assert system.stock(sku)["reserved"] == 4


def test_stock_rejected_before_order_placed(system):
    sku = "REJ-" + uuid.uuid4().hex[:6]
    system.set_stock(sku, 1)
    early, normal = str(uuid.uuid4()), str(uuid.uuid4())
    send(system, "orders", "OrderPlaced", placed(normal, sku, 5), normal)
    reference = settle(system, normal, "CANCELLED")
    wait_until(lambda: shipment(system, normal)["items"], 10)
    reference = comparable(shipment(system, normal))

    rejected = {"metadata": metadata(early, "inventory"), "order_id": early,
                "reason": "insufficient stock", "shortages": [
                    {"sku": sku, "requested": 5, "available": 1}]}
    send(system, "inventory", "StockRejected", rejected, early)
    settle(system, early, "CANCELLED")
    send(system, "orders", "OrderPlaced", placed(early, sku, 5), early)
    wait_until(lambda: comparable(shipment(system, early)) == reference, 30, 0.2,
               "the overtaken shipment to match")
    assert system.stock(sku) == {"sku": sku, "name": sku, "available": 1, "reserved": 0,
                                 "shipped": 0}


def test_order_status_never_moves_back(system):
    sku = "BACK-" + uuid.uuid4().hex[:6]
    system.set_stock(sku, 5)
    oid = system.place([{"sku": sku, "quantity": 1}])["id"]
    system.wait_status(oid, "SHIPMENT_SCHEDULED")
    assert system.shipping.post(f"/shipments/{oid}/dispatch").status == 200
    system.wait_status(oid, "DISPATCHED")
    # A late StockReserved and ShipmentScheduled (redelivered or reordered) change nothing.
    send(system, "inventory", "StockReserved",
         {"metadata": metadata(oid, "inventory"), "order_id": oid,
          "items": [{"sku": sku, "quantity": 1}]}, oid)
    send(system, "shipments", "ShipmentScheduled",
         {"metadata": metadata(oid, "shipping"), "order_id": oid, "carrier": "DHL",
          "tracking_number": "X", "eta": int(time.time() * 1000)}, oid)
    # Delivered overtaking nothing: straight to DELIVERED is forward.
    send(system, "shipments", "ShipmentDelivered",
         {"metadata": metadata(oid, "shipping"), "order_id": oid, "tracking_number": "X"}, oid)
    system.wait_status(oid, "DELIVERED")
    send(system, "shipments", "ShipmentDispatched",
         {"metadata": metadata(oid, "shipping"), "order_id": oid, "tracking_number": "X",
          "items": [{"sku": sku, "quantity": 1}]}, oid)
    time.sleep(2)
    assert system.order.get(f"/orders/{oid}").json()["status"] == "DELIVERED"
    # Inventory applied the dispatch once.
    assert system.stock(sku)["shipped"] == 1 and system.stock(sku)["reserved"] == 0
