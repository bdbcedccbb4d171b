"""GET /v1/health: can the API answer (PostgreSQL, Redis, Kafka), are the jobs running (Flink's REST API), and
how far behind the posts they are (their consumer groups' lag)."""

from __future__ import annotations

import threading
import time

import anyio
import httpx

from shared.settings import Settings

LAG_TTL_S = 2.0
START_STORES = "run `streampulse stack up`"


def down(address: str, error: str, fix: str) -> dict:
    return {"status": "down", "address": address, "error": error, "fix": fix}


class ConsumerLag:
    """Each job group's committed offsets against the topics' ends, as the API's Kafka principal (which may
    describe groups and topics, not join or write them). Blocking clients, so it runs in a thread."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.lock = threading.Lock()
        self.admin = None
        self.value: tuple[float, dict] = (0.0, {})

    def read(self) -> dict:
        with self.lock:
            if time.monotonic() - self.value[0] < LAG_TTL_S:
                return self.value[1]
            try:
                lag = self._read()
            except Exception:
                self.close()  # a fresh login next time
                raise
            self.value = (time.monotonic(), lag)
            return lag

    def _read(self) -> dict:
        from kafka import KafkaAdminClient
        from kafka.admin import OffsetSpec

        if self.admin is None:
            self.admin = KafkaAdminClient(**self.settings.kafka.client_options("api"),
                                          client_id="streampulse-api-health", request_timeout_ms=5000)
        groups = self.admin.list_group_offsets(list(self.settings.api.lag_groups))
        committed = {group: {tp: meta.offset for tp, meta in (groups.get(group) or {}).items() if meta.offset >= 0}
                     for group in self.settings.api.lag_groups}
        wanted = {tp for offsets in committed.values() for tp in offsets}
        ends = self.admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in wanted}) if wanted else {}
        lag = {}
        for group, offsets in committed.items():
            if not offsets:
                lag[group] = None  # the group never committed (the job has not run, or not checkpointed yet)
                continue
            topics: dict[str, int] = {}
            for tp, offset in offsets.items():
                topics[tp.topic] = topics.get(tp.topic, 0) + max(0, ends[tp].offset - offset)
            lag[group] = {"topics": topics, "total": sum(topics.values())}
        return lag

    def close(self) -> None:
        if self.admin is not None:
            self.admin.close()
        self.admin = None


async def flink_jobs(settings: Settings) -> dict:
    address = f"{settings.flink.rest_host}:{settings.flink.rest_port}"
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(f"http://{address}/jobs/overview")
            response.raise_for_status()
    except httpx.HTTPError as exc:
        return down(address, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                    "run `streampulse cluster up` and submit the jobs (`streampulse submit <job>`)")
    jobs = [{"name": job["name"], "id": job["jid"], "state": job["state"], "start_time": job.get("start-time")}
            for job in response.json().get("jobs", [])]
    return {"status": "up", "address": address, "jobs": jobs}


async def report(settings: Settings, history, current, live, lag: ConsumerLag) -> tuple[int, dict]:
    """(HTTP status, body): 503 when a store the API reads is down, else 200 — "degraded" when the jobs are not
    all running."""
    pg, rs, kafka = settings.postgres, settings.redis, settings.kafka
    services = {}
    try:
        with anyio.fail_after(3):
            await history.rows("SELECT 1 AS ok", {})
        services["postgres"] = {"status": "up", "address": f"{pg.host}:{pg.port}"}
    except Exception as exc:  # reported, not raised
        services["postgres"] = down(f"{pg.host}:{pg.port}", f"{type(exc).__name__}: {exc}", START_STORES)
    try:
        with anyio.fail_after(3):
            await current.redis.ping()
        services["redis"] = {"status": "up", "address": f"{rs.host}:{rs.port}"}
    except Exception as exc:
        services["redis"] = down(f"{rs.host}:{rs.port}", f"{type(exc).__name__}: {exc}", START_STORES)
    try:
        consumer_lag = await anyio.to_thread.run_sync(lag.read)
        services["kafka"] = {"status": "up", "address": kafka.bootstrap}
    except Exception as exc:
        consumer_lag = None
        services["kafka"] = down(kafka.bootstrap, f"{type(exc).__name__}: {exc}", START_STORES)
    services["flink"] = await flink_jobs(settings)
    stream = {"status": "following" if live.ready.is_set() and not live.error else "not following",
              "topics": list(live.topics), "clients": len(live.subscriptions), "buffered_events": len(live.buffer)}
    if live.error:
        stream["error"] = live.error
    if any(services[name]["status"] != "up" for name in ("postgres", "redis", "kafka")):
        status, code = "down", 503
    elif services["flink"]["status"] != "up" or any(job["state"] in ("FAILED", "FAILING", "RESTARTING")
                                                   for job in services["flink"]["jobs"]) or live.error:
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return code, {"status": status, "services": services, "live_stream": stream, "consumer_lag": consumer_lag}
