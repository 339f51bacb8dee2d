"""Registry mode against a real schema registry (Apicurio Registry on in-memory storage, its
Confluent-compatible API): the services register their schemas under TopicRecordNameStrategy
subjects and write the Confluent framing; a consumer built with v1 reads events written with a
newer registered schema; an independent decoder (python-avro with the registry's schema) reads
every record; the registry restarted mid-run (losing its ids) gets the schemas back; start-up
waits for the registry with the reason in /readyz."""

import io
import json
import os
import signal
import subprocess
import time
import uuid

import avro.io
import avro.schema
import pytest

import avro_peer
from avro_crosscheck import from_python, to_python
from conftest import make_system
from conveyor import (BIN, BROKERS, ROOT, Service, free_port, http, kafka_tool,
                      kcat_records, wait_until)

REGISTRY_SH = os.path.join(ROOT, "deploy", "local", "registry.sh")
TOPICS = ("orders", "inventory", "shipments")
# The schemas the registry had, by id, just before it was restarted (it forgets them).
BEFORE_RESTART = {}
# Keys of records written on purpose with a ce_type that is not their schema's type.
MISLABELLED = set()


class Registry:
    """A registry process started with deploy/local/registry.sh on a port of its own."""

    def __init__(self):
        self.port = int(os.environ.get("CV_TEST_REGISTRY_PORT") or free_port())
        self.url = f"http://127.0.0.1:{self.port}/apis/ccompat/v7"
        self.dir = None

    def start(self):
        env = dict(os.environ, REGISTRY_PORT=str(self.port))
        env.pop("REGISTRY_DIR", None)
        out = subprocess.run([REGISTRY_SH, "start"], env=env, check=True, capture_output=True,
                             encoding="utf-8", timeout=300)
        self.dir = out.stdout.strip().split("=", 1)[1]
        return self

    def stop(self):
        if self.dir:
            subprocess.run([REGISTRY_SH, "stop", self.dir], check=True, capture_output=True,
                           timeout=60)
            self.dir = None

    def get(self, path):
        r = http("GET", self.url + path)
        return r.status, (r.json() if r.body else None)

    def register(self, subject, schema_text):
        r = http("POST", f"{self.url}/subjects/{subject}/versions",
                 body={"schema": schema_text},
                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
        assert r.status == 200, (r.status, r.body)
        return r.json()["id"]

    def schema(self, schema_id):
        status, body = self.get(f"/schemas/ids/{schema_id}")
        assert status == 200, (schema_id, status, body)
        return body["schema"]


@pytest.fixture(scope="module")
def registry():
    subprocess.run([REGISTRY_SH, "fetch"], check=True, timeout=600)
    r = Registry().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def system(request, log_dir, registry):
    reg_env = {"SCHEMA_REGISTRY_URL": registry.url, "SCHEMA_REGISTRY_CHECK_MS": "1000",
               "SCHEMA_REGISTRY_TIMEOUT_MS": "2000"}
    s = make_system(request, log_dir, {name: dict(reg_env) for name in
                                       ("order", "inventory", "shipping", "audit")}).start()
    yield s
    codes = s.stop()
    s.drop()
    assert codes == {name: 0 for name in codes}, f"exit codes {codes} (logs in {log_dir})"


def confluent_id(value):
    assert value[0] == 0, value[:10]
    return int.from_bytes(value[1:5], "big")


def independent_decode(registry, value, schema_text=None):
    """python-avro with the writer's schema as the registry gives it (or schema_text; for
    single-object values: python-avro with our .avsc files). Returns (full name, fields in our
    JSON shape)."""
    if value[:2] == b"\xc3\x01":
        name, event = avro_peer.decode(value)
        return "conveyor." + name, event
    schema = avro.schema.parse(schema_text or registry.schema(confluent_id(value)))
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value[5:])))
    return schema.fullname, from_python(schema, datum)


def place_and_wait(system, sku, status="SHIPMENT_SCHEDULED"):
    order = system.place([{"sku": sku, "quantity": 1, "unit_price_cents": 100}])
    system.wait_status(order["id"], status)
    return order


def record_of(system, topic, key, type_name=None):
    def find():
        recs = [r for r in kcat_records(system.prefix + topic) if r["key"] == key.encode()]
        if type_name:
            recs = [r for r in recs if r["headers"].get("ce_type") == type_name]
        return recs
    return wait_until(find, 30, 0.5, f"a record of {key} on {topic}")[-1]


