"""What the API reads, and the answers it keeps: "trending now" from Redis (shared for `api.current_cache_s`),
history from PostgreSQL as the read-only role (answers about closed windows kept, they never change)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from datetime import UTC, datetime

import orjson
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from shared.names import REDIS_CURRENT, REDIS_KEYWORD
from shared.settings import Settings

# Redis hash fields (runtime/trend_cache.py) by type; the rest are text.
INT_FIELDS = ("window_start", "window_end", "rank", "posts", "authors", "evidence_start", "evidence_posts",
              "sentiment_posts")
FLOAT_FIELDS = ("baseline_mean", "baseline_std", "z", "evidence_expected", "p_value", "sentiment", "negative_share",
                "usual_sentiment", "mood_change")
FRONTIER_TTL_S = 5.0


def iso_ms(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def trend_from_hash(keyword: str, fields: dict[str, str]) -> dict:
    trend = {"keyword": keyword}
    for name, value in fields.items():
        if name in INT_FIELDS:
            trend[name] = int(value)
        elif name in FLOAT_FIELDS:
            trend[name] = None if value in ("None", "") else float(value)
        elif name == "sample_uids":
            trend[name] = orjson.loads(value) if value else []
        else:
            trend[name] = value
    for name in ("window_start", "window_end", "evidence_start"):
        if name in trend:
            trend[name] = iso_ms(trend[name])
    return trend


class CurrentTrends:
    """GET /v1/trends/current's body, read from Redis at most once per `ttl_s` (one read at a time)."""

    def __init__(self, settings: Settings):
        import redis.asyncio as redis

        rs = settings.redis
        password = rs.api_password.get_secret_value() if rs.api_password else None
        self.redis = redis.Redis(host=rs.host, port=rs.port, username=rs.api_user, password=password,
                                 socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
        self.ttl_s = settings.api.current_cache_s
        self.body: bytes | None = None
        self.read_at = 0.0
        self.lock = asyncio.Lock()

    async def get(self) -> bytes:
        if self.body is not None and time.monotonic() - self.read_at < self.ttl_s:
            return self.body
        async with self.lock:
            if self.body is None or time.monotonic() - self.read_at >= self.ttl_s:
                self.body = orjson.dumps(await self.read())
                self.read_at = time.monotonic()
        return self.body

    async def read(self) -> dict:
        async with self.redis.pipeline(transaction=True) as pipe:  # the ranking and its window together
            ranking, window_end = await pipe.zrevrange(REDIS_CURRENT, 0, -1, withscores=True).hget(
                REDIS_CURRENT + ":meta", "window_end").execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            for keyword, _ in ranking:
                pipe.hgetall(REDIS_KEYWORD + keyword)
            hashes = await pipe.execute() if ranking else []
        trends = []
        for (keyword, z), fields in zip(ranking, hashes, strict=True):
            trend = trend_from_hash(keyword, fields) if fields else {"keyword": keyword}
            trend.setdefault("z", z)
            trends.append(trend)
        trends.sort(key=lambda t: (t.get("rank", len(trends) + 1), -t["z"], t["keyword"]))
        return {"window_end": iso_ms(int(window_end)) if window_end else None, "trends": trends,
                "read_at": iso_ms(int(time.time() * 1000))}

    async def close(self) -> None:
        await self.redis.aclose()


class History:
    """The sink tables, through a small pool of read-only connections."""

    def __init__(self, settings: Settings):
        self.pool = AsyncConnectionPool(settings.postgres.dsn("reader"), min_size=1, max_size=4, open=False,
                                        kwargs={"autocommit": True, "row_factory": dict_row})
        self.closed: OrderedDict[tuple, bytes] = OrderedDict()
        self.closed_entries = settings.api.closed_cache_entries
        self.frontiers: dict[str, tuple[float, datetime | None]] = {}

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def rows(self, query: str, params: dict) -> list[dict]:
        async with self.pool.connection() as conn:
            return await (await conn.execute(query, params)).fetchall()

    async def frontier(self, key: str, query: str) -> datetime | None:
        """The end of the newest window a job wrote (`query` selects it as `frontier`; kept a few seconds under
        `key`): every window ending by then is closed."""
        read_at, value = self.frontiers.get(key, (0.0, None))
        if time.monotonic() - read_at > FRONTIER_TTL_S:
            found = await self.rows(query, {})
            value = found[0]["frontier"] if found else None
            self.frontiers[key] = (time.monotonic(), value)
        return value

    def cached(self, key: tuple) -> bytes | None:
        body = self.closed.get(key)
        if body is not None:
            self.closed.move_to_end(key)
        return body

    def keep(self, key: tuple, body: bytes) -> None:
        if self.closed_entries:
            self.closed[key] = body
            while len(self.closed) > self.closed_entries:
                self.closed.popitem(last=False)
