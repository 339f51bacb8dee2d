"""A consumer claims a batch's events in one statement: an event that comes twice in the same
batch, or again after it was applied, is applied once; the others of the batch are applied."""

import uuid

import avro_peer
from confluent_kafka import Producer
from conveyor import BROKERS, wait_until
from injector import order_placed


def test_an_event_twice_in_one_batch_is_applied_once(system):
    sku = "CLAIM-" + uuid.uuid4().hex[:6]
    system.set_stock(sku, 100)
    twice, other = str(uuid.uuid4()), str(uuid.uuid4())
    repeated = order_placed(twice, sku, 3, "claims")
    skipped = system.inventory.metric("consumer_duplicates_total")
    # One flush, one key: the copies reach the consumer together, in one batch.
    p = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "linger.ms": 50})
    for event, key in ((repeated, twice), (order_placed(other, sku, 5, "claims"), twice),
                       (repeated, twice)):
        p.produce(system.prefix + "orders", key=key,
                  value=avro_peer.encode("OrderPlaced", event))
    assert p.flush(20) == 0
    wait_until(lambda: system.stock(sku)["reserved"] == 8, 30, 0.2, "both orders reserved")
    wait_until(lambda: system.inventory.metric("consumer_duplicates_total") >= skipped + 1, 10,
               0.2, "the copy skipped")

    # Again later, in a batch of its own: skipped too.
    p.produce(system.prefix + "orders", key=twice, value=avro_peer.encode("OrderPlaced", repeated))
    assert p.flush(20) == 0
    wait_until(lambda: system.inventory.metric("consumer_duplicates_total") >= skipped + 2, 30,
               0.2, "the late copy skipped")
    assert system.stock(sku)["reserved"] == 8
