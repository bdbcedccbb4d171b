"""`streampulse stack up|status|down` on a second, private stack (own state folder, own ports):
from nothing to running, idempotent, data kept across down/up, and down really stops it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid

import pytest

from runtime import clients
from shared.settings import PROJECT_ROOT, load_settings
from stack.processes import owned, pid_alive

PORTS = {"KAFKA__PORT": 29092, "KAFKA__CONTROLLER_PORT": 29093, "KAFKA__INTERNAL_PORT": 29094, "POSTGRES__PORT": 25432,
         "REDIS__PORT": 26379, "MINIO__PORT": 29000, "MINIO__CONSOLE_PORT": 29001, "PROMETHEUS__PORT": 29090,
         "REGISTRY__PORT": 28085, "REGISTRY__MANAGEMENT_PORT": 29085}
SECRETS = ("POSTGRES__ADMIN_PASSWORD", "POSTGRES__WRITER_PASSWORD", "POSTGRES__READER_PASSWORD",
           "REDIS__PASSWORD", "MINIO__ACCESS_KEY", "MINIO__SECRET_KEY", "KAFKA__ADMIN_PASSWORD",
           "KAFKA__PRODUCER_PASSWORD", "KAFKA__JOBS_PASSWORD", "KAFKA__BROKER_PASSWORD", "REGISTRY__DB_PASSWORD")


@pytest.fixture
def private_stack(monkeypatch, settings):
    # Under the project's state folder: the `postgres` account must be able to enter it.
    state = settings.stack.state_path / f"test-stack-{uuid.uuid4().hex[:8]}"
    for key in SECRETS:
        monkeypatch.delenv(f"STREAMPULSE_{key}", raising=False)
    monkeypatch.setenv("STREAMPULSE_STACK__STATE_DIR", str(state))
    for key, port in PORTS.items():
        monkeypatch.setenv(f"STREAMPULSE_{key}", str(port))
    yield state
    cli("stack", "down")
    shutil.rmtree(state, ignore_errors=True)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stack.cli", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=dict(os.environ), timeout=600)


def pids(status_output: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+up\s+\S+\s+pid (\d+)", status_output, re.MULTILINE)}


def test_up_is_idempotent_keeps_data_and_down_stops_everything(private_stack):
    first = cli("stack", "up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "schema migrations applied: 0001" in first.stderr
    running = pids(first.stdout)
    assert set(running) == {"postgres", "redis", "minio", "kafka", "prometheus", "registry"}, first.stdout

    again = cli("stack", "up")
    assert again.returncode == 0, again.stderr
    assert pids(again.stdout) == running, "a second `up` must not start new processes"
    assert "none pending" in again.stderr

    settings = load_settings()
    assert settings.postgres.port == PORTS["POSTGRES__PORT"]
    with clients.postgres(settings, "writer") as conn:
        conn.execute("INSERT INTO stack_smoke (smoke_key, events, total) VALUES ('kept', 7, 8)")
    clients.redis(settings).set("kept", "yes")

    down = cli("stack", "down")
    assert down.returncode == 0, down.stderr
    status = cli("stack", "status")
    assert status.returncode == 3
    for name in running:
        assert re.search(rf"^{name}\s+down\s", status.stdout, re.MULTILINE), status.stdout
    assert not any(pid_alive(pid) for pid in running.values())
    assert owned(private_stack / "run") == {}  # nothing of this stack left, children included

    back = cli("stack", "up")
    assert back.returncode == 0, back.stderr
    with clients.postgres(settings, "reader") as conn:
        assert conn.execute("SELECT events, total FROM stack_smoke WHERE smoke_key = 'kept'").fetchone() == (7, 8)
    assert clients.redis(settings).get("kept") == "yes"
    admin = clients.kafka_admin(settings)
    assert set(settings.kafka.topics) <= set(admin.list_topics())
    admin.close()
