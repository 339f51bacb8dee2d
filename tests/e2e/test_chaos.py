"""Chaos: a steady stream of orders from concurrent clients (some racing for scarce SKUs, some
cancelled, some dispatched and delivered) while every service is SIGKILLed in turn at random
moments (one of two replicas, and later all of them) and restarted, and the broker is stopped
for a while (the order service killed and restarted meanwhile). Afterwards nothing is lost and
nothing applied twice: every order exists once and reaches its final status, stock adds up,
one decision per order, audit holds every event of the topics exactly once, and no status ever
went backwards.

Left out: restarting PostgreSQL (the cluster is shared with other work on the machines this
runs on). CV_CHAOS_SEED, CV_CHAOS_ORDERS and CV_CHAOS_SECONDS change the run."""

import collections
import concurrent.futures
import json
import os
import random
import signal
import threading
import time
import uuid

import pytest

import avro_peer
from chaos import CONNECTION_ERRORS, FORWARD, Client, Journal, broker
from conftest import make_system
from conveyor import SERVICES, Service, free_port, kcat_records, psql, wait_until

SEED = int(os.environ.get("CV_CHAOS_SEED", "20261126"))
ORDERS = int(os.environ.get("CV_CHAOS_ORDERS", "1500"))
LOAD_SECONDS = float(os.environ.get("CV_CHAOS_SECONDS", "90"))
PLACERS = 8  # concurrent clients placing orders
ACTORS = 4  # concurrent clients cancelling, dispatching, delivering
# Topics are created up front (conftest), as a deployment's one-shot step does. A service then
# starts without a broker: service.c brings HTTP up before it touches Kafka (setup_http, then
# setup_kafka), so it answers at once, and with KAFKA_CREATE_TOPICS it would go on to wait for
# the broker to create its topics while already serving.
ENV = {"KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_CREATE_TOPICS": "false"}
REPLICATED = ("inventory", "shipping")
HOLDING = ("CONFIRMED", "SHIPMENT_SCHEDULED", "DISPATCHED", "DELIVERED")
SHIPPED = ("DISPATCHED", "DELIVERED")


@pytest.fixture(scope="module")
def cluster(request, log_dir):
    system = make_system(request, log_dir, {s: ENV for s in SERVICES})
    system.start()
    system.replicas = {s: [system.services[s]] for s in SERVICES}
    for name in REPLICATED:
        base = system.services[name]
        twin = Service(name, base.db, free_port(), log_dir, {
            k: v for k, v in base.env.items()
            if k in ("TOPIC_PREFIX", "INVENTORY_SEED", *ENV)})
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
        self.replied_status = None  # the order's status in that answer
        self.failed_attempts = 0
        self.started = self.finished = None
        self.actioned = False  # cancel / dispatch submitted
        self.done = False  # ... and finished
        self.cancelled = self.cancel_refused = self.failed_cancel = False
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


