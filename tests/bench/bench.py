#!/usr/bin/python3
"""Conveyor's benchmark: saga latency percentiles and sustained throughput, with the
machine's own ceilings measured in the same run (a trivial libmicrohttpd handler, pgbench
running our order transaction, Kafka's producer performance tool). Prints figures; asserts
nothing."""

import concurrent.futures
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "crosscheck"))

from conveyor import BROKERS, PG, System, kafka_tool, psql  # noqa: E402

import growth  # noqa: E402
import scaling  # noqa: E402
import startup  # noqa: E402

DURATION = os.environ.get("BENCH_SECONDS", "8")
SAGA_SEQUENTIAL = int(os.environ.get("BENCH_SAGA_ORDERS", "200"))
SUSTAINED = int(os.environ.get("BENCH_SUSTAINED_ORDERS", "1000"))
# Which parts to run, comma-separated: ceilings, post, latency, sustained, open, scaling,
# growth (default all).
PARTS = set(os.environ.get("BENCH_PARTS",
                           "ceilings,post,latency,sustained,open,scaling,growth").split(","))
# Open loop: orders offered at each fixed rate (per second), BENCH_OPEN_ORDERS of them per rate.
OPEN_RATES = [float(r) for r in os.environ.get("BENCH_OPEN_RATES", "100,200").split(",") if r]
OPEN_ORDERS = int(os.environ.get("BENCH_OPEN_ORDERS", "2000"))
STAGES = ("outbox_to_relay", "produce_to_ack", "produce_to_fetch", "fetch_to_applied",
          "applied_to_commit")
SAGA_SERVICES = ("order", "inventory", "shipping")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def wrk(url, script=None, connections=32):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{DURATION}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", script]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, float(p50.group(1)) * scale[p50.group(2)], int(non2xx.group(1)) if non2xx else 0


def pgbench_order_tx(db):
    """pgbench running what POST /orders writes: the order, the outbox row, the NOTIFY."""
    script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    script.write(
        "BEGIN;\n"
        "INSERT INTO orders (id, customer_id, status, items, total_cents) VALUES"
        " (gen_random_uuid(), 'bench', 'PENDING',"
        " '[{\"sku\":\"BENCH-1\",\"quantity\":1,\"unit_price_cents\":100}]', 100);\n"
        "INSERT INTO outbox (topic, key, value, headers) VALUES"
        " ('pgbench', 'k', decode(repeat('ab', 150), 'hex'), '[]');\n"
        "NOTIFY pgbench_outbox;\n"
        "COMMIT;\n")
    script.close()
    try:
        out = subprocess.run(
            ["pgbench", "-n", "-c", "8", "-j", "2", "-T", DURATION, "-f", script.name,
             "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], db],
            capture_output=True, text=True, check=True).stdout
        return float(re.search(r"tps = ([\d.]+)", out).group(1))
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"  pgbench unavailable: {e}")
        return None
    finally:
        os.unlink(script.name)
        psql(db, "DELETE FROM outbox WHERE topic = 'pgbench';"
                 " DELETE FROM orders WHERE customer_id = 'bench'")


def kafka_producer_ceiling():
    topic = "bench-ceiling-" + uuid.uuid4().hex[:6]
    kafka_tool("topics", "--bootstrap-server", BROKERS, "--create", "--topic", topic,
               "--partitions", "6", "--replication-factor", "1")
    out = kafka_tool("producer-perf-test", "--topic", topic, "--num-records", "200000",
                     "--record-size", "300", "--throughput", "-1", "--producer-props",
                     f"bootstrap.servers={BROKERS}", "acks=all", "enable.idempotence=true",
                     "linger.ms=5").stdout
    last = [line for line in out.splitlines() if "records sent" in line][-1]
    return float(re.search(r"([\d.]+) records/sec", last).group(1))


def stage_buckets(services):
    """{stage: {upper bound: cumulative count}} of pipeline_stage_seconds, summed over the
    services given."""
    out = {}
    pat = re.compile(r'^pipeline_stage_seconds_bucket\{stage="(\w+)",le="([^"]+)"\} (\S+)$')
    for svc in services:
        for line in svc.get("/metrics").body.decode().splitlines():
            m = pat.match(line)
            if m:
                le = float("inf") if m.group(2) == "+Inf" else float(m.group(2))
                b = out.setdefault(m.group(1), {})
                b[le] = b.get(le, 0) + float(m.group(3))
    return out


