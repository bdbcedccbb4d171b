"""Integration tests run against the real local stack (`streampulse stack up`, done by `make test`)."""

from __future__ import annotations

import uuid

import pytest

from shared import clients
from shared.settings import load_settings
from stack.manager import services


@pytest.fixture(scope="session")
def settings():
    settings = load_settings()
    down = [f"{s.name} at {s.address}" for s in services(settings) if not s.status()[0]]
    if down:
        pytest.fail(f"the local stack is not up ({', '.join(down)}): run `streampulse stack up` or `make test`",
                    pytrace=False)
    return settings


@pytest.fixture
def kafka_topic(settings):
    """A fresh topic for one test, deleted afterwards."""
    from kafka.admin import NewTopic

    name = f"test.{uuid.uuid4().hex[:12]}"
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(name, 2, 1)])
    yield name
    admin.delete_topics([name])
    admin.close()
