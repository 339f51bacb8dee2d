"""Authentication and authorisation of every HTTP route, against the real services, broker and
databases: a matrix of routes x callers (no token, expired, wrong issuer, wrong audience, bad
signature, alg none, HS256 signed with the RSA public key, customer, other customer, operator,
auditor) where every answer is the expected one and refused requests change nothing (database
contents and topic end offsets compared); the rate limit on POST /orders; the token claims
edge cases; and no token or key in the services' logs."""

import base64
import glob
import hashlib
import hmac
import json
import os
import re
import time
import uuid

import pytest

jwt = pytest.importorskip("jwt")  # python3-jwt
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

from conftest import make_system  # noqa: E402
from conveyor import BROKERS, SERVICES, http, psql, wait_until  # noqa: E402

ISSUER = "https://issuer.conveyor.test"
AUDIENCE = "conveyor"
TOPICS = ["orders", "inventory", "shipments", "order.dlq", "inventory.dlq", "shipping.dlq",
          "audit.dlq"]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64int(n):
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Keys:
    """Keys made for this run: RS256 and ES256 published in a JWKS file, an HS256 secret in a
    file, and an RSA key nobody trusts."""

    def __init__(self, directory):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.secret = base64.b64encode(os.urandom(48))
        rn = self.rsa.public_key().public_numbers()
        en = self.ec.public_key().public_numbers()
        jwks = {"keys": [
            {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256", "n": b64int(rn.n),
             "e": b64int(rn.e)},
            {"kty": "EC", "kid": "ec1", "use": "sig", "crv": "P-256",
             "x": b64(en.x.to_bytes(32, "big")), "y": b64(en.y.to_bytes(32, "big"))},
        ]}
        self.jwks_path = os.path.join(directory, "jwks.json")
        with open(self.jwks_path, "w") as f:
            json.dump(jwks, f)
        self.secret_path = os.path.join(directory, "hs256.secret")
        with open(self.secret_path, "wb") as f:
            f.write(self.secret + b"\n")
        self.rsa_public_pem = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.issued = []  # every token made, for the log grep

    def claims(self, sub, roles, **over):
        now = int(time.time())
        c = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "roles": roles, "iat": now,
             "exp": now + 600}
        c.update(over)
        return {k: v for k, v in c.items() if v is not None}

    def token(self, sub, roles, alg="RS256", **over):
        c = self.claims(sub, roles, **over)
        if alg == "RS256":
            t = jwt.encode(c, self.rsa, algorithm="RS256", headers={"kid": "rsa1"})
        elif alg == "ES256":
            t = jwt.encode(c, self.ec, algorithm="ES256", headers={"kid": "ec1"})
        elif alg == "HS256":
            t = jwt.encode(c, self.secret, algorithm="HS256")
        elif alg == "rogue":
            t = jwt.encode(c, self.rogue, algorithm="RS256", headers={"kid": "rsa1"})
        elif alg == "none":
            t = self.raw({"alg": "none", "typ": "JWT"}, c, b"")
        elif alg == "confused":  # HS256 keyed with the RSA public key: algorithm confusion
            t = self.raw({"alg": "HS256", "kid": "rsa1"}, c, None, self.rsa_public_pem)
        else:
            raise ValueError(alg)
        self.issued.append(t)
        return t

    @staticmethod
    def raw(header, claims, sig, hmac_key=None):
        signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
        if hmac_key is not None:
            sig = hmac.new(hmac_key, signing.encode(), hashlib.sha256).digest()
        return signing + "." + b64(sig)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return Keys(str(tmp_path_factory.mktemp("auth-keys")))


@pytest.fixture(scope="module")
def system(request, log_dir, keys):
    auth = {"AUTH_REQUIRED": "true", "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE,
            "AUTH_JWKS_FILE": keys.jwks_path, "AUTH_HS256_SECRET_FILE": keys.secret_path,
            "AUTH_CLOCK_SKEW_S": "30", "RATE_LIMIT_PER_S": "1", "RATE_LIMIT_BURST": "10"}
    s = make_system(request, log_dir, {name: dict(auth) for name in SERVICES}).start()
    yield s
    codes = s.stop()
    s.drop()
    assert codes == {name: 0 for name in codes}, f"exit codes {codes} (logs in {log_dir})"


