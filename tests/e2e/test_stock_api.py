"""The stock API cannot lose updates: GET /inventory/{sku} gives the row's version as a strong
ETag, PUT honours If-Match (412 on a stale one), and POST /inventory/{sku}/adjust adds a delta
atomically (409 below zero, 400 for bad input, each change one StockAdjusted event)."""

import concurrent.futures
import json
import random
import re
import threading
import uuid

import avro_peer
from conveyor import http, kcat_records, psql, wait_until

ETAG = re.compile(r'^"[0-9]+"$')


def new_sku(prefix="STK"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def read(system, sku):
    """(stock, ETag) of sku."""
    r = system.inventory.get(f"/inventory/{sku}")
    assert r.status == 200, (r.status, r.body)
    etag = r.headers["ETag"]
    assert ETAG.match(etag), etag
    return r.json(), etag


def put(system, sku, body, if_match=None):
    headers = {"If-Match": if_match} if if_match is not None else {}
    return system.inventory.put(f"/inventory/{sku}", body, headers=headers)


def adjust(system, sku, delta, reason="restock", headers=None):
    return system.inventory.post(f"/inventory/{sku}/adjust", {"delta": delta, "reason": reason},
                                 headers=headers or {})


def adjusted_events(system, sku):
    """The StockAdjusted events of sku on the inventory topic, in offset order (one key, one
    partition)."""
    events = []
    for rec in kcat_records(system.prefix + "inventory"):
        type_name, ev = avro_peer.decode(rec["value"])
        if type_name.endswith("StockAdjusted") and ev["sku"] == sku:
            events.append((rec["partition"], rec["offset"], ev))
    events.sort(key=lambda e: (e[0], e[1]))
    assert len({p for p, _, _ in events}) <= 1, "one SKU's events on several partitions"
    return [ev for _, _, ev in events]


def wait_events(system, sku, count):
    return wait_until(lambda: (lambda evs: evs if len(evs) >= count else None)(
        adjusted_events(system, sku)), 30, 0.5, f"{count} StockAdjusted events of {sku}")


def test_get_returns_strong_etag_and_304(system):
    sku = new_sku()
    r = put(system, sku, {"available": 10})
    assert r.status == 200 and ETAG.match(r.headers["ETag"])
    stock, etag = read(system, sku)
    assert etag == r.headers["ETag"]
    assert stock == {"sku": sku, "name": sku, "available": 10, "reserved": 0, "shipped": 0}
    r = system.inventory.get(f"/inventory/{sku}", headers={"If-None-Match": etag})
    assert r.status == 304 and r.body == b"" and r.headers["ETag"] == etag
    r = system.inventory.get(f"/inventory/{sku}", headers={"If-None-Match": f"W/{etag}"})
    assert r.status == 304
    r = system.inventory.get(f"/inventory/{sku}", headers={"If-None-Match": '"999999", "0"'})
    assert r.status == 200 and r.json() == stock
    # Reading does not move the version.
    assert read(system, sku)[1] == etag


def test_put_honours_if_match(system):
    sku = new_sku()
    put(system, sku, {"available": 5})
    _, etag = read(system, sku)
    r = put(system, sku, {"available": 7}, if_match=etag)
    assert r.status == 200 and r.json()["available"] == 7
    new_etag = r.headers["ETag"]
    assert new_etag != etag and read(system, sku) == (r.json(), new_etag)

    # The old ETag is stale now: 412, nothing changes.
    r = put(system, sku, {"available": 100}, if_match=etag)
    assert r.status == 412, (r.status, r.body)
    assert r.content_type.startswith("application/problem+json")
    assert r.json()["field"] == "If-Match" and r.headers["ETag"] == new_etag
    assert read(system, sku) == ({"sku": sku, "name": sku, "available": 7, "reserved": 0,
                                  "shipped": 0}, new_etag)

    # A weak tag never matches If-Match; "*" matches any existing SKU; a list matches any tag.
    assert put(system, sku, {"available": 100}, if_match=f"W/{new_etag}").status == 412
    r = put(system, sku, {"available": 8}, if_match=f'"0", {new_etag}')
    assert r.status == 200
    r = put(system, sku, {"available": 9}, if_match="*")
    assert r.status == 200 and r.json()["available"] == 9

    # Without If-Match, PUT sets the stock as it always did.
    r = put(system, sku, {"available": 11})
    assert r.status == 200 and r.json()["available"] == 11

    # If-Match on a SKU that does not exist fails, and creates nothing.
    ghost = new_sku("GHOST")
    for tag in ("*", '"1"'):
        assert put(system, ghost, {"available": 1}, if_match=tag).status == 412
    assert system.inventory.get(f"/inventory/{ghost}").status == 404

    # A malformed If-Match is a bad request.
    for bad in ("7", '"7', "W/7", '"7" "8"', "*, \"7\""):
        r = put(system, sku, {"available": 1}, if_match=bad)
        assert r.status == 400 and r.json()["field"] == "If-Match", bad
    assert read(system, sku)[0]["available"] == 11


def test_concurrent_put_with_same_etag_one_wins(system):
    sku = new_sku("CPUT")
    put(system, sku, {"available": 50})
    wait_events(system, sku, 1)
    _, etag = read(system, sku)
    n = 24
    barrier = threading.Barrier(n)

    def attempt(i):
        barrier.wait()
        return i, put(system, sku, {"available": 100 + i}, if_match=etag)

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        results = list(pool.map(attempt, range(n)))
    statuses = sorted(r.status for _, r in results)
    assert statuses == [200] + [412] * (n - 1), statuses
    winner, won = next((i, r) for i, r in results if r.status == 200)
    stock, now = read(system, sku)
    assert stock["available"] == 100 + winner and now == won.headers["ETag"]
    assert int(now.strip('"')) == int(etag.strip('"')) + 1
    for _, r in results:
        if r.status == 412:
            assert r.json()["field"] == "If-Match"
    # One change, one event.
    events = wait_events(system, sku, 2)
    assert [(e["previous_available"], e["available"]) for e in events] == \
        [(0, 50), (50, 100 + winner)]


def test_concurrent_adjustments_sum_exactly(system):
    sku = new_sku("CADJ")
    start = 5000
    put(system, sku, {"available": start})
    rng = random.Random(11)
    deltas = [rng.choice([-1, 1]) * rng.randint(1, 40) for _ in range(100)]
    barrier = threading.Barrier(16)

    def attempt(i):
        if i < 16:
            barrier.wait()
        return adjust(system, sku, deltas[i], reason=f"count {i}")

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(attempt, range(len(deltas))))
    assert [r.status for r in results] == [200] * len(deltas), \
        [(r.status, r.body) for r in results if r.status != 200][:3]
    stock, etag = read(system, sku)
    assert stock["available"] == start + sum(deltas), (stock, sum(deltas))
    assert stock["reserved"] == 0 and stock["shipped"] == 0
    # Every answer carried its own version: 100 distinct ones, the last being the current.
    tags = {r.headers["ETag"] for r in results}
    assert len(tags) == len(deltas) and etag in tags
    # The answer with the highest version shows the final figure.
    by_version = sorted((int(r.headers["ETag"].strip('"')), r.json()["available"])
                        for r in results)
    assert by_version[-1][1] == stock["available"]

    # On the topic: the PUT's event and one per adjustment, each starting where the one before
    # ended (no update lost), summing to the deltas.
    events = wait_events(system, sku, 1 + len(deltas))
    assert len(events) == 1 + len(deltas)
    assert (events[0]["previous_available"], events[0]["available"]) == (0, start)
    adjustments = events[1:]
    assert sorted(e["available"] - e["previous_available"] for e in adjustments) == sorted(deltas)
    for before, after in zip(events, events[1:]):
        assert after["previous_available"] == before["available"]
    assert events[-1]["available"] == start + sum(deltas)
    # Each event says why: null for the PUT, the adjustment's own reason for each adjustment.
    assert events[0]["reason"] is None
    assert sorted((e["reason"], e["available"] - e["previous_available"]) for e in adjustments) \
        == sorted((f"count {i}", d) for i, d in enumerate(deltas))
    # Each adjustment is recorded with its reason.
    rows = psql(system.inventory.db,
                f"SELECT count(*), sum(delta), count(DISTINCT reason) FROM stock_adjustments"
                f" WHERE sku = '{sku}'")
    assert rows == [[str(len(deltas)), str(sum(deltas)), str(len(deltas))]]