def test_registration_and_confluent_framing(system, registry):
    system.set_stock("REG-1", 100, "Registered")
    order = place_and_wait(system, "REG-1")
    status, subjects = registry.get("/subjects")
    assert status == 200
    for subject in (system.prefix + "orders-conveyor.OrderPlaced",
                    system.prefix + "inventory-conveyor.StockReserved",
                    system.prefix + "shipments-conveyor.ShipmentScheduled"):
        assert subject in subjects, (subject, subjects)
    status, latest = registry.get(
        f"/subjects/{system.prefix}orders-conveyor.OrderPlaced/versions/latest")
    assert status == 200
    rec = record_of(system, "orders", order["id"], "conveyor.OrderPlaced")
    assert confluent_id(rec["value"]) == latest["id"]
    name, event = independent_decode(registry, rec["value"])
    assert name == "conveyor.OrderPlaced"
    assert event["order_id"] == order["id"]
    assert event["items"] == order["items"]


def v2_order_placed(registry, subject):
    """Registers OrderPlaced v2 (a new field with a default) under subject: (id, schema)."""
    v1 = json.loads(registry.schema(registry.get(f"/subjects/{subject}/versions/latest")[1]["id"]))
    v2 = dict(v1, fields=v1["fields"] + [{"name": "gift_note", "type": "string", "default": "",
                                          "doc": "A note to print on the delivery slip."}])
    text = json.dumps(v2)
    return registry.register(subject, text), avro.schema.parse(text)


def produce(topic, key, value, headers):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": BROKERS})
    p.produce(topic, value=value, key=key, headers=headers)
    assert p.flush(30) == 0


def test_v1_consumer_reads_v2_events_through_the_registry(system, registry):
    system.set_stock("REG-2", 100, "Evolved")
    subject = system.prefix + "orders-conveyor.OrderPlaced"
    v2_id, v2 = v2_order_placed(registry, subject)
    order_id = str(uuid.uuid4())
    event = {
        "metadata": {"event_id": str(uuid.uuid4()), "occurred_at": int(time.time() * 1000),
                     "producer": "order-v2", "correlation_id": order_id, "causation_id": None},
        "order_id": order_id, "customer_id": "newer",
        "items": [{"sku": "REG-2", "quantity": 3, "unit_price_cents": 10}],
        "total_cents": 30, "shipping_address": None, "gift_note": "happy birthday",
    }
    buf = io.BytesIO()
    avro.io.DatumWriter(v2).write(to_python(v2, event), avro.io.BinaryEncoder(buf))
    value = b"\x00" + v2_id.to_bytes(4, "big") + buf.getvalue()
    produce(system.prefix + "orders", order_id.encode(), value,
            [("ce_type", b"conveyor.OrderPlaced"), ("ce_id", event["metadata"]["event_id"].encode())])
    # Inventory (built with v1 only) reserves the stock: it resolved id v2_id and read v2 as v1.
    wait_until(lambda: system.stock("REG-2")["reserved"] == 3, 30, 0.3, "the reservation")
    rec = record_of(system, "inventory", order_id, "conveyor.StockReserved")
    assert independent_decode(registry, rec["value"])[1]["order_id"] == order_id
    # Nothing was dead-lettered.
    for dlq in ("inventory.dlq", "audit.dlq", "shipping.dlq"):
        assert kcat_records(system.prefix + dlq) == [], dlq
    # cv-tail shows the v2 event as written, its new field included.
    out = subprocess.run([os.path.join(BIN, "cv-tail"), "-b", BROKERS, "-r", registry.url,
                          system.prefix + "orders"], check=True, capture_output=True,
                         encoding="utf-8", timeout=60).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    mine = [r for r in lines if r["key"] == order_id]
    assert len(mine) == 1, mine
    assert mine[0]["framing"] == "confluent" and mine[0]["schema_id"] == v2_id
    assert mine[0]["value"]["gift_note"] == "happy birthday"
    assert all("error" not in r for r in lines), [r for r in lines if "error" in r]


