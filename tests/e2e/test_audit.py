"""Audit stores every event produced exactly once, an order's events in the order they
happened; replaying already-processed events (offsets reset with Kafka's own tool) changes no
state."""

import collections

import avro_peer
from conveyor import BROKERS, kafka_tool, kcat_records, psql, wait_until


def run_some_orders(system, n=12):
    system.set_stock("AUD-1", 1000)
    system.set_stock("AUD-2", 3)
    ids = []
    for i in range(n):
        items = [{"sku": "AUD-1", "quantity": 1}]
        if i % 3 == 0:
            items.append({"sku": "AUD-2", "quantity": 2})  # some get rejected
        ids.append(system.place(items, customer=f"aud-{i}")["id"])
    finals = {}
    for i, oid in enumerate(ids):
        finals[oid] = system.wait_status(oid, ("SHIPMENT_SCHEDULED", "REJECTED"))["status"]
    scheduled = [o for o in ids if finals[o] == "SHIPMENT_SCHEDULED"]
    for oid in scheduled[:3]:
        assert system.shipping.post(f"/shipments/{oid}/dispatch").status == 200
    for oid in scheduled[:2]:
        system.wait_status(oid, "DISPATCHED")
        assert system.shipping.post(f"/shipments/{oid}/deliver").status == 200
    for oid in scheduled[3:5]:
        assert system.order.post(f"/orders/{oid}/cancel").status == 202
    for oid in scheduled[3:5]:
        assert system.wait_status(oid, ("CANCELLED", "DISPATCHED"))["status"] == "CANCELLED"
    return ids


def topic_events(system):
    """event id -> (type, topic) of every record on the three event topics."""
    events = {}
    for t in ("orders", "inventory", "shipments"):
        for rec in kcat_records(system.prefix + t):
            type_name, ev = avro_peer.decode(rec["value"])
            events[ev["metadata"]["event_id"]] = (type_name, system.prefix + t)
    return events


def test_every_event_recorded_exactly_once_in_order(system):
    ids = run_some_orders(system)

    def caught_up():
        produced = topic_events(system)
        recorded = [e for e in system.audit_events()
                    if e["type"] not in ("DeadLetter", "Undecodable")]
        return (produced, recorded) if len(recorded) >= len(produced) and produced else None
    # Let the last events settle, then compare.
    wait_until(lambda: system.order.get(f"/orders/{ids[-1]}").json()["status"] != "PENDING", 20)
    produced, recorded = wait_until(caught_up, 40, 1.0, "audit to catch up")
    produced = topic_events(system)
    recorded_ids = [e["event_id"] for e in recorded]
    assert len(recorded_ids) == len(set(recorded_ids)), "an event was recorded twice"
    assert set(recorded_ids) == set(produced)
    for e in recorded:
        assert (e["type"], e["topic"]) == produced[e["event_id"]]
        assert e["data"]["metadata"]["event_id"] == e["event_id"]

    stats = system.audit.get("/stats").json()
    assert stats["total"] >= len(produced)
    assert stats["by_type"]["OrderPlaced"] >= len(ids)
    # The cancellation saga's events are recorded like every other: one request and one
    # answer per cancelled order.
    assert stats["by_type"]["OrderCancellationRequested"] == 2, stats["by_type"]
    assert stats["by_type"]["ShipmentCancelled"] >= 2, stats["by_type"]
    requested = system.audit_events(type="OrderCancellationRequested")
    assert {e["data"]["reason"] for e in requested} == {"cancelled by customer"}
    assert all(e["topic"] == system.prefix + "orders" for e in requested)

    # Each order's events: OrderPlaced first, and every event after the event that caused it.
    for oid in ids:
        events = system.audit_events(order_id=oid)
        assert events[0]["type"] == "OrderPlaced", [e["type"] for e in events]
        seen = set()
        for e in events:
            cause = e["data"]["metadata"]["causation_id"]
            assert cause is None or cause in seen, f"{e['type']} before its cause in {oid}"
            seen.add(e["event_id"])
        one = system.audit.get(f"/events/{events[0]['event_id']}")
        assert one.status == 200 and one.json()["order_id"] == oid
    assert system.audit.get("/events/no-such-event").status == 404


def inventory_state(system):
    db = system.dbs["inventory"]
    return (psql(db, "SELECT sku, available, reserved, shipped FROM stock ORDER BY sku"),
            psql(db, "SELECT order_id, status, items::text FROM reservations ORDER BY order_id"))


def end_offsets(topic):
    return collections.Counter((r["partition"]) for r in kcat_records(topic))


def test_replay_changes_no_state(system):
    run_some_orders(system, 6)
    inventory = system.services["inventory"]
    wait_until(lambda: inventory.metric("consumer_records_total") > 0, 10)
    # Quiet: every outbox empty and inventory has applied every record of its topics.
    for db in system.dbs.values():
        wait_until(lambda: psql(db, "SELECT count(*) FROM outbox")[0][0] == "0", 20)
    consumed = sum(end_offsets(system.prefix + t).total() for t in ("orders", "shipments"))
    wait_until(lambda: inventory.metric("consumer_records_total") >= consumed, 30)
    before = inventory_state(system)
    produced_before = end_offsets(system.prefix + "inventory")

    assert inventory.stop() == 0
    group = system.prefix + "inventory"
    for topic in ("orders", "shipments"):
        out = kafka_tool("consumer-groups", "--bootstrap-server", BROKERS, "--group", group,
                         "--reset-offsets", "--to-earliest", "--topic", system.prefix + topic,
                         "--execute").stdout
        assert system.prefix + topic in out
    inventory.start()
    # Every record of both topics is read again, and skipped as a duplicate.
    total = sum(end_offsets(system.prefix + t).total() for t in ("orders", "shipments"))
    wait_until(lambda: inventory.metric("consumer_records_total") >= total, 60, 0.5,
               "the replay to finish")
    assert inventory.metric("consumer_duplicates_total") >= total
    assert inventory_state(system) == before
    assert end_offsets(system.prefix + "inventory") == produced_before
