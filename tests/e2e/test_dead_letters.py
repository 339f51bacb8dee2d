"""A record that can never be processed goes to the consuming service's dead-letter topic with
the reason in headers, the audit service records it, and the partition moves on."""

import subprocess

from conveyor import BROKERS, kcat_records, wait_until


def produce_raw(topic, key, value):
    subprocess.run(["kcat", "-b", BROKERS, "-P", "-t", topic, "-k", key, "-H", "origin=test"],
                   input=value, check=True)


def test_garbage_on_orders_is_dead_lettered_and_later_orders_complete(system):
    garbage = b"\x00\x01this is not avro\xff"
    produce_raw(system.prefix + "orders", "garbage-key", garbage)

    source = wait_until(lambda: [r for r in kcat_records(system.prefix + "orders")
                                 if r["value"] == garbage], 30, 0.5, "the garbage in orders")
    assert len(source) == 1
    for service in ("inventory", "shipping"):
        dlq = system.prefix + service + ".dlq"
        records = wait_until(lambda: [r for r in kcat_records(dlq) if r["value"] == garbage],
                             30, 0.5, f"the record in {dlq}")
        rec = records[0]
        assert rec["key"] == b"garbage-key"
        h = rec["headers"]
        assert h["origin"] == "test"  # the original headers are kept
        assert h["dlq_topic"] == system.prefix + "orders"
        assert h["dlq_consumer"] == service
        assert "undecodable" in h["dlq_reason"]
        # The coordinates name the very record that failed, not just any valid position.
        assert int(h["dlq_partition"]) == source[0]["partition"]
        assert int(h["dlq_offset"]) == source[0]["offset"]
        assert h["dlq_time"].endswith("Z")

    # Audit keeps the undecodable original and both dead letters.
    def audit_has():
        undecodable = system.audit_events(type="Undecodable")
        dead = system.audit_events(type="DeadLetter")
        return (undecodable, dead) if undecodable and len(dead) >= 2 else None
    undecodable, dead = wait_until(audit_has, 30, 0.5, "audit records")
    assert undecodable[0]["topic"] == system.prefix + "orders"
    assert undecodable[0]["key"] == "garbage-key"
    assert {d["topic"] for d in dead} == {system.prefix + "inventory.dlq",
                                          system.prefix + "shipping.dlq"}
    assert all("undecodable" in d["data"]["reason"] for d in dead)

    # The partition moved on: a new order completes.
    system.set_stock("DLQ-1", 3)
    order = system.place([{"sku": "DLQ-1", "quantity": 1}])
    system.wait_status(order["id"], "SHIPMENT_SCHEDULED")
    assert system.inventory.metric("consumer_dead_lettered_total") >= 1


def test_valid_avro_of_unknown_schema_is_dead_lettered(system):
    # Single-object magic with a fingerprint nobody knows.
    value = b"\xc3\x01" + b"\x11" * 8 + b"\x02\x04"
    produce_raw(system.prefix + "orders", "unknown-schema", value)
    dlq = system.prefix + "shipping.dlq"
    rec = wait_until(lambda: [r for r in kcat_records(dlq) if r["value"] == value], 30, 0.5,
                     "the record in the DLQ")[0]
    assert "fingerprint" in rec["headers"]["dlq_reason"]
