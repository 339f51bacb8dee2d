"""A record that fails for good inside a batch, even in a batch-level step (inventory locks
every SKU of its batch in one statement first), is isolated: the batch falls back to one record
per transaction, only that record is dead-lettered, and every other record of the batch is
applied, in order, once.

The poison is an OrderPlaced whose SKU holds a NUL byte (valid Avro; PostgreSQL's jsonb refuses
it), produced onto one partition together with valid orders so that they share batches. The
audit service is not started here: what it does with such a record is another test's concern."""

import json
import subprocess
import uuid

import pytest
from confluent_kafka import Producer

from avro_crosscheck import CV_AVRO
from conftest import make_system
from conveyor import BROKERS, kcat_records, psql, wait_until
from injector import order_placed

VALID = 60
POISON_AT = 25


@pytest.fixture(scope="module")
def trio(request, log_dir):
    system = make_system(request, log_dir)
    for name in ("order", "inventory", "shipping"):
        system.services[name].start(wait=False)
    for name in ("order", "inventory", "shipping"):
        system.services[name].wait_ready()
    yield system
    codes = system.stop()
    system.drop()
    assert codes == {name: 0 for name in codes}, f"exit codes {codes} (logs in {log_dir})"


def encode_all(events):
    out = subprocess.run([CV_AVRO, "encode", "--hex", "OrderPlaced"],
                         input="".join(json.dumps(e) + "\n" for e in events).encode(),
                         capture_output=True, check=True).stdout
    return [bytes.fromhex(line) for line in out.decode().split()]


def test_a_poison_record_in_a_batch_is_dead_lettered_alone(trio):
    sku = f"ISO-{uuid.uuid4().hex[:6]}"
    trio.set_stock(sku, 100_000)
    valid = [(str(uuid.uuid4()), i % 5 + 1) for i in range(VALID)]
    poison_id = str(uuid.uuid4())
    events = [order_placed(oid, sku, q, "isolation") for oid, q in valid]
    events.insert(POISON_AT, order_placed(poison_id, "BAD\u0000SKU", 1, "isolation"))
    values = encode_all(events)
    assert len(values) == VALID + 1

    producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 200})
    for event, value in zip(events, values):
        producer.produce(trio.prefix + "orders", value=value, key=event["order_id"],
                         partition=0)
    assert producer.flush(30) == 0

    # Every valid order is reserved, once, and its stock moved; the poison is not.
    ids = [oid for oid, _ in valid]
    sql_ids = ",".join(f"'{i}'" for i in ids)

    def reserved():
        rows = psql(trio.dbs["inventory"],
                    f"SELECT count(*) FROM reservations WHERE order_id IN ({sql_ids})"
                    " AND status = 'RESERVED'")
        return int(rows[0][0]) == VALID
    wait_until(reserved, 60, 0.5, "every valid order of the batch to be reserved")
    stock = trio.stock(sku)
    assert stock["reserved"] == sum(q for _, q in valid), stock
    assert stock["available"] + stock["reserved"] == 100_000, stock
    rows = psql(trio.dbs["inventory"],
                f"SELECT count(*) FROM reservations WHERE order_id = '{poison_id}'")
    assert rows == [["0"]]

    # Only the poison went to inventory's dead-letter topic, once, saying why.
    dlq = trio.prefix + "inventory.dlq"
    dead = wait_until(lambda: kcat_records(dlq), 30, 0.5, "the dead letter")
    assert [r["key"] for r in dead] == [poison_id.encode()]
    assert "22P05" in dead[0]["headers"]["dlq_reason"] or \
        "Unicode" in dead[0]["headers"]["dlq_reason"], dead[0]["headers"]
    assert trio.inventory.metric("consumer_batches_isolated_total") >= 1
    # Shipping opened a shipment for every valid order and dead-lettered the poison alone.
    wait_until(lambda: int(psql(trio.dbs["shipping"],
                                f"SELECT count(*) FROM shipments WHERE order_id IN ({sql_ids})"
                                )[0][0]) == VALID, 60, 0.5, "every valid order's shipment")
    shipping_dead = wait_until(lambda: kcat_records(trio.prefix + "shipping.dlq"), 30, 0.5,
                               "shipping's dead letter")
    assert [r["key"] for r in shipping_dead] == [poison_id.encode()]

    # The partition moved on: a new order, through the API, completes.
    order = trio.place([{"sku": sku, "quantity": 1}])
    trio.wait_status(order["id"], "SHIPMENT_SCHEDULED")
