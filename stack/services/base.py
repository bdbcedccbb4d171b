"""What every service of the local stack shares: install, start, readiness, status, stop."""

from __future__ import annotations

import os
import secrets
import subprocess
from abc import ABC, abstractmethod

from shared.settings import Settings
from stack.processes import ManagedProcess, tail, wait_until


class StackError(RuntimeError):
    pass


def apt_install(*packages: str) -> None:
    """Install Debian packages (as root); otherwise say exactly what to run."""
    if os.geteuid() != 0:
        raise StackError(f"missing {', '.join(packages)}: run `sudo apt-get install -y {' '.join(packages)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=True, env=env,
                   stdout=subprocess.DEVNULL)


class Service(ABC):
    name: str

    def __init__(self, settings: Settings):
        self.settings = settings
        self.state = settings.stack.state_path
        self.home = self.state / self.name
        self.log_file = self.state / "logs" / f"{self.name}.log"

    @property
    @abstractmethod
    def address(self) -> str: ...

    def missing_packages(self) -> list[str]:
        """The Debian packages this service needs and does not have: `stack up` installs every service's
        in one apt-get run before the other installs, which then run side by side."""
        return []

    def install(self) -> None:
        """Make the rest of what it runs available: jars, a build (idempotent; runs beside the others').
        Nothing by default: most services are their Debian package."""
        return None

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> bool: ...

    @abstractmethod
    def pid(self) -> int | None: ...

    @abstractmethod
    def ready(self) -> bool: ...

    def wait_ready(self) -> None:
        try:
            wait_until(self.ready, self.settings.stack.start_timeout_s, what=f"{self.name} at {self.address}")
        except TimeoutError as exc:
            alive = "running" if self.pid() else "not running"
            raise StackError(
                f"{self.name} at {self.address} did not become ready ({exc}); the process is {alive}.\n"
                f"Last lines of {self.log_file}:\n{tail(self.log_file)}"
            ) from None

    def status(self) -> tuple[bool, str]:
        pid = self.pid()
        if pid is None:
            return False, f"down     {self.address}"
        try:
            ok = self.ready()
        except Exception as exc:
            ok, reason = False, str(exc)
        else:
            reason = ""
        return ok, (f"up       {self.address}  pid {pid}" if ok else f"starting {self.address}  pid {pid} {reason}")


class SupervisedService(Service):
    """A service that is one long-running process the stack starts and stops itself (stack/processes.py
    ManagedProcess: its pid and start time recorded, its children found by STREAMPULSE_OWNER)."""

    stop_timeout_s = 30.0

    def _process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.state / "run", self.log_file)

    def start(self) -> None:
        proc = self._process()
        if proc.pid() is None:
            self.launch(proc)

    @abstractmethod
    def launch(self, proc: ManagedProcess) -> None:
        """Write the service's files and start its process with proc.start(argv, env)."""

    def stop(self) -> bool:
        return self._process().stop(timeout=self.stop_timeout_s)

    def pid(self) -> int | None:
        return self._process().pid()


def tail_text(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def new_secret() -> str:
    return secrets.token_urlsafe(24)
