"""Scaling curve (BENCH_PARTS=scaling): the closed-loop saga bench with 1, 2 and 3 replicas of
inventory and shipping, processes sharing the broker and the databases as in
tests/e2e/test_scaling.py. Each step waits until the replicas share the partitions, then
BENCH_SCALING_ORDERS orders are placed by 16 clients, each waiting for its order to reach
SHIPMENT_SCHEDULED before placing the next; sagas/s and each saga's latency are printed."""

import concurrent.futures
import os
import statistics
import time

from conveyor import Service, free_port, wait_until

REPLICAS = [int(n) for n in os.environ.get("BENCH_SCALING_REPLICAS", "1,2,3").split(",") if n]
ORDERS = int(os.environ.get("BENCH_SCALING_ORDERS", "1000"))
CLIENTS = 16
SCALED = ("inventory", "shipping")


def percentile(values, p):
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def assigned(replica):
    return replica.metric("consumer_assigned_partitions")


def wait_shared(replicas, partitions, timeout=120):
    """Whether every replica got partitions and together they hold them all, within timeout."""
    try:
        wait_until(lambda: sum(map(assigned, replicas)) == partitions
                   and all(assigned(r) > 0 for r in replicas), timeout, 0.5, "a shared group")
        return True
    except AssertionError:
        return False


def closed_loop(system, tag):
    """Sagas per second over ORDERS orders of CLIENTS clients, and each saga's milliseconds."""
    def saga(i):
        start = time.monotonic()
        order = system.place([{"sku": "BENCH-1", "quantity": 1}], customer=f"{tag}-{i}")
        system.wait_status(order["id"], "SHIPMENT_SCHEDULED", 300)
        return (time.monotonic() - start) * 1000

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        latencies = list(pool.map(saga, range(ORDERS)))
    return ORDERS / (time.monotonic() - start), latencies


def run(system, log_dir):
    replicas = {name: [system.services[name]] for name in SCALED}
    # Partitions each service consumes, all held by its one replica now.
    partitions = {name: assigned(system.services[name]) for name in SCALED}
    print(f"  scaling: {ORDERS} orders from {CLIENTS} clients (closed loop) per step, replicas of"
          f" {' and '.join(SCALED)} on the same broker and databases")
    try:
        for n in REPLICAS:
            started = time.monotonic()
            for name in SCALED:
                base = system.services[name]
                while len(replicas[name]) < n:
                    replicas[name].append(Service(name, base.db, free_port(), log_dir,
                                                  system.env.get(name)).start())
                while len(replicas[name]) > max(1, n):
                    replicas[name].pop().stop()
            shared = all(wait_shared(replicas[name], partitions[name]) for name in SCALED)
            settle = time.monotonic() - started
            if not shared:
                print(f"    {n} replica(s) each: partitions NOT shared after {settle:.0f} s ("
                      + "; ".join(f"{name} {[assigned(r) for r in replicas[name]]}"
                                  for name in SCALED) + "), measured anyway")
            # A few sagas first: the new members' first fetches and statements are not timed.
            for i in range(3):
                system.wait_status(system.place([{"sku": "BENCH-1", "quantity": 1}],
                                                customer=f"scale{n}-warm-{i}")["id"],
                                   "SHIPMENT_SCHEDULED", 120)
            rate, latencies = closed_loop(system, f"scale{n}")
            print(f"    {n} replica(s) each: {rate:,.0f} sagas/s; saga p50"
                  f" {percentile(latencies, 50):.0f} ms, p99 {percentile(latencies, 99):.0f} ms"
                  f" (started and sharing the partitions after {settle:.1f} s)")
    finally:
        for name in SCALED:
            for r in replicas[name][1:]:
                r.stop()
