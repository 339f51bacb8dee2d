"""What is on the topics is standard Avro that other tools read: kcat's raw bytes decode with
python-avro (an independent implementation) and carry the fingerprint it computes; Kafka's own
console consumer reads the topics; every record has CloudEvents headers."""

import uuid

import avro_peer
from conveyor import kafka_tool, kcat_records, wait_until, BROKERS


def test_orders_topic_is_standard_avro(system):
    system.set_stock("WIRE-1", 10, "Wire")
    order = system.place([{"sku": "WIRE-1", "quantity": 2, "unit_price_cents": 125}],
                         shipping_address={"city": "Delft"})
    topic = system.prefix + "orders"

    def find():
        return [r for r in kcat_records(topic) if r["key"] == order["id"].encode()]
    records = wait_until(find, 30, 0.5, "the OrderPlaced record")
    assert len(records) == 1
    rec = records[0]
    assert rec["value"][:2] == b"\xc3\x01"
    assert int.from_bytes(rec["value"][2:10], "little") == avro_peer.fingerprint("OrderPlaced")
    type_name, event = avro_peer.decode(rec["value"])
    assert type_name == "OrderPlaced"
    assert event["order_id"] == order["id"]
    assert event["customer_id"] == order["customer_id"]
    assert event["items"] == order["items"]
    assert event["total_cents"] == 250
    assert event["shipping_address"] == {"city": "Delft"}
    meta = event["metadata"]
    assert meta["producer"] == "order" and meta["correlation_id"] == order["id"]
    assert meta["causation_id"] is None
    uuid.UUID(meta["event_id"])
    # CloudEvents binary-mode headers.
    h = rec["headers"]
    assert h["ce_id"] == meta["event_id"]
    assert h["ce_type"] == "conveyor.OrderPlaced"
    assert h["ce_source"] == "/conveyor/order"
    assert h["ce_specversion"] == "1.0"
    assert h["content-type"] == "application/avro"

    # The events it caused name it as their cause.
    system.wait_status(order["id"], "SHIPMENT_SCHEDULED")
    inv = wait_until(lambda: [r for r in kcat_records(system.prefix + "inventory")
                              if r["key"] == order["id"].encode()], 20, 0.5, "StockReserved")
    type_name, reserved = avro_peer.decode(inv[0]["value"])
    assert type_name == "StockReserved"
    assert reserved["metadata"]["causation_id"] == meta["event_id"]
    assert reserved["metadata"]["correlation_id"] == order["id"]
    assert reserved["items"] == [{"sku": "WIRE-1", "quantity": 2}]


def test_console_consumer_reads_topics(system):
    system.set_stock("WIRE-2", 5)
    order = system.place([{"sku": "WIRE-2", "quantity": 1}])
    system.wait_status(order["id"], "SHIPMENT_SCHEDULED")
    out = kafka_tool("console-consumer", "--bootstrap-server", BROKERS, "--topic",
                     system.prefix + "shipments", "--from-beginning", "--max-messages", "1",
                     "--timeout-ms", "20000", "--property", "print.key=true",
                     "--property", "print.headers=true").stdout
    assert order["id"] in out or "ce_type:conveyor.Shipment" in out, out
    groups = kafka_tool("consumer-groups", "--bootstrap-server", BROKERS, "--list").stdout
    for service in ("order", "inventory", "shipping", "audit"):
        assert system.prefix + service in groups.split()


def test_trace_context_follows_the_order(system):
    """The W3C traceparent of the request is carried into every event of the order's saga,
    each hop a span of the same trace."""
    system.set_stock("WIRE-3", 5)
    trace_id = uuid.uuid4().hex
    r = system.order.post("/orders", {"customer_id": "tracer", "items": [
        {"sku": "WIRE-3", "quantity": 1}]},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert r.status == 201
    assert r.headers["traceparent"].split("-")[1] == trace_id
    oid = r.json()["id"]
    system.wait_status(oid, "SHIPMENT_SCHEDULED")
    events = wait_until(lambda: (lambda evs: evs if len(evs) >= 3 else None)(
        system.audit_events(order_id=oid)), 20, 0.3, "the saga's events in audit")
    spans = set()
    for e in events:
        version, tid, span, flags = e["headers"]["traceparent"].split("-")
        assert (version, tid, flags) == ("00", trace_id, "01"), e["type"]
        spans.add(span)
    assert len(spans) == len(events) and "00f067aa0ba902b7" not in spans
    # Without a traceparent, a new trace starts.
    r = system.order.get(f"/orders/{oid}")
    assert r.headers["traceparent"].split("-")[1] != trace_id
