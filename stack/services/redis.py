"""Redis: Debian's redis-server with a password, a read-only user for the read API and an append-only file."""

from __future__ import annotations

import shutil

from runtime import clients
from stack.processes import ManagedProcess
from stack.services.base import SupervisedService


class Redis(SupervisedService):
    name = "redis"

    @property
    def address(self) -> str:
        return f"{self.settings.redis.host}:{self.settings.redis.port}"

    def missing_packages(self) -> list[str]:
        return [] if shutil.which("redis-server") else ["redis-server"]

    def launch(self, proc: ManagedProcess) -> None:
        rs = self.settings.redis
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "redis.conf"
        config.write_text(
            f"bind {rs.host}\nport {rs.port}\nprotected-mode yes\ndaemonize no\n"
            f"dir {self.home}\nappendonly yes\nsave \"\"\nloglevel notice\n"
            f"requirepass {rs.password.get_secret_value()}\n"
            # The read API's user: StreamPulse's keys, read commands only (no KEYS, no admin, no writes); MULTI/EXEC
            # so that it reads the ranking and its window in one step.
            f"user {rs.api_user} on >{rs.api_password.get_secret_value()} resetkeys ~streampulse:* resetchannels "
            "-@all +@read +@connection +@transaction -@dangerous\n"
        )
        config.chmod(0o600)
        proc.start([shutil.which("redis-server"), str(config)])

    def ready(self) -> bool:
        return clients.redis(self.settings).ping()
