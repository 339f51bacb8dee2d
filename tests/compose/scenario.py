"""The compose test's scenario, run by tests/compose/run.sh once the engine and the images are
there: docker-compose.yml brought up for real and scaled, driven from the host through the
gateway and the published broker port (127.0.0.1 only), with replicas killed, stopped and
restarted under load, then down and up again, then down -v. Each step prints its time and what
it asserted; any failed assertion ends the run with a non-zero status.

Environment (set by run.sh): COMPOSE (the compose command, e.g. "docker-compose"),
COMPOSE_PROJECT_NAME, COMPOSE_FILE, GATEWAY_PORT, KAFKA_HOST_PORT, CONVEYOR_REVISION,
CONVEYOR_SOURCE, CONVEYOR_VERSION, COMPOSE_SCALE ("inventory=3 shipping=2")."""

import collections
import concurrent.futures
import json
import os
import random
import shlex
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path[:0] = [os.path.join(ROOT, "tests", "e2e"), os.path.join(ROOT, "tests", "crosscheck")]
os.environ["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:" + os.environ.get("KAFKA_HOST_PORT", "9092")

from conveyor import http, kcat_records, wait_until  # noqa: E402
import avro_peer  # noqa: E402

COMPOSE = shlex.split(os.environ.get("COMPOSE", "docker-compose"))
PROJECT = os.environ["COMPOSE_PROJECT_NAME"]
GATEWAY = "http://127.0.0.1:" + os.environ.get("GATEWAY_PORT", "8080")
SCALE = dict(kv.split("=") for kv in os.environ.get("COMPOSE_SCALE",
                                                    "inventory=3 shipping=2").split())
SCALE_ARGS = [a for s, n in SCALE.items() for a in ("--scale", f"{s}={n}")]
CONVEYOR = ("order", "inventory", "shipping", "audit")
BURST = 500
RESTART_BURST = 1000  # at most; it stops 50 orders after the restart
FINAL = ("SHIPMENT_SCHEDULED", "REJECTED")
timings = []
retries = collections.Counter()


def log(msg):
    print(f"  {msg}", flush=True)


class step:
    """Times a step and prints it with what it asserted."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        print(f"== {self.name}", flush=True)
        self.t0 = time.monotonic()
        return self

    def __exit__(self, kind, value, tb):
        took = time.monotonic() - self.t0
        timings.append((self.name, took, kind is None))
        print(f"== {self.name}: {'ok' if kind is None else 'FAILED'} in {took:.1f} s", flush=True)


def run(*args, check=True, timeout=900, quiet=False):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def compose(*args, **kw):
    return run(*COMPOSE, *args, **kw)


def containers(all_states=True):
    """Inspect data of every container of the project, by compose's own labels."""
    ids = run("docker", "ps", "-q", *(["-a"] if all_states else []), "--filter",
              f"label=com.docker.compose.project={PROJECT}").stdout.split()
    if not ids:
        return []
    return json.loads(run("docker", "inspect", *ids).stdout)


def service_of(c):
    return c["Config"]["Labels"]["com.docker.compose.service"]


def of_service(name):
    return sorted((c for c in containers() if service_of(c) == name), key=lambda c: c["Name"])


def wait_healthy(timeout=600):
    """Every long-running container healthy, the one-shot topics container exited 0."""
    def settled():
        cs = containers()
        counts = collections.Counter(service_of(c) for c in cs)
        want = dict(kafka=1, postgres=1, topics=1, gateway=1, order=1, audit=1,
                    inventory=1, shipping=1)
        want.update({s: int(n) for s, n in SCALE.items()})
        if counts != want:
            return None
        for c in cs:
            st = c["State"]
            if service_of(c) == "topics":
                if st["Status"] != "exited":
                    return None
                assert st["ExitCode"] == 0, f"topics exited {st['ExitCode']}"
                continue
            if st.get("Health", {}).get("Status") != "healthy":
                return None
        return cs
    return wait_until(settled, timeout, 2.0, "every container healthy")


def get(path, **kw):
    return http("GET", GATEWAY + path, **kw)


def post(path, body=None, **kw):
    return http("POST", GATEWAY + path, body, **kw)


def put(path, body=None, **kw):
    return http("PUT", GATEWAY + path, body, **kw)


def place(items, customer, key=None, deadline=120.0):
    """Places an order through the gateway. With key (Idempotency-Key) a refused or broken
    attempt (the order service restarting, 502 from the gateway) is retried with the same key
    until accepted: the service answers with the one order for that key."""
    body = {"customer_id": customer, "items": items,
            "shipping_address": {"street": "Oudegracht 1", "city": "Utrecht"}}
    headers = {"Idempotency-Key": key} if key else None
    end = time.monotonic() + deadline
    while True:
        try:
            r = post("/orders", body, headers=headers)
            if r.status in (200, 201):
                return r.json()
            err = (r.status, r.body[:200])
            if not key or r.status < 500:
                raise AssertionError(f"POST /orders: {err}")
        except OSError as e:  # connection reset or refused while restarting
            if not key:
                raise
            err = e
        retries[str(err[0] if isinstance(err, tuple) else type(err).__name__)] += 1
        if time.monotonic() > end:
            raise AssertionError(f"POST /orders never accepted: {err}")
        time.sleep(0.5)


def wait_status(oid, statuses, timeout=180):
    want = statuses if isinstance(statuses, str) else ",".join(statuses)
    end = time.monotonic() + timeout
    while True:
        left = int(max(1, min(30, end - time.monotonic())) * 1000)
        try:
            r = get(f"/orders/{oid}?wait_for={want}&timeout_ms={left}")
            if r.status == 200 and r.json()["status"] in want.split(","):
                return r.json()
            last = (r.status, r.body[:200])
        except OSError as e:
            last = e
        if time.monotonic() > end:
            raise AssertionError(f"order {oid}: {last}, not {want}")
        time.sleep(0.2)


def stock(sku):
    r = get(f"/inventory/{sku}")
    assert r.status == 200, (sku, r.status, r.body)
    return r.json()


def set_stock(sku, available):
    r = put(f"/inventory/{sku}", {"available": available})
    assert r.status == 200, (r.status, r.body)


def audit_events(**query):
    events, after = [], None
    while True:
        q = dict(query, limit=1000)
        if after:
            q["after"] = after
        r = get("/events?" + "&".join(f"{k}={v}" for k, v in q.items()))
        assert r.status == 200, (r.status, r.body)
        page = r.json()
        events += page["events"]
        after = page["next"]
        if not after:
            return events


def psql(db, sql):
    out = compose("exec", "-T", "postgres", "psql", "-X", "-At", "-U", "postgres", "-d", db,
                  "-c", sql).stdout
    return [line.split("|") for line in out.splitlines() if line]


def topic_events(topic):
    """Every record of topic, read with kcat from the host on the published port, its value
    decoded by the independent Avro reader: (ce_id header, type, data) per record."""
    out = []
    for rec in kcat_records(topic, timeout=60):
        kind, data = avro_peer.decode(rec["value"])
        out.append((rec["headers"].get("ce_id"), kind, data))
    return out


def burst(n, tag, skus, during=None, at=None, keyed=False, threads=24, until=None, placed=None):
    """Up to n concurrent orders of two of skus each; during() runs (in its own thread) once
    `at` orders were accepted. With until, placing stops early once until(accepted) is true.
    Returns {order id: items} (placed, if given, filled as orders are accepted)."""
    rng = random.Random(tag)
    plans = [[{"sku": s, "quantity": rng.randint(1, 4), "unit_price_cents": 100}
              for s in rng.sample(sorted(skus), 2)] for _ in range(n)]
    placed = {} if placed is None else placed
    lock, side = threading.Lock(), []

    def one(i):
        if until:
            with lock:
                if until(len(placed)):
                    return
        key = f"{tag}-{i}" if keyed else None
        order = place(plans[i], f"{tag}-{i}", key=key)
        with lock:
            assert order["id"] not in placed or placed[order["id"]] == plans[i]
            placed[order["id"]] = plans[i]
            if during and len(placed) == at:
                t = threading.Thread(target=during)
                t.start()
                side.append(t)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    for t in side:
        t.join()
    return placed


def settle(placed):
    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        return dict(zip(placed, pool.map(lambda o: wait_status(o, FINAL)["status"], placed)))


def check_stock(skus, placed, statuses, extra_reserved=None):
    held = collections.Counter(extra_reserved or {})
    for oid, items in placed.items():
        if statuses[oid] == "SHIPMENT_SCHEDULED":
            for it in items:
                held[it["sku"]] += it["quantity"]
    for sku, total in skus.items():
        s = stock(sku)
        assert s["available"] + s["reserved"] + s["shipped"] == total, (sku, s, total)
        assert s["reserved"] == held[sku], (sku, s, held[sku])
        assert s["available"] >= 0, s


def decided_once(placed):
    """Each order decided exactly once: one reservation row, one decision event (by event id)
    on the topic read with kcat, each recorded once by audit."""
    ids = ",".join(f"'{o}'" for o in placed)
    rows = psql("conveyor_inventory",
                f"SELECT order_id, count(*) FROM reservations WHERE order_id IN ({ids}) "
                "GROUP BY order_id")
    assert len(rows) == len(placed) and {n for _, n in rows} == {"1"}, \
        f"{len(rows)} reservations for {len(placed)} orders"

    def on_topic():
        by_order = collections.defaultdict(set)
        for ce_id, kind, data in topic_events("inventory"):
            if kind in ("StockReserved", "StockRejected") and data["order_id"] in placed:
                by_order[data["order_id"]].add(ce_id)
        return by_order if len(by_order) == len(placed) else None
    by_order = wait_until(on_topic, 60, 2.0, "every decision on the inventory topic")
    twice = {o: e for o, e in by_order.items() if len(e) != 1}
    assert not twice, f"orders decided more than once: {list(twice.items())[:3]}"

    def in_audit():
        got = collections.Counter(e["order_id"] for e in audit_events(topic="inventory")
                                  if e["type"] in ("StockReserved", "StockRejected")
                                  and e["order_id"] in placed)
        return got if len(got) == len(placed) else None
    got = wait_until(in_audit, 60, 2.0, "every decision in audit")
    assert set(got.values()) == {1}, "audit recorded a decision twice"


def main():
    t_all = time.monotonic()
    tag = uuid.uuid4().hex[:6]
    state = {}

    with step(f"up -d --build {' '.join(SCALE_ARGS)}, every container healthy"):
        t = time.monotonic()
        compose("build", "--quiet")
        log(f"build: {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        compose("up", "-d", "--build", *SCALE_ARGS)
        log(f"up -d --build returned after {time.monotonic() - t:.1f} s (it waits for the "
            "health conditions of depends_on)")
        cs = wait_healthy()
        counts = collections.Counter(service_of(c) for c in cs)
        log(f"healthy: {dict(sorted(counts.items()))}; topics exited 0")

    with step("operators' expectations: non-root, read-only, labels, loopback ports, JSON logs"):
        for c in containers():
            name = service_of(c)
            for port, binds in (c["HostConfig"].get("PortBindings") or {}).items():
                for b in binds or []:
                    assert b["HostIp"] == "127.0.0.1", (name, port, b)
            if name not in CONVEYOR:
                continue
            assert c["Config"]["User"] == "10001:10001", (name, c["Config"]["User"])
            assert c["HostConfig"]["ReadonlyRootfs"] is True, name
            uid = run("docker", "exec", c["Id"], "id", "-u").stdout.strip()
            assert uid == "10001", (name, uid)
            w = run("docker", "exec", c["Id"], "sh", "-c", "echo x > /usr/local/bin/x",
                    check=False)
            assert w.returncode != 0 and "Read-only" in w.stderr, (name, w.stderr)
        published = {service_of(c) for c in containers()
                     if c["HostConfig"].get("PortBindings")}
        assert published == {"gateway", "kafka"}, published
        log("every published port bound to 127.0.0.1 only (gateway, kafka); the 7 service "
            "containers run as uid 10001 with a read-only root filesystem")
        image = of_service("order")[0]["Config"]["Image"]
        labels = json.loads(run("docker", "image", "inspect", image).stdout)[0]["Config"]["Labels"]
        for k, env in (("revision", "CONVEYOR_REVISION"), ("version", "CONVEYOR_VERSION"),
                       ("source", "CONVEYOR_SOURCE")):
            assert labels.get(f"org.opencontainers.image.{k}") == os.environ[env], (k, labels)
        log(f"{image}: OCI labels source, version, revision = "
            f"{labels['org.opencontainers.image.revision'][:12]}...")
        for svc in CONVEYOR:
            out = compose("logs", "--no-color", svc).stdout
            lines = [ln.split("| ", 1)[1] for ln in out.splitlines() if "| " in ln]
            assert lines, f"no logs from {svc}"
            parsed = [json.loads(ln) for ln in lines if ln.strip()]
            assert all(isinstance(p, dict) for p in parsed)
        log("`logs` of each service: every line a JSON object")

    with step("README walkthrough through the gateway: place, follow to DELIVERED, reject, "
              "cancel"):
        r = get("/healthz")
        assert r.status == 200
        r = get("/inventory")
        assert r.status == 200 and any(i["sku"] == "WIDGET-1" for i in r.json()["items"])
        before = stock("WIDGET-1")
        order = place([{"sku": "WIDGET-1", "quantity": 2, "unit_price_cents": 1999}], "alice")
        assert order["status"] == "PENDING" and order["total_cents"] == 3998
        oid = order["id"]
        assert wait_status(oid, FINAL)["status"] == "SHIPMENT_SCHEDULED"
        r = get(f"/shipments/{oid}")
        assert r.status == 200 and r.json()["status"] == "SCHEDULED", r.body
        assert post(f"/shipments/{oid}/dispatch").status == 200
        assert post(f"/shipments/{oid}/deliver").status == 200
        assert wait_status(oid, "DELIVERED")["status"] == "DELIVERED"
        types = wait_until(lambda: (lambda t: t if {"OrderPlaced", "StockReserved",
                                                    "ShipmentScheduled", "ShipmentDispatched",
                                                    "ShipmentDelivered"} <= t else None)(
            {e["type"] for e in audit_events(order_id=oid)}), 60, 1.0, "audit of the saga")
        r = post(f"/orders/{oid}/cancel")
        assert r.status == 409, (r.status, r.body)
        after = stock("WIDGET-1")
        assert after["shipped"] == before["shipped"] + 2
        assert after["available"] == before["available"] - 2
        log(f"order {oid} PENDING -> SHIPMENT_SCHEDULED -> DISPATCHED -> DELIVERED; audit has "
            f"{sorted(types)}; cancel after delivery 409; WIDGET-1 shipped +2")
        state["delivered"] = oid

        big = place([{"sku": "WIDGET-1", "quantity": 500}], "bob")
        rejected = wait_status(big["id"], FINAL)
        assert rejected["status"] == "REJECTED" and "WIDGET-1" in rejected.get("reason", "")
        log(f"500 x WIDGET-1: REJECTED ({rejected['reason']})")

        held = stock("GADGET-2")
        c = place([{"sku": "GADGET-2", "quantity": 1}], "carol")
        wait_status(c["id"], FINAL)
        r = post(f"/orders/{c['id']}/cancel")
        # 200 CANCELLED at once, or 202 CANCELLING and CANCELLED once stock and shipment agree.
        assert (r.status, r.json()["status"]) in ((200, "CANCELLED"), (202, "CANCELLING")), \
            (r.status, r.body)
        assert wait_status(c["id"], "CANCELLED")["status"] == "CANCELLED"
        wait_until(lambda: stock("GADGET-2") == held, 60, 0.5, "GADGET-2 released")
        wait_until(lambda: get(f"/shipments/{c['id']}").json()["status"] == "CANCELLED", 60,
                   0.5, "shipment cancelled")
        log(f"cancel: {r.status} {r.json()['status']} -> CANCELLED; stock released, shipment "
            "CANCELLED")

    skus = {f"BURST-{tag}-{i}": n for i, n in enumerate((600, 120, 60))}
    with step(f"{BURST} concurrent orders for scarce stock, one inventory replica killed "
              "mid-burst"):
        for sku, n in skus.items():
            set_stock(sku, n)
        inv = of_service("inventory")
        victim = inv[1]

        scarce = sorted(skus, key=skus.get)[0]
        adjusted = {}

        def kill():
            run("docker", "kill", victim["Id"])
            log(f"docker kill {victim['Name'].lstrip('/')} after {BURST // 3} orders accepted")
            # The gateway still has the dead replica's address for a few seconds: it must pass
            # requests on to a live one rather than answer 504.
            answers = [get(f"/inventory/{scarce}").status for _ in range(12)]
            assert answers == [200] * 12, answers
            # Goods received mid-burst, the request sent twice with one Idempotency-Key: the
            # stock grows once, the second answer is the first one replayed.
            key = {"Idempotency-Key": f"receive-{tag}"}
            body = {"delta": 40, "reason": "received mid-burst"}
            answers = [post(f"/inventory/{scarce}/adjust", body, headers=key) for _ in range(2)]
            assert [a.status for a in answers] == [200, 200], [(a.status, a.body) for a in answers]
            first, again = (a.json() for a in answers)
            assert again == first, (first, again)
            assert answers[1].headers.get("Idempotent-Replayed") == "true", answers[1].headers
            adjusted[scarce] = 40
            log(f"right after the kill: 12 GET /inventory/{scarce} through the gateway all 200; "
                "POST .../adjust +40 twice with one Idempotency-Key: 200, then 200 replayed")
        t = time.monotonic()
        placed = burst(BURST, f"burst-{tag}", skus, during=kill, at=BURST // 3)
        log(f"{len(placed)} orders accepted in {time.monotonic() - t:.1f} s")
        st = json.loads(run("docker", "inspect", victim["Id"]).stdout)[0]["State"]
        assert st["ExitCode"] == 137 and not st["Running"], st
        statuses = settle(placed)
        counts = collections.Counter(statuses.values())
        assert len(statuses) == BURST and counts["SHIPMENT_SCHEDULED"] > 0 \
            and counts["REJECTED"] > 0, counts
        log(f"all {BURST} final in {time.monotonic() - t:.1f} s: {dict(counts)}")
        decided_once(placed)
        log("each order: one reservation row, one decision event id on the inventory topic "
            "(kcat from the host, decoded by python-avro), recorded once by audit")
        assert adjusted, "the adjustment did not run"
        check_stock({k: n + adjusted.get(k, 0) for k, n in skus.items()}, placed, statuses)
        log("stock invariants: available + reserved + shipped = stock set + the one adjustment, "
            "reserved = sum of scheduled orders, available >= 0")
        state.update(placed=placed, statuses=statuses)

    with step("docker stop (SIGTERM) of one container of each service exits 0; all back"):
        victims = [of_service(s)[-1] for s in CONVEYOR]

        def stop(c):
            t = time.monotonic()
            run("docker", "stop", "-t", "45", c["Id"])
            st = json.loads(run("docker", "inspect", c["Id"]).stdout)[0]["State"]
            return c["Name"].lstrip("/"), st, time.monotonic() - t
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for name, st, took in pool.map(stop, victims):
                assert st["ExitCode"] == 0 and not st["OOMKilled"], (name, st)
                log(f"docker stop {name}: exit code 0 after {took:.1f} s (grace 45 s)")
        for c in containers():
            if not c["State"]["Running"]:
                if service_of(c) != "topics":
                    run("docker", "start", c["Id"])
        wait_healthy()
        log("all replicas healthy again")

    with step("compose restart order mid-burst (Idempotency-Key retries)"):
        skus2 = {f"RESTART-{tag}-{i}": n for i, n in enumerate((600, 80))}
        for sku, n in skus2.items():
            set_stock(sku, n)

        started = of_service("order")[0]["State"]["StartedAt"]
        restarted = {}

        def restart():
            compose("restart", "order")
            restarted["at"] = len(placed)
            log("compose restart order: started after 50 orders accepted, returned after "
                f"{restarted['at']}")
        # Orders keep coming until 50 more were accepted after the restart returned: some
        # attempts meet the stopping or starting service.
        placed = {}
        burst(RESTART_BURST, f"restart-{tag}", skus2, during=restart, at=50, keyed=True,
              threads=8, placed=placed,
              until=lambda n: "at" in restarted and n >= restarted["at"] + 50)
        assert "at" in restarted and len(placed) >= restarted["at"] + 50, (len(placed), restarted)
        assert of_service("order")[0]["State"]["StartedAt"] != started, "order not restarted"
        statuses = settle(placed)
        counts = collections.Counter(statuses.values())
        log(f"{len(placed)} distinct orders, all final: {dict(counts)}; attempts retried "
            f"with the same key while order restarted: {dict(retries) or 'none'}")
        n = psql("conveyor_order", "SELECT count(*) FROM orders WHERE customer_id LIKE "
                 f"'restart-{tag}-%'")[0][0]
        assert int(n) == len(placed), (n, len(placed))
        decided_once(placed)
        check_stock(skus2, placed, statuses)
        log("one order per key in the database, each decided once, stock invariants hold")
        state.update(skus2=skus2, placed2=placed, statuses2=statuses)

    with step("down, up again: the data survived"):
        stocks = {s: stock(s) for s in list(skus) + list(state["skus2"])}
        total = get("/stats").json()["total"]
        compose("down")
        assert not containers(), "containers left after down"
        vols = run("docker", "volume", "ls", "-q", "--filter",
                   f"label=com.docker.compose.project={PROJECT}").stdout.split()
        assert len(vols) == 2, vols
        compose("up", "-d", *SCALE_ARGS)
        wait_healthy()
        assert wait_status(state["delivered"], "DELIVERED")["status"] == "DELIVERED"
        assert {s: stock(s) for s in stocks} == stocks
        for oid, st in list(state["statuses"].items())[:50]:
            assert get(f"/orders/{oid}").json()["status"] == st
        assert get("/stats").json()["total"] >= total
        again = place([{"sku": "WIDGET-1", "quantity": 1}], "dave")
        assert wait_status(again["id"], FINAL)["status"] == "SHIPMENT_SCHEDULED"
        log(f"volumes kept ({len(vols)}); after up: orders, stock of {len(stocks)} SKUs and "
            f"{total} audited events still there; a new order goes through")

    with step("down -v leaves nothing behind"):
        compose("down", "-v")
        left = {
            "containers": [service_of(c) for c in containers()],
            "volumes": run("docker", "volume", "ls", "-q", "--filter",
                           f"label=com.docker.compose.project={PROJECT}").stdout.split(),
            "networks": run("docker", "network", "ls", "-q", "--filter",
                            f"label=com.docker.compose.project={PROJECT}").stdout.split(),
        }
        assert not any(left.values()), left
        log("no containers, volumes or networks of the project")

    print("timings:")
    for name, took, ok in timings:
        print(f"  {took:7.1f} s  {'ok  ' if ok else 'FAIL'}  {name}")
    print(f"  {time.monotonic() - t_all:7.1f} s  scenario total")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        print("timings so far:")
        for name, took, ok in timings:
            print(f"  {took:7.1f} s  {'ok  ' if ok else 'FAIL'}  {name}")
        raise
