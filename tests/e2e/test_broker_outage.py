"""Pulling the plug on the broker: orders placed while Kafka is down are accepted (they wait
in the order service's outbox), readiness reports the outage, and once the broker is back
every order completes, each decided exactly once."""

import collections
import subprocess

from conveyor import KAFKA_SH, wait_until


def broker(verb):
    subprocess.run([KAFKA_SH, verb], check=True, capture_output=True)


def test_orders_accepted_while_broker_down_all_complete(system):
    system.set_stock("OUTAGE-1", 100)
    before = system.place([{"sku": "OUTAGE-1", "quantity": 1}])
    system.wait_status(before["id"], "SHIPMENT_SCHEDULED")

    broker("stop")
    try:
        ids = [system.place([{"sku": "OUTAGE-1", "quantity": 2}], customer=f"outage-{i}")["id"]
               for i in range(20)]
        r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(
            system.order.get("/readyz")), 30, 0.5, "readiness to report the outage")
        assert "kafka" in r.json()["detail"]
        assert all(system.order.get(f"/orders/{i}").json()["status"] == "PENDING" for i in ids)
    finally:
        broker("start")

    for oid in ids:
        system.wait_status(oid, "SHIPMENT_SCHEDULED", timeout=120)
    for svc in system.services.values():
        svc.wait_ready(60)
    stock = system.stock("OUTAGE-1")
    assert stock["reserved"] == 41 and stock["available"] == 59

    # Audit records asynchronously: wait until it has a decision for every order, then check
    # there is exactly one each.
    def decisions():
        return collections.Counter(e["order_id"] for e in system.audit_events(type="StockReserved")
                                   if e["order_id"] in ids)
    wait_until(lambda: set(decisions()) == set(ids), 60, 0.5, "audit to record the decisions")
    assert decisions() == {oid: 1 for oid in ids}
