"""Fixtures of the end-to-end tests. Each test module gets its own system (four services,
fresh databases, topics under its own prefix) so that modules cannot disturb each other."""

import os
import shutil
import sys
import tempfile
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "crosscheck"))

from conveyor import System  # noqa: E402


@pytest.fixture(scope="session")
def log_dir():
    path = tempfile.mkdtemp(prefix="conveyor-e2e-")
    yield path
    if os.environ.get("CV_KEEP_LOGS"):
        print(f"\nservice logs kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


def make_system(request, log_dir, env=None):
    tag = request.module.__name__.replace("test_", "")[:12] + uuid.uuid4().hex[:6]
    prefix = {"TOPIC_PREFIX": tag + ".", "INVENTORY_SEED": "false"}
    per_service = {s: dict(prefix, **((env or {}).get(s, {})))
                   for s in ("order", "inventory", "shipping", "audit")}
    create_topics(tag + ".")
    system = System(tag, log_dir, per_service)
    system.prefix = tag + "."
    return system


def create_topics(prefix, partitions=6):
    """Creates the system's topics up front, as the deployment does (a one-shot step), so that
    no consumer starts with topics missing."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from conveyor import BROKERS
    names = ["orders", "inventory", "shipments", "order.dlq", "inventory.dlq", "shipping.dlq",
             "audit.dlq"]
    admin = AdminClient({"bootstrap.servers": BROKERS})
    futures = admin.create_topics([NewTopic(prefix + n, partitions, 1) for n in names])
    for f in futures.values():
        f.result(30)


@pytest.fixture(scope="module")
def system(request, log_dir):
    s = make_system(request, log_dir).start()
    yield s
    codes = s.stop()
    s.drop()
    # A clean shutdown on SIGTERM exits 0; under the sanitizers a leak or error exits non-zero.
    assert codes == {name: 0 for name in codes}, f"exit codes {codes} (logs in {log_dir})"