def call(svc, method, path, token=None, body=None):
    headers = {"Authorization": "Bearer " + token} if token else {}
    return http(method, svc.url + path, body=body, headers=headers)


# ---- the state a refused request must leave alone ----

def db_state(system):
    """A digest of every row of every table of the four databases."""
    state = {}
    for name, db in system.dbs.items():
        tables = [r[0] for r in psql(db, "SELECT tablename FROM pg_tables "
                                         "WHERE schemaname = 'public' ORDER BY 1")]
        for t in tables:
            rows = psql(db, f'SELECT count(*), md5(coalesce(string_agg(x::text, \'|\' '
                            f'ORDER BY x::text), \'\')) FROM "{t}" x')
            state[f"{name}.{t}"] = tuple(rows[0])
    return state


def topic_state(system):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": "auth-probe-" + uuid.uuid4().hex})
    try:
        ends = {}
        for t in TOPICS:
            name = system.prefix + t
            md = c.list_topics(name, timeout=10).topics[name]
            for p in md.partitions:
                ends[(t, p)] = c.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
        return ends
    finally:
        c.close()


def snapshot(system):
    return db_state(system), topic_state(system)


def quiesce(system, timeout=60):
    """Waits until nothing moves any more (the saga and the audit have caught up)."""
    last = [snapshot(system)]

    def still():
        time.sleep(1.5)
        now = snapshot(system)
        same = now == last[0]
        last[0] = now
        return same
    wait_until(still, timeout, 0, "a quiet system")
    return last[0]


# ---- the matrix ----

BAD_CALLERS = ["no token", "expired", "wrong issuer", "wrong audience", "bad signature",
               "alg none", "HS256 with RSA public key"]
GOOD_CALLERS = ["customer", "other customer", "operator", "auditor"]
CALLERS = BAD_CALLERS + GOOD_CALLERS


def tokens_for(keys):
    past = int(time.time()) - 3600
    return {
        "no token": None,
        "expired": keys.token("alice", ["customer"], exp=past, iat=past - 600),
        "wrong issuer": keys.token("alice", ["customer"], iss="https://elsewhere.test"),
        "wrong audience": keys.token("alice", ["customer"], aud="another-api"),
        "bad signature": keys.token("alice", ["customer", "operator", "auditor"], alg="rogue"),
        "alg none": keys.token("alice", ["customer", "operator", "auditor"], alg="none"),
        "HS256 with RSA public key": keys.token("alice", ["customer", "operator", "auditor"],
                                                alg="confused"),
        "customer": keys.token("alice", ["customer"], alg="RS256"),
        "other customer": keys.token("bob", ["customer"], alg="ES256"),
        "operator": keys.token("op-1", ["operator"], alg="HS256"),
        "auditor": keys.token("aud-1", ["auditor"], alg="RS256"),
    }


def expected(route_access, caller, owner_route=False):
    """The answer a caller gets: 401 for any bad token, 403 without the role, 404 for another
    customer's order, else the route's success status."""
    ok_status, roles = route_access
    if roles == "open":
        return ok_status
    if caller in BAD_CALLERS:
        return 401
    role = {"customer": "customer", "other customer": "customer", "operator": "operator",
            "auditor": "auditor"}[caller]
    if role not in roles:
        return 403
    if caller == "other customer" and owner_route:
        return owner_route
    return ok_status