def bucket_percentile(cum, p):
    """p-th percentile (ms) of a cumulative histogram, interpolated inside its bucket."""
    bounds = sorted(cum)
    total = cum[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    rank = p / 100 * total
    lo, below = 0.0, 0.0
    for le in bounds:
        if cum[le] >= rank:
            if le == float("inf"):
                return lo * 1000
            inside = cum[le] - below
            frac = (rank - below) / inside if inside else 1.0
            return (lo + (le - lo) * frac) * 1000
        lo, below = le, cum[le]
    return lo * 1000


def print_stages(before, after, label):
    print(f"  per hop, {label} (pipeline_stage_seconds of order, inventory and shipping;"
          " 3 hops per saga):")
    for stage in STAGES:
        a, b = after.get(stage, {}), before.get(stage, {})
        delta = {le: a[le] - b.get(le, 0) for le in a}
        n = max(delta.values()) if delta else 0
        p50, p99 = bucket_percentile(delta, 50), bucket_percentile(delta, 99)
        if p50 is None:
            print(f"    {stage:18} no observations")
        else:
            print(f"    {stage:18} n={n:<6.0f} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")


def open_loop(system, rate, count, tag):
    """Offers count orders at a fixed rate whatever the system's answers (open loop) and
    samples the backlog (accepted, not yet SHIPMENT_SCHEDULED) once a second. Returns the
    achieved offer rate, the backlog samples over the offer period, and the drain time."""
    import threading
    accepted = [0]
    lock = threading.Lock()
    failed = [0]

    def place(i):
        try:
            system.place([{"sku": "BENCH-1", "quantity": 1}], customer=f"{tag}-{i}")
            with lock:
                accepted[0] += 1
        except (AssertionError, OSError):
            with lock:
                failed[0] += 1

    def done():
        return int(psql(system.dbs["order"],
                        "SELECT count(*) FROM orders WHERE status = 'SHIPMENT_SCHEDULED'"
                        f" AND customer_id LIKE '{tag}-%'")[0][0])

    samples = []
    stop = threading.Event()

    def sampler():
        while not stop.wait(1.0):
            with lock:
                a = accepted[0]
            samples.append(a - done())
    threads = threading.Thread(target=sampler)
    threads.start()
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(48) as pool:
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(place, i)
    offered = time.monotonic() - start
    stop.set()
    threads.join()
    drain_start = time.monotonic()
    while done() < accepted[0] and time.monotonic() - drain_start < 600:
        time.sleep(0.5)
    return count / offered, samples, time.monotonic() - drain_start, failed[0]


def rss(system):
    out = []
    for name, svc in system.services.items():
        with open(f"/proc/{svc.proc.pid}/status") as f:
            status = f.read()
        kb = {k: int(re.search(k + r":\s+(\d+)", status).group(1))
              for k in ("VmRSS", "RssAnon", "RssFile", "Threads")}
        # Pss shares each library page among the processes mapping it: the memory this
        # process really costs next to the other three.
        with open(f"/proc/{svc.proc.pid}/smaps_rollup") as f:
            pss = int(re.search(r"^Pss:\s+(\d+)", f.read(), re.M).group(1))
        out.append(f"{name} {kb['VmRSS'] / 1024:.1f} MiB (anon {kb['RssAnon'] / 1024:.1f},"
                   f" files {kb['RssFile'] / 1024:.1f}, Pss {pss / 1024:.1f},"
                   f" {kb['Threads']} threads)")
    return ", ".join(out)


def main():
    log_dir = tempfile.mkdtemp(prefix="conveyor-bench-")
    tag = "bench" + uuid.uuid4().hex[:6]
    env = {"TOPIC_PREFIX": tag + ".", "INVENTORY_SEED": "false", "LOG_LEVEL": "warn"}
    system = System(tag, log_dir, {s: env for s in ("order", "inventory", "shipping", "audit")})
    system.prefix = tag + "."
    ready = startup.start_timed(system)
    try:
        system.set_stock("BENCH-1", 1_000_000_000)
        print(f"Conveyor benchmark ({os.cpu_count()} cores; wrk and pgbench {DURATION} s each)")
        print("  start to ready, 4 services started together: "
              + ", ".join(f"{name} {s:.2f} s" for name, s in ready.items()) + " (target < 1 s)")
        print(f"  resident memory when idle: {rss(system)} (target <= 12 MiB)")
        pg_tps = http_rps = None
        if "ceilings" in PARTS:
            print("machine ceilings, measured now:")
            http_rps, http_p50, _ = wrk(system.order.url + "/healthz")
            print(f"  HTTP, trivial handler (GET /healthz, 32 connections): {http_rps:,.0f}"
                  f" req/s, p50 {http_p50:.2f} ms")
            pg_tps = pgbench_order_tx(system.dbs["order"])
            if pg_tps:
                print(f"  PostgreSQL, pgbench of the order transaction (8 clients):"
                      f" {pg_tps:,.0f} tx/s")
            kafka_rps = kafka_producer_ceiling()
            print(f"  Kafka, producer-perf-test (300 B, acks=all, idempotent):"
                  f" {kafka_rps:,.0f} rec/s")

        print("conveyor:")
        if "post" in PARTS:
            lua = os.path.join(HERE, "post_order.lua")
            post_rps, post_p50, bad = wrk(system.order.url + "/orders", lua)
            ratio = f", {post_rps / pg_tps:.0%} of the pgbench ceiling" if pg_tps else ""
            http_ratio = f"; {post_rps / http_rps:.0%} of the HTTP ceiling" if http_rps else ""
            print(f"  POST /orders (32 connections): {post_rps:,.0f} req/s, p50 {post_p50:.2f}"
                  f" ms, {bad} non-2xx{http_ratio}{ratio}")
            # Let the saga of those orders drain before timing sagas.
            drain_start = time.monotonic()
            while int(psql(system.dbs["order"],
                           "SELECT count(*) FROM orders WHERE status = 'PENDING'")[0][0]) > 0:
                if time.monotonic() - drain_start > 300:
                    break
                time.sleep(1)
            placed = int(psql(system.dbs["order"], "SELECT count(*) FROM orders")[0][0])
            print(f"  backlog of {placed:,} orders through the saga in"
                  f" {time.monotonic() - drain_start:.1f} s after the load stopped")

        saga_svcs = [system.services[s] for s in SAGA_SERVICES]
        # Warm up: topic metadata and group assignments settle before anything is timed.
        time.sleep(3)
        for i in range(3):
            warm = system.place([{"sku": "BENCH-1", "quantity": 1}], customer=f"warm-{i}")
            system.wait_status(warm["id"], "SHIPMENT_SCHEDULED", 120)
        if "latency" in PARTS:
            latencies, posts = [], []
            before = stage_buckets(saga_svcs)
            for i in range(SAGA_SEQUENTIAL):
                start = time.monotonic()
                order = system.place([{"sku": "BENCH-1", "quantity": 1}], customer=f"lat-{i}")
                posts.append((time.monotonic() - start) * 1000)
                system.wait_status(order["id"], "SHIPMENT_SCHEDULED")
                latencies.append((time.monotonic() - start) * 1000)
            print(f"  saga latency, POST to SHIPMENT_SCHEDULED ({SAGA_SEQUENTIAL} orders one at a"
                  f" time): p50 {percentile(latencies, 50):.0f} ms, p90"
                  f" {percentile(latencies, 90):.0f} ms, p99 {percentile(latencies, 99):.0f} ms,"
                  f" mean {statistics.mean(latencies):.0f} ms (target p50 <= 15, p99 <= 40)")
            print(f"  of which POST /orders: p50 {percentile(posts, 50):.1f} ms,"
                  f" p99 {percentile(posts, 99):.1f} ms")
            print_stages(before, stage_buckets(saga_svcs), "one order at a time")

        if "sustained" in PARTS:
            before = stage_buckets(saga_svcs)
            start = time.monotonic()

            def place(i):
                return system.place([{"sku": "BENCH-1", "quantity": 1}],
                                    customer=f"sus-{i}")["id"]
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                ids = list(pool.map(place, range(SUSTAINED)))
            accepted = time.monotonic() - start
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda oid: system.wait_status(oid, "SHIPMENT_SCHEDULED", 300),
                              ids))
            done = time.monotonic() - start
            print(f"  sustained: {SUSTAINED} orders from 16 clients accepted in {accepted:.1f} s"
                  f" ({SUSTAINED / accepted:,.0f}/s), all SHIPMENT_SCHEDULED after {done:.1f} s"
                  f" ({SUSTAINED / done:,.0f} sagas/s)")
            print_stages(before, stage_buckets(saga_svcs), "closed loop of 16 clients")
        if "open" in PARTS:
            for rate in OPEN_RATES:
                before = stage_buckets(saga_svcs)
                got, samples, drain, failed = open_loop(system, rate, OPEN_ORDERS,
                                                        f"open{rate:.0f}")
                after = stage_buckets(saga_svcs)
                n = len(samples)
                marks = [samples[min(n - 1, n * q // 4)] for q in (1, 2, 3)] + [samples[-1]] \
                    if n else []
                # Growth of the backlog over the offer's second half, per second: flat when
                # it is under 5% of the offered rate or less than a second's work is waiting.
                slope = (samples[-1] - samples[n // 2]) / max(1, n - 1 - n // 2) if n else 0
                flat = n >= 4 and (slope <= 0.05 * rate or samples[-1] <= rate)
                ceiling = f" ({rate / pg_tps:.2f}x the pgbench ceiling)" if pg_tps else ""
                print(f"  open loop at {rate:.0f} orders/s{ceiling}, {OPEN_ORDERS} orders:"
                      f" offered at {got:.0f}/s, {failed} failed; backlog at 1/4, 1/2, 3/4, end"
                      f" of the offer: {', '.join(str(m) for m in marks)};"
                      f" drained {drain:.1f} s after; backlog {'flat' if flat else 'GROWING'}"
                      f" ({slope:+.0f}/s over the second half)")
                print_stages(before, after, f"open loop at {rate:.0f}/s")
        print(f"  resident memory after the run: {rss(system)}")
        if "scaling" in PARTS:
            scaling.run(system, log_dir)
        # Last: it leaves millions of rows behind.
        if "growth" in PARTS:
            growth.run(system)
    finally:
        system.stop()
        system.drop()


if __name__ == "__main__":
    main()
