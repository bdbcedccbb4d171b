"""Redis: Debian's redis-server with a password, a read-only user for the read API and an append-only file."""

from __future__ import annotations

import shutil

from runtime import clients
from stack.processes import ManagedProcess
from stack.services.base import SupervisedService

# The read API's user: StreamPulse's keys, read commands only (no KEYS, no admin, no writes); MULTI/EXEC so that
# it reads the ranking and its window in one step. (docker-compose.yml passes the same rules on the command line.)
API_USER_RULES = ("resetkeys", "~streampulse:*", "resetchannels", "-@all", "+@read", "+@connection", "+@transaction",
                  "-@dangerous")


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
            f"user {rs.api_user} on >{rs.api_password.get_secret_value()} {' '.join(API_USER_RULES)}\n"
        )
        config.chmod(0o600)
        proc.start([shutil.which("redis-server"), str(config)])

    def secure(self) -> None:
        """The read API's user on the running server too (one started before it existed, or whose password
        changed): the same rules as its config file, idempotent."""
        rs = self.settings.redis
        clients.redis(self.settings).execute_command("ACL", "SETUSER", rs.api_user, "reset", "on",
                                                     f">{rs.api_password.get_secret_value()}", *API_USER_RULES)

    def ready(self) -> bool:
        return clients.redis(self.settings).ping()