def test_route_matrix(system, keys):
    tok = tokens_for(keys)
    alice = tok["customer"]
    operator = tok["operator"]
    auditor = tok["auditor"]
    sku = "AUTH-SKU-1"
    r = call(system.inventory, "PUT", f"/inventory/{sku}", operator,
             {"name": "matrix widget", "available": 100})
    assert r.status == 200, (r.status, r.body)

    def place():
        r = call(system.order, "POST", "/orders", alice,
                 {"items": [{"sku": sku, "quantity": 1, "unit_price_cents": 100}],
                  "shipping_address": {"city": "Lyon"}})
        assert r.status == 201, (r.status, r.body)
        return r.json()["id"]
    to_cancel, to_ship = place(), place()
    for oid in (to_cancel, to_ship):
        wait_until(lambda: call(system.order, "GET", f"/orders/{oid}", alice).json()["status"]
                   == "SHIPMENT_SCHEDULED", 30, 0.2, f"order {oid} scheduled")
    event_id = wait_until(lambda: (call(system.audit, "GET", f"/events?order_id={to_ship}",
                                        auditor).json()["events"] or [None])[0], 30, 0.2,
                          "an audited event")["event_id"]
    order_body = {"items": [{"sku": sku, "quantity": 1, "unit_price_cents": 100}],
                  "customer_id": "alice"}

    C, O, A, ANY = {"customer"}, {"operator"}, {"auditor"}, {"customer", "operator", "auditor"}
    # (service, method, path, body, (success status, roles), 404 for another customer?)
    routes = [
        ("order", "GET", "/orders", None, (200, C), False),
        ("order", "GET", f"/orders/{to_cancel}", None, (200, C), 404),
        ("order", "POST", "/orders", order_body, (201, C), 403),
        # 200 CANCELLED, or 202 CANCELLING where cancellation waits for the other services.
        ("order", "POST", f"/orders/{to_cancel}/cancel", None, ((200, 202), C), 404),
        ("inventory", "GET", "/inventory", None, (200, ANY), False),
        ("inventory", "GET", f"/inventory/{sku}", None, (200, ANY), False),
        ("inventory", "PUT", f"/inventory/{sku}", {"available": 90}, (200, O), False),
        ("inventory", "POST", f"/inventory/{sku}/adjust", {"delta": 5, "reason": "matrix"},
         (200, O), False),
        ("shipping", "GET", "/shipments", None, (200, O), False),
        ("shipping", "GET", f"/shipments/{to_ship}", None, (200, O), False),
        ("shipping", "POST", f"/shipments/{to_ship}/dispatch", None, (200, O), False),
        ("shipping", "POST", f"/shipments/{to_ship}/deliver", None, (200, O), False),
        ("audit", "GET", "/events", None, (200, A), False),
        ("audit", "GET", f"/events/{event_id}", None, (200, A), False),
        ("audit", "GET", "/stats", None, (200, A), False),
    ]
    for name in SERVICES:
        for path in ("/healthz", "/readyz", "/metrics"):
            routes.append((name, "GET", path, None, (200, "open"), False))

    cells = [(route, caller) for route in routes for caller in CALLERS]
    def refusal(r, c):
        want = expected(r[4], c, r[5])
        return isinstance(want, int) and want >= 400
    refused = [(r, c) for r, c in cells if refusal(r, c)]
    allowed = [(r, c) for r, c in cells if not refusal(r, c)]
    results = []

    # Every refused request first, on a quiet system: together they must change nothing.
    before = quiesce(system)
    for route, caller in refused:
        svc, method, path, body, access, owner = route
        r = call(system.services[svc], method, path, tok[caller], body)
        want = expected(access, caller, owner)
        results.append((svc, method, path, caller, want, r))
        if want == 401:
            challenge = r.headers.get("WWW-Authenticate", "")
            assert challenge.startswith("Bearer"), (path, caller, r.headers)
            if caller != "no token":
                assert 'error="invalid_token"' in challenge, (path, caller, challenge)
        if want in (401, 403):
            assert r.content_type.startswith("application/problem+json"), (path, caller)
    time.sleep(3)  # an outbox row written by mistake would be published by now
    after = snapshot(system)
    assert after[0] == before[0], [k for k in before[0] if before[0][k] != after[0].get(k)]
    assert after[1] == before[1], "a refused request produced to a topic"

    # Then the allowed ones, reads before writes; dispatch before deliver, cancel last.
    def rank(cell):
        (svc, method, path, _, _, _), _ = cell
        return (method != "GET", "deliver" in path, "cancel" in path)
    for route, caller in sorted(allowed, key=rank):
        svc, method, path, body, access, owner = route
        r = call(system.services[svc], method, path, tok[caller], body)
        results.append((svc, method, path, caller, expected(access, caller, owner), r))

    wrong = [(svc, m, p, c, want, r.status, r.body[:200]) for svc, m, p, c, want, r in results
             if r.status not in (want if isinstance(want, tuple) else (want,))]
    print(f"\nroute matrix: {len(routes)} routes x {len(CALLERS)} callers = {len(cells)} "
          f"cells, {len(results) - len(wrong)} as expected, {len(refused)} refused "
          f"(state unchanged), {len(allowed)} allowed")
    assert not wrong, wrong

    # Listing shows a customer its own orders only.
    mine = call(system.order, "GET", "/orders", alice).json()["orders"]
    assert mine and {o["customer_id"] for o in mine} == {"alice"}
    assert call(system.order, "GET", "/orders", tok["other customer"]).json()["orders"] == []
    assert call(system.order, "GET", "/orders?customer_id=alice",
                tok["other customer"]).status == 403


