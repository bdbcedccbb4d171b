"""Integration tests run against the real local stack (`streampulse stack up`, done by `make test`)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from runtime import clients
from runtime.schema_registry import SchemaRegistry
from shared.post import use_registry
from shared.settings import PROJECT_ROOT, load_settings
from stack.cluster import Cluster
from stack.manager import services


@pytest.fixture(scope="session")
def settings():
    settings = load_settings()
    down = [f"{s.name} at {s.address}" for s in services(settings) if not s.status()[0]]
    if down:
        pytest.fail(f"the local stack is not up ({', '.join(down)}): run `streampulse stack up` or `make test`",
                    pytrace=False)
    # What the tests read back from social.posts (shared.post decode) is mostly Confluent-framed: its writer
    # schemas come from the stack's registry, as in the jobs.
    use_registry(SchemaRegistry(settings.registry.base_url, settings.registry.timeout_s).schema)
    return settings


def cli(*args: str) -> str:
    """`streampulse ARGS`, which must succeed; its stdout."""
    result = subprocess.run([sys.executable, "-m", "stack.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"streampulse {' '.join(args)}:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture
def cluster(settings):
    """The standalone Flink cluster (`streampulse cluster up`), taken down after the test."""
    cli("cluster", "up")
    yield Cluster(settings)
    cli("cluster", "down")


def fresh_topic(settings, prefix: str, partitions: int):
    """A topic no other test uses, deleted when the fixture that yields it ends."""
    from kafka.admin import NewTopic

    name = f"{prefix}.{uuid.uuid4().hex[:12]}"
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(name, partitions, 1)])
    yield name
    admin.delete_topics([name])
    admin.close()


@pytest.fixture
def kafka_topic(settings):
    """A fresh topic for one test, deleted afterwards."""
    yield from fresh_topic(settings, "test", 2)


@pytest.fixture
def dlq_topic(settings):
    """A second fresh topic, for a test's dead letters."""
    yield from fresh_topic(settings, "test.dlq", 1)


@pytest.fixture
def deletes_topic(settings):
    """A fresh topic for a test's deletion notices."""
    yield from fresh_topic(settings, "test.deletes", 1)


@pytest.fixture
def counts_lake(settings):
    """A fresh lake prefix for the trending job's minute counts (its `--counts-path`), removed afterwards."""
    from tests.integration.sinks import remove_lake

    prefix = f"test-{uuid.uuid4().hex[:12]}/keyword_counts"
    yield prefix
    remove_lake(settings, prefix)


def counts_path(settings, prefix: str) -> list[str]:
    """The trending job's arguments that put its minute counts under s3://<bucket>/<prefix>."""
    return ["--counts-path", f"s3://{settings.minio.bucket}/{prefix}"]


def read_topic(settings, topic: str, *, isolation: str = "read_committed", timeout_s: float = 60) -> list:
    """Every record of `topic` up to its end offsets at call time (the committed end for read_committed)."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka.client_options("admin"), isolation_level=isolation,
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records, deadline = [], time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"could not read {topic} to its end within {timeout_s} s"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
