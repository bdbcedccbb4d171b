"""The read API's routes (FastAPI). `create_app(settings)` checks the credentials first: it refuses to build an
app that could not read its stores."""

import asyncio
import hashlib
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Annotated, Literal

import orjson
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.sse import EventSourceResponse
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from api import health, params, problems
from api.live import LiveStream, Position, decode_position
from api.problems import Problem
from api.store import CurrentTrends, History
from shared.settings import ConfigError, Settings

JSON = "application/json"
IMMUTABLE = "public, max-age=31536000, immutable"
VOLUME_SETTLE = timedelta(minutes=10)  # a silent series' window is scored by the clock after the next ones
READY_WAIT_S = 10
KEEPALIVE_S = 15.0


def check_credentials(settings: Settings) -> None:
    """ConfigError naming the first missing secret: the reader's database password, the API's Kafka and Redis
    logins."""
    settings.postgres.dsn("reader")
    settings.kafka.credentials("api")
    if settings.redis.api_password is None or not settings.redis.api_password.get_secret_value():
        raise ConfigError("redis.api_password is not set: run `streampulse stack up` (it generates credentials into "
                          "the state folder) or export STREAMPULSE_REDIS__API_PASSWORD")


# --- response shapes (for the OpenAPI document; the bodies are serialised straight to JSON) ---

class Trend(BaseModel):
    keyword: str
    window_start: str
    window_end: str
    rank: int
    posts: int
    authors: int
    baseline_mean: float
    baseline_std: float
    z: float
    evidence: str
    evidence_start: str | None = None
    evidence_posts: int | None = None
    evidence_expected: float | None = None
    p_value: float | None = None
    sample_uids: list[str]
    sentiment: float | None = None  # the mean sentiment of the window's scored (English) posts with the keyword
    negative_share: float | None = None
    sentiment_posts: int = 0
    usual_sentiment: float | None = None  # the keyword's usual mood; mood_change = sentiment − usual_sentiment
    mood_change: float | None = None


class CurrentBody(BaseModel):
    window_end: str | None
    read_at: str
    trends: list[Trend]


class TrendPage(BaseModel):
    items: list[Trend]
    next_cursor: str | None


class SeriesPoint(BaseModel):
    window_start: str
    window_end: str
    posts: int
    authors: int
    window_posts: int | None


class SeriesBody(BaseModel):
    keyword: str
    window: str
    points: list[SeriesPoint]


class Anomaly(BaseModel):
    dimension: str
    series: str
    window_start: str
    window_end: str
    posts: int
    baseline_mean: float
    baseline_std: float
    z: float
    direction: str
    severity: str
    p_value: float | None


class AnomalyPage(BaseModel):
    items: list[Anomaly]
    next_cursor: str | None


class Conversation(BaseModel):
    root_uid: str  # the thread's root post (a reply's reply_root, or the post itself)
    session_start: str
    session_end: str
    posts: int
    authors: int
    sources: list[str]
    top_keywords: list[tuple[str, int]]
    root_in_session: bool
    is_open: bool  # still open: a post within conversations.gap_s of its end would extend it


class ConversationPage(BaseModel):
    items: list[Conversation]
    next_cursor: str | None


TREND_COLUMNS = ("window_start, window_end, keyword, trend_rank AS rank, posts, authors, baseline_mean, "
                 "baseline_std, z, evidence, evidence_start, evidence_posts, evidence_expected, p_value, sample_uids, "
                 "sentiment, negative_share, sentiment_posts, usual_sentiment, mood_change")


