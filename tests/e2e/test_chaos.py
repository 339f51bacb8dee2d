"""Chaos: a steady stream of orders from concurrent clients (some racing for scarce SKUs, some
cancelled, some dispatched and delivered) while every service is SIGKILLed in turn at random
moments (one of two replicas, and later all of them) and restarted, and the broker is stopped
for a while. Afterwards nothing is lost and nothing applied twice: every order exists once and
reaches its final status, stock adds up, one decision per order, audit holds every event of
the topics exactly once, and no status ever went backwards.

Left out: restarting PostgreSQL (the cluster is shared with other work on the machines this
runs on). CV_CHAOS_SEED, CV_CHAOS_ORDERS and CV_CHAOS_SECONDS change the run."""

import collections
import concurrent.futures
import os
import random
import signal
import threading
import time
import uuid

import pytest

from chaos import FORWARD, Client, Journal, broker
from conftest import make_system
from conveyor import SERVICES, Service, free_port, kcat_records, psql, wait_until

SEED = int(os.environ.get("CV_CHAOS_SEED", "20261126"))
ORDERS = int(os.environ.get("CV_CHAOS_ORDERS", "1200"))
LOAD_SECONDS = float(os.environ.get("CV_CHAOS_SECONDS", "90"))
PLACERS = 8  # concurrent clients placing orders
ACTORS = 4  # concurrent clients cancelling, dispatching, delivering
FAST_FAILOVER = {"KAFKA_SESSION_TIMEOUT_MS": "6000"}
REPLICATED = ("inventory", "shipping")
HOLDING = ("CONFIRMED", "SHIPMENT_SCHEDULED", "DISPATCHED", "DELIVERED")
SHIPPED = ("DISPATCHED", "DELIVERED")


@pytest.fixture(scope="module")
def cluster(request, log_dir):
    system = make_system(request, log_dir, {s: FAST_FAILOVER for s in SERVICES})
    system.start()
    system.replicas = {s: [system.services[s]] for s in SERVICES}
    for name in REPLICATED:
        base = system.services[name]
        twin = Service(name, base.db, free_port(), log_dir, {
            k: v for k, v in base.env.items()
            if k in ("TOPIC_PREFIX", "INVENTORY_SEED", "KAFKA_SESSION_TIMEOUT_MS")})
        system.replicas[name].append(twin.start())
    yield system
    codes = {f"{r.name}:{r.port}": r.stop() for rs in system.replicas.values() for r in rs}
    system.drop()
    assert set(codes.values()) == {0}, f"exit codes {codes} (logs in {log_dir})"


class Order:
    """One logical order as its client knows it."""

    def __init__(self, i, tag, items, fate):
        self.i, self.items, self.fate = i, items, fate
        self.key = f"chaos-{tag}-{i}"  # Idempotency-Key: the same for every attempt
        self.customer = f"chaos-{tag}-{i}"
        self.id = None
        self.first_status = None  # what POST answered
        self.failed_attempts = 0
        self.started = self.finished = None
        self.actioned = False  # cancel / dispatch submitted
        self.done = False  # ... and finished
        self.cancelled = self.cancel_refused = False
        self.dispatched = self.delivered = False

    def body(self):
        return {"customer_id": self.customer, "items": self.items,
                "shipping_address": {"street": f"Chaosweg {self.i}", "city": "Utrecht"}}

    def finals(self):
        """The statuses this order may end in, given what its client did."""
        if self.fate in ("cancel-now", "cancel-later"):
            if self.cancelled:
                return {"CANCELLED"}
            if self.cancel_refused:
                return {"CANCELLED", "REJECTED"} if self.failed_cancel else {"REJECTED"}
            return {"REJECTED"} if self.fate == "cancel-later" else set()
        if self.fate == "dispatch":
            return {"DISPATCHED"} if self.dispatched else {"REJECTED"}
        if self.fate == "deliver":
            return {"DELIVERED"} if self.delivered else {"REJECTED"}
        return {"SHIPMENT_SCHEDULED", "REJECTED"}

    failed_cancel = False


