"""Test harness for the end-to-end tests: runs the four service binaries as processes against
the real broker and PostgreSQL that tests/run.sh started, and talks to them the way users do:
HTTP, and Kafka through kcat, Kafka's own tools and python's confluent_kafka and avro."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("CV_TEST_BIN", os.path.join(ROOT, "build", "bin"))
BROKERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
KAFKA_SH = os.environ.get("KAFKA_SH", os.path.join(ROOT, "deploy", "local", "kafka.sh"))
DB_PREFIX = os.environ.get("CV_TEST_DB_PREFIX", "cvt_manual_")
PG = dict(
    host=os.environ.get("PGHOST", "127.0.0.1"),
    port=os.environ.get("PGPORT", "5432"),
    user=os.environ.get("PGUSER", "postgres"),
)
SERVICES = ("order", "inventory", "shipping", "audit")
TOPICS = ("orders", "inventory", "shipments")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(db, sql):
    """Runs sql on database db; returns the rows as lists of strings."""
    out = subprocess.run(
        ["psql", "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", PG["host"], "-p",
         PG["port"], "-U", PG["user"], "-d", db, "-c", sql],
        check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def wait_until(predicate, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "")


def http(method, url, body=None, headers=None, raw=None, timeout=40):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read())


class Service:
    """One running service process."""

    def __init__(self, name, db, port, log_dir, env=None):
        self.name, self.db, self.port = name, db, port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = os.path.join(log_dir, f"{name}-{port}.log")
        self.env = dict(os.environ)
        self.env.update({
            "HTTP_PORT": str(port),
            "DATABASE_URL": f"host={PG['host']} port={PG['port']} user={PG['user']} dbname={db}",
            "KAFKA_BOOTSTRAP_SERVERS": BROKERS,
            "LOG_LEVEL": "info",
            # Most tests exercise the saga, not the gate: laptop mode (loopback only). The
            # authentication tests (test_auth.py) turn it on with keys of their own.
            "AUTH_REQUIRED": "false",
        })
        self.env.update(env or {})
        self.proc = None

    def start(self, wait=True):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([os.path.join(BIN, f"{self.name}-service")], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=60):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}: "
                                     f"see {self.log_path}")
            try:
                return http("GET", self.url + "/readyz", timeout=2).status == 200
            except OSError:
                return False
        wait_until(ready, timeout, 0.2, f"{self.name} /readyz")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the process; returns its exit status (0 expected after SIGTERM)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout}s after {sig}")

    def get(self, path, **kw):
        return http("GET", self.url + path, **kw)

    def post(self, path, body=None, **kw):
        return http("POST", self.url + path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return http("PUT", self.url + path, body=body, **kw)

    def metric(self, name):
        """Sum of a metric's samples (all label sets) in /metrics."""
        total = 0.0
        for line in self.get("/metrics").body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


class System:
    """The four services with fresh databases, sharing the test broker."""

    def __init__(self, tag, log_dir, env=None):
        self.tag = tag
        self.log_dir = log_dir
        self.dbs = {s: f"{DB_PREFIX}{tag}_{s}" for s in SERVICES}
        for db in self.dbs.values():
            psql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            psql("postgres", f'CREATE DATABASE "{db}"')
        self.env = env or {}
        self.services = {s: Service(s, self.dbs[s], free_port(), log_dir, self.env.get(s))
                         for s in SERVICES}

    def __getattr__(self, name):
        if name in SERVICES:
            return self.services[name]
        raise AttributeError(name)

    def start(self):
        for s in self.services.values():
            s.start(wait=False)
        for s in self.services.values():
            s.wait_ready()
        return self

    def stop(self):
        codes = {name: s.stop() for name, s in self.services.items()}
        return codes

    def drop(self):
        for db in self.dbs.values():
            psql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    # ---- helpers for the saga ----
    def place(self, items, customer="alice", **extra):
        body = {"customer_id": customer, "items": items}
        body.update(extra)
        r = self.order.post("/orders", body)
        assert r.status == 201, (r.status, r.body)
        return r.json()

    def wait_status(self, order_id, statuses, timeout=30):
        want = statuses if isinstance(statuses, str) else ",".join(statuses)
        deadline = time.monotonic() + timeout
        while True:
            left = int(max(1, min(30, deadline - time.monotonic())) * 1000)
            order = self.order.get(f"/orders/{order_id}?wait_for={want}&timeout_ms={left}").json()
            if order["status"] in want.split(","):
                return order
            if time.monotonic() > deadline:
                raise AssertionError(f"order {order_id} is {order['status']}, not {want}")

    def stock(self, sku):
        r = self.inventory.get(f"/inventory/{sku}")
        assert r.status == 200, (sku, r.status, r.body)
        return r.json()

    def set_stock(self, sku, available, name=None):
        body = {"available": available}
        if name:
            body["name"] = name
        r = self.inventory.put(f"/inventory/{sku}", body)
        assert r.status == 200, (r.status, r.body)
        return r.json()

    def audit_events(self, **query):
        events, after = [], None
        while True:
            q = dict(query, limit=1000)
            if after:
                q["after"] = after
            qs = "&".join(f"{k}={v}" for k, v in q.items())
            page = self.audit.get(f"/events?{qs}").json()
            events += page["events"]
            after = page["next"]
            if not after:
                return events


def kafka_tool(*args, check=True):
    return subprocess.run([KAFKA_SH, "tool", *args], check=check, capture_output=True,
                          encoding="utf-8", errors="replace")


def kcat_records(topic, timeout=20):
    """Every record of topic as dicts of key, value (bytes), headers, partition, offset; read
    with kcat in a binary-safe format."""
    out = subprocess.run(["kcat", "-b", BROKERS, "-C", "-t", topic, "-o", "beginning", "-e",
                          "-q", "-f", "%p %o %K %k%R%s %h\n"],
                         check=True, capture_output=True, timeout=timeout).stdout
    records, pos = [], 0
    while pos < len(out):
        sp1 = out.index(b" ", pos)
        partition = int(out[pos:sp1])
        sp2 = out.index(b" ", sp1 + 1)
        offset = int(out[sp1 + 1:sp2])
        sp3 = out.index(b" ", sp2 + 1)
        klen = int(out[sp2 + 1:sp3])
        pos = sp3 + 1
        key = out[pos:pos + klen] if klen >= 0 else None
        pos += max(klen, 0)
        vlen = int.from_bytes(out[pos:pos + 4], "big", signed=True)
        pos += 4
        value = out[pos:pos + vlen] if vlen >= 0 else None
        pos += max(vlen, 0) + 1  # the space
        end = out.index(b"\n", pos)
        hdr_text = out[pos:end].decode("utf-8", "replace")
        pos = end + 1
        headers = {}
        for pair in hdr_text.split(",") if hdr_text else []:
            k, _, v = pair.partition("=")
            headers[k] = v
        records.append(dict(partition=partition, offset=offset, key=key, value=value,
                            headers=headers))
    return records