def dumps(body) -> bytes:
    """JSON with the tables' UTC `timestamp`s as ISO 8601 with Z."""
    return orjson.dumps(body, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


def conversation_row(row: dict) -> dict:
    return {**row, "sources": row["sources"].split(",") if row["sources"] else [],
            "top_keywords": orjson.loads(row["top_keywords"])}


def trend_row(row: dict) -> dict:
    return {**row, "sample_uids": orjson.loads(row["sample_uids"])}


def json_response(body: bytes, cache_control: str, request: Request | None = None) -> Response:
    headers = {"Cache-Control": cache_control}
    if cache_control == IMMUTABLE:
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        headers["ETag"] = etag
        if request is not None and request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
    return Response(body, media_type=JSON, headers=headers)


def create_app(settings: Settings) -> FastAPI:
    check_credentials(settings)
    api = settings.api
    current, history, live = CurrentTrends(settings), History(settings), LiveStream(settings)
    lag = health.ConsumerLag(settings)
    trending = settings.trending
    windows = {f"{trending.tumble_s // 60}m": "tumble", f"{trending.hop_size_s // 60}m": "hop"}
    window_sizes = {"tumble": timedelta(seconds=trending.tumble_s), "hop": timedelta(seconds=trending.hop_size_s)}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await history.open()
        live.start()
        yield
        live.stop()
        await asyncio.gather(history.close(), current.close())
        lag.close()

    app = FastAPI(title="StreamPulse read API", version="1", lifespan=lifespan,
                  description="Trending keywords now and over time, volume anomalies, and the live alerts as "
                              "server-sent events. Times are ISO 8601 (UTC when no zone is given); every error is a "
                              "problem-details object (RFC 9457).",
                  responses=problems.PROBLEM_RESPONSES)
    problems.install(app)
    app.state.live = live

    From = Annotated[datetime | None, Query(alias="from", description="start (inclusive); default: `to` minus "
                                                                       f"{api.default_range_hours} h")]
    To = Annotated[datetime | None, Query(alias="to", description="end (exclusive); default: now")]
    Limit = Annotated[int | None, Query(description=f"page size, 1 to {api.max_page_size}")]
    Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]

    @app.get("/v1/trends/current", response_model=CurrentBody, summary="What is trending now (Redis)")
    async def trends_current() -> Response:
        """The latest scored window's trends, ranked, with their evidence and sample post uids. Shared between
        requests for `api.current_cache_s`."""
        return json_response(await current.get(), f"max-age={max(1, round(api.current_cache_s))}")

    @app.get("/v1/trends", response_model=TrendPage, summary="Trends over a time range (PostgreSQL)")
    async def trends(start: From = None, end: To = None, keyword: Annotated[str | None, Query()] = None,
                     limit: Limit = None, cursor: Cursor = None) -> Response:
        """Every trend whose window ended in [from, to), oldest first, by rank within a window. Sample uids of
        deleted posts are gone from these rows, so the answer is not cached."""
        start, end = params.time_range(api, start, end)
        size = params.page_size(api, limit)
        after = params.decode_cursor(cursor, (datetime, int, str))
        where = ["window_end >= %(start)s", "window_end < %(end)s"]
        values = {"start": start, "end": end, "limit": size + 1}
        if keyword is not None:
            where.append("keyword = %(keyword)s")
            values["keyword"] = params.keyword(keyword)
        if after:
            where.append("(window_end, trend_rank, keyword) > (%(c_end)s, %(c_rank)s, %(c_keyword)s)")
            values |= {"c_end": after[0], "c_rank": after[1], "c_keyword": after[2]}
        rows = await history.rows(f"SELECT {TREND_COLUMNS} FROM trends WHERE {' AND '.join(where)} "
                                  "ORDER BY window_end, trend_rank, keyword LIMIT %(limit)s", values)
        page, more = rows[:size], len(rows) > size
        last = page[-1] if page else None
        body = {"items": [trend_row(row) for row in page],
                "next_cursor": params.encode_cursor([last["window_end"], last["rank"], last["keyword"]])
                if more else None}
        return json_response(dumps(body), "no-cache")

    @app.get("/v1/keywords/{keyword}/series", response_model=SeriesBody, summary="A keyword's counts over time")
    async def keyword_series(request: Request, keyword: Annotated[str, Path(description="as typed: `#Tag` is "
                                                                                         "counted as `#tag`")],
                             start: From = None, end: To = None,
                             window: Annotated[str, Query(description=f"one of {', '.join(windows)}")] = "1m"):
        """The keyword's posts and distinct authors per window (the minute windows the trending job kept: a
        minute's top keywords and the watched ones; the sliding windows in which it trended or came close), with
        all posts of that window. Closed windows never change: such an answer is cached."""
        if window not in windows:
            raise Problem(422, f"window must be one of {', '.join(windows)}, got {window[:20]!r}", parameter="window")
        start, end = params.time_range(api, start, end)
        word, kind = params.keyword(keyword), windows[window]
        key = ("series", kind, word, start, end)
        if (body := history.cached(key)) is not None:
            return json_response(body, IMMUTABLE, request)
        rows = await history.rows(
            "SELECT k.window_start, k.window_end, k.posts, k.authors, w.posts AS window_posts "
            "FROM keyword_window_counts k LEFT JOIN window_posts w ON w.window_kind = k.window_kind "
            "AND w.window_start = k.window_start AND w.source = '*' "
            "WHERE k.window_kind = %(kind)s AND k.source = '*' AND k.keyword = %(keyword)s "
            "AND k.window_start >= %(start)s AND k.window_start < %(end)s ORDER BY k.window_start",
            {"kind": kind, "keyword": word, "start": start, "end": end})
        body = dumps({"keyword": word, "window": window, "points": rows})
        # Every window of the kind is written to window_posts as it closes, in order: one that starts before `to`
        # and ends by the newest written is closed.
        frontier = await history.frontier(f"windows-{kind}", "SELECT max(window_end) AS frontier FROM "
                                          f"window_posts WHERE window_kind = '{kind}'")
        if frontier is not None and end + window_sizes[kind] <= frontier:
            history.keep(key, body)
            return json_response(body, IMMUTABLE, request)
        return json_response(body, "no-cache")

    @app.get("/v1/anomalies", response_model=AnomalyPage, summary="Volume anomalies over a time range")
    async def anomalies(request: Request, start: From = None, end: To = None,
                        series: Annotated[str | None, Query(max_length=200, description="e.g. reddit, "
                                                            "bluesky/en, reddit/worldnews")] = None,
                        severity: Annotated[Literal["warning", "critical"] | None, Query()] = None,
                        dimension: Annotated[Literal["source", "lang", "community"] | None, Query()] = None,
                        limit: Limit = None, cursor: Cursor = None) -> Response:
        """Windows whose post count left its series' baseline (spike, drop, outage), oldest first."""
        start, end = params.time_range(api, start, end)
        size = params.page_size(api, limit)
        after = params.decode_cursor(cursor, (datetime, str, str))
        key = ("anomalies", start, end, series, severity, dimension, size, cursor)
        if (body := history.cached(key)) is not None:
            return json_response(body, IMMUTABLE, request)
        where = ["window_start >= %(start)s", "window_start < %(end)s"]
        values = {"start": start, "end": end, "limit": size + 1, "series": series, "severity": severity,
                  "dimension": dimension}
        where += [f"{name} = %({name})s" for name in ("series", "severity", "dimension") if values[name] is not None]
        if after:
            where.append("(window_start, dimension, series) > (%(c_start)s, %(c_dimension)s, %(c_series)s)")
            values |= {"c_start": after[0], "c_dimension": after[1], "c_series": after[2]}
        rows = await history.rows(
            "SELECT dimension, series, window_start, window_end, posts, baseline_mean, baseline_std, z, direction, "
            f"severity, p_value FROM volume_anomalies WHERE {' AND '.join(where)} "
            "ORDER BY window_start, dimension, series LIMIT %(limit)s", values)
        page, more = rows[:size], len(rows) > size
        last = page[-1] if page else None
        body = dumps({
            "items": page,
            "next_cursor": params.encode_cursor([last["window_start"], last["dimension"], last["series"]])
            if more else None})
        frontier = await history.frontier("volume", "SELECT max(window_end) AS frontier FROM volume_windows")
        if frontier is not None and end <= frontier - VOLUME_SETTLE:
            history.keep(key, body)
            return json_response(body, IMMUTABLE, request)
        return json_response(body, "no-cache")

    @app.get("/v1/conversations", response_model=ConversationPage, summary="Hot conversations (PostgreSQL)")
    async def conversations(start: Annotated[datetime | None, Query(alias="from", description="start (inclusive); "
                                                                    "default: `to` minus 1 h")] = None,
                            end: To = None,
                            min_posts: Annotated[int, Query(ge=1, description="at least this many posts")] = 2,
                            limit: Limit = None, cursor: Cursor = None) -> Response:
        """The conversations (a thread's session windows, jobs/conversations.py) active in [from, to) — ending at
        or after `from`, starting before `to` — the busiest first (posts, then root uid and start). Open sessions
        grow, so the answer is not cached."""
        start, end = params.time_range(api, start, end, default_hours=1)
        size = params.page_size(api, limit)
        after = params.decode_cursor(cursor, (int, str, datetime))
        where = ["session_end >= %(start)s", "session_start < %(end)s", "posts >= %(min_posts)s"]
        values = {"start": start, "end": end, "min_posts": min_posts, "limit": size + 1}
        if after:
            where.append("(posts < %(c_posts)s OR (posts = %(c_posts)s AND (root_uid, session_start) > "
                         "(%(c_root)s, %(c_start)s)))")
            values |= {"c_posts": after[0], "c_root": after[1], "c_start": after[2]}
        rows = await history.rows(
            "SELECT root_uid, session_start, session_end, posts, authors, sources, top_keywords, root_in_session, "
            f"is_open FROM conversations WHERE {' AND '.join(where)} "
            "ORDER BY posts DESC, root_uid, session_start LIMIT %(limit)s", values)
        page, more = rows[:size], len(rows) > size
        last = page[-1] if page else None
        body = {"items": [conversation_row(row) for row in page],
                "next_cursor": params.encode_cursor([last["posts"], last["root_uid"], last["session_start"]])
                if more else None}
        return json_response(dumps(body), "no-cache")

    @app.get("/v1/health", summary="The stores, the jobs and their consumer lag")
    async def health_report() -> JSONResponse:
        """200 when the API can answer (status "ok", or "degraded" when a job is not running or the live stream
        is not following); 503 when PostgreSQL, Redis or Kafka is down, with its address and what to run."""
        code, body = await health.report(settings, history, current, live, lag)
        return JSONResponse(body, status_code=code, headers={"Cache-Control": "no-store"})

    async def resume_position(last_event_id: Annotated[str | None, Header(description="the id of the last event "
                                                                                       "received")] = None,
                              from_id: Annotated[str | None, Query(alias="last_event_id", description="the same, "
                                                                   "for clients that cannot set headers")] = None
                              ) -> Position | None:
        try:
            await asyncio.wait_for(live.ready.wait(), READY_WAIT_S)
        except TimeoutError:
            raise Problem(503, f"the live stream is not following {', '.join(live.topics)} on "
                               f"{settings.kafka.bootstrap} ({live.error or 'no answer yet'}); is Kafka up? "
                               "(`streampulse stack up`)") from None
        text = last_event_id or from_id
        if text is None:
            return None
        try:
            return decode_position(text, live.topics)
        except ValueError as exc:
            raise Problem(400, f"Last-Event-ID: {exc}", parameter="Last-Event-ID") from exc

    @app.get("/v1/stream/trends", summary="Live trend alerts and anomalies", response_class=Response,
             responses={200: {"description": "server-sent events: `event`, `id`, `data` (the job's JSON record)",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
    async def stream_trends(start: Annotated[Position | None, Depends(resume_position)]) -> EventSourceResponse:
        """Server-sent events: `trend` (an alert of the trending job) and `anomaly` (of the volume job), each the
        job's JSON record, as committed to Kafka. Reconnect with the last id as Last-Event-ID to miss nothing and
        see nothing twice."""
        # Encoded once per event for every client that is caught up (not per client through a model): one
        # process serves a thousand clients.
        return EventSourceResponse(live.stream(start, KEEPALIVE_S),
                                   headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory for worker processes: the settings from config/ and the environment."""
    from shared.settings import load_settings

    return create_app(load_settings())
