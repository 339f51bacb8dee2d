"""Housekeeping: processed event ids and idempotency keys older than the retention are purged
while recent ones stay, and a retention shorter than a consumed topic's is refused at start
with one clear line."""

import pytest
from conftest import make_system
from conveyor import Service, free_port, psql, wait_until

ENV = {"PROCESSED_EVENTS_RETENTION_HOURS": "200", "HOUSEKEEPING_INTERVAL_SECONDS": "1"}


@pytest.fixture(scope="module")
def system(request, log_dir):
    s = make_system(request, log_dir, {name: ENV for name in
                                       ("order", "inventory", "shipping", "audit")}).start()
    yield s
    codes = s.stop()
    s.drop()
    assert codes == {name: 0 for name in codes}, f"exit codes {codes} (logs in {log_dir})"


def test_old_processed_events_and_idempotency_keys_are_purged(system):
    system.set_stock("KEEP-1", 5)
    r = system.order.post("/orders", {"customer_id": "hk", "items": [
        {"sku": "KEEP-1", "quantity": 1}]}, headers={"Idempotency-Key": "recent-key"})
    assert r.status == 201, r.body
    order_id = r.json()["id"]
    system.wait_status(order_id, "SHIPMENT_SCHEDULED")
    inv, order = system.dbs["inventory"], system.dbs["order"]
    psql(inv, "INSERT INTO processed_events (consumer, event_id, processed_at)"
              " SELECT 'inventory', 'old-' || g, now() - interval '10 days'"
              " FROM generate_series(1, 25000) g")
    psql(order, "INSERT INTO idempotency_keys (key, request, order_id, created_at)"
                f" SELECT 'old-' || g, '{{}}', '{order_id}', now() - interval '10 days'"
                " FROM generate_series(1, 100) g")
    wait_until(lambda: psql(inv, "SELECT count(*) FROM processed_events"
                                 " WHERE event_id LIKE 'old-%'")[0][0] == "0",
               60, 0.5, "old processed events purged")
    wait_until(lambda: psql(order, "SELECT count(*) FROM idempotency_keys"
                                   " WHERE key LIKE 'old-%'")[0][0] == "0",
               60, 0.5, "old idempotency keys purged")
    # Recent ones stay: the order's events, and its key still answers with the same order.
    assert int(psql(inv, "SELECT count(*) FROM processed_events")[0][0]) >= 1
    again = system.order.post("/orders", {"customer_id": "hk", "items": [
        {"sku": "KEEP-1", "quantity": 1}]}, headers={"Idempotency-Key": "recent-key"})
    assert again.json()["id"] == order_id
    assert system.inventory.metric("housekeeping_purged_total") >= 25000


def test_retention_shorter_than_the_topics_is_refused(system, log_dir):
    # The test broker keeps records 168 h (Kafka's default); 100 h is not enough.
    env = {"TOPIC_PREFIX": system.prefix, "PROCESSED_EVENTS_RETENTION_HOURS": "100",
           "INVENTORY_SEED": "false"}
    svc = Service("inventory", system.dbs["inventory"], free_port(), log_dir, env)
    svc.start(wait=False)
    assert svc.proc.wait(60) == 1
    with open(svc.log_path, encoding="utf-8") as f:
        lines = [line for line in f if "PROCESSED_EVENTS_RETENTION_HOURS" in line]
    assert lines and "must exceed the retention of topic" in lines[-1], lines
    assert "retention.ms=604800000" in lines[-1]
