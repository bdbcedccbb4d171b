"""Operations a newcomer can trust: `cluster down` stops exactly what `cluster up` started, whatever the
settings say now; a job in the foreground tells its terminal when it fails and restarts, and why; a job
that fails for good exits non-zero with its cause."""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

from shared.settings import PROJECT_ROOT, load_settings
from stack import manager
from stack.processes import owned, pid_alive, wait_until
from stack.services import Redis
from tests.integration.conftest import cli
from tests.integration.test_least_privilege import on_loopback, process_tree, sockets_of
from tests.integration.test_superset import free_port


def test_cluster_down_stops_every_taskmanager_up_started_whatever_the_settings_say(settings):
    run_dir = settings.stack.state_path / "run"
    two = {**os.environ, "STREAMPULSE_FLINK__TASKMANAGERS": "2"}
    result = subprocess.run([sys.executable, "-m", "stack.cli", "cluster", "up"], cwd=PROJECT_ROOT, env=two,
                            capture_output=True, text=True, timeout=600)
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        started = owned(run_dir, "flink-")
        # The supervisors and their JVMs, each marked with the role that started it.
        assert {"flink-jobmanager", "flink-taskmanager", "flink-taskmanager-2"} <= set(started.values())
        assert sum(name == "flink-taskmanager-2" for name in started.values()) >= 2  # supervisor + TaskManager
    finally:
        cli("cluster", "down")  # the default settings: one TaskManager
    assert owned(run_dir, "flink-") == {}
    assert [pid for pid in started if pid_alive(pid)] == []
    # Nothing of this cluster in the process table either, by its configuration folder.
    conf_dir = str(settings.stack.state_path / "flink" / "cluster")
    table = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    assert [line for line in table.splitlines() if conf_dir in line] == []
    status = subprocess.run([sys.executable, "-m", "stack.cli", "cluster", "status"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 3 and "stray" not in status.stdout


def test_stack_down_stops_a_service_whose_pid_file_is_gone(tmp_path, monkeypatch):
    """A second, private Redis under a scratch state folder: its pid file lost, `status` names the stray and
    `down` still stops it, found by the mark its process carries."""
    monkeypatch.setenv("STREAMPULSE_STACK__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("STREAMPULSE_REDIS__PORT", str(free_port()))
    monkeypatch.setenv("STREAMPULSE_REDIS__PASSWORD", "stray-test-" + "x" * 20)
    scratch = load_settings()
    redis = Redis(scratch)
    redis.start()
    pid = redis.pid()
    try:
        wait_until(redis.ready, 60, what=f"the scratch Redis at {redis.address}")
        (scratch.stack.state_path / "run" / "redis.pid").unlink()
        assert redis.pid() is None and pid_alive(pid)
        said = io.StringIO()
        manager.status(scratch, said)
        assert f"stray: pid {pid} (redis)" in said.getvalue()
        manager.down(scratch, io.StringIO())
        assert not pid_alive(pid)
        assert owned(scratch.stack.state_path / "run") == {}
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def lines_of(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)


def test_a_foreground_job_prints_its_restarts_with_the_cause(settings, kafka_topic):
    """PostgreSQL where the settings say nothing listens: the trending job's JDBC sinks cannot connect, Flink
    restarts the job, and the terminal says so with the cause, not only a log file."""
    env = {**os.environ, "STREAMPULSE_POSTGRES__PORT": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "stack.cli", "run", "trending", "--", "--topic", kafka_topic, "--group-id",
         f"{kafka_topic}-foreground"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    said: queue.Queue = queue.Queue()
    threading.Thread(target=lines_of, args=(process.stderr, said), daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (
                any("RESTARTING" in line for line in seen)
                and any("failure" in line and "127.0.0.1:1" in line for line in seen)):
            try:
                seen.append(said.get(timeout=5))
            except queue.Empty:
                assert process.poll() is None, f"the job exited ({process.returncode}):\n{''.join(seen)[-3000:]}"
        said_lines = "".join(seen)[-3000:]
        # The embedded job's REST API (it runs any jar), blob server and Python workers listen on loopback only.
        held = sockets_of(process_tree(process.pid))
        assert held and all(on_loopback(address) for address in held), held
        assert "[streampulse-trending] RUNNING" in said_lines
        # The cause in one line, with the address that refused: not only in a log file.
        assert re.search(r"\[streampulse-trending\] failure #1 in .*Sink: .*: ConnectException: Connection refused "
                         r"← PSQLException: Connection to 127\.0\.0\.1:1 refused", said_lines), said_lines
        assert "[streampulse-trending] RESTARTING" in said_lines
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_a_job_that_fails_for_good_exits_non_zero_with_its_cause(settings):
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "tests/integration/flink_scripts/failing_job.py")],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "[streampulse-failing] RUNNING" in result.stderr
    assert "streampulse-failing FAILED: PythonException" in result.stderr
    assert "record 7 is not welcome here" in result.stderr.splitlines()[-1]
