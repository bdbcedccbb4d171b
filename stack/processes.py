"""Processes started by the stack: detached, logged to a file, remembered by pid file.

The pid file holds the pid and the process's start time (from /proc/<pid>/stat); `stop` only
signals a pid whose start time still matches, so a pid recycled by the OS is never killed. Every process
started here also carries STREAMPULSE_OWNER=<run dir>/<name> in its environment, which its children inherit:
`owned` finds them all in the process table (servers that rewrite their environment by their working folder),
so `down` stops what `up` started even when a pid file is gone or the settings changed since, and `status`
can name strays.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from shared.settings import ENV_PREFIX


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def start_time(pid: int) -> str:
    """Clock ticks since boot at which the process started (field 22 of /proc/<pid>/stat)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


OWNER_ENV = "STREAMPULSE_OWNER"


def service_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process the stack starts: this one's without any StreamPulse setting (the
    credentials file puts every stack secret into os.environ), plus what that process itself needs. Superset
    does not get PostgreSQL's superuser password, nor Kafka MinIO's root keys."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return {**inherited, **(extra or {})}


def owned(run_dir: Path, prefix: str = "") -> dict[int, str]:
    """Live processes started by a ManagedProcess of `run_dir`, or descended from one: pid -> its name. Found
    by the mark in their environment or, for servers that overwrite theirs with a process title (Redis,
    PostgreSQL), by a working folder under the state folder, named by its first part (.state/redis -> redis)."""
    mark = f"{OWNER_ENV}={run_dir}/".encode()
    state = run_dir.parent.resolve()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            variables = (entry / "environ").read_bytes().split(b"\0")
            cwd = (entry / "cwd").resolve()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        name = next((v[len(mark):].decode(errors="replace") for v in variables if v.startswith(mark)), None)
        if name is None and cwd.is_relative_to(state) and cwd != state:
            name = cwd.relative_to(state).parts[0]
        if name is not None and name.startswith(prefix) and pid_alive(int(entry.name)):
            found[int(entry.name)] = name
    return found


def stop_pids(pids, timeout: float = 30.0) -> None:
    """SIGTERM each, then SIGKILL what is left after `timeout`."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        for pid in pids:
            _reap(pid)
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class ManagedProcess:
    """One long-running server process, tracked by <run_dir>/<name>.pid."""

    def __init__(self, name: str, run_dir: Path, log_file: Path):
        self.name, self.pid_file, self.log_file = name, run_dir / f"{name}.pid", log_file
        self.run_dir = run_dir

    def pid(self) -> int | None:
        """The recorded pid if that process is alive and is still the one we started."""
        try:
            pid_text, started = self.pid_file.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) and start_time(pid) == started else None

    def start(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        if (pid := self.pid()) is not None:
            return pid
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                env=service_environment({**(env or {}), OWNER_ENV: f"{self.run_dir}/{self.name}"}),
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid} {start_time(proc.pid)}\n")
        return proc.pid

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout`, and the same for any process left with its mark (a child
        that outlived its parent); True if a process of ours was stopped."""
        pid = self.pid()
        if pid is not None:
            stop_pids([pid], timeout)
        self.pid_file.unlink(missing_ok=True)
        leftovers = [p for p, name in owned(self.run_dir, self.name).items() if name == self.name]
        stop_pids(leftovers, timeout)
        return pid is not None or bool(leftovers)


def children(pid: int) -> list[int]:
    """The pids of `pid`'s child processes (Linux /proc)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # not our child: nothing to reap
        os.waitpid(pid, os.WNOHANG)


def wait_until(check, timeout: float, interval: float = 0.25, what: str = "condition"):
    """Poll `check()` until it returns a truthy value or raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # a service still booting raises; keep the last reason
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}" + (f": {last_error}" if last_error else ""))


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"
