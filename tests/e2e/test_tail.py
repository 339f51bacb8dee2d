"""cv-tail against the real broker: every record of the topics as a JSON line with key, headers
and the decoded value; from the beginning, the last N, an offset or a time; following new
records like tail -f; records that are not our Avro shown with the reason, not dropped."""

import json
import os
import select
import signal
import subprocess
import time

from conveyor import BIN, BROKERS

TAIL = os.path.join(BIN, "cv-tail")


def tail(*args, check=True):
    out = subprocess.run([TAIL, "-b", BROKERS, *args], capture_output=True, encoding="utf-8",
                         timeout=60)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def lines(*args):
    return [json.loads(line) for line in tail(*args).stdout.splitlines()]


def place(system, sku):
    return system.place([{"sku": sku, "quantity": 1, "unit_price_cents": 50}])


def test_prints_every_record_decoded(system):
    system.set_stock("TAIL-1", 100, "Tail")
    orders = [place(system, "TAIL-1") for _ in range(3)]
    for o in orders:
        system.wait_status(o["id"], "SHIPMENT_SCHEDULED")
    recs = lines(system.prefix + "orders", system.prefix + "inventory")
    by_key = {}
    for r in recs:
        assert "error" not in r, r
        assert r["framing"] == "single-object"
        assert r["headers"]["ce_type"] == r["schema"]
        assert r["value"]["metadata"]["event_id"] == r["headers"]["ce_id"]
        assert r["topic"] in (system.prefix + "orders", system.prefix + "inventory")
        assert isinstance(r["offset"], int) and isinstance(r["timestamp"], int)
        by_key.setdefault(r["key"], []).append(r["schema"])
    for o in orders:
        assert sorted(by_key[o["id"]]) == ["conveyor.OrderPlaced", "conveyor.StockReserved"]
    placed = [r for r in recs if r["schema"] == "conveyor.OrderPlaced" and
              r["key"] == orders[0]["id"]][0]
    assert placed["value"]["items"] == orders[0]["items"]


def test_last_n_offset_and_time(system):
    topic = system.prefix + "orders"
    everything = lines(topic)
    assert everything
    # -1: the last record of each partition.
    last = lines("-o", "-1", topic)
    parts = {r["partition"] for r in everything}
    assert len(last) == len(parts)
    for r in last:
        assert r["offset"] == max(x["offset"] for x in everything
                                  if x["partition"] == r["partition"])
    # N: from offset 1 of every partition.
    from_one = lines("-o", "1", topic)
    assert len(from_one) == len([r for r in everything if r["offset"] >= 1])
    # --since: only what came after.
    time.sleep(0.05)
    since = int(time.time() * 1000)
    time.sleep(0.05)
    later = place(system, "TAIL-1")
    system.wait_status(later["id"], "SHIPMENT_SCHEDULED")
    recent = lines("--since", str(since), topic)
    assert [r["key"] for r in recent] == [later["id"]]
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since / 1000 - 3600))
    assert len(lines("--since", iso, topic)) >= 1
    # --count stops early.
    assert len(lines("-n", "2", topic)) == 2


def test_follows_new_records(system):
    topic = system.prefix + "orders"
    proc = subprocess.Popen([TAIL, "-b", BROKERS, "-o", "end", "-f", topic],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)  # assigned and at the end
        order = place(system, "TAIL-1")
        deadline = time.monotonic() + 30
        got = None
        while time.monotonic() < deadline and got is None:
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                rec = json.loads(proc.stdout.readline())
                if rec["key"] == order["id"]:
                    got = rec
        assert got is not None, "the new record did not show up"
        assert got["schema"] == "conveyor.OrderPlaced"
        assert proc.poll() is None, "stopped at the end while told to follow"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0


def test_undecodable_records_are_shown_with_the_reason(system):
    from confluent_kafka import Producer
    topic = system.prefix + "order.dlq"
    p = Producer({"bootstrap.servers": BROKERS})
    p.produce(topic, key=b"\xff\xfe", value=b"\xc3\x01junkjunkjunk", headers=[("x", b"1")])
    p.produce(topic, key=b"k", value=b"\x00\x00\x00\x30\x39body")
    assert p.flush(30) == 0
    recs = lines(topic)
    assert len(recs) == 2
    second, first = sorted(recs, key=lambda r: r["key"] or "")
    assert first["key"] == "k" and second["key"] is None and second["key_hex"] == "fffe"
    assert first["framing"] == "confluent" and first["schema_id"] == 12345
    assert "id" in first["error"] and first["value_hex"].startswith("0000003039")
    assert second["framing"] == "single-object" and second["error"]
    assert second["headers"] == {"x": "1"}


def test_bad_usage(system):
    assert tail("-o", "soon", "x", check=False).returncode == 2
    assert tail("--since", "yesterday", "x", check=False).returncode == 2
    assert tail(check=False).returncode == 2
    missing = tail("no-such-topic-" + system.prefix, check=False)
    assert missing.returncode == 1 and "no-such-topic" in missing.stderr
