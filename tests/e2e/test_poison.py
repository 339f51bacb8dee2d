"""Poison records: a non-UTF-8 key, a NUL in a header, a NUL inside an Avro string and a value
just under the broker's limit, injected with a real Kafka client onto each topic, stop nothing.
Every record is stored by audit, each consumer dead-letters each record at most once (no dead
letter of a dead letter, no loop), a dead letter too large for the producer is trimmed to fit,
the broker's disk use stays bounded and a fresh order still goes through."""

import os
import subprocess
import time
import uuid

import avro_peer
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource
from conveyor import BROKERS, kcat_records, wait_until
from injector import metadata

# Who consumes each topic (audit also consumes every dead-letter topic).
CONSUMERS = {"orders": ("inventory", "shipping", "audit"),
             "inventory": ("order", "shipping", "audit"),
             "shipments": ("order", "inventory", "audit")}
DLQS = ("order.dlq", "inventory.dlq", "shipping.dlq", "audit.dlq")
MARK = b"NULMARK"  # 7 bytes in the encoded string, replaced by 7 bytes holding a NUL


def end_offsets(topic):
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": "probe-" + uuid.uuid4().hex})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in md.partitions)
    finally:
        c.close()


def broker_limit(topic):
    admin = AdminClient({"bootstrap.servers": BROKERS})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([res])[res].result(20)
    return int(configs["max.message.bytes"].value)


def dir_bytes(path):
    """Disk space used under path (blocks, not apparent size: index files are sparse)."""
    out = subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def avro_with_nul(topic, order_id):
    """A valid event of the topic's kind whose string field holds a NUL character."""
    mark = MARK.decode()
    if topic == "orders":
        type_name, event = "OrderPlaced", {
            "order_id": order_id, "customer_id": "cust-" + mark,
            "items": [{"sku": "NO-SUCH-SKU", "quantity": 1, "unit_price_cents": 1}],
            "total_cents": 1, "shipping_address": None}
    elif topic == "inventory":
        type_name, event = "StockRejected", {"order_id": order_id, "reason": "why " + mark,
                                             "shortages": []}
    else:
        type_name, event = "ShipmentCancelled", {"order_id": order_id, "reason": "why " + mark}
    event["metadata"] = metadata(order_id, "poison")
    value = avro_peer.encode(type_name, event)
    assert value.count(MARK) == 1
    return value.replace(MARK, b"a\x00bcdef")