def order_placed_v(registry, subject, field):
    """Registers a newer OrderPlaced (field added, with a default): (id, schema)."""
    v1 = json.loads(registry.schema(registry.get(f"/subjects/{subject}/versions/1")[1]["id"]))
    newer = dict(v1, fields=v1["fields"] + [{"name": field, "type": "int", "default": 0}])
    text = json.dumps(newer)
    return registry.register(subject, text), avro.schema.parse(text)


def produce_order(system, schema_id, schema, sku, qty, ce_type="conveyor.OrderPlaced", **extra):
    order_id = str(uuid.uuid4())
    event = {
        "metadata": {"event_id": str(uuid.uuid4()), "occurred_at": int(time.time() * 1000),
                     "producer": "elsewhere", "correlation_id": order_id, "causation_id": None},
        "order_id": order_id, "customer_id": "elsewhere",
        "items": [{"sku": sku, "quantity": qty, "unit_price_cents": 10}],
        "total_cents": 10 * qty, "shipping_address": None,
    }
    event.update(extra)
    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write(to_python(schema, event), avro.io.BinaryEncoder(buf))
    produce(system.prefix + "orders", order_id.encode(),
            b"\x00" + schema_id.to_bytes(4, "big") + buf.getvalue(),
            [("ce_type", ce_type.encode()), ("ce_id", event["metadata"]["event_id"].encode())])
    return order_id


def dead_letters(system, topic="inventory.dlq"):
    return [r for r in kcat_records(system.prefix + topic)]


def test_unknown_id_waits_for_an_unreachable_registry(system, registry):
    """An id the consumer has not seen while the registry does not answer (frozen: SIGSTOP)
    is not dead-lettered: the batch waits, and is applied once the registry answers."""
    system.set_stock("REG-4", 100, "Frozen")
    subject = system.prefix + "orders-conveyor.OrderPlaced"
    v3_id, v3 = order_placed_v(registry, subject, "priority")
    pid = int(open(os.path.join(registry.dir, "registry.pid")).read())
    os.kill(pid, signal.SIGSTOP)
    try:
        produce_order(system, v3_id, v3, "REG-4", 4, priority=2)
        time.sleep(8)  # several request timeouts (SCHEMA_REGISTRY_TIMEOUT_MS=2000)
        assert system.stock("REG-4")["reserved"] == 0
        assert dead_letters(system) == []
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: system.stock("REG-4")["reserved"] == 4, 60, 0.5, "the reservation")
    assert dead_letters(system) == []


def test_an_id_of_another_type_than_ce_type_is_refused(system, registry):
    """A record whose schema id names another type than its ce_type header (what an id
    reissued by a restarted in-memory registry looks like) is dead-lettered, not misread."""
    system.set_stock("REG-5", 100, "Mismatch")
    subject = system.prefix + "orders-conveyor.OrderPlaced"
    v1_id = registry.get(f"/subjects/{subject}/versions/1")[1]["id"]
    v1 = avro.schema.parse(registry.schema(v1_id))
    MISLABELLED.add(produce_order(system, v1_id, v1, "REG-5", 1,
                                  ce_type="conveyor.StockReserved").encode())
    wait_until(lambda: dead_letters(system), 30, 0.5, "the dead letter")
    reason = dead_letters(system)[0]["headers"]["dlq_reason"]
    assert "ce_type" in reason and "conveyor.StockReserved" in reason, reason
    assert system.stock("REG-5")["reserved"] == 0


def test_start_up_gives_up_on_a_registry_that_never_answers(system, log_dir):
    """Bounded wait: SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS, then exit 1 naming the registry; a
    URL that is not http(s) stops the service at once (exit 2), naming the variable."""
    env = {"SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{free_port()}/apis/ccompat/v7",
           "SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS": "1500", "TOPIC_PREFIX": system.prefix}
    svc = Service("order", system.dbs["order"], free_port(), log_dir, env).start(wait=False)
    assert svc.proc.wait(60) == 1
    log = open(svc.log_path, encoding="utf-8").read()
    assert "schema registry" in log and "SCHEMA_REGISTRY_STARTUP_TIMEOUT_MS" in log, log[-2000:]
    bad = Service("order", system.dbs["order"], free_port(), log_dir,
                  {"SCHEMA_REGISTRY_URL": "ftp://registry"}).start(wait=False)
    assert bad.proc.wait(30) == 2
    assert "SCHEMA_REGISTRY_URL" in open(bad.log_path, encoding="utf-8").read()


