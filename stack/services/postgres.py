"""PostgreSQL: a private cluster under the state folder."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from runtime import clients
from stack.processes import pid_alive, service_environment, tail
from stack.services.base import Service, StackError


class Postgres(Service):
    """A private PostgreSQL cluster (initdb/pg_ctl) under the state folder, run as an unprivileged user."""

    name = "postgres"

    @property
    def address(self) -> str:
        return f"{self.settings.postgres.host}:{self.settings.postgres.port}"

    @property
    def data(self) -> Path:
        return self.home / "data"

    def _bin(self, tool: str) -> str | None:
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), key=lambda p: int(p.split("/")[4]))
        return found[-1] if found else shutil.which(tool)

    def missing_packages(self) -> list[str]:
        return ["postgresql"] if self._bin("pg_ctl") is None or self._bin("initdb") is None else []

    def _as_owner(self, argv: list[str]) -> list[str]:
        """PostgreSQL refuses to run as root: as root, run it as the `postgres` account."""
        if os.geteuid() != 0:
            return argv
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise StackError("running as root needs the `postgres` account: apt-get install -y postgresql") from None
        return ["runuser", "-u", "postgres", "--", *argv]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for p in [path, *path.rglob("*")]:
                os.chown(p, entry.pw_uid, entry.pw_gid)

    def _check_traversable(self) -> None:
        if os.geteuid() != 0:
            return
        for parent in [self.home, *self.home.parents]:
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise StackError(
                    f"PostgreSQL runs as the `postgres` account, which cannot enter {parent}: "
                    f"`chmod o+x {parent}` or set stack.state_dir to a folder it can reach")

    def start(self) -> None:
        if self.pid() is not None:
            return
        pg = self.settings.postgres
        self.home.mkdir(parents=True, exist_ok=True)
        self._check_traversable()
        if not (self.data / "PG_VERSION").exists():
            pwfile = self.home / "initdb.pw"
            pwfile.write_text(pg.admin_password.get_secret_value() + "\n")
            (self.home / "run").mkdir(exist_ok=True)
            self._chown(self.home)
            result = subprocess.run(self._as_owner([
                self._bin("initdb"), "-D", str(self.data), "-U", pg.admin_user, f"--pwfile={pwfile}",
                "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]), capture_output=True, text=True)
            pwfile.unlink()
            if result.returncode != 0:
                raise StackError(f"initdb in {self.data} failed:\n{result.stdout}{result.stderr}")
        (self.data / "conf.d").mkdir(exist_ok=True)
        conf = self.data / "postgresql.conf"
        include = "include_dir = 'conf.d'"
        if include not in conf.read_text():
            conf.write_text(conf.read_text() + f"\n{include}\n")
        (self.data / "conf.d" / "streampulse.conf").write_text(
            f"listen_addresses = '{pg.host}'\nport = {pg.port}\n"
            f"unix_socket_directories = '{self.home / 'run'}'\n"
            "max_connections = 100\nshared_buffers = 128MB\nlog_min_messages = warning\n"
        )
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._chown(self.home)
        if os.geteuid() == 0 and not self.log_file.exists():
            self.log_file.touch()
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        # pg_ctl forks the postmaster and returns; -w waits until it accepts connections.
        result = subprocess.run(self._as_owner([
            self._bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", "90", "start"]),
            capture_output=True, text=True, env=service_environment())
        if result.returncode != 0:
            raise StackError(f"PostgreSQL at {self.address} did not start:\n{result.stdout}{result.stderr}\n"
                             f"Last lines of {self.log_file}:\n{tail(self.log_file)}")

    def stop(self) -> bool:
        if self.pid() is None:
            return False
        subprocess.run(self._as_owner([self._bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                       capture_output=True, text=True, check=True)
        return True

    def pid(self) -> int | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def ready(self) -> bool:
        with clients.postgres(self.settings, "admin", database="postgres") as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
