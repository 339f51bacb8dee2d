"""The services against a broker that takes only TLS with SASL/SCRAM-SHA-512: certificates made
here with openssl (a CA, a broker certificate for 127.0.0.1 and localhost), one SCRAM user per
service. The saga completes; with a wrong password a service never becomes ready and says why;
no password reaches a log. The services' libpq TLS setting (DB_SSLMODE) reaches libpq.

The broker is this module's own, on CV_TEST_SASL_KAFKA_PORT and the port after it (default:
the harness's broker port + 2 and + 3), running Kafka CV_TEST_SASL_KAFKA_VERSION [3.9.2]:
librdkafka before 2.6.1 (Debian 12 has 2.0.2) fails SCRAM against Kafka 4.x brokers, which
check the client's final nonce strictly (librdkafka #4895; docs/kafka-version.md)."""

import glob
import os
import secrets
import subprocess
import uuid

import pytest

from conveyor import BIN, KAFKA_SH, SERVICES, System, http, wait_until

HARNESS_PORT = int(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092").rsplit(":", 1)[1])
PORT = int(os.environ.get("CV_TEST_SASL_KAFKA_PORT", HARNESS_PORT + 2))
VERSION = os.environ.get("CV_TEST_SASL_KAFKA_VERSION", "3.9.2")
BROKER = f"127.0.0.1:{PORT}"
TOPICS = ["orders", "inventory", "shipments", "order.dlq", "inventory.dlq", "shipping.dlq",
          "audit.dlq"]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(d):
    """ca.pem (a fresh CA), broker.pem (PKCS#8 key then certificate for 127.0.0.1/localhost),
    other-ca.pem (a CA that signed nothing here)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=Conveyor test CA", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out",
            "broker.csr", "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "broker.crt", "-days", "2", "-extfile", "san.cnf", cwd=d)
    with open(os.path.join(d, "broker.pem"), "w") as out:
        for part in ("broker.key", "broker.crt"):
            with open(os.path.join(d, part)) as f:
                out.write(f.read())
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key", "-out",
            "other-ca.pem", "-days", "2", "-subj", "/CN=Someone else", cwd=d)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("sasl"))
    make_certificates(d)
    passwords = {u: secrets.token_hex(16) for u in ("admin", *SERVICES)}
    users = os.path.join(d, "users")
    with open(users, "w") as f:
        f.writelines(f"{u} {p}\n" for u, p in passwords.items())
    run_dir = os.path.join(d, "kafka")
    env = dict(os.environ, KAFKA_VERSION=VERSION, KAFKA_PORT=str(PORT),
               KAFKA_CONTROLLER_PORT=str(PORT + 1), KAFKA_DIR=run_dir, KAFKA_SECURITY="sasl_ssl",
               KAFKA_SSL_KEYSTORE=os.path.join(d, "broker.pem"),
               KAFKA_SSL_CA=os.path.join(d, "ca.pem"), KAFKA_SCRAM_USERS=users)
    subprocess.run([KAFKA_SH, "start"], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        yield {"dir": d, "passwords": passwords, "ca": os.path.join(d, "ca.pem"),
               "run_dir": run_dir}
    finally:
        subprocess.run([KAFKA_SH, "stop", run_dir], env=env, check=False)


def client_conf(broker, user="admin", password=None):
    return {"bootstrap.servers": BROKER, "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user,
            "sasl.password": password or broker["passwords"][user],
            "ssl.ca.location": broker["ca"]}


def service_env(broker, name, password=None, **extra):
    env = {"KAFKA_BOOTSTRAP_SERVERS": BROKER, "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
           "KAFKA_SASL_USERNAME": name, "KAFKA_SSL_CA_LOCATION": broker["ca"]}
    env["KAFKA_SASL_PASSWORD"] = password or broker["passwords"][name]
    env.update(extra)
    return env


def make_secure_system(broker, log_dir, env=None, services=SERVICES):
    tag = "sasl" + uuid.uuid4().hex[:6]
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient(client_conf(broker))
    for f in admin.create_topics([NewTopic(f"{tag}.{n}", 3, 1) for n in TOPICS]).values():
        f.result(30)
    per = {}
    for s in services:
        per[s] = {"TOPIC_PREFIX": tag + ".", "INVENTORY_SEED": "false"}
        per[s].update(service_env(broker, s))
        per[s].update((env or {}).get(s, {}))
    system = System(tag, log_dir, per)
    system.prefix = tag + "."
    return system


def logs_of(log_dir, system):
    text = ""
    for s in system.services.values():
        with open(s.log_path, errors="replace") as f:
            text += f.read()
    return text


def test_saga_completes_over_sasl_ssl(broker, log_dir):
    # The order service reads its password from a file, as from a mounted Secret.
    pw_file = os.path.join(broker["dir"], "order-password")
    with open(pw_file, "w") as f:
        f.write(broker["passwords"]["order"] + "\n")
    system = make_secure_system(broker, log_dir, {"order": {
        "KAFKA_SASL_PASSWORD": "", "KAFKA_SASL_PASSWORD_FILE": pw_file}})
    try:
        system.start()
        sku = f"SECURE-{uuid.uuid4().hex[:8]}"
        system.set_stock(sku, 5, "Secure widget")
        oid = system.place([{"sku": sku, "quantity": 2}])["id"]
        system.wait_status(oid, "SHIPMENT_SCHEDULED")
        assert system.shipping.post(f"/shipments/{oid}/dispatch").status == 200
        assert system.shipping.post(f"/shipments/{oid}/deliver").status == 200
        system.wait_status(oid, "DELIVERED")
        assert system.stock(sku)["available"] == 3
        def audited():
            return {"OrderPlaced", "StockReserved", "ShipmentScheduled",
                    "ShipmentDelivered"} <= {e["type"] for e in system.audit_events(order_id=oid)}
        wait_until(audited, 20, what="audit recorded the saga")
        codes = system.stop()
        assert codes == {name: 0 for name in codes}
        text = logs_of(log_dir, system)
        with open(os.path.join(broker["run_dir"], "kafka.log"), errors="replace") as f:
            text += f.read()
        for pw in broker["passwords"].values():
            assert pw not in text
    finally:
        system.stop()
        system.drop()


def test_wrong_password_never_ready_and_says_why(broker, log_dir):
    system = make_secure_system(broker, log_dir, {"order": {
        "KAFKA_SASL_PASSWORD": "not-" + broker["passwords"]["order"]}}, services=SERVICES)
    svc = system.order
    try:
        svc.start(wait=False)

        def auth_line():
            with open(svc.log_path, errors="replace") as f:
                return [l for l in f if "authentication" in l.lower()]
        lines = wait_until(auth_line, 60, 0.5, "a log line about the failed authentication")
        # librdkafka's own words, at error level, in one JSON line.
        assert "SASL authentication error" in lines[0], lines[0]
        assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in lines[0], lines[0]
        assert '"level":"error"' in lines[0], lines[0]
        def not_ready_for_kafka():
            r = http("GET", svc.url + "/readyz", timeout=5)
            assert r.status == 503, (r.status, r.body)
            return b"kafka unreachable" in r.body
        wait_until(not_ready_for_kafka, 20, 0.3, "/readyz naming kafka")
        assert svc.proc.poll() is None  # it keeps trying: a rotated Secret heals it
        assert svc.stop() == 0  # SIGTERM while it waits for the broker: a clean exit
        with open(svc.log_path, errors="replace") as f:
            text = f.read()
        assert broker["passwords"]["order"] not in text
        assert "not-" + broker["passwords"]["order"] not in text
    finally:
        system.stop()
        system.drop()


def test_untrusted_broker_certificate_is_refused(broker, log_dir):
    system = make_secure_system(broker, log_dir, {"audit": {
        "KAFKA_SSL_CA_LOCATION": os.path.join(broker["dir"], "other-ca.pem")}})
    svc = system.audit
    try:
        svc.start(wait=False)

        def tls_line():
            with open(svc.log_path, errors="replace") as f:
                return [l for l in f if "certificate verify failed" in l]
        wait_until(tls_line, 60, 0.5, "a log line about the broker's certificate")
        assert http("GET", svc.url + "/readyz", timeout=5).status == 503
    finally:
        system.stop()
        system.drop()


def test_db_sslmode_reaches_libpq(log_dir):
    # The shared test server has no TLS: require must fail, and say so.
    system = System("sslmode" + uuid.uuid4().hex[:6], log_dir,
                    {"audit": {"DB_SSLMODE": "require"}})
    svc = system.audit
    try:
        svc.start(wait=False)

        def line():
            with open(svc.log_path, errors="replace") as f:
                return [l for l in f if "SSL" in l and "waiting for the database" in l]
        found = wait_until(line, 30, 0.3, "a log line about the database's TLS")
        assert "server does not support SSL" in found[0], found[0]
    finally:
        system.stop()
        system.drop()


def test_cv_dlq_redrives_over_sasl_ssl(broker):
    """The redrive tool's clients take the same TLS and SASL settings as the services."""
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = f"dlq{uuid.uuid4().hex[:6]}.order.dlq"
    admin = AdminClient(client_conf(broker))
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(30)
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    tool = os.path.join(BIN, "cv-dlq")
    args = [tool, "redrive", "--dlq", topic, "--brokers", BROKER, "--dry-run"]
    secure = dict(base, KAFKA_SECURITY_PROTOCOL="sasl_ssl", KAFKA_SASL_USERNAME="admin",
                  KAFKA_SASL_PASSWORD=broker["passwords"]["admin"],
                  KAFKA_SSL_CA_LOCATION=broker["ca"])
    r = subprocess.run(args, env=secure, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert broker["passwords"]["admin"] not in r.stdout + r.stderr
    bad = dict(secure, KAFKA_SECURITY_PROTOCOL="sasl_tls")
    r = subprocess.run(args, env=bad, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "KAFKA_SECURITY_PROTOCOL" in r.stderr, r.stderr
    # Plaintext against the SASL_SSL listener: no answer, a failure, not a hang.
    r = subprocess.run(args, env=base, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