class Run:
    """The chaos run and everything the checks need from it."""

    def __init__(self, system):
        self.system = system
        self.journal = Journal()
        self.client = Client()
        self.rng = random.Random(SEED)
        self.lock = threading.Lock()
        self.tag = uuid.uuid4().hex[:6]
        self.orders = []
        self.by_id = {}
        self.history = collections.defaultdict(list)  # order id -> [status as seen, in order]
        self.latest = {}  # order id -> status in the last complete listing
        self.problems = []  # what a client saw that it should not have
        self.broker_stopped = self.order_killed = self.broker_starting = None
        self.dups = collections.Counter()  # consumer_duplicates_total of the killed processes
        self.placing = 0  # POSTs /orders in flight
        self.actions = []
        self.stop_following = threading.Event()
        self.skus = []
        self.copies = 0  # records published twice (a relay killed between ack and delete)

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
        # A steady stream in ticks: each tick, PLACERS orders at once (racing each other).
        tick = o.i // PLACERS * PLACERS * LOAD_SECONDS / ORDERS
        time.sleep(max(0.0, start + tick - time.monotonic()))
        o.started = time.monotonic()
        with self.lock:
            self.placing += 1
        try:
            r, o.failed_attempts = self.call("order", "POST", "/orders", o.body(),
                                             {"Idempotency-Key": o.key}, f"place #{o.i}")
        finally:
            with self.lock:
                self.placing -= 1
        o.finished = time.monotonic()
        o.first_status = r.status
        # 201 placed; 200 only for a retry whose first attempt had been placed after all.
        if r.status != 201 and not (r.status == 200 and o.failed_attempts):
            self.problem(f"place #{o.i}: {r.status} after {o.failed_attempts} failed attempts: "
                         f"{r.body[:200]!r}")
            return
        order = r.json()
        # The order is read back after its transaction commits: by then the saga may already
        # have moved it on (the relay and the consumers do not wait for the reply).
        if order["status"] not in ("PENDING", "CONFIRMED", "SHIPMENT_SCHEDULED", "REJECTED"):
            self.problem(f"place #{o.i}: new order is {order['status']}")
        o.replied_status = order["status"]
        with self.lock:
            o.id = order["id"]
            self.by_id[o.id] = o
            if r.status == 201:  # created PENDING, before any listing could see it
                self.history[o.id].insert(0, "PENDING")
        if o.fate == "cancel-now":
            o.actioned = True
            self.cancel(o)

    def cancel(self, o):
        r, failed = self.call("order", "POST", f"/orders/{o.id}/cancel", what=f"cancel #{o.i}")
        o.failed_cancel = failed > 0
        if r.status == 202:  # requested; nothing of this order is dispatched: it must end
            o.cancelled = True  # CANCELLED
            if r.json()["status"] not in ("CANCELLING", "CANCELLED"):
                self.problem(f"cancel #{o.i} {o.id}: 202 with {r.json()['status']}")
        elif r.status == 409:
            o.cancel_refused = True
        else:
            self.problem(f"cancel #{o.i} {o.id}: {r.status} {r.body[:200]!r}")
        o.done = True

    def advance(self, o, step, was):
        r, failed = self.call("shipping", "POST", f"/shipments/{o.id}/{step}",
                              what=f"{step} #{o.i}")
        # Shipping dispatches only once it has the order (OrderPlaced can lag StockReserved,
        # above all while a replica restarts): 409 with Retry-After, then the same call works.
        deadline = time.monotonic() + 120
        while r.status == 409 and r.headers.get("Retry-After") and time.monotonic() < deadline:
            time.sleep(float(r.headers["Retry-After"]) / 4)
            r, more = self.call("shipping", "POST", f"/shipments/{o.id}/{step}",
                                what=f"{step} #{o.i}")
            failed += more
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
    def duplicates(self, victims):
        """Adds the victims' consumer_duplicates_total to the tally before they lose it."""
        for v in victims:
            try:
                n = v.metric("consumer_duplicates_total")
            except CONNECTION_ERRORS:
                continue
            with self.lock:
                self.dups[v.name] += n

    def kill(self, victims, down=None):
        """SIGKILLs victims; unless down is None, restarts them after down seconds and waits
        until they are ready."""
        names = ", ".join(f"{v.name}:{v.port}" for v in victims)
        self.duplicates(victims)
        if any(v.name == "order" for v in victims):
            # Kill it with orders in flight (if that comes within a second): some of them
            # may have been placed, their clients never hear so and try again.
            deadline = time.monotonic() + 1.0
            while self.placing < 2 and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(self.rng.uniform(0.0, 0.03))  # into the handling, not at its start
        in_flight = self.placing
        for v in victims:
            v.stop(signal.SIGKILL)
        self.journal.note(f"SIGKILL {names} ({in_flight} orders being placed)")
        if down is None:
            return
        time.sleep(down)
        for v in victims:
            v.start(wait=False)
        self.journal.note(f"restarting {names}")
        for v in victims:
            v.wait_ready(120)
        self.journal.note(f"ready again: {names}")

    def outage(self, rng):
        """The broker away for 15-20 s; meanwhile the order service is killed and restarted
        (its relay loses what it had in flight; the outbox still has it)."""
        order = self.system.order
        down = rng.uniform(15, 20)
        broker("stop")
        self.broker_stopped = time.monotonic()
        self.journal.note(f"broker stopped for {down:.1f}s")
        try:
            time.sleep(rng.uniform(5, 8))
            self.order_killed = time.monotonic()
            self.kill([order])
            time.sleep(rng.uniform(2, 3))
            order.start(wait=False)
            self.journal.note(f"restarting order:{order.port} without a broker")

            def alive():
                try:
                    return order.get("/healthz", timeout=2).status == 200
                except CONNECTION_ERRORS:
                    return False
            wait_until(alive, 30, 0.2, "the order service to answer without a broker")
            self.journal.note("order service up without a broker")
            time.sleep(max(0.0, self.broker_stopped + down - time.monotonic()))
        finally:
            self.broker_starting = time.monotonic()
            broker("start")
            self.journal.note("broker started")
        order.wait_ready(120)
        self.journal.note(f"ready again: order:{order.port}")

    def chaos(self, start):
        rng, reps = self.rng, self.system.replicas

        def at(base, lo, hi):
            time.sleep(max(0.0, base + rng.uniform(lo, hi) - time.monotonic()))

        def one(name):
            return [rng.choice(reps[name])]

        at(start, 5, 9)
        self.kill(reps["order"], rng.uniform(2, 4))
        at(start, 13, 17)
        self.kill(one("inventory"), rng.uniform(2, 4))  # its twin keeps going
        at(start, 21, 25)
        self.kill(one("shipping"), rng.uniform(2, 4))
        at(start, 26, 28)
        self.add_stock(self.skus[3], 10)
        at(start, 29, 33)
        self.kill(reps["audit"], rng.uniform(2, 4))
        at(start, 36, 39)
        self.outage(rng)
        back = time.monotonic()
        at(back, 0.5, 2)  # amid the backlog, and with no survivor this time
        self.kill(reps["inventory"], rng.uniform(2, 4))
        at(back, 6, 8)
        self.add_stock(self.skus[4], 8)
        at(back, 8, 11)
        self.kill(reps["shipping"], rng.uniform(2, 4))
        at(back, 16, 19)
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
    follower = others.submit(run.follow, actors)
    try:
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
        # The rest follows the orders: stock released, shipments cancelled, audit catching up.
        try:
            wait_until(lambda: not (check_stock(run) or check_decisions(run)
                                    or check_audit(run)), 120, 2.0, "the rest to settle")
            run.journal.note("everything settled")
        except AssertionError:
            run.journal.note("not everything settled: the tests say what")
    finally:
        run.stop_following.set()
        if run.broker_stopped and not run.broker_starting:
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
        run.duplicates(rs)
        run.journal.note(f"{name}: consumer_duplicates_total {run.dups[name]:.0f} (killed "
                         "processes' counts as last read before the kill)")
    print(f"\nchaos journal:\n{run.journal}")
    return run