class Run:
    """The chaos run and everything the checks need from it."""

    def __init__(self, system):
        self.system = system
        self.journal = Journal()
        self.client = Client(self.journal)
        self.rng = random.Random(SEED)
        self.lock = threading.Lock()
        self.tag = uuid.uuid4().hex[:6]
        self.orders = []
        self.by_id = {}
        self.history = collections.defaultdict(list)  # order id -> [status as seen, in order]
        self.latest = {}  # order id -> status in the last complete listing
        self.problems = []  # what a client saw that it should not have
        self.outage = None  # (broker stopped, broker starting) in monotonic time
        self.actions = []
        self.stop_following = threading.Event()
        self.skus = {}

    # ---- where to send requests: the replicas (a dead one refuses, and the client moves on)
    def urls(self, name):
        return lambda: [r.url for r in self.system.replicas[name]]

    def call(self, name, method, path, body=None, headers=None, what=""):
        return self.client.call(self.urls(name), method, path, body, headers, what)

    def problem(self, text):
        with self.lock:
            self.problems.append(text)
        self.journal.note("PROBLEM " + text)

    # ---- the plan
    def plan(self):
        plentiful = [f"CH-{self.tag}-P{i}" for i in range(3)]
        scarce = [f"CH-{self.tag}-S{i}" for i in range(3)]
        for sku in plentiful:
            self.set_stock(sku, 1_000_000)
        for sku, n in zip(scarce, (40, 25, 15)):
            self.set_stock(sku, n)
        self.skus = plentiful + scarce
        for i in range(ORDERS):
            items = [{"sku": s, "quantity": self.rng.randint(1, 5),
                      "unit_price_cents": self.rng.randint(100, 5000)}
                     for s in self.rng.sample(plentiful, self.rng.randint(1, 2))]
            if self.rng.random() < 0.35:
                items.append({"sku": self.rng.choice(scarce), "quantity": self.rng.randint(1, 3)})
            r = self.rng.random()
            fate = ("cancel-now" if r < 0.06 else "cancel-later" if r < 0.12 else
                    "dispatch" if r < 0.21 else "deliver" if r < 0.30 else "none")
            self.orders.append(Order(i, self.tag, items, fate))

    def set_stock(self, sku, available):
        r, _ = self.call("inventory", "PUT", f"/inventory/{sku}", {"available": available},
                         what=f"set stock {sku}")
        if r.status != 200:
            self.problem(f"PUT /inventory/{sku}: {r.status} {r.body[:200]!r}")

    def add_stock(self, sku, n):
        r, _ = self.call("inventory", "GET", f"/inventory/{sku}", what=f"stock {sku}")
        self.set_stock(sku, r.json()["available"] + n)
        self.journal.note(f"stock of {sku} raised by {n}")

    # ---- clients
    def place(self, o, start):
        time.sleep(max(0.0, start + o.i * LOAD_SECONDS / ORDERS - time.monotonic()))
        o.started = time.monotonic()
        r, o.failed_attempts = self.call("order", "POST", "/orders", o.body(),
                                         {"Idempotency-Key": o.key}, f"place #{o.i}")
        o.finished = time.monotonic()
        o.first_status = r.status
        # 201 placed; 200 only for a retry whose first attempt had been placed after all.
        if r.status != 201 and not (r.status == 200 and o.failed_attempts):
            self.problem(f"place #{o.i}: {r.status} after {o.failed_attempts} failed attempts: "
                         f"{r.body[:200]!r}")
            return
        order = r.json()
        if order["status"] != "PENDING" and r.status == 201:
            self.problem(f"place #{o.i}: new order is {order['status']}")
        with self.lock:
            o.id = order["id"]
            self.by_id[o.id] = o
            self.history[o.id].insert(0, "PENDING") if r.status == 201 else None
        if o.fate == "cancel-now":
            o.actioned = True
            self.cancel(o)

    def cancel(self, o):
        r, failed = self.call("order", "POST", f"/orders/{o.id}/cancel", what=f"cancel #{o.i}")
        o.failed_cancel = failed > 0
        if r.status == 200:
            o.cancelled = True
        elif r.status == 409:
            o.cancel_refused = True
        else:
            self.problem(f"cancel #{o.i} {o.id}: {r.status} {r.body[:200]!r}")
        o.done = True

    def advance(self, o, step, was):
        r, failed = self.call("shipping", "POST", f"/shipments/{o.id}/{step}",
                              what=f"{step} #{o.i}")
        if r.status == 200:
            return True
        if r.status == 409 and failed:  # an attempt that seemed to fail had gone through
            s, _ = self.call("shipping", "GET", f"/shipments/{o.id}", what=f"shipment #{o.i}")
            if s.status == 200 and s.json()["status"] in was:
                return True
        self.problem(f"{step} #{o.i} {o.id}: {r.status} {r.body[:200]!r} after {failed} "
                     "failed attempts")
        return False

    def ship(self, o):
        if self.advance(o, "dispatch", ("DISPATCHED", "DELIVERED")):
            o.dispatched = True
            if o.fate == "deliver" and self.advance(o, "deliver", ("DELIVERED",)):
                o.delivered = True
        o.done = True

    # ---- watching every order's status (a listing at a time), and acting on what it shows
    def listing(self):
        statuses, after = {}, 0
        try:
            while True:
                r = self.system.order.get(f"/orders?limit=500&after={after}", timeout=10)
                if r.status != 200:
                    return None
                page = r.json()
                for order in page["orders"]:
                    statuses[order["id"]] = order["status"]
                if not page["next"]:
                    return statuses
                after = page["next"]
        except (OSError, ValueError):
            return None

    def follow(self, actors):
        while not self.stop_following.is_set():
            statuses = self.listing()
            if statuses is not None:
                with self.lock:
                    for oid, status in statuses.items():
                        h = self.history[oid]
                        if not h or h[-1] != status:
                            h.append(status)
                        o = self.by_id.get(oid)
                        if o is None or o.actioned:
                            continue
                        if o.fate == "cancel-later" and status in ("CONFIRMED",
                                                                   "SHIPMENT_SCHEDULED"):
                            o.actioned = True
                            self.actions.append(actors.submit(self.cancel, o))
                        elif o.fate in ("dispatch", "deliver") and status == "SHIPMENT_SCHEDULED":
                            o.actioned = True
                            self.actions.append(actors.submit(self.ship, o))
                    self.latest = statuses
            self.stop_following.wait(0.5)

    # ---- the chaos
    def kill(self, victims, down):
        names = ", ".join(f"{v.name}:{v.port}" for v in victims)
        for v in victims:
            v.stop(signal.SIGKILL)
        self.journal.note(f"SIGKILL {names}")
        time.sleep(down)
        for v in victims:
            v.start(wait=False)
        self.journal.note(f"restarting {names}")
        for v in victims:
            v.wait_ready(120)
        self.journal.note(f"ready again: {names}")

    def chaos(self, start):
        rng, reps = self.rng, self.system.replicas

        def at(lo, hi):
            time.sleep(max(0.0, start + rng.uniform(lo, hi) - time.monotonic()))

        def one(name):
            return [rng.choice(reps[name])]

        at(5, 9)
        self.kill(reps["order"], rng.uniform(2, 4))
        at(13, 17)
        self.kill(one("inventory"), rng.uniform(2, 4))  # its twin keeps going
        at(21, 25)
        self.kill(one("shipping"), rng.uniform(2, 4))
        at(26, 28)
        self.add_stock(self.skus[3], 10)
        at(29, 33)
        self.kill(reps["audit"], rng.uniform(2, 4))
        at(36, 39)
        down = rng.uniform(15, 20)
        broker("stop")
        self.outage = (time.monotonic(), None)
        self.journal.note(f"broker stopped for {down:.1f}s")
        try:
            time.sleep(down)
        finally:
            self.outage = (self.outage[0], time.monotonic())
            broker("start")
            self.journal.note("broker started")
        at(62, 65)
        self.add_stock(self.skus[4], 8)
        at(64, 68)
        self.kill(reps["inventory"], rng.uniform(2, 4))  # no survivor this time
        at(72, 76)
        self.kill(reps["shipping"], rng.uniform(2, 4))
        at(80, 84)
        self.kill(reps["order"], rng.uniform(1, 3))  # amid cancels and dispatches

    # ---- settling
    def settled(self):
        with self.lock:
            if any(not a.done() for a in self.actions):
                return False
            latest = self.latest
            waiting = [o for o in self.orders if o.id and latest.get(o.id) not in o.finals()]
        return not waiting

    def unsettled(self):
        with self.lock:
            return collections.Counter(
                (o.fate, self.latest.get(o.id), tuple(sorted(o.finals())))
                for o in self.orders if o.id and self.latest.get(o.id) not in o.finals())


