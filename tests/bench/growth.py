"""Cost as data grows (BENCH_PARTS=growth): the read paths and one saga's latency measured on
near-empty databases, then again after loading BENCH_GROWTH_ORDERS orders into order's
database and BENCH_GROWTH_EVENTS events into audit's, each printed beside its empty figure and
the 2x bound. Rows are generated inside PostgreSQL (INSERT ... SELECT FROM generate_series), so
loading costs what the table and its indexes cost, not a client's round trips. While the loaded
figures are measured, the sequential scans of orders and events are counted: a hot path that
scans instead of using an index shows up there, whatever the timings say."""

import os
import statistics
import time

from conveyor import http, psql

ORDERS = int(os.environ.get("BENCH_GROWTH_ORDERS", "1000000"))
EVENTS = int(os.environ.get("BENCH_GROWTH_EVENTS", "2000000"))
REQUESTS = int(os.environ.get("BENCH_GROWTH_REQUESTS", "200"))
SAGAS = int(os.environ.get("BENCH_GROWTH_SAGAS", "40"))
# Rows per INSERT statement: progress is printed per chunk, and no transaction grows huge.
CHUNK = 1_000_000
PAGE = 20

# A status mix of a shop that has run for a while: most orders delivered, some on their way,
# a few rejected or cancelled, a handful in flight.
STATUSES = (["DELIVERED"] * 12 + ["DISPATCHED"] * 2 + ["SHIPMENT_SCHEDULED"] * 2
            + ["REJECTED", "CANCELLED", "CONFIRMED", "PENDING", "CANCELLING"])
# The events of one order's life as audit records them: type, topic, producer.
LIFE = [("OrderPlaced", "orders", "order"), ("StockReserved", "inventory", "inventory"),
        ("ShipmentScheduled", "shipments", "shipping"),
        ("ShipmentDispatched", "shipments", "shipping"),
        ("ShipmentDelivered", "shipments", "shipping"),
        ("OrderCancellationRequested", "orders", "order"),
        ("ShipmentCancellationRefused", "shipments", "shipping"),
        ("StockRejected", "inventory", "inventory")]


def sql_array(values):
    return "ARRAY[" + ",".join(f"'{v}'" for v in values) + "]"