def orders_in_db(run):
    """order id -> (customer, status, items) from the order service's database."""
    rows = psql(run.system.dbs["order"], "SELECT id, customer_id, status, items::text FROM orders")
    return {oid: (c, s, json.loads(items)) for oid, c, s, items in rows}


def check_orders(run):
    """Every logical order exists once, the one its client got, in its final status."""
    problems = []
    db = orders_in_db(run)
    if len(db) != ORDERS:
        problems.append(f"{len(db)} orders in the database for {ORDERS} placed")
    extra = {c for c, _, _ in db.values()} - {o.customer for o in run.orders}
    if extra:
        problems.append(f"orders of unknown customers: {sorted(extra)[:5]}")
    for o in run.orders:
        if o.id not in db or db[o.id][0] != o.customer:
            problems.append(f"#{o.i}: {o.id} is not in the database as {o.customer}")
        elif db[o.id][1] not in o.finals():
            problems.append(f"#{o.i} {o.id} ({o.fate}) is {db[o.id][1]}, not {o.finals()}")
    keys = dict(psql(run.system.dbs["order"], "SELECT key, order_id FROM idempotency_keys"))
    if keys != {o.key: o.id for o in run.orders}:
        problems.append(f"{len(keys)} idempotency keys do not match the {ORDERS} orders")
    return problems


