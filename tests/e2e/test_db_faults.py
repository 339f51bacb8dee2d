"""Database faults: the four services run against a PostgreSQL cluster this test starts itself,
while clients place a burst of orders (and dispatch and deliver some) and probe every service.
Mid-burst the cluster is restarted, then frozen (SIGSTOP) for 20 s, then every session of each
service is killed with pg_terminate_backend, one service after the other.

Afterwards: every order was accepted (its client retrying on 503, with the same
Idempotency-Key) and reached its final status, nothing was applied twice (processed_events,
audit and the topics agree, one decision per order), stock adds up, no service restarted, and
meanwhile HTTP answered 503 (with Retry-After) rather than hanging: every request has a short
client timeout and one that runs out counts as a failure.

The services run with a 3 s statement timeout (so a client gives up on an unanswered query
after 5 s), a 2 s connect timeout and a 1 s pool wait (defaults: 5 s, 5 s, 2 s): no request
should need more than about 8 s; CV_DBF_ORDERS and CV_DBF_SECONDS change the burst."""

import collections
import concurrent.futures
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

import avro_peer
import conveyor
from chaos import Journal
from conftest import make_system
from conveyor import SERVICES, free_port, kcat_records, psql, wait_until
from pgcluster import PG_BIN, PgCluster
from test_chaos import Order, check_audit, check_decisions, check_stock

ORDERS = int(os.environ.get("CV_DBF_ORDERS", "2000"))
LOAD_SECONDS = float(os.environ.get("CV_DBF_SECONDS", "60"))
FREEZE_SECONDS = 20
PLACERS = 8
ACTORS = 4
HTTP_TIMEOUT = 10.0  # a request without an answer by then hung
ENV = {"KAFKA_SESSION_TIMEOUT_MS": "6000", "DB_STATEMENT_TIMEOUT_MS": "3000",
       "DB_CONNECT_TIMEOUT_S": "2", "DB_POOL_WAIT_MS": "1000"}
CONSUMES = {"order": ("inventory", "shipments"), "inventory": ("orders", "shipments"),
            "shipping": ("orders", "inventory")}

pytestmark = pytest.mark.skipif(not os.access(os.path.join(PG_BIN, "initdb"), os.X_OK),
                                reason=f"no PostgreSQL server binaries in {PG_BIN}")


