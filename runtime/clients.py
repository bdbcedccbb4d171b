"""Connections to the stack's services, with errors that say where the service was expected and
what to run to start it. Jobs, connectors, the stack manager and the tests all connect through here.
"""

from __future__ import annotations

from typing import Literal

from shared.settings import Settings

START_HINT = "start the local stack with `streampulse stack up` (or `make stack-up`)"


class ServiceUnavailable(RuntimeError):
    def __init__(self, service: str, address: str, cause: object):
        super().__init__(f"{service} at {address} is not reachable ({cause}); {START_HINT}")
        self.service, self.address = service, address


def postgres(settings: Settings, role: Literal["admin", "writer", "reader"] = "writer", *, database=None,
             autocommit: bool = True):
    import psycopg

    pg = settings.postgres
    try:
        return psycopg.connect(pg.dsn(role, database), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        if "password authentication failed" in str(exc) or "does not exist" in str(exc):
            raise
        raise ServiceUnavailable("PostgreSQL", f"{pg.host}:{pg.port}", str(exc).strip()) from exc


def redis(settings: Settings, *, password: str | Literal[False] | None = None):
    """A checked Redis client; password=False connects without one (to prove it is refused)."""
    import redis as redis_lib

    rs = settings.redis
    if password is None:
        password = rs.password.get_secret_value() if rs.password else None
    client = redis_lib.Redis(host=rs.host, port=rs.port, password=password or None, socket_timeout=5,
                             socket_connect_timeout=5, decode_responses=True)
    try:
        client.ping()
    except redis_lib.AuthenticationError:  # a subclass of ConnectionError: the server did answer
        if password is not False:
            raise
    except redis_lib.ConnectionError as exc:
        raise ServiceUnavailable("Redis", f"{rs.host}:{rs.port}", exc) from exc
    return client


def minio(settings: Settings):
    from minio import Minio

    ms = settings.minio
    if not (ms.access_key and ms.secret_key):
        raise ServiceUnavailable("MinIO", ms.endpoint, "no access key configured")
    return Minio(ms.endpoint, access_key=ms.access_key.get_secret_value(),
                 secret_key=ms.secret_key.get_secret_value(), secure=False)


def kafka_admin(settings: Settings, *, bootstrap_timeout_s: float = 10, options: dict | None = None):
    """An admin client logged in as the stack's Kafka admin (or with `options`, e.g. the broker's own login)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaTimeoutError

    options = options or settings.kafka.client_options("admin")
    try:
        return KafkaAdminClient(client_id="streampulse-admin", request_timeout_ms=15000,
                                bootstrap_timeout_ms=int(bootstrap_timeout_s * 1000), **options)
    except KafkaTimeoutError as exc:
        raise ServiceUnavailable("Kafka", options["bootstrap_servers"], "no broker answered") from exc
