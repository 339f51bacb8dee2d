#!/usr/bin/python3
"""Conveyor's benchmark: saga latency percentiles and sustained throughput, with the
machine's own ceilings measured in the same run (a trivial libmicrohttpd handler, pgbench
running our order transaction, Kafka's producer performance tool). Prints figures; asserts
nothing."""

import concurrent.futures
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "crosscheck"))

from conveyor import BROKERS, DB_PREFIX, PG, System, kafka_tool, psql  # noqa: E402

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
OPEN_RATES = [float(r) for r in os.environ.get("BENCH_OPEN_RATES", "150,200,250").split(",") if r]
OPEN_ORDERS = int(os.environ.get("BENCH_OPEN_ORDERS", "20000"))
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


TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    """utime + stime of a process, in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK_S


def postgres_cpu_s():
    """{pid: (group, CPU seconds)} of the server's postgres processes. A backend's process
    title names its database: ours (this run's prefix), another's (other work on the same
    server, left out of the account), or none (the server's own processes: WAL writer,
    checkpointer, background writer, autovacuum)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            continue
        # "postgres: [CLUSTER:] USER DATABASE HOST(PORT) STATE" for a backend.
        title = title[1:]
        if title and title[0].endswith(":"):
            title = title[1:]
        if len(title) >= 3 and "(" in title[2]:
            group = "postgresql, ours" if title[1].startswith(DB_PREFIX) else "other"
        else:
            group = "postgresql, server"
        out[pid] = (group, proc_cpu_s(pid))
    return out


def broker_pid():
    try:
        with open(os.path.join(os.environ["KAFKA_DIR"], "kafka.pid")) as f:
            return int(f.read().strip())
    except (KeyError, OSError, ValueError):
        return None


def cpu_sample(system):
    """{component: CPU seconds so far} of each service, the broker, PostgreSQL and this load
    generator."""
    out = {name: proc_cpu_s(svc.proc.pid) for name, svc in system.services.items()}
    pid = broker_pid()
    out["kafka broker"] = proc_cpu_s(pid) if pid else 0.0
    # This process and its finished children (wrk, pgbench, psql): the load generators.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["load generator"] = proc_cpu_s(os.getpid()) + children.ru_utime + children.ru_stime
    out["postgres"] = postgres_cpu_s()
    return out


def print_cpu(before, after, sagas, wall_s, pg_tps, unit="saga"):
    """CPU per saga (or other unit of work) per component over a run that completed sagas of
    them, and the rate those costs allow on this machine's cores (were nothing else running)."""
    if sagas <= 0:
        return
    used = {k: after[k] - before.get(k, 0.0) for k in after if k != "postgres"}
    # Per process: one that started during the run counts whole, one that ended is lost (a
    # psql call's backend), so PostgreSQL's share is a lower bound.
    for pid, (group, cpu) in after["postgres"].items():
        used[group] = used.get(group, 0.0) + cpu - before["postgres"].get(pid, (group, 0.0))[1]
    other = used.pop("other", 0.0)
    cost = {k: v * 1000 / sagas for k, v in used.items()}
    total = sum(cost.values())
    cores = os.cpu_count() or 1
    busy = total * sagas / 1000 / wall_s / cores
    print(f"  CPU per {unit} ({sagas} in {wall_s:.1f} s; utime+stime from /proc):"
          + "".join(f" {k} {v:.2f} ms," for k, v in cost.items())
          + f" total {total:.2f} ms (these kept {busy:.0%} of the {cores} cores busy; other"
          f" databases' backends on the same server used {other / wall_s / cores:.0%} more)")
    if total > 0:
        ceiling = cores * 1000 / total
        ratio = f", {ceiling / pg_tps:.2f}x the pgbench ceiling" if pg_tps else ""
        print(f"  CPU ceiling of the {unit}: {cores} cores / {total:.2f} ms = {ceiling:,.0f}"
              f"/s{ratio}")


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
        # The server is shared: a moment without a free connection is tried again.
        for attempt in range(20):
            try:
                return int(psql(system.dbs["order"],
                                "SELECT count(*) FROM orders WHERE status = 'SHIPMENT_SCHEDULED'"
                                f" AND customer_id LIKE '{tag}-%'")[0][0])
            except subprocess.CalledProcessError:
                if attempt == 19:
                    raise
                time.sleep(0.5)

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


def open_loop_latency(system, tag):
    """p50 and p99 (ms) of the sagas of an open loop's orders, from their rows: created_at is
    the POST's transaction, updated_at the order consumer's transaction that recorded
    SHIPMENT_SCHEDULED (its start: the final commit's few ms are not in it)."""
    row = psql(system.dbs["order"],
               "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d),"
               " percentile_cont(0.99) WITHIN GROUP (ORDER BY d) FROM"
               " (SELECT extract(epoch FROM updated_at - created_at) * 1000 AS d FROM orders"
               f" WHERE status = 'SHIPMENT_SCHEDULED' AND customer_id LIKE '{tag}-%') s")[0]
    return (float(row[0]), float(row[1])) if row[0] else (None, None)


def run_open_loop(system, saga_svcs, rate, count, pg_tps, target=None):
    """One open-loop run at rate, printed. True if the backlog stayed flat."""
    tag = f"open{rate:.0f}"
    before = stage_buckets(saga_svcs)
    cpu_before, started_at = cpu_sample(system), time.monotonic()
    got, samples, drain, failed = open_loop(system, rate, count, tag)
    cpu_after, wall = cpu_sample(system), time.monotonic() - started_at
    after = stage_buckets(saga_svcs)
    n = len(samples)
    marks = [samples[min(n - 1, n * q // 4)] for q in (1, 2, 3)] + [samples[-1]] if n else []
    # Growth of the backlog over the offer's second half, per second: flat when it is under
    # 5% of the offered rate or less than a second's work is waiting.
    slope = (samples[-1] - samples[n // 2]) / max(1, n - 1 - n // 2) if n else 0
    flat = n >= 2 and (slope <= 0.05 * rate or samples[-1] <= rate)
    ceiling = f" ({rate / pg_tps:.2f}x the pgbench ceiling)" if pg_tps else ""
    print(f"  open loop at {rate:.0f} orders/s{ceiling}, {count} orders:"
          f" offered at {got:.0f}/s, {failed} failed; backlog at 1/4, 1/2, 3/4, end"
          f" of the offer: {', '.join(str(m) for m in marks)};"
          f" drained {drain:.1f} s after; backlog {'flat' if flat else 'GROWING'}"
          f" ({slope:+.0f}/s over the second half)")
    p50, p99 = open_loop_latency(system, tag)
    if p50 is not None:
        note = f" ({target})" if target else ""
        print(f"    saga latency at {rate:.0f}/s (POST's transaction to SHIPMENT_SCHEDULED, from"
              f" the rows): p50 {p50:.0f} ms, p99 {p99:.0f} ms{note}")
    print_stages(before, after, f"open loop at {rate:.0f}/s")
    print_cpu(cpu_before, cpu_after, count - failed, wall, pg_tps)
    return flat


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
            placed_before = int(psql(system.dbs["order"], "SELECT count(*) FROM orders")[0][0])
            cpu_before, started_at = cpu_sample(system), time.monotonic()
            post_rps, post_p50, bad = wrk(system.order.url + "/orders", lua)
            cpu_after, wall = cpu_sample(system), time.monotonic() - started_at
            ratio = f", {post_rps / pg_tps:.0%} of the pgbench ceiling" if pg_tps else ""
            http_ratio = f"; {post_rps / http_rps:.0%} of the HTTP ceiling" if http_rps else ""
            print(f"  POST /orders (32 connections): {post_rps:,.0f} req/s, p50 {post_p50:.2f}"
                  f" ms, {bad} non-2xx{http_ratio}{ratio}")
            # The sagas of the accepted orders run meanwhile on the same cores: the account
            # says what one accepted order costs the whole system while the POSTs run.
            accepted = int(psql(system.dbs["order"], "SELECT count(*) FROM orders")[0][0])
            print_cpu(cpu_before, cpu_after, accepted - placed_before, wall, pg_tps,
                      "accepted order")
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
            cpu_before = cpu_sample(system)
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
            print_cpu(cpu_before, cpu_sample(system), SUSTAINED, done, pg_tps)
        if "open" in PARTS:
            flat_rates = [rate for rate in OPEN_RATES
                          if run_open_loop(system, saga_svcs, rate, OPEN_ORDERS, pg_tps)]
            if flat_rates:
                best = max(flat_rates)
                print(f"  highest offered rate with a flat backlog: {best:.0f}/s"
                      + (f" ({best / pg_tps:.2f}x the pgbench ceiling; target >= 0.5x)"
                         if pg_tps else ""))
                run_open_loop(system, saga_svcs, best / 2, OPEN_ORDERS // 2, pg_tps,
                              "half the highest flat rate; target p99 <= 100 ms")
            else:
                print("  no offered rate kept the backlog flat")
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