def test_adjust_receives_and_writes_off(system):
    sku = new_sku("ADJ")
    put(system, sku, {"available": 5, "name": "Adjusted thing"})
    _, etag = read(system, sku)
    r = adjust(system, sku, 20, "received purchase order 4711")
    assert r.status == 200 and r.content_type.startswith("application/json")
    assert r.json() == {"sku": sku, "name": "Adjusted thing", "available": 25, "reserved": 0,
                        "shipped": 0}
    assert r.headers["ETag"] != etag and read(system, sku) == (r.json(), r.headers["ETag"])
    r = adjust(system, sku, -25, "water damage")
    assert r.status == 200 and r.json()["available"] == 0
    events = wait_events(system, sku, 3)
    assert [(e["previous_available"], e["available"], e["name"]) for e in events] == \
        [(0, 5, "Adjusted thing"), (5, 25, "Adjusted thing"), (25, 0, "Adjusted thing")]


def test_adjust_below_zero_conflicts_and_changes_nothing(system):
    sku = new_sku("NEG")
    put(system, sku, {"available": 5})
    before = read(system, sku)
    r = adjust(system, sku, -6, "write-off")
    assert r.status == 409, (r.status, r.body)
    assert r.content_type.startswith("application/problem+json")
    assert "negative" in r.json()["detail"] and r.json()["field"] == "delta"
    assert read(system, sku) == before
    # Above the ceiling is refused the same way.
    r = adjust(system, sku, 1000000000, "too much")
    assert r.status == 409 and read(system, sku) == before
    # Down to exactly zero is fine.
    assert adjust(system, sku, -5, "write-off").json()["available"] == 0
    assert adjust(system, sku, -1, "write-off").status == 409
    events = wait_events(system, sku, 2)
    assert len(events) == 2
    assert psql(system.inventory.db,
                f"SELECT count(*) FROM stock_adjustments WHERE sku = '{sku}'") == [["1"]]