def check_stock(run):
    """For every SKU: available + reserved + shipped == initial + adjustments, reserved +
    shipped == what the orders holding stock hold, shipped == what was dispatched."""
    system = run.system
    total = collections.Counter()
    for e in system.audit_events(type="StockAdjusted"):
        if e["data"]["sku"] in run.skus:
            total[e["data"]["sku"]] += e["data"]["available"] - e["data"]["previous_available"]
    held, shipped = collections.Counter(), collections.Counter()
    for _, status, items in orders_in_db(run).values():
        for it in items:
            if status in HOLDING:
                held[it["sku"]] += it["quantity"]
            if status in SHIPPED:
                shipped[it["sku"]] += it["quantity"]
    problems = []
    for sku in run.skus:
        s = system.stock(sku)
        if s["available"] < 0:
            problems.append(f"{sku}: {s} oversold")
        if s["available"] + s["reserved"] + s["shipped"] != total[sku]:
            problems.append(f"{sku}: {s} does not add up to {total[sku]}")
        if s["reserved"] + s["shipped"] != held[sku]:
            problems.append(f"{sku}: {s}, but the orders hold {held[sku]}")
        if s["shipped"] != shipped[sku]:
            problems.append(f"{sku}: {s}, but {shipped[sku]} were dispatched")
    return problems


def check_decisions(run):
    """One reservation row and one StockReserved/StockRejected per order (none for an order
    whose shipment inventory saw cancelled first), matching the order's status; one shipment
    per order, in the status the order's says."""
    system = run.system
    orders = orders_in_db(run)
    problems = []
    rows = psql(system.dbs["inventory"], "SELECT order_id, status FROM reservations")
    reservations = dict(rows)
    if len(rows) != len(reservations) or set(reservations) != set(orders):
        problems.append(f"{len(rows)} reservation rows for {len(orders)} orders")
    expect = {"SHIPMENT_SCHEDULED": {"RESERVED"}, "DISPATCHED": {"SHIPPED"},
              "DELIVERED": {"SHIPPED"}, "REJECTED": {"REJECTED"},
              "CANCELLED": {"RELEASED", "REJECTED"}}
    problems += [f"order {oid} is {status}, its reservation {reservations.get(oid)}"
                 for oid, (_, status, _) in orders.items()
                 if reservations.get(oid) not in expect[status]]

    decisions = collections.defaultdict(list)
    for e in system.audit_events(topic=system.prefix + "inventory"):
        if e["type"] in ("StockReserved", "StockRejected"):
            decisions[e["order_id"]].append(e["type"])
    problems += [f"order {oid} decided {d}" for oid, d in decisions.items() if len(d) != 1]
    # Undecided only when inventory heard of the cancelled shipment before the order: then it
    # recorded the reservation RELEASED and never reserved it.
    problems += [f"order {oid} never decided" for oid in set(orders) - set(decisions)
                 if (orders[oid][1], reservations.get(oid)) != ("CANCELLED", "RELEASED")]
    problems += [f"order {oid}: {d} but its reservation is {reservations.get(oid)}"
                 for oid, d in decisions.items()
                 if (d[0] == "StockRejected") != (reservations.get(oid) == "REJECTED")]

    shipments = dict(psql(system.dbs["shipping"], "SELECT order_id, status FROM shipments"))
    expect = {"SHIPMENT_SCHEDULED": "SCHEDULED", "DISPATCHED": "DISPATCHED",
              "DELIVERED": "DELIVERED", "REJECTED": "CANCELLED", "CANCELLED": "CANCELLED"}
    if set(shipments) != set(orders):
        problems.append(f"{len(shipments)} shipments for {len(orders)} orders")
    problems += [f"order {oid} is {status}, its shipment {shipments.get(oid)}"
                 for oid, (_, status, _) in orders.items()
                 if shipments.get(oid) != expect[status]]
    return problems


