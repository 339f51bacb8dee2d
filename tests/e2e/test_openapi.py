"""Every route of every service answers as its OpenAPI document (docs/openapi/<name>.json) says:
real responses, successes and errors, validated against the document; the document is the one
each service serves at /openapi.json; and the documents list exactly the routes the code serves."""

import glob
import json
import os
import re
import uuid

import pytest

from conveyor import ROOT, http
from openapi_check import Checker, load

SERVICES = ("order", "inventory", "shipping", "audit")
BUILTIN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json")}


@pytest.fixture(scope="module")
def checkers():
    return {s: Checker(s) for s in SERVICES}


def call(system, checkers, service, method, path, body=None, headers=None, raw=None):
    r = http(method, system.services[service].url + path, body=body, headers=headers, raw=raw)
    return checkers[service].check(method, path, r)


def test_documents_list_exactly_the_routes_the_code_serves():
    for service in SERVICES:
        with open(os.path.join(ROOT, "services", service, "main.c")) as f:
            code = set(re.findall(r'\{\s*"([A-Z]+)",\s*"(/[^"]*)"', f.read()))
        documented = Checker(service).operations()
        assert documented == code | BUILTIN, (service, documented ^ (code | BUILTIN))
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "docs", "openapi",
                                                                      "*.json"))) == \
        sorted(f"{s}.json" for s in SERVICES)


def test_each_service_serves_its_document(system):
    for service in SERVICES:
        r = system.services[service].get("/openapi.json")
        assert r.status == 200
        assert r.content_type.startswith("application/json")
        assert r.json() == load(service)
        assert r.json()["openapi"].startswith("3.1")


def test_every_route_answers_as_documented(system, checkers):
    c = lambda *a, **kw: call(system, checkers, *a, **kw)  # noqa: E731
    for service in SERVICES:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert c(service, "GET", path).status == 200

    # inventory
    sku = "OAS-" + uuid.uuid4().hex[:8]
    r = c("inventory", "PUT", f"/inventory/{sku}", {"name": "Widget", "available": 20})
    assert r.status == 200
    etag = r.headers.get("ETag") or r.headers.get("Etag")
    assert c("inventory", "GET", f"/inventory/{sku}").status == 200
    assert c("inventory", "GET", f"/inventory/{sku}", headers={"If-None-Match": etag}).status == 304
    assert c("inventory", "GET", "/inventory/NOPE-" + uuid.uuid4().hex[:8]).status == 404
    assert c("inventory", "PUT", "/inventory/bad%20sku", {"available": 1}).status == 400
    assert c("inventory", "GET", "/inventory?limit=2").status == 200
    assert c("inventory", "GET", "/inventory?limit=0").status == 400
    assert c("inventory", "PUT", f"/inventory/{sku}", {"available": -1}).status == 400
    assert c("inventory", "PUT", f"/inventory/{sku}", {"available": 5},
             headers={"If-Match": '"999999"'}).status == 412
    assert c("inventory", "PUT", f"/inventory/{sku}", raw=b"{nope").status == 400
    assert c("inventory", "POST", f"/inventory/{sku}/adjust",
             {"delta": 5, "reason": "received"}).status == 200
    assert c("inventory", "POST", f"/inventory/{sku}/adjust",
             {"delta": -1000, "reason": "write-off"}).status == 409
    assert c("inventory", "POST", "/inventory/NOPE-x/adjust",
             {"delta": 1, "reason": "x"}).status == 404
    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert c("inventory", "POST", f"/inventory/{sku}/adjust", {"delta": 1, "reason": "r"},
             headers=key).status == 200
    assert c("inventory", "POST", f"/inventory/{sku}/adjust", {"delta": 2, "reason": "r"},
             headers=key).status == 422

    # order
    body = {"customer_id": "oas", "items": [{"sku": sku, "quantity": 1,
                                             "unit_price_cents": 250}],
            "shipping_address": {"city": "Lyon"}}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    r = c("order", "POST", "/orders", body, headers=key)
    assert r.status == 201
    oid = r.json()["id"]
    assert c("order", "POST", "/orders", body, headers=key).status == 200
    assert c("order", "POST", "/orders", dict(body, customer_id="other"),
             headers=key).status == 422
    assert c("order", "POST", "/orders", {"customer_id": "x", "items": []}).status == 400
    assert c("order", "POST", "/orders", raw=b"not json",
             headers={"Content-Type": "text/plain"}).status == 415
    assert c("order", "GET", f"/orders/{oid}?wait_for=SHIPMENT_SCHEDULED&timeout_ms=30000"
             ).json()["status"] == "SHIPMENT_SCHEDULED"
    assert c("order", "GET", f"/orders/{oid}?wait_for=NOPE").status == 400
    assert c("order", "GET", f"/orders/{uuid.uuid4()}").status == 404
    assert c("order", "GET", "/orders?customer_id=oas&limit=5").status == 200
    assert c("order", "GET", "/orders?status=NOPE").status == 400

    # shipping
    assert c("shipping", "GET", f"/shipments/{oid}").status == 200
    assert c("shipping", "GET", f"/shipments/{uuid.uuid4()}").status == 404
    assert c("shipping", "GET", "/shipments?status=SCHEDULED&limit=5").status == 200
    assert c("shipping", "GET", "/shipments?status=NOPE").status == 400
    assert c("shipping", "POST", f"/shipments/{oid}/deliver").status == 409
    assert c("shipping", "POST", f"/shipments/{oid}/dispatch").status == 200
    assert c("shipping", "POST", f"/shipments/{oid}/deliver").status == 200
    assert c("shipping", "POST", f"/shipments/{uuid.uuid4()}/dispatch").status == 404
    # A delivered order cannot be cancelled; a fresh one can.
    system.wait_status(oid, "DELIVERED")
    assert c("order", "POST", f"/orders/{oid}/cancel").status == 409
    r = c("order", "POST", "/orders", dict(body, customer_id="oas-cancel"))
    assert c("order", "POST", f"/orders/{r.json()['id']}/cancel").status in (200, 202)
    assert c("order", "POST", f"/orders/{uuid.uuid4()}/cancel").status == 404

    # audit
    def recorded():
        page = c("audit", "GET", f"/events?order_id={oid}&limit=100")
        return page.json()["events"] if len(page.json()["events"]) >= 4 else None
    from conveyor import wait_until
    events = wait_until(recorded, 30, 0.5, "audit events of the order")
    assert c("audit", "GET", f"/events/{events[0]['event_id']}").status == 200
    assert c("audit", "GET", f"/events/{uuid.uuid4()}").status == 404
    assert c("audit", "GET", "/events?since=yesterday").status == 400
    assert c("audit", "GET", "/stats").status == 200

    unseen = {s: checkers[s].unseen() for s in SERVICES if checkers[s].unseen()}
    assert not unseen, f"operations no response exercised: {unseen}"


