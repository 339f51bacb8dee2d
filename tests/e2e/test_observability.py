"""A real Prometheus (Debian's binary) scrapes the running system under load: every query of the
Grafana dashboard returns data, the alert rules load, and the metrics an operator asks first
carry the labels the dashboard and alerts group by."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest
import yaml

from conveyor import BROKERS, PG, ROOT, http, wait_until

OBS = os.path.join(ROOT, "deploy", "observability")
PROM_PORT = int(os.environ.get("CV_TEST_PROMETHEUS_PORT", "19090"))
PROM_URL = f"http://127.0.0.1:{PROM_PORT}"
# The dashboard's queries use Grafana's $__rate_interval; with a 1 s scrape, 30 s holds plenty
# of samples.
RATE_INTERVAL = "30s"


def dashboard_queries():
    with open(os.path.join(OBS, "grafana", "dashboards", "conveyor.json")) as f:
        dash = json.load(f)
    return [(panel["title"], target["expr"]) for panel in dash["panels"]
            for target in panel["targets"]]


def prom_query(expr):
    qs = urllib.parse.urlencode({"query": expr})
    r = http("GET", f"{PROM_URL}/api/v1/query?{qs}", timeout=10)
    assert r.status == 200, (expr, r.status, r.body)
    body = r.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


@pytest.fixture(scope="module")
def prometheus(system):
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed (tests/harness/deps.sh installs it)")
    workdir = tempfile.mkdtemp(prefix="conveyor-prometheus-")
    shutil.copy(os.path.join(OBS, "alerts.yml"), workdir)
    # The shipped scrape configuration for `make up`, with this system's ports and a faster
    # scrape: its jobs are what the dashboard and the alerts group by.
    with open(os.path.join(OBS, "prometheus.yml")) as f:
        conf = yaml.safe_load(f)
    conf["global"].update(scrape_interval="1s", evaluation_interval="1s")
    jobs = {job["job_name"]: job for job in conf["scrape_configs"]}
    assert set(jobs) == {"order", "inventory", "shipping", "audit"}
    for name, job in jobs.items():
        assert job["static_configs"][0]["targets"][0].startswith("127.0.0.1:")
        job["static_configs"] = [{"targets": [f"127.0.0.1:{system.services[name].port}"]}]
    config = os.path.join(workdir, "prometheus.yml")
    with open(config, "w") as f:
        yaml.safe_dump(conf, f)
    log = open(os.path.join(system.log_dir, f"prometheus-{PROM_PORT}.log"), "wb")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir}/data",
         f"--web.listen-address=127.0.0.1:{PROM_PORT}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {proc.returncode}")
            try:
                return http("GET", f"{PROM_URL}/-/ready", timeout=2).status == 200
            except OSError:
                return False
        wait_until(ready, 30, 0.2, "prometheus ready")
        # Counters must be seen before they move, or their first increase is invisible.
        wait_until(lambda: len([r for r in prom_query("up") if r["value"][1] == "1"]) == 4
                   and len(prom_query("count_over_time(up[1m]) >= 2")) == 4,
                   30, 0.5, "every service scraped twice")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def load(system, orders=40, threads=4):
    """Places orders from a few threads; returns their ids."""
    for sku in ("OBS-1", "OBS-2"):
        system.set_stock(sku, 10_000)
    ids, lock = [], threading.Lock()

    def worker(n):
        for i in range(n):
            order = system.place([{"sku": "OBS-1" if i % 2 else "OBS-2", "quantity": 1}],
                                 customer=f"obs-{threading.get_ident() % 7}")
            with lock:
                ids.append(order["id"])
    ts = [threading.Thread(target=worker, args=(orders // threads,)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return ids


def produce_raw(topic, key, value):
    subprocess.run(["kcat", "-b", BROKERS, "-P", "-t", topic, "-k", key], input=value,
                   check=True, timeout=30)


def test_every_dashboard_query_returns_data_under_load(system, prometheus):
    # Two records nobody can decode, to give the dead-letter panel and its reason label data.
    # One record per kind, so that each (service, kind) series moves from 0 to 1 exactly once:
    # the first magic byte is neither Avro single-object (C3 01) nor Confluent (00).
    produce_raw(system.prefix + "orders", "obs-garbage", b"\x7fnot avro\xff")
    produce_raw(system.prefix + "orders", "obs-unknown", b"\xc3\x01" + b"\x22" * 8 + b"\x02")
    ids = load(system)
    assert len(ids) == 40
    for order_id in ids:
        system.wait_status(order_id, "SHIPMENT_SCHEDULED,DISPATCHED,DELIVERED", timeout=60)
    # Keep some traffic going while Prometheus gathers samples for the rates.
    load(system, orders=8, threads=2)

    queries = dashboard_queries()
    assert len(queries) >= 10
    missing = {}
    deadline = time.monotonic() + 60
    while True:
        missing = {}
        for title, expr in queries:
            result = prom_query(expr.replace("$__rate_interval", RATE_INTERVAL))
            if not result:
                missing[title] = expr
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not missing, f"dashboard queries without data: {missing}"


def test_operator_metrics_carry_their_labels(system, prometheus):
    # Saga latency by the status reached, from the order service.
    statuses = {r["metric"]["status"] for r in prom_query("order_saga_seconds_count")}
    assert {"CONFIRMED", "SHIPMENT_SCHEDULED"} <= statuses, statuses
    assert all(r["metric"]["job"] == "order" for r in prom_query("order_saga_seconds_count"))

    # Lag per topic and partition, for every consuming service; all caught up by now.
    def lag_settled():
        rows = prom_query("consumer_lag_records")
        return rows if rows and all(float(r["value"][1]) == 0 for r in rows) else None
    rows = wait_until(lag_settled, 30, 1, "consumer lag back to 0")
    assert {r["metric"]["job"] for r in rows} >= {"order", "inventory", "shipping", "audit"}
    assert all(r["metric"]["topic"].startswith(system.prefix) and r["metric"]["partition"].isdigit()
               for r in rows)

    # Dead letters by a bounded kind of reason, never the reason's text.
    reasons = {(r["metric"]["job"], r["metric"]["reason"])
               for r in prom_query("consumer_dead_lettered_total > 0")}
    assert ("shipping", "undecodable") in reasons, reasons
    assert ("shipping", "unknown_schema") in reasons, reasons
    kinds = {r["metric"]["reason"] for r in prom_query("consumer_dead_lettered_total")}
    assert kinds == {"unknown_schema", "undecodable", "held_back", "database", "rejected",
                     "other"}, kinds

    # Pool waits observed on every service; HTTP by route and status.
    assert {r["metric"]["job"] for r in prom_query("db_pool_wait_seconds_count")} == {
        "order", "inventory", "shipping", "audit"}
    routes = {(r["metric"]["route"], r["metric"]["status"])
              for r in prom_query('http_requests_total{job="order"}')}
    assert ("/orders", "201") in routes, routes


def test_alert_rules_load_and_stay_quiet_on_a_healthy_system(system, prometheus):
    groups = http("GET", f"{PROM_URL}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules) == {"ConsumerLagHigh", "DeadLettersGrowing", "OutboxBacklogOld", "SagaSlow"}
    assert all(r["health"] == "ok" for r in rules.values()), rules
    # The dead letters of the first test do fire their alert; the others stay inactive.
    assert rules["ConsumerLagHigh"]["state"] == "inactive"
    assert rules["OutboxBacklogOld"]["state"] == "inactive"
    assert rules["SagaSlow"]["state"] == "inactive"
    wait_until(lambda: rules_state("DeadLettersGrowing") == "firing", 30, 1,
               "DeadLettersGrowing firing")


def rules_state(name):
    groups = http("GET", f"{PROM_URL}/api/v1/rules", timeout=10).json()["data"]["groups"]
    return next(r["state"] for g in groups for r in g["rules"] if r["name"] == name)


def lag_on(service, topic):
    """Sum of service's consumer_lag_records over the partitions of topic, from /metrics."""
    total = 0.0
    for line in service.get("/metrics").body.decode().splitlines():
        if line.startswith("consumer_lag_records{") and f'topic="{topic}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_lag_grows_while_the_consumer_is_stuck_and_drains_after(system, prometheus):
    """A batch waiting on a lock is when lag matters: it must keep being reported."""
    system.set_stock("OBS-LAG", 1000)
    orders = system.prefix + "orders"
    # Hold the stock table: the inventory consumer's next OrderPlaced waits on the lock.
    locker = subprocess.Popen(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", PG["host"], "-p", PG["port"],
         "-U", PG["user"], "-d", system.inventory.db],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        locker.stdin.write("BEGIN; LOCK TABLE stock IN ACCESS EXCLUSIVE MODE; SELECT 1;\n")
        locker.stdin.flush()
        wait_until(lambda: any(r[0] == "t" for r in psql_locks(system)), 10, 0.2,
                   "the stock table locked")
        ids = [system.place([{"sku": "OBS-LAG", "quantity": 1}])["id"] for _ in range(12)]
        # The first order's batch is stuck; the ones after it are lag.
        wait_until(lambda: lag_on(system.inventory, orders) >= 5, 20, 0.5,
                   "inventory's lag on orders to grow while its consumer is stuck")
        wait_until(lambda: prom_query(
            f'sum(consumer_lag_records{{job="inventory",topic="{orders}"}}) > 0'), 10, 0.5,
            "Prometheus to see the lag")
    finally:
        locker.stdin.write("ROLLBACK;\n")
        locker.stdin.close()
        locker.wait(10)
    for order_id in ids:
        system.wait_status(order_id, "SHIPMENT_SCHEDULED,DISPATCHED,DELIVERED", timeout=60)
    wait_until(lambda: lag_on(system.inventory, orders) == 0, 20, 0.5, "the lag back to 0")


def psql_locks(system):
    from conveyor import psql
    return psql(system.inventory.db,
                "SELECT granted FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE c.relname = 'stock' AND l.mode = 'AccessExclusiveLock'")
