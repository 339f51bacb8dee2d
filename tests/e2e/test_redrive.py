"""Redrive: dead letters made by a deliberately broken consumer (inventory told to dead-letter
OrderPlaced) are sent back to their source topic with cv-dlq after the fix, and applied
exactly once: the order goes through, the stock is reserved once, and a second redrive
changes nothing."""

import os
import subprocess

import pytest
from conftest import make_system
from conveyor import BIN, BROKERS, kcat_records, psql, wait_until

CV_DLQ = os.path.join(BIN, "cv-dlq")


@pytest.fixture(scope="module")
def system(request, log_dir):
    s = make_system(request, log_dir,
                    {"inventory": {"CONSUMER_DEAD_LETTER_TYPES": "OrderPlaced"}}).start()
    yield s
    codes = s.stop()
    s.drop()
    assert codes == {name: 0 for name in codes}, f"exit codes {codes} (logs in {log_dir})"


def redrive(*args):
    out = subprocess.run([CV_DLQ, "redrive", "--brokers", BROKERS, *args], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_dead_letters_redriven_after_the_fix_are_applied_once(system):
    system.set_stock("REDRIVE-1", 10)
    orders = [system.place([{"sku": "REDRIVE-1", "quantity": 2}]) for _ in range(3)]
    dlq = system.prefix + "inventory.dlq"
    wait_until(lambda: len(kcat_records(dlq)) >= 3, 30, 0.5, "three dead letters")
    for o in orders:
        assert system.order.get(f"/orders/{o['id']}").json()["status"] == "PENDING"
    assert system.stock("REDRIVE-1")["available"] == 10

    # Nothing matches another consumer's name; a dry run sends nothing.
    assert "0 matched" in redrive("--dlq", dlq, "--consumer", "shipping")
    assert "3 would be redriven" in redrive("--dlq", dlq, "--reason", "held back", "--dry-run")

    # The fix: inventory restarted without the setting. Then the redrive.
    system.inventory.stop()
    del system.inventory.env["CONSUMER_DEAD_LETTER_TYPES"]
    system.inventory.start()
    out = redrive("--dlq", dlq, "--consumer", "inventory", "--reason", "held back",
                  "--since", "2000-01-01T00:00:00Z")
    assert "3 redriven" in out, out
    for o in orders:
        system.wait_status(o["id"], "SHIPMENT_SCHEDULED", timeout=60)
    stock = system.stock("REDRIVE-1")
    assert (stock["available"], stock["reserved"]) == (4, 6), stock

    # The redriven records carry where they came from, and no dlq_* header.
    redriven = [r for r in kcat_records(system.prefix + "orders")
                if "redriven_from" in r["headers"]]
    assert len(redriven) == 3
    assert all(r["headers"]["redriven_from"].startswith(dlq + "/") for r in redriven)
    assert not any(k.startswith("dlq_") for r in redriven for k in r["headers"])
    assert all(r["headers"]["ce_type"] == "conveyor.OrderPlaced" for r in redriven)

    # Again: every consumer has applied them now, so nothing changes.
    assert "3 redriven" in redrive("--dlq", dlq, "--consumer", "inventory")
    wait_until(lambda: len([r for r in kcat_records(system.prefix + "orders")
                            if "redriven_from" in r["headers"]]) == 6, 30, 0.5,
               "the second redrive on the topic")
    inv_db = system.dbs["inventory"]
    wait_until(lambda: system.inventory.metric("consumer_duplicates_total") >= 3, 30, 0.5,
               "inventory skipping the second redrive")
    stock = system.stock("REDRIVE-1")
    assert (stock["available"], stock["reserved"]) == (4, 6), stock
    assert psql(inv_db, "SELECT count(*) FROM processed_events WHERE dead_lettered")[0][0] == "0"
    # Shipping applied OrderPlaced the first time: it skipped both redrives.
    assert system.shipping.metric("consumer_duplicates_total") >= 6