def load_orders(db, first, last):
    """Orders first..last: customers skewed (a few with thousands of orders, most with a few),
    every status, one to three items, created over the past year in seq order."""
    customers = max(10, ORDERS // 10)
    psql(db, "SET synchronous_commit = off;"  # this loading session only
         "INSERT INTO orders (id, customer_id, status, items, total_cents, shipping_address,"
         " created_at, updated_at)"
         " SELECT gen_random_uuid(),"
         f" 'cust-' || floor({customers} * power(random(), 3))::int,"
         f" ({sql_array(STATUSES)})[1 + (i * 7919) % {len(STATUSES)}],"
         " (SELECT jsonb_agg(jsonb_build_object('sku', 'SKU-' || ((i * 31 + k) % 5000),"
         "   'quantity', 1 + (i + k) % 4, 'unit_price_cents', 100 + (i * k) % 9900))"
         "  FROM generate_series(1, 1 + i % 3) k),"
         " 100 + (i * 13) % 50000,"
         " jsonb_build_object('name', 'Customer ' || i, 'line1', i || ' Long Street',"
         "   'city', 'Springfield', 'postal_code', lpad((i % 99999)::text, 5, '0'),"
         "   'country', 'DE'),"
         f" now() - ({last} - i) * interval '30 seconds',"
         f" now() - ({last} - i) * interval '30 seconds' + interval '2 days'"
         f" FROM generate_series({first}::bigint, {last}) i")


def load_events(db, prefix, first, last):
    """Events first..last: the life of one order per len(LIFE) events, every type, its three
    topics, six partitions; an event's data and raw bytes of the size audit stores."""
    n = len(LIFE)
    types = sql_array(t for t, _, _ in LIFE)
    topics = sql_array(prefix + t for _, t, _ in LIFE)
    producers = sql_array(p for _, _, p in LIFE)
    psql(db, "SET synchronous_commit = off;"
         # The per-row trigger keeping /stats' counts is skipped for the loaded rows (the bench
         # drops this database afterwards; /stats is not measured here).
         "SET session_replication_role = replica;"
         "INSERT INTO events (event_id, type, topic, partition, \"offset\", key, key_bytes,"
         " order_id, occurred_at, recorded_at, producer, headers, data, raw)"
         " SELECT gen_random_uuid()::text, t, topic, abs(hashtext(oid)) % 6, i, oid,"
         " convert_to(oid, 'UTF8'), oid, at, at + interval '4 ms', producer,"
         " jsonb_build_array(jsonb_build_object('name', 'event_type', 'value', t),"
         "   jsonb_build_object('name', 'producer', 'value', producer)),"
         " jsonb_build_object('order_id', oid, 'customer_id', 'cust-' || (o % 100000),"
         "   'items', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (o % 5000),"
         "   'quantity', 1 + o % 4)), 'total_cents', 100 + o % 50000),"
         " decode(repeat(md5(oid), 6), 'hex')"
         f" FROM generate_series({first}::bigint, {last}) i,"
         f" LATERAL (SELECT i / {n} AS o, md5('order-' || (i / {n}))::uuid::text AS oid,"
         f"   ({types})[1 + i % {n}] AS t, ({topics})[1 + i % {n}] AS topic,"
         f"   ({producers})[1 + i % {n}] AS producer,"
         f"   now() - ({last} - i) * interval '300 ms' AS at) g")


def load(db, loader, first, last, what):
    start = time.monotonic()
    for lo in range(first, last + 1, CHUNK):
        loader(db, lo, min(last, lo + CHUNK - 1))
        if last - first >= CHUNK:
            print(f"    {what}: {min(last, lo + CHUNK - 1):,} rows after"
                  f" {time.monotonic() - start:.0f} s")
    return time.monotonic() - start


def settle(db):
    """What a loaded database does in the background anyway, done before measuring rather than
    during: autovacuum's pass over the new rows (statistics, visibility map) and the checkpoint
    that writes them out."""
    start = time.monotonic()
    psql(db, "VACUUM ANALYZE")
    psql(db, "CHECKPOINT")
    return time.monotonic() - start


def percentile(values, p):
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def timed(urls):
    """Milliseconds of each GET, one at a time; the JSON bodies."""
    times, bodies = [], []
    for url in urls:
        start = time.monotonic()
        r = http("GET", url)
        times.append((time.monotonic() - start) * 1000)
        assert r.status == 200, (url, r.status, r.body)
        bodies.append(r.json())
    return times, bodies


def sample(db, table, columns):
    """REQUESTS rows of table picked at random by seq (an index lookup, not a scan)."""
    return psql(db, f"SELECT {columns} FROM {table} WHERE seq = ANY(ARRAY("
                f"SELECT 1 + floor(random() * (SELECT max(seq) FROM {table}))::bigint"
                f" FROM generate_series(1, {REQUESTS})))")


def seq_scans(system):
    """Sequential scans of orders and events so far (statistics arrive within a second)."""
    time.sleep(1.5)
    return (int(psql(system.dbs["order"], "SELECT seq_scan FROM pg_stat_user_tables"
                                          " WHERE relname = 'orders'")[0][0]),
            int(psql(system.dbs["audit"], "SELECT seq_scan FROM pg_stat_user_tables"
                                          " WHERE relname = 'events'")[0][0]))


def measure(system, tag):
    """{figure: milliseconds of each request or saga}, and the sequential scans of orders and
    events they caused."""
    order_url, audit_url = system.order.url, system.audit.url
    orders = sample(system.dbs["order"], "orders", "id")
    events = sample(system.dbs["audit"], "events", "order_id")
    # Customers with at least two full pages, so that every page request returns as many rows
    # on the small databases as on the large ones (the bench's own scan, before the count).
    customers = psql(system.dbs["order"], "SELECT customer_id FROM orders GROUP BY 1"
                     f" HAVING count(*) > {2 * PAGE} ORDER BY random() LIMIT {REQUESTS}")
    assert customers, "no customer has two pages of orders: raise BENCH_GROWTH_ORDERS"
    customers = [customers[i % len(customers)] for i in range(REQUESTS)]
    scans = seq_scans(system)
    out = {}
    out["GET /orders/{id}"] = timed(f"{order_url}/orders/{r[0]}" for r in orders)[0]
    first = [f"{order_url}/orders?customer_id={r[0]}&limit={PAGE}" for r in customers]
    out["GET /orders?customer_id= (first page)"], pages = timed(first)
    out["GET /orders?customer_id= (next page)"] = timed(
        f"{url}&after={page['next']}" for url, page in zip(first, pages))[0]
    out["GET /events?order_id="] = timed(f"{audit_url}/events?order_id={r[0]}" for r in events)[0]
    sagas = []
    for i in range(SAGAS):
        start = time.monotonic()
        order = system.place([{"sku": "BENCH-1", "quantity": 1}], customer=f"{tag}-{i}")
        system.wait_status(order["id"], "SHIPMENT_SCHEDULED")
        sagas.append((time.monotonic() - start) * 1000)
    out["saga, POST to SHIPMENT_SCHEDULED"] = sagas
    after = seq_scans(system)
    return out, (after[0] - scans[0], after[1] - scans[1])


def run(system):
    order_db, audit_db = system.dbs["order"], system.dbs["audit"]
    small_orders, small_events = max(1, ORDERS // 100), max(1, EVENTS // 100)
    base_orders = int(psql(order_db, "SELECT COALESCE(max(seq), 0) FROM orders")[0][0])
    base_events = int(psql(audit_db, "SELECT COALESCE(max(seq), 0) FROM events")[0][0])
    print(f"  cost as data grows: {small_orders:,} orders and {small_events:,} events (1%,"
          f" \"empty\"), then {ORDERS:,} and {EVENTS:,}; {REQUESTS} requests of each kind one at a"
          f" time, {SAGAS} sagas one at a time")
    # Loaded rows are numbered after those already there (the earlier parts' orders).
    load(order_db, load_orders, base_orders + 1, base_orders + small_orders, "orders")
    load(audit_db, lambda db, a, b: load_events(db, system.prefix, a, b), base_events + 1,
         base_events + small_events, "events")
    settle(order_db)
    settle(audit_db)
    empty, empty_scans = measure(system, "growth-empty")
    orders_s = load(order_db, load_orders, base_orders + small_orders + 1, base_orders + ORDERS,
                    "orders")
    events_s = load(audit_db, lambda db, a, b: load_events(db, system.prefix, a, b),
                    base_events + small_events + 1, base_events + EVENTS, "events")
    settle_s = settle(order_db) + settle(audit_db)
    size = psql("postgres", "SELECT pg_size_pretty(pg_database_size("
                f"'{order_db}')), pg_size_pretty(pg_database_size('{audit_db}'))")[0]
    print(f"  loaded {ORDERS - small_orders:,} orders in {orders_s:.0f} s and"
          f" {EVENTS - small_events:,} events in {events_s:.0f} s, then VACUUM ANALYZE and"
          f" CHECKPOINT in {settle_s:.0f} s; databases:"
          f" order {size[0]}, audit {size[1]}")
    full, scans = measure(system, "growth-full")
    for name, times in full.items():
        before = empty[name]
        e50, f50 = percentile(before, 50), percentile(times, 50)
        e99, f99 = percentile(before, 99), percentile(times, 99)
        print(f"    {name:40} empty p50 {e50:6.2f} p99 {e99:6.2f} ms; full p50 {f50:6.2f}"
              f" ({f50 / e50:.2f}x) p99 {f99:6.2f} ms ({f99 / e99:.2f}x); bound 2x")
    print(f"    sequential scans while measuring: orders {empty_scans[0]} and {scans[0]}, events"
          f" {empty_scans[1]} and {scans[1]} (empty and full; expected 0)")