def test_the_checker_refuses_what_the_document_does_not_allow():
    from conveyor import Response
    order = Checker("order")
    good = {"id": str(uuid.uuid4()), "customer_id": "c", "items": [], "total_cents": 0,
            "status": "PENDING", "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z"}
    ok = Response(200, {"Content-Type": "application/json"}, json.dumps(good).encode())
    order.check("GET", "/orders/x", ok)
    refused = [
        Response(200, {"Content-Type": "application/json"},
                 json.dumps({k: v for k, v in good.items() if k != "status"}).encode()),
        Response(200, {"Content-Type": "application/json"},
                 json.dumps(dict(good, status="LOST")).encode()),
        Response(200, {"Content-Type": "application/json"},
                 json.dumps(dict(good, created_at="yesterday")).encode()),
        Response(418, {"Content-Type": "application/json"}, b"{}"),
        Response(200, {"Content-Type": "text/html"}, b"<p>"),
    ]
    for r in refused:
        with pytest.raises(AssertionError):
            order.check("GET", "/orders/x", r)
    with pytest.raises(AssertionError):
        order.check("DELETE", "/orders/x", ok)
    with pytest.raises(AssertionError):
        order.check("GET", "/nowhere", ok)


def hs256_token(secret, sub, roles):
    import base64
    import hashlib
    import hmac
    import time

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    now = int(time.time())
    claims = {"iss": "https://issuer.openapi.test", "aud": "conveyor", "sub": sub,
              "roles": roles, "iat": now, "exp": now + 600}
    signing = (b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." +
               b64(json.dumps(claims).encode()))
    return signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


def test_refusals_of_authentication_answer_as_documented(request, log_dir, tmp_path):
    """With authentication on: 401 without a token, 403 without the route's role, and the open
    routes (/openapi.json among them) without any, each as the documents say."""
    from conftest import make_system
    secret = uuid.uuid4().hex.encode() + uuid.uuid4().hex.encode()
    (tmp_path / "secret").write_bytes(secret + b"\n")
    auth = {"AUTH_REQUIRED": "true", "AUTH_ISSUER": "https://issuer.openapi.test",
            "AUTH_AUDIENCE": "conveyor", "AUTH_HS256_SECRET_FILE": str(tmp_path / "secret")}
    system = make_system(request, log_dir, {s: dict(auth) for s in SERVICES}).start()
    try:
        checkers = {s: Checker(s) for s in SERVICES}
        customer = {"Authorization": "Bearer " + hs256_token(secret, "oas-c", ["customer"])}
        auditor = {"Authorization": "Bearer " + hs256_token(secret, "oas-a", ["auditor"])}
        c = lambda *a, **kw: call(system, checkers, *a, **kw)  # noqa: E731
        for service in SERVICES:
            assert c(service, "GET", "/openapi.json").status == 200
            assert c(service, "GET", "/metrics").status == 200
        assert c("order", "GET", "/orders").status == 401
        assert c("order", "GET", "/orders", headers=auditor).status == 403
        assert c("order", "GET", "/orders", headers=customer).status == 200
        assert c("order", "POST", "/orders", {"customer_id": "oas-c", "items": [
            {"sku": "OAS-AUTH", "quantity": 1}]}, headers=customer).status == 201
        assert c("inventory", "PUT", "/inventory/OAS-AUTH", {"available": 1},
                 headers=customer).status == 403
        assert c("inventory", "GET", "/inventory", headers=auditor).status == 200
        assert c("shipping", "GET", "/shipments").status == 401
        assert c("audit", "GET", "/stats", headers=customer).status == 403
        assert c("audit", "GET", "/stats", headers=auditor).status == 200
    finally:
        codes = system.stop()
        system.drop()
    assert codes == {name: 0 for name in codes}, codes