def test_kafka_console_consumer_prints_json(system, registry):
    """Kafka's own console consumer with Apicurio's Avro deserializer (kafka.sh fetches it)
    prints every value as JSON: the registry's native API resolves the same ids."""
    topic = system.prefix + "orders"
    n = len(kcat_records(topic))
    native = registry.url.replace("/apis/ccompat/v7", "/apis/registry/v3")
    out = kafka_tool("avro-console-consumer", "--bootstrap-server", BROKERS, "--topic", topic,
                     "--from-beginning", "--max-messages", str(n), "--timeout-ms", "30000",
                     "--formatter-property", "print.key=true",
                     "--formatter-property",
                     f"value.deserializer.apicurio.registry.url={native}")
    rows = [line.split("\t", 1) for line in out.stdout.splitlines() if "\t" in line]
    assert len(rows) == n, (out.stdout, out.stderr[-2000:])
    for key, value in rows:
        event = json.loads(value)
        assert event["order_id"] == key
        assert event["metadata"]["event_id"]
    assert any(json.loads(v).get("gift_note") == "happy birthday" for _, v in rows)


def test_registry_restarted_mid_run(system, registry):
    system.set_stock("REG-3", 100, "Restart")
    place_and_wait(system, "REG-3")
    for topic in TOPICS:
        for rec in kcat_records(system.prefix + topic):
            if rec["value"][0] == 0:
                schema_id = confluent_id(rec["value"])
                BEFORE_RESTART[schema_id] = registry.schema(schema_id)
    subjects = set(registry.get("/subjects")[1])
    registry.stop()
    # Running services use their cached ids: the saga goes on without the registry.
    order = place_and_wait(system, "REG-3")
    assert system.order.get("/readyz").status == 200
    # A service starting now waits for the registry, and says so.
    system.shipping.stop()
    system.shipping.start(wait=False)

    def waiting():
        r = system.shipping.get("/readyz", timeout=5) if _up(system.shipping) else None
        return r is not None and r.status == 503 and b"schema registry" in r.body
    wait_until(waiting, 30, 0.3, "shipping /readyz naming the registry")
    # The registry comes back empty (in-memory storage); the services register again.
    registry.start()
    system.shipping.wait_ready(60)
    # Until each producer's next check, it still writes the ids of the registry before: wait
    # for every subject to be back, then the ids are the new registry's.
    wait_until(lambda: subjects <= set(registry.get("/subjects")[1] or []), 60, 0.5,
               "every subject registered again")
    order2 = place_and_wait(system, "REG-3")
    rec = record_of(system, "orders", order2["id"], "conveyor.OrderPlaced")
    name, event = independent_decode(registry, rec["value"])
    assert name == "conveyor.OrderPlaced" and event["order_id"] == order2["id"]
    assert system.wait_status(order["id"], "SHIPMENT_SCHEDULED")


def _up(service):
    try:
        service.get("/healthz", timeout=2)
        return True
    except OSError:
        return False


def test_every_record_decodes_independently(system, registry):
    """Run last: every record on the event topics, of every test above, in either framing, is
    read by python-avro with the schema the registry gave for its id: the registry of now, or
    for records written before the restart, the one of then (an in-memory registry hands out
    its ids anew: see README)."""
    total = confluent = 0
    for topic in TOPICS:
        for rec in kcat_records(system.prefix + topic):
            if rec["key"] in MISLABELLED:
                continue
            total += 1
            value, decoded = rec["value"], []
            texts = [None]
            if value[0] == 0:
                confluent += 1
                texts = []
                status, body = registry.get(f"/schemas/ids/{confluent_id(value)}")
                if status == 200:
                    texts.append(body["schema"])
                if confluent_id(value) in BEFORE_RESTART:
                    texts.append(BEFORE_RESTART[confluent_id(value)])
            for text in texts:
                try:
                    name, event = independent_decode(registry, value, text)
                except Exception:  # noqa: BLE001 - a schema of the other epoch
                    continue
                if name == rec["headers"]["ce_type"]:
                    decoded.append(event)
                    break
            assert decoded, (topic, rec["partition"], rec["offset"], rec["headers"])
            assert decoded[0]["metadata"]["event_id"]
    assert total > 10 and confluent > 10, (total, confluent)
