"""The outbox relay never stalls on one row: rows the broker can never take (too large for our
producer, too large for the topic, a topic that does not exist) are moved to
outbox_quarantine with the reason and counted, and the rows behind them go on. A relay that
makes no progress on a non-empty outbox is reported by /readyz."""

import subprocess
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import make_system
from conveyor import BROKERS, PG, kcat_records, psql, wait_until


@pytest.fixture(scope="module")
def system(request, log_dir):
    s = make_system(request, log_dir, {"order": {"OUTBOX_STALL_SECONDS": "3",
                                                  "OUTBOX_MISSING_TOPIC_GRACE_SECONDS": "4"}}
                    ).start()
    yield s
    codes = s.stop()
    s.drop()
    assert codes == {name: 0 for name in codes}, f"exit codes {codes} (logs in {log_dir})"


def test_rows_the_broker_cannot_take_are_quarantined_and_the_relay_goes_on(system):
    tiny = system.prefix + "tiny"
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for f in admin.create_topics([NewTopic(tiny, 1, 1, config={"max.message.bytes": "1000"})]
                                 ).values():
        f.result(30)
    db = system.dbs["order"]
    psql(db, f"INSERT INTO outbox (topic, key, value) VALUES"
             f" ('{system.prefix}orders', 'too-large', decode(repeat('00', 1100000), 'hex')),"
             f" ('{tiny}', 'too-large-for-topic', decode(repeat('00', 5000), 'hex')),"
             f" ('{system.prefix}no-such-topic', 'no-topic', 'x'::bytea)")

    # Rows behind them go on: a fresh order completes.
    system.set_stock("QUAR-1", 3)
    order = system.place([{"sku": "QUAR-1", "quantity": 1}])
    system.wait_status(order["id"], "SHIPMENT_SCHEDULED", timeout=60)

    rows = wait_until(lambda: (lambda r: r if len(r) == 3 else None)(
        psql(db, "SELECT convert_from(key, 'UTF8'), reason FROM outbox_quarantine ORDER BY id")),
        30, 0.5, "three quarantined rows")
    reasons = dict(rows)
    assert "too large" in reasons["too-large"].lower(), reasons
    assert "too large" in reasons["too-large-for-topic"].lower(), reasons
    assert "does not exist" in reasons["no-topic"], reasons
    wait_until(lambda: psql(db, "SELECT count(*) FROM outbox")[0][0] == "0", 30, 0.5,
               "an empty outbox")
    assert system.order.metric("outbox_quarantined_total") == 3
    wait_until(lambda: system.order.metric("outbox_quarantine_rows") == 3, 10, 0.5,
               "the quarantine gauge")
    assert system.order.proc.poll() is None
    # Waiting for the missing topic (4 s) outlasted OUTBOX_STALL_SECONDS (3 s): readiness said
    # so, and comes back now that the outbox is empty.
    wait_until(lambda: system.order.get("/readyz").status == 200, 15, 0.5, "ready again")


def test_a_topic_that_appears_within_the_grace_gets_its_rows(system):
    """A topic the broker does not know yet (just created, or the deployment's topics step still
    running) is waited for: its rows are published once it exists, not quarantined."""
    late = system.prefix + "late"
    db = system.dbs["order"]
    before = system.order.metric("outbox_quarantined_total")
    psql(db, f"INSERT INTO outbox (topic, key, value) VALUES ('{late}', 'late-1', 'a'::bytea)")
    time.sleep(1.5)
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for f in admin.create_topics([NewTopic(late, 1, 1)]).values():
        f.result(30)
    wait_until(lambda: psql(db, "SELECT count(*) FROM outbox")[0][0] == "0", 30, 0.5,
               "the row published")
    assert [r["key"] for r in kcat_records(late)] == [b"late-1"]
    assert system.order.metric("outbox_quarantined_total") == before
    assert psql(db, "SELECT count(*) FROM outbox_quarantine WHERE key = 'late-1'::bytea") \
        == [["0"]]


def relay_waits_on_lock(db):
    return psql(db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'DELETE FROM outbox%'")[0][0] != "0"


def test_readyz_reports_a_relay_that_makes_no_progress(system):
    db = system.dbs["order"]
    assert system.order.get("/readyz").status == 200
    # Lock an outbox row right after committing it, before the relay deletes it (it must wait
    # for the broker's acknowledgement first): the relay publishes it but cannot delete it.
    holder = subprocess.Popen(
        ["psql", "-X", "-q", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", db],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        holder.stdin.write(
            f"INSERT INTO outbox (topic, key, value) VALUES ('{system.prefix}order.dlq',"
            " 'stall-probe', 'stall-probe'::bytea);\n"
            "BEGIN;\nSELECT id FROM outbox WHERE key = 'stall-probe'::bytea FOR UPDATE;\n")
        holder.stdin.flush()
        wait_until(lambda: relay_waits_on_lock(db), 20, 0.2, "the relay blocked on the row")

        def not_ready():
            r = system.order.get("/readyz")
            return r if r.status == 503 else None
        r = wait_until(not_ready, 20, 0.5, "/readyz reporting the stall")
        assert "outbox relay stalled" in r.json()["detail"], r.body
        assert system.order.metric("outbox_depth") >= 1
        assert system.order.metric("outbox_oldest_age_seconds") >= 3
    finally:
        holder.stdin.close()  # ends the session: the lock goes, the relay goes on
        holder.wait(10)
    wait_until(lambda: system.order.get("/readyz").status == 200, 20, 0.5,
               "/readyz ready again")
    assert psql(db, "SELECT count(*) FROM outbox")[0][0] == "0"