def test_adjust_bad_input_is_400_and_changes_nothing(system):
    sku = new_sku("BAD")
    put(system, sku, {"available": 30})
    before = read(system, sku)
    url = f"{system.inventory.url}/inventory/{sku}/adjust"
    bodies = [
        {},
        {"delta": 5},
        {"reason": "no delta"},
        {"delta": 0, "reason": "zero"},
        {"delta": 1.5, "reason": "real"},
        {"delta": 2.0, "reason": "real"},
        {"delta": "3", "reason": "string"},
        {"delta": True, "reason": "bool"},
        {"delta": None, "reason": "null"},
        {"delta": 1000000001, "reason": "too big"},
        {"delta": -1000000001, "reason": "too small"},
        {"delta": 2 ** 63, "reason": "overflow"},
        {"delta": 1, "reason": ""},
        {"delta": 1, "reason": "x" * 257},
        {"delta": 1, "reason": 42},
        {"delta": 1, "reason": "ok", "extra": 1},
        [1, 2],
    ]
    for body in bodies:
        r = http("POST", url, body=body)
        assert r.status == 400, (body, r.status, r.body)
        assert r.content_type.startswith("application/problem+json"), body
    assert http("POST", url, raw=b'{"delta": 1, "reason": ').status == 400
    assert http("POST", url, raw=b'{"delta": 1, "delta": 2, "reason": "dup"}').status == 400
    assert http("POST", url, raw=b'{"delta": 1, "reason": "x"}',
                headers={"Content-Type": "text/plain"}).status == 415
    # The bounds of reason's length are accepted.
    assert adjust(system, sku, 1, "x" * 256).status == 200
    assert adjust(system, sku, -1, "undo").status == 200
    r = adjust(system, sku, 1, "bad precondition", headers={"If-Match": "nope"})
    assert r.status == 400 and r.json()["field"] == "If-Match"
    r = adjust(system, sku, 1, "bad key", headers={"Idempotency-Key": "k" * 129})
    assert r.status == 400 and r.json()["field"] == "Idempotency-Key"
    stock, etag = read(system, sku)
    assert stock == before[0]
    assert psql(system.inventory.db,
                f"SELECT count(*) FROM stock_adjustments WHERE sku = '{sku}'") == [["2"]]

    # Unknown SKUs: 404, nothing created.
    for missing in (new_sku("NOPE"), "bad%20sku"):
        r = adjust(system, missing, 1, "restock")
        assert r.status == 404, (missing, r.status, r.body)
    assert system.inventory.get(f"/inventory/{new_sku('NOPE')}").status == 404
    r = adjust(system, new_sku("NOPE"), 1, "restock", headers={"If-Match": "*"})
    assert r.status == 404