def check_audit(run):
    """Every outbox drained; audit holds every event of the three topics exactly once (read
    with kcat, decoded by an independent Avro reader), nothing dead-lettered; per order each
    kind of event at most once, and those its client caused exactly once."""
    system = run.system
    for db in system.dbs.values():
        n = psql(db, "SELECT count(*) FROM outbox")[0][0]
        if n != "0":
            return [f"{n} rows still in the outbox of {db}"]
    produced, run.copies = {}, 0
    for t in ("orders", "inventory", "shipments"):
        for rec in kcat_records(system.prefix + t, timeout=60):
            type_name, ev = avro_peer.decode(rec["value"])
            ev_id = ev["metadata"]["event_id"]
            assert rec["headers"]["ce_id"] == ev_id
            run.copies += ev_id in produced
            produced[ev_id] = (type_name, system.prefix + t)
    events = system.audit_events()
    problems = [f"{e['type']} in audit: {e['data']}" for e in events
                if e["type"] in ("DeadLetter", "Undecodable")]
    for svc in SERVICES:
        n = len(kcat_records(f"{system.prefix}{svc}.dlq"))
        if n:
            problems.append(f"{n} dead letters from {svc}")
    ids = collections.Counter(e["event_id"] for e in events)
    problems += [f"event {i} recorded {n} times" for i, n in ids.items() if n > 1]
    missing = set(produced) - set(ids)
    if missing:
        problems.append(f"{len(missing)} events of the topics not in audit, e.g. "
                        f"{[produced[i] for i in sorted(missing)[:5]]}")
    unknown = set(ids) - set(produced)
    if unknown:
        problems.append(f"{len(unknown)} events in audit not on the topics")
    problems += [f"event {e['event_id']} recorded as {e['type']} on {e['topic']}, the topic "
                 f"has {produced[e['event_id']]}" for e in events
                 if (e["type"], e["topic"]) != produced.get(e["event_id"], (e["type"], e["topic"]))]

    per_order = collections.defaultdict(collections.Counter)
    for e in events:
        if e["order_id"]:
            per_order[e["order_id"]][e["type"]] += 1
    for o in run.orders:
        kinds = per_order[o.id]
        want = {"OrderPlaced": 1, "ShipmentDispatched": int(o.dispatched),
                "ShipmentDelivered": int(o.delivered)}
        if o.cancelled:  # one request, one decision by shipping
            want["OrderCancellationRequested"] = 1
            want["ShipmentCancelled"] = 1
            want["ShipmentCancellationRefused"] = 0
        elif o.fate not in ("cancel-now", "cancel-later"):
            want["OrderCancellationRequested"] = 0
        if max(kinds.values(), default=0) > 1 or any(kinds[k] != n for k, n in want.items()):
            problems.append(f"order #{o.i} {o.id} ({o.fate}): events {dict(kinds)}")
    return problems


def test_every_order_exists_once_and_is_final(run):
    assert run.problems == [], "\n".join(run.problems) + f"\n{run.journal}"
    assert run.client.server_errors == [], run.client.server_errors
    assert all(o.id for o in run.orders)
    assert check_orders(run) == []
    # Some clients had to try again, and the retried ones still made one order each.
    retried = [o for o in run.orders if o.failed_attempts]
    assert retried, "no order placement met a killed order service"
    print(f"{len(retried)} placements retried, {sum(o.first_status == 200 for o in retried)} "
          "of which had gone through the first time; "
          f"{sum(o.replied_status != 'PENDING' for o in run.orders)} answered 201 already past "
          "PENDING")
    counts = collections.Counter(s for _, s, _ in orders_in_db(run).values())
    assert counts["REJECTED"] and counts["CANCELLED"] and counts["DELIVERED"], counts


def test_orders_accepted_while_the_broker_was_down(run):
    stopped, killed, started = run.broker_stopped, run.order_killed, run.broker_starting
    assert stopped and killed and started
    during = [o for o in run.orders if o.started > stopped and o.finished < started]
    # Until the kill, every order was accepted at once; after it, as soon as the order service
    # was back: no broker needed.
    first = [o for o in during if o.finished < killed]
    assert len(first) >= 20, f"only {len(first)} orders placed during the outage"
    assert all(o.first_status == 201 and o.failed_attempts == 0 for o in first)
    after = [o for o in during if o.started > killed]
    assert len(after) >= 20, f"only {len(after)} orders placed after the restart in the outage"
    assert {o.first_status for o in after} <= {200, 201}


def test_no_status_went_backwards(run):
    for oid, seen in run.history.items():
        for a, b in zip(seen, seen[1:]):
            assert b in FORWARD[a], f"order {oid} went {' -> '.join(seen)}"


def test_stock_adds_up(run):
    assert check_stock(run) == []


def test_one_decision_per_order(run):
    assert check_decisions(run) == []


def test_audit_has_every_event_once(run):
    assert check_audit(run) == []
    print(f"{run.copies} records published twice (relay killed between ack and delete)")