@pytest.fixture(scope="module")
def run(cluster):
    run = Run(cluster)
    run.plan()
    reps = cluster.replicas
    placers = concurrent.futures.ThreadPoolExecutor(PLACERS)
    actors = concurrent.futures.ThreadPoolExecutor(ACTORS)
    others = concurrent.futures.ThreadPoolExecutor(2)
    try:
        follower = others.submit(run.follow, actors)
        start = time.monotonic()
        run.journal.note(f"seed {SEED}: {ORDERS} orders over {LOAD_SECONDS:.0f}s")
        chaos = others.submit(run.chaos, start)
        placed = [placers.submit(run.place, o, start) for o in run.orders]
        for f in placed:
            f.result()
        run.journal.note("every order placed")
        chaos.result()
        run.journal.note("chaos over")
        for rs in reps.values():
            for r in rs:
                r.wait_ready(120)
        try:
            wait_until(run.settled, 240, 1.0, "every order to reach its final status")
        except AssertionError as e:
            raise AssertionError(f"{e}: {run.unsettled()}\n{run.journal}") from None
        run.journal.note("every order final")
    finally:
        run.stop_following.set()
        if run.outage and run.outage[1] is None:
            broker("start")
        for rs in reps.values():  # a failure in the middle of a kill: bring everyone back
            for r in rs:
                if r.proc.poll() is not None:
                    r.start(wait=False)
        placers.shutdown(cancel_futures=True)
        actors.shutdown()
        others.shutdown()
        follower.result()
    for name, rs in reps.items():
        dups = sum(r.metric("consumer_duplicates_total") for r in rs)
        run.journal.note(f"{name}: consumer_duplicates_total {dups:.0f}")
    print(f"\nchaos journal:\n{run.journal}")
    return run