class Calls:
    """Every HTTP exchange of the run: (start, service, what, status or "hung"/"refused",
    seconds, Retry-After header, body head)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.log = []

    def call(self, service, method, path, body=None, headers=None, what=""):
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        req = urllib.request.Request(service.url + path, data=data, method=method,
                                     headers=hdrs)
        t0 = time.monotonic()
        status, retry_after, text = None, None, b""
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, retry_after, text = e.code, e.headers.get("Retry-After"), e.read()
        except (TimeoutError, socket.timeout):
            status = "hung"
        except urllib.error.URLError as e:
            status = "hung" if isinstance(e.reason, (TimeoutError, socket.timeout)) else "refused"
        except OSError:
            status = "refused"
        with self.lock:
            self.log.append((t0, service.name, what or f"{method} {path}", status,
                             time.monotonic() - t0, retry_after, text[:200]))
        return status, text

    def until_answered(self, service, method, path, body=None, headers=None, what="",
                       deadline=180.0):
        """Tries again after a 503 (or a failure, which the checks count) until another
        answer; returns (status, body, attempts)."""
        end = time.monotonic() + deadline
        attempts = 0
        while True:
            attempts += 1
            status, text = self.call(service, method, path, body, headers, what)
            if isinstance(status, int) and status != 503:
                return status, text, attempts
            if time.monotonic() > end:
                return status, text, attempts
            time.sleep(0.2 if status == 503 else 0.5)


class Run:
    def __init__(self, system, pg):
        self.system, self.pg = system, pg
        self.journal = Journal()
        self.calls = Calls()
        self.rng = random.Random(20261130)
        self.tag = uuid.uuid4().hex[:6]
        self.orders, self.by_id, self.skus = [], {}, []
        self.lock = threading.Lock()
        self.problems = []
        self.actions = []
        self.windows = {}  # fault -> (start, end)
        self.stop_probing = threading.Event()
        self.pids = {}

    def problem(self, text):
        with self.lock:
            self.problems.append(text)
        self.journal.note("PROBLEM " + text)

    def plan(self):
        plentiful = [f"DBF-{self.tag}-P{i}" for i in range(3)]
        scarce = [f"DBF-{self.tag}-S{i}" for i in range(2)]
        for sku, n in [*((s, 1_000_000) for s in plentiful), *zip(scarce, (30, 20))]:
            status, text, _ = self.calls.until_answered(self.system.inventory, "PUT",
                                                        f"/inventory/{sku}", {"available": n})
            assert status == 200, (sku, status, text)
        self.skus = plentiful + scarce
        for i in range(ORDERS):
            items = [{"sku": s, "quantity": self.rng.randint(1, 4),
                      "unit_price_cents": self.rng.randint(100, 5000)}
                     for s in self.rng.sample(plentiful, self.rng.randint(1, 2))]
            if self.rng.random() < 0.1:
                items.append({"sku": self.rng.choice(scarce), "quantity": 1})
            r = self.rng.random()
            fate = "dispatch" if r < 0.08 else "deliver" if r < 0.16 else "none"
            self.orders.append(Order(i, self.tag, items, fate))

    # ---- clients
    def place(self, o, start):
        tick = o.i // PLACERS * PLACERS * LOAD_SECONDS / ORDERS
        time.sleep(max(0.0, start + tick - time.monotonic()))
        o.started = time.monotonic()
        status, text, attempts = self.calls.until_answered(
            self.system.order, "POST", "/orders", o.body(), {"Idempotency-Key": o.key},
            "POST /orders")
        o.finished = time.monotonic()
        o.failed_attempts = attempts - 1
        o.first_status = status
        if status not in (200, 201):
            self.problem(f"place #{o.i}: {status} after {attempts} attempts: {text[:200]!r}")
            return
        order = json.loads(text)
        with self.lock:
            o.id = order["id"]
            self.by_id[o.id] = o

    def advance(self, o, step):
        status, text, attempts = self.calls.until_answered(
            self.system.shipping, "POST", f"/shipments/{o.id}/{step}", what=f"POST {step}")
        if status == 200:
            return True
        if status == 409 and attempts > 1:  # an attempt that seemed to fail went through
            s, t, _ = self.calls.until_answered(self.system.shipping, "GET",
                                                f"/shipments/{o.id}", what="GET /shipments")
            want = ("DISPATCHED", "DELIVERED") if step == "dispatch" else ("DELIVERED",)
            if s == 200 and json.loads(t)["status"] in want:
                return True
        self.problem(f"{step} #{o.i} {o.id}: {status} {text[:200]!r}")
        return False

    def ship(self, o):
        if self.advance(o, "dispatch"):
            o.dispatched = True
            if o.fate == "deliver" and self.advance(o, "deliver"):
                o.delivered = True
        o.done = True

    def listing(self):
        statuses, after = {}, 0
        while True:
            status, text = self.calls.call(self.system.order, "GET",
                                           f"/orders?limit=500&after={after}", what="listing")
            if status != 200:
                return None
            page = json.loads(text)
            statuses.update((x["id"], x["status"]) for x in page["orders"])
            if not page["next"]:
                return statuses
            after = page["next"]

    def follow(self, actors):
        while not self.stop_probing.is_set():
            statuses = self.listing()
            if statuses is not None:
                with self.lock:
                    self.latest = statuses
                    for oid, status in statuses.items():
                        o = self.by_id.get(oid)
                        if o and not o.actioned and o.fate != "none" and \
                                status == "SHIPMENT_SCHEDULED":
                            o.actioned = True
                            self.actions.append(actors.submit(self.ship, o))
            self.stop_probing.wait(1.0)

    def probe(self, name):
        """/readyz and one read that needs the database, over and over."""
        service = self.system.services[name]
        reads = {"order": "/orders?limit=1", "inventory": f"/inventory/{self.skus[0]}",
                 "shipping": f"/shipments/{uuid.uuid4()}", "audit": "/events?limit=1"}
        while not self.stop_probing.is_set():
            self.calls.call(service, "GET", "/readyz", what="readyz")
            self.calls.call(service, "GET", reads[name], what="read")
            self.stop_probing.wait(0.25)

    # ---- the faults
    def faults(self, start):
        def at(t):
            time.sleep(max(0.0, start + t - time.monotonic()))
        at(LOAD_SECONDS * 0.12)
        t0 = time.monotonic()
        self.journal.note("restarting PostgreSQL (fast)")
        self.pg.restart()
        self.windows["restart"] = (t0, time.monotonic())
        self.journal.note("PostgreSQL restarted")

        at(LOAD_SECONDS * 0.3)
        t0 = time.monotonic()
        self.pg.freeze()
        self.journal.note(f"PostgreSQL frozen (SIGSTOP, {len(self.pg.frozen)} processes)")
        try:
            time.sleep(FREEZE_SECONDS)
        finally:
            self.pg.thaw()
        self.windows["freeze"] = (t0, time.monotonic())
        self.journal.note("PostgreSQL thawed (SIGCONT)")

        at(LOAD_SECONDS * 0.7)
        t0 = time.monotonic()
        for name in SERVICES:
            n = self.pg.terminate(self.system.dbs[name])
            self.journal.note(f"pg_terminate_backend: {n} sessions of {name}")
            time.sleep(2)
        self.windows["terminate"] = (t0, time.monotonic())

    def unsettled(self):
        latest = getattr(self, "latest", {})
        if any(not a.done() for a in self.actions):
            return ["actions running"]
        return [o for o in self.orders if o.id and latest.get(o.id) not in o.finals()]


def start_cluster():
    """A cluster on CV_TEST_PG_FAULT_PORT, or on a free port (another one if that was taken
    meanwhile, e.g. as some connection's ephemeral port)."""
    fixed = os.environ.get("CV_TEST_PG_FAULT_PORT")
    for attempt in range(1 if fixed else 3):
        pg = PgCluster(int(fixed) if fixed else free_port())
        try:
            return pg.start()
        except Exception:
            pg.destroy()
            if fixed or attempt == 2:
                raise


@pytest.fixture(scope="module")
def run(request, log_dir):
    pg = start_cluster()
    port = pg.port
    saved = dict(conveyor.PG)
    conveyor.PG.update(host="127.0.0.1", port=str(port), user="postgres")
    system, codes = None, {}
    try:
        system = make_system(request, log_dir, {s: ENV for s in SERVICES})
        system.start()
        r = Run(system, pg)
        r.pids = {name: s.proc.pid for name, s in system.services.items()}
        r.plan()
        placers = concurrent.futures.ThreadPoolExecutor(PLACERS)
        actors = concurrent.futures.ThreadPoolExecutor(ACTORS)
        others = concurrent.futures.ThreadPoolExecutor(2 + len(SERVICES))
        probes = [others.submit(r.probe, name) for name in SERVICES]
        follower = others.submit(r.follow, actors)
        try:
            start = r.t0 = time.monotonic()
            r.journal.note(f"{ORDERS} orders over {LOAD_SECONDS:.0f}s")
            faults = others.submit(r.faults, start)
            for f in [placers.submit(r.place, o, start) for o in r.orders]:
                f.result()
            r.journal.note("every order placed")
            faults.result()
            r.journal.note("faults over")
            try:
                wait_until(lambda: not r.unsettled(), 180, 1.0, "every order to be final")
            except AssertionError as e:
                raise AssertionError(f"{e}: {len(r.unsettled())} not final\n{r.journal}") \
                    from None
            r.journal.note("every order final")
            r.settled_at = time.monotonic()
            try:
                wait_until(lambda: not (check_stock(r) or check_decisions(r) or check_audit(r)),
                           120, 2.0, "the rest to settle")
                r.journal.note("everything settled")
            except AssertionError:
                r.journal.note("not everything settled: the tests say what")
        finally:
            r.stop_probing.set()
            pg.thaw()
            placers.shutdown(cancel_futures=True)
            actors.shutdown()
            others.shutdown()
            follower.result()
            for p in probes:
                p.result()
        r.report = report(r)
        print(f"\ndatabase faults journal:\n{r.journal}\n{r.report}")
        yield r
    finally:
        if system:
            codes = system.stop()
            system.drop()
        conveyor.PG.clear()
        conveyor.PG.update(saved)
        pg.destroy()
    assert codes == {name: 0 for name in codes}, f"exit codes {codes} (logs in {log_dir})"


def in_window(r, name, call, after=0.0):
    """Whether call started after+ seconds into the fault and got its answer before it ended."""
    a, b = r.windows[name]
    return a + after <= call[0] and call[0] + call[4] <= b


def report(r):
    log = r.calls.log
    lines = [f"orders accepted: {sum(o.id is not None for o in r.orders)} of {len(r.orders)}; "
             f"placements retried: {sum(o.failed_attempts > 0 for o in r.orders)}"]
    for name in ("restart", "freeze", "terminate"):
        a, b = r.windows[name]
        inside = [c for c in log if a <= c[0] <= b]
        by = collections.Counter((c[2] if c[2] in ("readyz", "read") else "api", c[3])
                                 for c in inside)
        slowest = max((c[4] for c in inside), default=0.0)
        lines.append(f"{name} ({b - a:.1f}s): {dict(sorted(by.items(), key=str))}, slowest "
                     f"answer {slowest:.2f}s")
        # Recovery: the first 201 after the fault ended.
        ok = [c[0] for c in log if c[0] >= b and c[2] == "POST /orders" and c[3] in (200, 201)]
        if ok:
            lines.append(f"  first order accepted {min(ok) - b:.2f}s after the {name} ended")
        ready = {}
        for c in log:
            if c[0] >= b and c[2] == "readyz" and c[3] == 200 and c[1] not in ready:
                ready[c[1]] = c[0] - b
        lines.append(f"  /readyz 200 again after: " +
                     ", ".join(f"{k} {v:.2f}s" for k, v in sorted(ready.items())))
    total = collections.Counter(c[3] for c in log)
    lines.append(f"all requests: {dict(sorted(total.items(), key=str))}; slowest "
                 f"{max(c[4] for c in log):.2f}s; 503 without Retry-After on the API: "
                 f"{sum(1 for c in log if c[3] == 503 and c[2] != 'readyz' and not c[5])}")
    lines.append(f"burst to all final: {r.settled_at - r.t0:.1f}s")
    return "\n".join(lines)


def test_every_order_accepted_once_and_final(run):
    assert run.problems == [], "\n".join(run.problems)
    assert all(o.id for o in run.orders)
    rows = psql(run.system.dbs["order"], "SELECT id, customer_id, status FROM orders")
    db = {oid: (c, s) for oid, c, s in rows}
    assert len(rows) == len(run.orders), f"{len(rows)} orders for {len(run.orders)} placed"
    for o in run.orders:
        assert db[o.id][0] == o.customer
        assert db[o.id][1] in o.finals(), (o.i, o.fate, db[o.id])
    keys = dict(psql(run.system.dbs["order"], "SELECT key, order_id FROM idempotency_keys"))
    assert keys == {o.key: o.id for o in run.orders}
    counts = collections.Counter(s for _, s in db.values())
    assert counts["REJECTED"] and counts["DELIVERED"] and counts["DISPATCHED"], counts
    # The faults met the clients: some placements had to be tried again.
    assert any(o.failed_attempts for o in run.orders)


def test_nothing_applied_twice(run):
    assert check_decisions(run) == []
    assert check_audit(run) == []
    # Each consumer recorded exactly the events of the topics it reads, each once.
    on_topic = {}
    for t in ("orders", "inventory", "shipments"):
        on_topic[t] = {avro_peer.decode(rec["value"])[1]["metadata"]["event_id"]
                       for rec in kcat_records(run.system.prefix + t, timeout=60)}
    for name, topics in CONSUMES.items():
        rows = psql(run.system.dbs[name], "SELECT event_id FROM processed_events")
        claimed = [r[0] for r in rows]
        assert len(claimed) == len(set(claimed))
        assert set(claimed) == set().union(*(on_topic[t] for t in topics)), name


def test_stock_adds_up(run):
    assert check_stock(run) == []


def test_no_service_restarted(run):
    for name, s in run.system.services.items():
        assert s.proc.poll() is None, f"{name} exited with {s.proc.returncode}"
        assert s.proc.pid == run.pids[name]


def test_http_answered_503_and_never_hung(run):
    log = run.calls.log
    failed = [c for c in log if c[3] in ("hung", "refused")]
    assert failed == [], f"{len(failed)} requests hung or were refused: {failed[:5]}"
    assert max(c[4] for c in log) < HTTP_TIMEOUT
    # While the cluster was frozen (past the first seconds, which in-flight work takes to
    # notice), every service said so: /readyz 503 naming the database, reads 503.
    for name in SERVICES:
        frozen = [c for c in log if c[1] == name and in_window(run, "freeze", c, 6.0)]
        ready = [c for c in frozen if c[2] == "readyz"]
        assert ready and all(c[3] == 503 for c in ready), (name, ready[:3])
        assert any(b"database" in c[6] for c in ready), (name, ready[:3])
        reads = [c for c in frozen if c[2] == "read"]
        assert reads and all(c[3] == 503 for c in reads), (name, reads[:3])
    unavailable = [c for c in log if c[3] == 503 and c[2] != "readyz"]
    assert unavailable, "no request met the database away"
    assert all(c[5] for c in unavailable), "a 503 without Retry-After"
    # After the thaw, every service is ready again and answers reads.
    end = run.windows["terminate"][1]
    for name in SERVICES:
        late = [c for c in log if c[1] == name and c[0] > end + 10 and c[2] == "readyz"]
        assert late and all(c[3] == 200 for c in late), (name, late[-3:])
