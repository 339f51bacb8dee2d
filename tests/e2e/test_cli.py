"""Every service binary: --help documents its configuration; a bad value stops it at start
with one clear line naming the variable; an unknown argument is refused."""

import os
import subprocess

import pytest

from conveyor import BIN, SERVICES


def run(name, *args, env=None):
    full_env = {k: v for k, v in os.environ.items() if k in ("PATH", "ASAN_OPTIONS",
                                                             "UBSAN_OPTIONS")}
    full_env.update(env or {})
    return subprocess.run([os.path.join(BIN, f"{name}-service"), *args], env=full_env,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("name", SERVICES)
def test_help_lists_the_configuration(name):
    r = run(name, "--help")
    assert r.returncode == 0
    for var in ("HTTP_PORT", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "LOG_LEVEL",
                "TOPIC_PREFIX"):
        assert var in r.stdout
    assert "postgres@" not in r.stdout  # secrets (the database URL) are never printed


@pytest.mark.parametrize("name,env,variable", [
    ("order", {"HTTP_PORT": "80a"}, "HTTP_PORT"),
    ("inventory", {"HTTP_PORT": "70000"}, "HTTP_PORT"),
    ("shipping", {"DB_POOL_SIZE": "1"}, "DB_POOL_SIZE"),
    ("audit", {"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
    ("inventory", {"INVENTORY_SEED": "perhaps"}, "INVENTORY_SEED"),
    ("order", {"KAFKA_CREATE_TOPICS": "2"}, "KAFKA_CREATE_TOPICS"),
    ("order", {"KAFKA_SECURITY_PROTOCOL": "tls"}, "KAFKA_SECURITY_PROTOCOL"),
    ("audit", {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_PASSWORD": "x"},
     "KAFKA_SASL_USERNAME"),
    ("shipping", {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_USERNAME": "shipping"},
     "KAFKA_SASL_PASSWORD"),
    ("inventory", {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_USERNAME": "inventory",
                   "KAFKA_SASL_PASSWORD_FILE": "/nonexistent/password"},
     "KAFKA_SASL_PASSWORD_FILE"),
    ("order", {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_USERNAME": "order",
               "KAFKA_SASL_PASSWORD": "x", "KAFKA_SASL_MECHANISM": "GSSAPI"},
     "KAFKA_SASL_MECHANISM"),
    ("audit", {"KAFKA_SSL_CA_LOCATION": "/etc/ssl/certs/ca.pem"}, "KAFKA_SSL_"),
    ("order", {"DB_SSLMODE": "maybe"}, "DB_SSLMODE"),
])
def test_bad_configuration_stops_with_one_line(name, env, variable):
    r = run(name, env=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], r.stderr
    assert r.stdout == ""


def test_unknown_argument_refused():
    r = run("order", "--port=1")
    assert r.returncode == 2 and "--port=1" in r.stderr