def test_poison_records_neither_loop_nor_stall(system):
    kafka_dir = os.environ.get("KAFKA_DIR")
    kafka_dir = os.path.join(kafka_dir, "data") if kafka_dir else None
    disk_before = dir_bytes(kafka_dir) if kafka_dir else None
    dlq_before = {d: end_offsets(system.prefix + d) for d in DLQS}
    limit = broker_limit(system.prefix + "orders")
    big = b"\xc3\x01" + os.urandom(limit - 1024 - 2)
    p = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True,
                  "message.max.bytes": limit + 4096})
    injected = []  # (topic, key, description)

    def delivered(err, msg):
        assert err is None, err
        injected.append((msg.topic(), msg.partition(), msg.offset()))

    nul_orders = {}
    for topic in CONSUMERS:
        t = system.prefix + topic
        p.produce(t, key=b"\xff\xfe\xfd-not-utf8", value=b"not avro \xff", on_delivery=delivered)
        p.produce(t, key=b"nul-header", value=b"not avro either",
                  headers=[("with_nul", b"a\x00b"), ("binary", b"\xff\x00\xfe")],
                  on_delivery=delivered)
        nul_orders[topic] = str(uuid.uuid4())
        p.produce(t, key=nul_orders[topic].encode(), value=avro_with_nul(topic, nul_orders[topic]),
                  on_delivery=delivered)
        p.produce(t, key=b"big", value=big, headers=[("origin", b"poison")],
                  on_delivery=delivered)
    # On orders also: headers too large to keep in a dead letter, and a key too large for one.
    huge_header = b"h" * (limit - 200 * 1024 - 4096)
    p.produce(system.prefix + "orders", key=b"k" * 200 * 1024, value=b"x",
              headers=[("huge", huge_header)], on_delivery=delivered)
    p.produce(system.prefix + "orders", key=b"K" * (limit - 8192), value=b"x",
              on_delivery=delivered)
    assert p.flush(60) == 0
    assert len(injected) == 14

    # Audit stores every one of them, whatever bytes they hold.
    def audit_stored():
        stored = set()
        for topic in CONSUMERS:
            for e in system.audit_events(topic=system.prefix + topic):
                stored.add((e["topic"], e["partition"], e["offset"]))
        return all(i in stored for i in injected)
    wait_until(audit_stored, 60, 1, "audit storing every poison record")
    events = {(e["topic"], e["partition"], e["offset"]): e
              for topic in CONSUMERS for e in system.audit_events(topic=system.prefix + topic)}
    by_kind = [events[i] for i in injected]
    non_utf8 = [e for e in by_kind if e["key_hex"] == "fffefd2d6e6f742d75746638"]
    assert len(non_utf8) == 3 and all(e["key"] is None for e in non_utf8)
    with_nul = [e for e in by_kind if e["key"] == "nul-header"]
    assert len(with_nul) == 3
    assert all(e["headers"]["with_nul"] == {"hex": "610062"} for e in with_nul)
    for topic, order_id in nul_orders.items():
        stored = [e for e in by_kind if e["key"] == order_id]
        assert len(stored) == 1, (topic, stored)
        text = str(stored[0]["data"])
        assert "\\u0000" in text, stored[0]

    # A fresh order still goes all the way.
    system.set_stock("POISON-1", 5)
    order = system.place([{"sku": "POISON-1", "quantity": 1}])
    system.wait_status(order["id"], "SHIPMENT_SCHEDULED", timeout=60)

    # No loop: let any loop show itself, then count. Each consumer dead-letters each record at
    # most once, audit dead-letters nothing, and no dead letter is of a dead letter.
    time.sleep(5)
    growth = {}
    for dlq in DLQS:
        consumer = dlq[:-len(".dlq")]
        may_fail = sum(6 if topic == "orders" else 4
                       for topic, names in CONSUMERS.items() if consumer in names)
        growth[dlq] = end_offsets(system.prefix + dlq) - dlq_before[dlq]
        assert growth[dlq] <= (0 if consumer == "audit" else may_fail), (dlq, growth[dlq])
    print(f"\npoison: dead-letter topics grew by {growth}")
    seen, trimmed, dropped, cut_keys = set(), 0, 0, 0
    for dlq in DLQS:
        for r in kcat_records(system.prefix + dlq, timeout=60):
            h = r["headers"]
            assert not h["dlq_topic"].endswith(".dlq"), h
            where = (h["dlq_consumer"], h["dlq_topic"], h["dlq_partition"], h["dlq_offset"])
            assert where not in seen, where
            seen.add(where)
            if r["key"] == b"big":
                # Trimmed to fit our producer, and says so; where it came from is kept.
                assert h["dlq_value_truncated"] == str(len(big)), h
                assert len(r["value"]) < len(big)
                assert r["value"] == big[:len(r["value"])]
                assert h["origin"] == "poison"
                trimmed += 1
            if "dlq_headers_dropped" in h:
                # The original headers did not fit: dropped, the key kept.
                assert h["dlq_headers_dropped"] == "1" and "huge" not in h, h
                assert r["key"] == b"k" * 200 * 1024
                dropped += 1
            if "dlq_key_truncated" in h:
                assert h["dlq_key_truncated"] == str(limit - 8192), h
                assert 0 < len(r["key"]) < limit - 8192 and set(r["key"]) == {ord("K")}
                cut_keys += 1
    # Each of the three services consumes two of the topics: six trimmed dead letters.
    assert trimmed == 6, trimmed
    # Inventory and shipping consume orders.
    assert (dropped, cut_keys) == (2, 2), (dropped, cut_keys)

    # Disk use stayed bounded: the injected records and one dead letter each, not a loop.
    if disk_before is not None:
        grown = dir_bytes(kafka_dir) - disk_before
        print(f"poison: broker data grew by {grown / 1048576:.1f} MiB")
        assert grown < 64 * 1024 * 1024, f"broker data grew by {grown} bytes"

    for name, svc in system.services.items():
        assert svc.proc.poll() is None, f"{name} exited"
        assert svc.get("/readyz").status == 200, name