def test_customer_id_comes_from_the_token(system, keys):
    bob = keys.token("bob-2", ["customer"], alg="ES256")
    r = call(system.order, "POST", "/orders", bob,
             {"items": [{"sku": "AUTH-SKU-2", "quantity": 1}]})
    assert r.status == 201, (r.status, r.body)
    assert r.json()["customer_id"] == "bob-2"


@pytest.mark.parametrize("case,over,alg,status", [
    ("within the clock skew", {"exp": -10}, "RS256", 200),
    ("beyond the clock skew", {"exp": -120}, "RS256", 401),
    ("not valid yet", {"nbf": 600}, "ES256", 401),
    ("nbf within the skew", {"nbf": 10}, "ES256", 200),
    ("no exp", {"exp": None}, "HS256", 401),
    ("audience in a list", {"aud": ["other", AUDIENCE]}, "RS256", 200),
    ("roles as a scope string", {"roles": None, "scope": "openid operator"}, "HS256", 200),
    ("no known role", {"roles": ["admin"]}, "RS256", 403),
])
def test_token_claims(system, keys, case, over, alg, status):
    now = int(time.time())
    claims = {k: (now + v if k in ("exp", "nbf") and v is not None else v)
              for k, v in over.items()}
    roles = claims.pop("roles", ["customer"])
    token = keys.token("carol", roles, alg=alg, **claims)
    assert call(system.inventory, "GET", "/inventory", token).status == status, case


def test_malformed_authorization(system, keys):
    good = keys.token("carol", ["customer"])
    for header in ("Basic Y2Fyb2w6eA==", "Bearer", "Bearer a.b", "Bearer " + good + ".x",
                   "Bearer " + good[:-4] + "AAAA", "Bearer !!!.###.$$$"):
        r = http("GET", system.inventory.url + "/inventory", headers={"Authorization": header})
        assert r.status == 401, (header[:20], r.status)
    unknown_kid = keys.raw({"alg": "RS256", "kid": "nope"}, keys.claims("c", ["customer"]), b"x")
    assert call(system.inventory, "GET", "/inventory", unknown_kid).status == 401


def test_rate_limit_per_subject(system, keys):
    """RATE_LIMIT_BURST=10, RATE_LIMIT_PER_S=1: a burst past ten is refused with 429 and
    Retry-After, creates nothing, and does not touch another subject's bucket."""
    token = keys.token("hasty", ["customer"])
    body = {"items": [{"sku": "AUTH-SKU-3", "quantity": 1}]}
    started = time.monotonic()
    answers = [call(system.order, "POST", "/orders", token, body) for _ in range(16)]
    elapsed = time.monotonic() - started
    created = [r for r in answers if r.status == 201]
    limited = [r for r in answers if r.status == 429]
    assert len(created) + len(limited) == len(answers), [r.status for r in answers]
    assert limited, "no request was limited"
    assert len(created) <= 10 + int(elapsed) + 1
    retry = int(limited[0].headers["Retry-After"])
    assert retry >= 1
    assert limited[0].content_type.startswith("application/problem+json")
    rows = psql(system.dbs["order"], "SELECT count(*) FROM orders WHERE customer_id = 'hasty'")
    assert int(rows[0][0]) == len(created)
    # Another subject is not limited by hasty's burst.
    other = keys.token("patient", ["customer"])
    assert call(system.order, "POST", "/orders", other, body).status == 201
    time.sleep(retry)
    assert call(system.order, "POST", "/orders", token, body).status == 201


