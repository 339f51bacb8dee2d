"""Events produced straight onto the system's topics, as another (or an older) producer would
send them: their metadata, an OrderPlaced, the send itself (Avro by avro_peer, an encoder
independent of ours) and the shipment the events lead to."""

import time
import uuid

import avro_peer
from confluent_kafka import Producer
from conveyor import BROKERS


def metadata(order_id, producer, cause=None):
    return {"event_id": str(uuid.uuid4()), "occurred_at": int(time.time() * 1000),
            "producer": producer, "correlation_id": order_id, "causation_id": cause}


def order_placed(order_id, sku, qty, customer, address=None):
    """An OrderPlaced of qty units of sku at 100 cents, shipped to address (a dict or None)."""
    return {"metadata": metadata(order_id, "order"), "order_id": order_id,
            "customer_id": customer, "items": [{"sku": sku, "quantity": qty,
                                                "unit_price_cents": 100}],
            "total_cents": 100 * qty, "shipping_address": address}


def send(system, topic, type_name, event, key, replace=None):
    """Encodes event and produces it onto the system's topic; replace=(old, new) swaps those
    bytes in the encoded value first, as a foreign producer that checks nothing could send."""
    value = avro_peer.encode(type_name, event)
    if replace:
        value = value.replace(*replace)
    p = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True})
    p.produce(system.prefix + topic, key=key, value=value)
    assert p.flush(20) == 0


def shipment(system, order_id):
    """The order's shipment as shipping shows it, None before it exists."""
    r = system.shipping.get(f"/shipments/{order_id}")
    return r.json() if r.status == 200 else None