def test_adjust_honours_if_match(system):
    sku = new_sku("IFM")
    put(system, sku, {"available": 10})
    _, etag = read(system, sku)
    r = adjust(system, sku, 3, "counted", headers={"If-Match": etag})
    assert r.status == 200 and r.json()["available"] == 13
    after = read(system, sku)
    r = adjust(system, sku, 3, "counted again", headers={"If-Match": etag})
    assert r.status == 412 and r.headers["ETag"] == after[1]
    assert read(system, sku) == after


def test_adjust_idempotency_key(system):
    sku = new_sku("IDEM")
    put(system, sku, {"available": 10})
    key = str(uuid.uuid4())
    first = adjust(system, sku, 4, "delivery 1", headers={"Idempotency-Key": key})
    assert first.status == 200 and first.json()["available"] == 14
    # A later change, then the retry: the answer of the first time, applied once.
    assert adjust(system, sku, 1, "other").status == 200
    again = adjust(system, sku, 4, "delivery 1", headers={"Idempotency-Key": key})
    assert again.status == 200 and again.json() == first.json()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert read(system, sku)[0]["available"] == 15
    # The same key with another request.
    r = adjust(system, sku, 5, "delivery 1", headers={"Idempotency-Key": key})
    assert r.status == 422 and r.json()["field"] == "Idempotency-Key"

    # Concurrent retries of one request: applied once, every answer the same.
    key2 = str(uuid.uuid4())
    barrier = threading.Barrier(12)

    def attempt(_):
        barrier.wait()
        return adjust(system, sku, 7, "delivery 2", headers={"Idempotency-Key": key2})

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(attempt, range(12)))
    assert {r.status for r in results} == {200}, [(r.status, r.body) for r in results]
    assert {json.dumps(r.json(), sort_keys=True) for r in results} == \
        {json.dumps(dict(read(system, sku)[0]), sort_keys=True)}
    assert read(system, sku)[0]["available"] == 22
    events = wait_events(system, sku, 4)
    assert [e["available"] for e in events] == [10, 14, 15, 22]


def test_etag_changes_when_an_order_reserves(system):
    sku = new_sku("RSV")
    put(system, sku, {"available": 10})
    _, etag = read(system, sku)
    order = system.place([{"sku": sku, "quantity": 3}])
    system.wait_status(order["id"], ("CONFIRMED", "SHIPMENT_SCHEDULED"))
    stock, now = wait_until(lambda: (lambda s: s if s[0]["reserved"] == 3 else None)(
        read(system, sku)), 30, 0.2, "the reservation")
    assert stock["available"] == 7 and now != etag
    # A write based on the read before the reservation is refused, and the reservation stays.
    assert put(system, sku, {"available": 10}, if_match=etag).status == 412
    assert adjust(system, sku, 5, "late", headers={"If-Match": etag}).status == 412
    r = system.inventory.get(f"/inventory/{sku}", headers={"If-None-Match": etag})
    assert r.status == 200
    assert read(system, sku) == (stock, now)
