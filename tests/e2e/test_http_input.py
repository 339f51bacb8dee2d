"""Bad HTTP input gets a 4xx problem+json naming what is wrong, and writes nothing."""

import pytest

from conveyor import http, psql


def outbox_and_orders(system):
    """What a request could have written: orders, idempotency keys, outbox rows (the outbox
    sequence, since the relay deletes rows once published)."""
    return psql(system.dbs["order"],
                "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM idempotency_keys),"
                " (SELECT last_value FROM outbox_id_seq)")[0]


GOOD_ITEM = {"sku": "WIDGET-1", "quantity": 1}

BAD_BODIES = [
    # (body, expected status, field named)
    ({"items": [GOOD_ITEM]}, 400, "customer_id"),
    ({"customer_id": "", "items": [GOOD_ITEM]}, 400, "customer_id"),
    ({"customer_id": "x" * 129, "items": [GOOD_ITEM]}, 400, "customer_id"),
    ({"customer_id": 42, "items": [GOOD_ITEM]}, 400, "customer_id"),
    ({"customer_id": "a"}, 400, "items"),
    ({"customer_id": "a", "items": []}, 400, "items"),
    ({"customer_id": "a", "items": [GOOD_ITEM] * 101}, 400, "items"),
    ({"customer_id": "a", "items": "WIDGET-1"}, 400, "items"),
    ({"customer_id": "a", "items": [{"quantity": 1}]}, 400, "items[0].sku"),
    ({"customer_id": "a", "items": [{"sku": "bad sku!", "quantity": 1}]}, 400, "items[0].sku"),
    ({"customer_id": "a", "items": [{"sku": "A" * 65, "quantity": 1}]}, 400, "items[0].sku"),
    ({"customer_id": "a", "items": [GOOD_ITEM, {"sku": "B", "quantity": 0}]}, 400,
     "items[1].quantity"),
    ({"customer_id": "a", "items": [{"sku": "B", "quantity": -3}]}, 400, "items[0].quantity"),
    ({"customer_id": "a", "items": [{"sku": "B", "quantity": 10001}]}, 400, "items[0].quantity"),
    ({"customer_id": "a", "items": [{"sku": "B", "quantity": 1.5}]}, 400, "items[0].quantity"),
    ({"customer_id": "a", "items": [{"sku": "B", "quantity": "2"}]}, 400, "items[0].quantity"),
    ({"customer_id": "a", "items": [{"sku": "B", "quantity": 1, "unit_price_cents": -1}]}, 400,
     "items[0].unit_price_cents"),
    ({"customer_id": "a", "items": [{"sku": "B", "quantity": 1, "colour": "red"}]}, 400,
     "items[0].colour"),
    ({"customer_id": "a", "items": [GOOD_ITEM], "coupon": "FREE"}, 400, "coupon"),
    ({"customer_id": "a", "items": [GOOD_ITEM], "shipping_address": "Main St"}, 400,
     "shipping_address"),
    ({"customer_id": "a", "items": [GOOD_ITEM], "shipping_address": {"zip": 1234}}, 400,
     "shipping_address.zip"),
    ({"customer_id": "a", "items": [GOOD_ITEM], "shipping_address": {"": "x"}}, 400,
     "shipping_address"),
]


@pytest.mark.parametrize("body,status,field", BAD_BODIES)
def test_invalid_order_rejected(system, body, status, field):
    before = outbox_and_orders(system)
    r = system.order.post("/orders", body)
    assert r.status == status, r.body
    assert r.content_type.startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == status
    assert problem["field"] == field, problem
    assert problem["invalid-params"][0]["name"] == field
    assert outbox_and_orders(system) == before


def raw_post(system, body, content_type="application/json", path="/orders"):
    return http("POST", system.order.url + path, raw=body,
                headers={"Content-Type": content_type})


@pytest.mark.parametrize("raw", [b"{", b"{\"customer_id\": }", b"[1, 2]", b"\"text\"", b"",
                                 b"{\"a\": 1} trailing", b"\xff\xfe\x00",
                                 b"{\"customer_id\": \"a\", \"customer_id\": \"b\"}"])
def test_malformed_json(system, raw):
    before = outbox_and_orders(system)
    r = raw_post(system, raw)
    assert r.status == 400, (raw, r.status)
    assert r.content_type.startswith("application/problem+json")
    assert outbox_and_orders(system) == before


def test_wrong_content_type(system):
    r = raw_post(system, b'{"customer_id": "a", "items": []}', "text/plain")
    assert r.status == 415
    assert r.content_type.startswith("application/problem+json")
    r = raw_post(system, b'{"customer_id":"a","items":[{"sku":"B","quantity":1}]}',
                 "application/json; charset=utf-8")
    assert r.status == 201


def test_oversized_body(system):
    before = outbox_and_orders(system)
    big = b'{"customer_id": "' + b"x" * (70 * 1024) + b'", "items": []}'
    r = raw_post(system, big)
    assert r.status == 413
    assert r.content_type.startswith("application/problem+json")
    assert outbox_and_orders(system) == before


def test_unknown_route_and_method(system):
    r = system.order.get("/nothing/here")
    assert r.status == 404 and r.content_type.startswith("application/problem+json")
    r = http("DELETE", system.order.url + "/orders")
    assert r.status == 405
    assert "POST" in r.headers["Allow"] and "GET" in r.headers["Allow"]
    r = http("PUT", system.order.url + "/orders/x/cancel", body={})
    assert r.status == 405
    r = http("DELETE", system.inventory.url + "/inventory/WIDGET-1")
    assert r.status == 405


def test_bad_idempotency_key(system):
    before = outbox_and_orders(system)
    r = system.order.post("/orders", {"customer_id": "a", "items": [GOOD_ITEM]},
                          headers={"Idempotency-Key": "k" * 129})
    assert r.status == 400 and r.json()["field"] == "Idempotency-Key"
    assert outbox_and_orders(system) == before


def test_bad_query_parameters(system):
    for path in ("/orders?limit=abc", "/orders?limit=501", "/orders?after=-1",
                 "/orders?status=shipped"):
        r = system.order.get(path)
        assert r.status == 400, path
        assert r.content_type.startswith("application/problem+json")
    for path in ("/events?since=yesterday", "/events?limit=0", "/events?after=x"):
        assert system.audit.get(path).status == 400, path
    assert system.shipping.get("/shipments?status=LOST").status == 400


def test_health_endpoints(system):
    for svc in system.services.values():
        assert svc.get("/healthz").status == 200
        r = svc.get("/readyz")
        assert r.status == 200 and r.json()["status"] == "ready"
        metrics = svc.get("/metrics")
        assert metrics.status == 200
        assert metrics.content_type.startswith("text/plain")
        assert b"http_requests_total" in metrics.body