def orders_in_db(run):
    """order id -> (customer, status, items) from the order service's database."""
    rows = psql(run.system.dbs["order"], "SELECT id, customer_id, status, items::text FROM orders")
    import json
    return {oid: (c, s, json.loads(items)) for oid, c, s, items in rows}


def test_every_order_exists_once_and_is_final(run):
    assert run.problems == [], "\n".join(run.problems) + f"\n{run.journal}"
    assert run.client.server_errors == [], run.client.server_errors
    assert all(o.id for o in run.orders)
    db = orders_in_db(run)
    # One order per logical order (each customer places exactly one), the one its client got.
    assert len(db) == ORDERS, f"{len(db)} orders in the database for {ORDERS} placed"
    assert {c for c, _, _ in db.values()} == {o.customer for o in run.orders}
    for o in run.orders:
        assert db[o.id][0] == o.customer
        assert db[o.id][1] in o.finals(), (o.i, o.fate, db[o.id][1], o.finals())
    keys = psql(run.system.dbs["order"], "SELECT key, order_id FROM idempotency_keys")
    assert dict(keys) == {o.key: o.id for o in run.orders}
    # Some clients had to try again, and the retried ones still made one order each.
    retried = [o for o in run.orders if o.failed_attempts]
    assert retried, "no order placement met a killed order service"
    print(f"{len(retried)} placements retried, {sum(o.first_status == 200 for o in retried)} "
          "of which had gone through the first time")
    counts = collections.Counter(s for _, s, _ in db.values())
    assert counts["REJECTED"] and counts["CANCELLED"] and counts["DELIVERED"], counts


def test_orders_accepted_while_the_broker_was_down(run):
    stopped, started = run.outage
    during = [o for o in run.orders if o.started > stopped and o.finished < started]
    assert len(during) >= 20, f"only {len(during)} orders placed during the outage"
    assert all(o.first_status == 201 and o.failed_attempts == 0 for o in during)


def test_no_status_went_backwards(run):
    for oid, seen in run.history.items():
        for a, b in zip(seen, seen[1:]):
            assert b in FORWARD[a], f"order {oid} went {' -> '.join(seen)}"


def test_stock_adds_up(run):
    system = run.system
    adjusted = [e for e in system.audit_events(type="StockAdjusted")
                if e["data"]["sku"] in run.skus]
    total = collections.Counter()
    for e in adjusted:
        total[e["data"]["sku"]] += e["data"]["available"] - e["data"]["previous_available"]
    held, shipped = collections.Counter(), collections.Counter()
    for _, status, items in orders_in_db(run).values():
        for it in items:
            if status in HOLDING:
                held[it["sku"]] += it["quantity"]
            if status in SHIPPED:
                shipped[it["sku"]] += it["quantity"]
    for sku in run.skus:
        s = system.stock(sku)
        assert s["available"] >= 0, s
        assert s["available"] + s["reserved"] + s["shipped"] == total[sku], (s, total[sku])
        assert s["reserved"] + s["shipped"] == held[sku], (s, held[sku])
        assert s["shipped"] == shipped[sku], (s, shipped[sku])