def test_header_size_limit(system, keys):
    """HTTP_MAX_HEADER_BYTES (64 KiB by default): larger request headers get 431, and the
    service goes on answering."""
    import socket
    token = keys.token("carol", ["customer"])
    with socket.create_connection(("127.0.0.1", system.inventory.port), timeout=10) as s:
        s.sendall(b"GET /inventory HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 +
                  b"\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:80]
    r = http("GET", system.inventory.url + "/inventory",
             headers={"Authorization": "Bearer " + token, "X-Fine": "b" * 16000})
    assert r.status == 200


def test_probe_and_metrics_stay_open(system):
    for svc in system.services.values():
        for path in ("/healthz", "/readyz", "/metrics"):
            assert svc.get(path).status == 200, (svc.name, path)
    assert system.order.metric("http_auth_refused_total") > 0


def test_make_up_token_tool(system, keys):
    """deploy/local/token.py (what make up prints tokens with) mints tokens the services take."""
    import subprocess
    from conveyor import ROOT
    out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "deploy/local/token.py"),
                          "--secret-file", keys.secret_path, "--issuer", ISSUER, "--sub", "dave",
                          "--roles", "customer"], check=True, capture_output=True, text=True)
    token = out.stdout.strip()
    keys.issued.append(token)
    assert call(system.inventory, "GET", "/inventory", token).status == 200
    assert call(system.inventory, "PUT", "/inventory/X-1", token, {"available": 1}).status == 403


def run_briefly(name, env, timeout=20):
    """Starts a service binary with env on top of the harness's; returns (exit code or None if
    still running after the wait, its output)."""
    import subprocess
    from conveyor import BIN
    full = {k: v for k, v in os.environ.items() if k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    full.update(env)
    p = subprocess.Popen([os.path.join(BIN, f"{name}-service")], env=full,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out.decode()
    except subprocess.TimeoutExpired:
        p.terminate()
        out, _ = p.communicate(timeout=30)
        return None, out.decode()


@pytest.mark.parametrize("env,says", [
    ({}, "AUTH_ISSUER: required"),
    ({"AUTH_ISSUER": ISSUER}, "no key is set"),
    ({"AUTH_ISSUER": ISSUER, "AUTH_HS256_SECRET": "short"}, "AUTH_HS256_SECRET: HS256 secret "
                                                           "shorter than 32 bytes"),
    ({"AUTH_ISSUER": ISSUER, "AUTH_JWKS_FILE": "/nonexistent/jwks.json"}, "AUTH_JWKS_FILE"),
])
def test_auth_on_by_default_and_bad_keys_stop_the_service(env, says):
    """Without AUTH_REQUIRED the service requires authentication; missing or bad keys stop it
    at start (before it connects to anything) with one line naming the variable."""
    code, out = run_briefly("order", dict(env, DATABASE_URL="host=127.0.0.1 port=1 dbname=x"))
    assert code == 1, out
    assert says in out, out
    assert "short" not in out.replace("shorter", "")  # the secret is never echoed


@pytest.mark.parametrize("bind_any,address", [(None, "127.0.0.1"), ("true", "0.0.0.0")])
def test_auth_off_warns_and_binds_to_loopback(system, bind_any, address):
    """AUTH_REQUIRED=false: a warning at start, and the API on 127.0.0.1 even when HTTP_BIND
    asks for every address, unless AUTH_OFF_BIND_ANY (compose: behind its gateway)."""
    from conveyor import free_port
    port = free_port()
    env = {"AUTH_REQUIRED": "false", "HTTP_BIND": "0.0.0.0", "HTTP_PORT": str(port),
           "DATABASE_URL": system.inventory.env["DATABASE_URL"], "KAFKA_BOOTSTRAP_SERVERS": BROKERS,
           "TOPIC_PREFIX": system.prefix, "INVENTORY_SEED": "false", "KAFKA_GROUP_ID":
           system.prefix + "loopback-probe"}
    if bind_any:
        env["AUTH_OFF_BIND_ANY"] = bind_any
    code, out = run_briefly("inventory", env, timeout=8)
    assert code is None, out  # it was running
    assert "AUTH_REQUIRED=false" in out and '"level":"warn"' in out.replace(" ", ""), out
    assert f"listening on {address}:{port}" in out, out


def test_no_token_or_key_in_logs(system, keys, log_dir):
    """Runs last in this module: none of the tokens made here, the HS256 secret or a private key
    appears in any service log."""
    logs = b""
    for path in glob.glob(os.path.join(log_dir, "*.log")):
        with open(path, "rb") as f:
            logs += f.read()
    assert logs, "no service logs"
    assert keys.secret not in logs
    assert b"PRIVATE KEY" not in logs
    for t in keys.issued:
        for part in t.split("."):
            if len(part) >= 16:
                assert part.encode() not in logs, "a token (or part of one) was logged"
    assert not re.search(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ", logs)