def test_one_decision_per_order(run):
    system = run.system
    orders = orders_in_db(run)
    rows = psql(system.dbs["inventory"], "SELECT order_id, status FROM reservations")
    reservations = dict(rows)
    assert len(rows) == len(reservations) == ORDERS and set(reservations) == set(orders)
    expect = {"SHIPMENT_SCHEDULED": {"RESERVED"}, "DISPATCHED": {"SHIPPED"},
              "DELIVERED": {"SHIPPED"}, "REJECTED": {"REJECTED"},
              "CANCELLED": {"RELEASED", "REJECTED"}}
    for oid, (_, status, _) in orders.items():
        assert reservations[oid] in expect[status], (oid, status, reservations[oid])

    decisions = collections.defaultdict(list)
    for e in system.audit_events(topic=system.prefix + "inventory"):
        if e["type"] in ("StockReserved", "StockRejected"):
            decisions[e["order_id"]].append(e["type"])
    assert set(decisions) == set(orders)
    twice = {oid: d for oid, d in decisions.items() if len(d) != 1}
    assert not twice, f"orders decided more than once: {twice}"
    for oid, (d,) in decisions.items():
        assert (d == "StockRejected") == (reservations[oid] == "REJECTED"), (oid, d)

    # Shipping: one shipment per order, in the status the order's says.
    ship = dict(psql(system.dbs["shipping"], "SELECT order_id, status FROM shipments"))
    expect = {"SHIPMENT_SCHEDULED": "SCHEDULED", "DISPATCHED": "DISPATCHED",
              "DELIVERED": "DELIVERED", "REJECTED": "CANCELLED", "CANCELLED": "CANCELLED"}
    assert set(ship) == set(orders)
    for oid, (_, status, _) in orders.items():
        assert ship[oid] == expect[status], (oid, status, ship[oid])


def test_audit_has_every_event_once(run):
    system = run.system
    for db in system.dbs.values():
        wait_until(lambda: psql(db, "SELECT count(*) FROM outbox")[0][0] == "0", 60, 0.5,
                   f"the outbox of {db} to drain")
    produced, copies = {}, 0
    for t in ("orders", "inventory", "shipments"):
        for rec in kcat_records(system.prefix + t, timeout=60):
            ev_id, ev_type = rec["headers"]["ce_id"], rec["headers"]["ce_type"]
            copies += ev_id in produced
            produced[ev_id] = (ev_type.removeprefix("conveyor."), system.prefix + t)

    def recorded():
        events = system.audit_events()
        return events if len(events) >= len(produced) else None
    events = wait_until(recorded, 90, 1.0, "audit to record every event")
    assert [e for e in events if e["type"] in ("DeadLetter", "Undecodable")] == []
    ids = collections.Counter(e["event_id"] for e in events)
    assert [i for i, n in ids.items() if n > 1] == [], "events recorded twice"
    assert set(ids) == set(produced)
    for e in events:
        assert (e["type"], e["topic"]) == produced[e["event_id"]]
    for svc in ("order", "inventory", "shipping", "audit"):
        assert kcat_records(f"{system.prefix}{svc}.dlq") == [], f"dead letters from {svc}"
    print(f"{len(produced)} events, {copies} published twice (relay killed before deleting)")

    # Per order: each kind of event at most once, and those the client caused exactly once.
    per_order = collections.defaultdict(collections.Counter)
    for e in events:
        if e["order_id"]:
            per_order[e["order_id"]][e["type"]] += 1
    for o in run.orders:
        kinds = per_order[o.id]
        assert max(kinds.values()) == 1, (o.id, kinds)
        assert kinds["OrderPlaced"] == 1
        assert kinds["OrderCancelled"] == (1 if o.cancelled else kinds["OrderCancelled"])
        assert kinds["ShipmentDispatched"] == int(o.dispatched)
        assert kinds["ShipmentDelivered"] == int(o.delivered)
