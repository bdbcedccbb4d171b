"""The read API (`streampulse api`, api/) under load on this machine, in one bounded run: requests per second and
latency of its HTTP endpoints under wrk, and the live stream's fan-out to a thousand server-sent-event clients.

    python -m bench.read_api [--seconds 10] [--connections 32] [--wrk-threads 1] [--sse-clients 1000]
                             [--events 200] [--rate 20] [--port 18090] [--workers 1] [--seed 7]

Everything runs on the loopback, against the local stack (`streampulse stack up`), in this order:
1. Seeds data of its own, with `--seed`: the day 2032-03-01 (a day no job, test or demo writes; its rows are
   deleted before and after) gets one trend per minute window for each of 20 ranks (28,800 rows of `trends`),
   each keyword's minute counts (28,800 rows of `keyword_window_counts`) and 1,440 rows of `volume_anomalies`,
   written as the writer role, then ANALYZEd as the admin role (the tables' owner) so that the queries are
   planned on statistics that know the rows, as for tables the jobs write steadily. Redis gets a "trending now"
   set of 25 trends with 5 sample uids each (TrendPublisher, as the trending job publishes it), window_end =
   now, kept 600 s.
2. Starts `streampulse api --port P --workers W` (18090 by default; a free port when that one is taken),
   following two fresh scratch topics `bench.api.alerts.<id>` and `bench.api.anomalies.<id>` (made here,
   deleted at the end), and waits for GET /v1/health to answer.
3. HTTP: `wrk -t1 -c32 -d10s --latency` on /v1/trends/current (Redis, shared for api.current_cache_s), on a
   page of the seeded day's trends, its anomalies and a keyword's minute series (PostgreSQL, as the reader;
   none of these is cached by the API: the day lies beyond every window the jobs closed). Reports
   requests/s, p50/p90/p99 latency, non-2xx answers, socket errors and the API's CPU (percent of one core).
4. SSE fan-out: `--sse-clients` clients (plain asyncio streams, HTTP/1.1, in this process) on
   GET /v1/stream/trends; once the API counts them all (its /v1/health `live_stream.clients`; with more than
   one worker, once each client had a warm-up event), `--events` alerts go to the alerts topic at `--rate` per
   second, each carrying the time it was sent. Reports the clients connected, those that did not get every
   event exactly once, and the delivery delay (received − sent, all client-events: p50, p99, max).
5. The API's peak RSS (VmHWM of the server process, or the sum over its workers) and CPU, then a summary.

Aims on this 2-core machine: /v1/trends/current ≥ 2,000 requests/s at p99 < 20 ms; 1,000 SSE clients each
getting every event once with p99 delay < 1 s. Each is reported as "aim met" or "aim missed", never asserted.
wrk, the SSE clients and the API share the machine's cores: the figures are of the whole, on this machine.

Side effects while it runs: the dashboards' "latest" panels may show the seeded day; the "trending now" set in
Redis is the benchmark's (the trending job's publishes of windows ending before the benchmark's start are
refused meanwhile, as TrendPublisher never goes back in time). At the end the set is removed if it is still the
benchmark's (the job's next window then publishes as usual), and so are the seeded rows and the topics.
Installs wrk (`apt-get install -y wrk`, Debian's package) when it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import orjson

from bench import process_tree
from runtime import clients
from runtime.trend_cache import TrendPublisher, redis_options
from shared.names import REDIS_CURRENT, REDIS_KEYWORD
from shared.settings import PROJECT_ROOT, Settings, load_settings

DAY = datetime(2032, 3, 1)  # UTC, naive as the tables hold it: a day nobody else writes
NEXT_DAY = DAY + timedelta(days=1)
FROM, TO = "2032-03-01T00:00:00Z", "2032-03-02T00:00:00Z"
HISTORY_RANKS = 20
CURRENT_TRENDS, SAMPLES = 25, 5
CURRENT_TTL_S = 600
WORDS = ("aurora", "eclipse", "election", "earthquake", "playoffs", "heatwave", "budget", "launch", "festival",
         "outage", "merger", "verdict", "premiere", "wildfire", "summit", "strike", "transfer", "comet", "tariff",
         "marathon", "blizzard", "recall", "debate", "harvest", "keynote")
KEYWORDS = tuple(f"bench{word}" for word in WORDS)  # never a keyword a real post gives: the Redis hashes are ours
SERIES = (("source", "reddit"), ("source", "bluesky"), ("source", "mastodon"), ("lang", "bluesky/en"),
          ("lang", "bluesky/ja"), ("lang", "mastodon/de"), ("community", "reddit/worldnews"),
          ("community", "reddit/news"), ("community", "reddit/soccer"), ("community", "mastodon/mastodon.social"))
AIM_RPS, AIM_P99_MS = 2000.0, 20.0
AIM_SSE_CLIENTS, AIM_SSE_P99_MS = 1000, 1000.0
READY_CEILING_S = 60.0
DELIVERY_CEILING_S = 30.0  # after the last event is sent
CONNECT_CONCURRENCY = 200
# Delete the current set only while it still holds the benchmark's window: the job may have published since.
FORGET_CURRENT = """
if redis.call('HGET', KEYS[2], 'window_end') == ARGV[1] then
    redis.call('DEL', KEYS[1], KEYS[2])
    return 1
end
return 0
"""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- seeding -------------------------------------------------------------------------------------------------

def clear_day(settings: Settings) -> None:
    with clients.postgres(settings, "writer") as conn:
        conn.execute("DELETE FROM trends WHERE window_end >= %s AND window_end < %s", (DAY, NEXT_DAY))
        conn.execute("DELETE FROM keyword_window_counts WHERE window_start >= %s AND window_start < %s",
                     (DAY, NEXT_DAY))
        conn.execute("DELETE FROM volume_anomalies WHERE window_start >= %s AND window_start < %s", (DAY, NEXT_DAY))


def analyze(settings: Settings) -> None:
    """Fresh planner statistics for the seeded tables, as autovacuum keeps them for tables written steadily: a
    bulk load planned with statistics from before it makes the history queries ten times slower (a whole day
    read and sorted per page) until autovacuum's next ANALYZE, which would make the figures depend on when it
    ran. Only the tables' owner may ANALYZE: the admin role."""
    try:
        with clients.postgres(settings, "admin") as conn:
            conn.execute("ANALYZE trends, keyword_window_counts, volume_anomalies")
    except Exception as exc:  # reported: the run goes on, its history figures may then be the stale plan's
        log(f"ANALYZE as the admin role failed ({type(exc).__name__}: {exc}); history queries may run on stale "
            "statistics")


def samples(rng: random.Random, keyword: str) -> list[str]:
    return [f"bluesky:at://did:plc:bench{rng.randrange(16**8):08x}/app.bsky.feed.post/{keyword}{n}"
            for n in range(SAMPLES)]


def seed_day(settings: Settings, rng: random.Random) -> dict[str, int]:
    """The day's trends, keyword minute counts and volume anomalies, by COPY as the writer; rows per table."""
    minutes = 24 * 60
    trend_columns = ("window_start, window_end, keyword, trend_rank, posts, authors, baseline_mean, baseline_std, z, "
                     "sample_uids, evidence, evidence_start, evidence_posts, evidence_expected, p_value")
    words = KEYWORDS[:HISTORY_RANKS]
    counts = {"trends": 0, "keyword_window_counts": 0, "volume_anomalies": 0}
    with clients.postgres(settings, "writer") as conn, conn.cursor() as cursor:
        with cursor.copy(f"COPY trends ({trend_columns}) FROM STDIN") as copy:
            for minute in range(minutes):
                end = DAY + timedelta(minutes=minute)
                for rank, keyword in enumerate(rng.sample(words, len(words)), start=1):
                    mean = rng.uniform(2, 30)
                    std = math.sqrt(mean) * rng.uniform(1.0, 1.6)
                    z = rng.uniform(4, 12) / math.sqrt(rank)
                    posts = int(mean + z * std) + 1
                    evidence = rng.choice(("window", "minute", "sequential"))
                    span = {"window": 5, "minute": 1, "sequential": rng.randint(2, 5)}[evidence]
                    copy.write_row((end - timedelta(minutes=5), end, keyword, rank, posts, int(posts * 0.8), mean, std,
                                    z, orjson.dumps(samples(rng, keyword)).decode(), evidence,
                                    end - timedelta(minutes=span), posts, mean * span / 5, 10 ** -rng.uniform(4, 12)))
                    counts["trends"] += 1
        with cursor.copy("COPY keyword_window_counts (window_kind, window_start, window_end, source, keyword, posts, "
                         "authors) FROM STDIN") as copy:
            for minute in range(minutes):
                start = DAY + timedelta(minutes=minute)
                for keyword in words:
                    posts = rng.randint(1, 400)
                    copy.write_row(("tumble", start, start + timedelta(minutes=1), "*", keyword, posts,
                                    rng.randint(1, posts)))
                    counts["keyword_window_counts"] += 1
        with cursor.copy("COPY volume_anomalies (dimension, series, window_start, window_end, posts, baseline_mean, "
                         "baseline_std, z, direction, severity, p_value) FROM STDIN") as copy:
            for minute in range(minutes):
                start = DAY + timedelta(minutes=minute)
                dimension, series = SERIES[minute % len(SERIES)]
                mean = rng.uniform(50, 500)
                direction = rng.choice(("spike", "drop", "outage"))
                posts = {"spike": int(mean * rng.uniform(2, 4)), "drop": int(mean * rng.uniform(0.05, 0.3)),
                         "outage": 0}[direction]
                std = math.sqrt(mean * 1.2)
                copy.write_row((dimension, series, start, start + timedelta(minutes=1), posts, mean, std,
                                (posts - mean) / std, direction, rng.choice(("warning", "critical")),
                                10 ** -rng.uniform(6, 14)))
                counts["volume_anomalies"] += 1
    return counts


def publish_current(settings: Settings, rng: random.Random) -> tuple[int, bool]:
    """The "trending now" set as the trending job publishes it; (its window_end, whether Redis took it)."""
    window_end = int(time.time() * 1000)
    window_start = window_end - settings.trending.hop_size_s * 1000
    ranked = []
    for rank, keyword in enumerate(KEYWORDS[:CURRENT_TRENDS], start=1):
        mean = rng.uniform(2, 30)
        std = math.sqrt(mean) * rng.uniform(1.0, 1.6)
        z = round(rng.uniform(4, 12) / math.sqrt(rank) + (CURRENT_TRENDS - rank) * 0.01, 6)
        posts = int(mean + z * std) + 1
        ranked.append((keyword, z, samples(rng, keyword), {
            "window_start": window_start, "window_end": window_end, "rank": rank, "posts": posts,
            "authors": int(posts * 0.8), "baseline_mean": round(mean, 6), "baseline_std": round(std, 6), "z": z,
            "evidence": "window", "evidence_start": window_start, "evidence_posts": posts,
            "evidence_expected": round(mean, 6), "p_value": 10 ** -rng.uniform(4, 12)}))
    publisher = TrendPublisher(redis_options(settings), CURRENT_TTL_S)
    try:
        publisher.publish(window_end, [(k, z) for k, z, _, _ in ranked], [(k, s, f) for k, _, s, f in ranked])
        held = publisher.client.hget(REDIS_CURRENT + ":meta", "window_end")
    finally:
        publisher.client.close()
    return window_end, held == str(window_end)


def forget_current(settings: Settings, window_end: int) -> bool:
    redis = clients.redis(settings)
    try:
        removed = bool(redis.eval(FORGET_CURRENT, 2, REDIS_CURRENT, REDIS_CURRENT + ":meta", str(window_end)))
        redis.delete(*[REDIS_KEYWORD + keyword for keyword in KEYWORDS])
        return removed
    finally:
        redis.close()


# --- the API process ---------------------------------------------------------------------------------------

def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith(name + ":")), 0)
    except OSError:
        return 0


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class Api:
    """`streampulse api` as a subprocess, its stderr in a temporary log."""

    def __init__(self, port: int, workers: int, env: dict[str, str]):
        self.port, self.workers = port, workers
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = Path(tempfile.mkstemp(prefix="bench-read-api-", suffix=".log")[1])
        command = [str(PROJECT_ROOT / ".venv" / "bin" / "streampulse"), "api", "--port", str(port),
                   "--workers", str(workers)]
        log(f"starting {shlex.join(command[1:])} (log {self.log_path})")
        with self.log_path.open("w") as stderr:
            self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, env={**os.environ, **env},
                                            stdout=subprocess.DEVNULL, stderr=stderr)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def troubles(self) -> list[str]:
        """The log's warnings, errors and tracebacks."""
        return [line for line in self.log_path.read_text(errors="replace").splitlines()
                if re.search(r"WARNING|ERROR|CRITICAL|Traceback", line)]

    def health(self) -> dict:
        return httpx.get(self.base + "/v1/health", timeout=10).json()

    def wait_ready(self, ceiling_s: float) -> dict:
        """The first /v1/health answer whose live stream follows the topics; RuntimeError when the process
        ends or the ceiling passes first."""
        deadline, last = time.monotonic() + ceiling_s, "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the API exited with {self.process.returncode}:\n{self.tail()}")
            try:
                body = self.health()
                if body.get("live_stream", {}).get("status") == "following":
                    return body
                last = f"live stream {body.get('live_stream')}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise RuntimeError(f"the API did not answer /v1/health within {ceiling_s:.0f}s ({last}):\n{self.tail()}")

    def pids(self) -> list[int]:
        return process_tree(self.process.pid) if self.process.poll() is None else []

    def peak_rss_kb(self) -> tuple[int, int]:
        """VmHWM of the server process (the `streampulse api` process with one worker), and the sum over the
        process and its workers."""
        pids = self.pids()
        main = status_kb(self.process.pid, "VmHWM")
        return (main, sum(status_kb(pid, "VmHWM") for pid in pids)) if pids else (0, 0)

    def stop(self) -> int | None:
        """SIGINT (uvicorn's graceful shutdown), then wait; SIGKILL only when it does not end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log("the API did not stop within 20 s of SIGINT: killing it")
                self.process.kill()
                self.process.wait()
        return self.process.returncode


# --- HTTP load with wrk ----------------------------------------------------------------------------------------

def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk is not installed: installing it (apt-get install -y wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, stdout=sys.stderr).returncode != 0:
        log("apt-get install failed: apt-get update, then again")
        subprocess.run(["apt-get", "update"], env=env, stdout=sys.stderr, check=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, stdout=sys.stderr, check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("apt-get installed wrk but it is not on PATH")
    return found


def wrk_version(wrk: str) -> str:
    result = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0].split(" Copyright")[0] if text else "wrk ?"


UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * UNIT_MS[match[2]]


@dataclass
class WrkResult:
    name: str
    path: str
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = math.nan
    p90_ms: float = math.nan
    p99_ms: float = math.nan
    non_2xx: int = 0
    socket_errors: int = 0
    api_cpu_pct: float = math.nan
    body: str = ""  # what one request answered before the load
    output: str = ""


def parse_wrk(result: WrkResult, text: str) -> WrkResult:
    result.output = text
    for percent, value in re.findall(r"^\s+(50|90|99)(?:\.0+)?%\s+(\S+)\s*$", text, re.MULTILINE):
        setattr(result, f"p{percent}_ms", duration_ms(value))
    if match := re.search(r"^\s*(\d+) requests in ", text, re.MULTILINE):
        result.requests = int(match[1])
    if match := re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE):
        result.rps = float(match[1])
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        result.non_2xx = int(match[1])
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        result.socket_errors = sum(int(n) for n in match.groups())
    return result


def describe(path: str, response: httpx.Response) -> str:
    """One line on what an endpoint answered: status, size and items."""
    text = f"{response.status_code}, {len(response.content):,} B"
    if response.status_code == 200:
        body = response.json()
        for key in ("trends", "items", "points"):
            if key in body:
                text += f", {len(body[key])} {key}"
    return text


def run_wrk(wrk: str, api: Api, name: str, path: str, args) -> WrkResult:
    result = WrkResult(name, path)
    url = api.base + path
    probe = httpx.get(url, timeout=10)  # what the load will get, and one warm-up request
    result.body = describe(path, probe)
    if probe.status_code != 200:
        log(f"{name}: GET {path} answered {probe.status_code}: {probe.text[:500]}")
    command = [wrk, f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", url]
    log(f"{name}: {shlex.join(command)}")
    pids = api.pids()
    cpu_before, started = cpu_seconds(pids), time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 60)
    result.api_cpu_pct = 100 * (cpu_seconds(pids) - cpu_before) / (time.monotonic() - started)
    if done.returncode != 0:
        log(f"{name}: wrk exited with {done.returncode}: {done.stderr.strip()}")
    parse_wrk(result, done.stdout)
    log(f"{name}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.2f} ms, non-2xx {result.non_2xx}, "
        f"socket errors {result.socket_errors}")
    return result


# --- the live stream's fan-out ---------------------------------------------------------------------------------

class Gate:
    """An event that opens when `add` has been called `target` times."""

    def __init__(self, target: int):
        self.target, self.count = target, 0
        self.event = asyncio.Event()
        if target <= 0:
            self.event.set()

    def add(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.event.set()


@dataclass
class SseClient:
    index: int
    status: int | None = None  # the HTTP status it got
    error: str | None = None
    ended: bool = False  # the server closed the stream
    seqs: list[int] = field(default_factory=list)  # each event's sequence number, as received
    delays_ms: list[float] = field(default_factory=list)
    warm: bool = False  # got the warm-up event (seq -1)
    last_id: str | None = None


class SseRun:
    """N clients of GET /v1/stream/trends in this process: raw HTTP/1.1, the chunked body decoded by hand, each
    event (lines up to a blank line) parsed for its `data:` JSON's seq and sent_ms."""

    def __init__(self, port: int, path: str, clients_n: int, events: int):
        self.port, self.path, self.events = port, path, events
        self.clients = [SseClient(i) for i in range(clients_n)]
        self.answered = Gate(clients_n)  # a client got its response head, or failed
        self.warmed = Gate(clients_n)
        self.complete = Gate(clients_n)  # a client has every event
        self.writers: list[asyncio.StreamWriter] = []
        self.connect_slots = asyncio.Semaphore(CONNECT_CONCURRENCY)
        self.closing = False  # the benchmark closes the streams: an end is no longer the server's doing

    async def run_client(self, client: SseClient) -> None:
        answered = False
        try:
            async with self.connect_slots:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                self.writers.append(writer)
                writer.write(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAccept: text/event-stream"
                             "\r\nCache-Control: no-cache\r\n\r\n".encode())
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            client.status = int(lines[0].split()[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            answered = True
            self.answered.add()
            if client.status != 200:
                client.error = f"HTTP {client.status}"
                return
            await self.read_events(client, reader, headers.get("transfer-encoding", "").lower() == "chunked")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
            client.error = f"{type(exc).__name__}: {exc}"
        finally:
            if not answered:
                self.answered.add()

    async def read_events(self, client: SseClient, reader: asyncio.StreamReader, chunked: bool) -> None:
        raw, text = b"", b""  # bytes read and not yet de-chunked; the event stream, not yet a whole event
        state, left = "size", 0  # chunked framing: a size line, then `left` bytes of data, then CRLF
        while True:
            data = await reader.read(65536)
            if not data:
                client.ended = not self.closing
                return
            received_ms = time.time() * 1000
            if not chunked:
                text += data
            else:
                raw += data
                while raw:
                    if state == "size":
                        end = raw.find(b"\r\n")
                        if end < 0:
                            break
                        left, raw = int(raw[:end].split(b";")[0], 16), raw[end + 2:]
                        if left == 0:  # the last chunk: the server ended the stream
                            client.ended = not self.closing
                            return
                        state = "data"
                    elif state == "data":
                        take, raw = raw[:left], raw[left:]
                        text, left = text + take, left - len(take)
                        if left == 0:
                            state, left = "crlf", 2
                    else:
                        skip = min(left, len(raw))
                        raw, left = raw[skip:], left - skip
                        if left == 0:
                            state = "size"
            while (end := text.find(b"\n\n")) >= 0:
                self.on_event(client, text[:end], received_ms)
                text = text[end + 2:]

    def on_event(self, client: SseClient, block: bytes, received_ms: float) -> None:
        data = []
        for line in block.split(b"\n"):
            if line.startswith(b":"):
                continue  # a comment: the keep-alive
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"data":
                data.append(value)
            elif name == b"id":
                client.last_id = value.decode()
        if not data:
            return
        body = orjson.loads(b"\n".join(data))
        seq = body.get("seq")
        if seq == -1:
            if not client.warm:
                client.warm = True
                self.warmed.add()
            return
        client.seqs.append(seq)
        client.delays_ms.append(received_ms - body["sent_ms"])
        if len(client.seqs) == self.events:
            self.complete.add()

    def close(self) -> None:
        self.closing = True
        for writer in self.writers:
            writer.close()


def make_producer(settings: Settings):
    from kafka import KafkaProducer

    return KafkaProducer(**settings.kafka.client_options("producer"), client_id="bench-read-api", acks="all",
                         linger_ms=0, value_serializer=orjson.dumps)


def alert(run: str, seq: int, rng: random.Random) -> dict:
    """An alert like the trending job's, with its sequence number and the time it is sent."""
    keyword = rng.choice(KEYWORDS)
    now_ms = int(time.time() * 1000)
    return {"bench": run, "seq": seq, "keyword": keyword, "window_start": now_ms - 300_000, "window_end": now_ms,
            "rank": rng.randint(1, 20), "posts": rng.randint(20, 400), "z": round(rng.uniform(4, 12), 6),
            "evidence": "window", "sample_uids": samples(rng, keyword), "sent_ms": time.time() * 1000}


def produce_events(producer, topic: str, run: str, events: int, rate: float, seed: int) -> float:
    """`events` alerts at `rate` per second (on a schedule, not after each other); the seconds it took."""
    rng = random.Random(seed)
    started = time.monotonic()
    for seq in range(events):
        due = started + seq / rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        producer.send(topic, alert(run, seq, rng))
    producer.flush(timeout=30)
    return time.monotonic() - started


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank q-quantile of sorted `values`."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


async def sse_phase(settings: Settings, api: Api, alerts_topic: str, run: str, args) -> dict:
    fanout = SseRun(api.port, "/v1/stream/trends", args.sse_clients, args.events)
    producer = await asyncio.to_thread(make_producer, settings)
    tasks: list[asyncio.Task] = []
    result: dict = {"clients": args.sse_clients}
    try:
        log(f"SSE: connecting {args.sse_clients} clients to /v1/stream/trends")
        started = time.monotonic()
        tasks = [asyncio.create_task(fanout.run_client(client)) for client in fanout.clients]
        try:
            await asyncio.wait_for(fanout.answered.event.wait(), READY_CEILING_S)
        except TimeoutError:
            log(f"SSE: only {fanout.answered.count} of {args.sse_clients} clients answered within "
                f"{READY_CEILING_S:.0f}s")
        ok = sum(1 for c in fanout.clients if c.status == 200 and c.error is None)
        result["connect_s"] = time.monotonic() - started
        if api.workers == 1:  # the server counts its subscribers: wait until it counts them all
            deadline, counted = time.monotonic() + READY_CEILING_S, -1
            async with httpx.AsyncClient(timeout=10) as http:
                while time.monotonic() < deadline:
                    counted = (await http.get(api.base + "/v1/health")).json()["live_stream"]["clients"]
                    if counted >= ok:
                        break
                    await asyncio.sleep(0.2)
            result["counted"] = counted
            log(f"SSE: {ok} clients streaming, the API counts {counted} "
                f"({time.monotonic() - started:.1f}s after the first connect)")
        else:  # /v1/health answers for one worker: a warm-up event proves every client is subscribed
            await asyncio.to_thread(lambda: producer.send(alerts_topic, {"bench": run, "seq": -1,
                                                                         "sent_ms": time.time() * 1000}).get(30))
            try:
                await asyncio.wait_for(fanout.warmed.event.wait(), READY_CEILING_S)
            except TimeoutError:
                log(f"SSE: only {fanout.warmed.count} clients got the warm-up event")
            result["counted"] = fanout.warmed.count
        result["connected"] = ok
        log(f"SSE: producing {args.events} events at {args.rate:g}/s to {alerts_topic}")
        result["produce_s"] = await asyncio.to_thread(produce_events, producer, alerts_topic, run, args.events,
                                                      args.rate, args.seed)
        try:
            await asyncio.wait_for(fanout.complete.event.wait(), DELIVERY_CEILING_S)
        except TimeoutError:
            log(f"SSE: {fanout.complete.count} of {args.sse_clients} clients had every event "
                f"{DELIVERY_CEILING_S:.0f}s after the last was sent")
    finally:
        fanout.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(producer.close, 10)
    everything = set(range(args.events))
    exact = [c for c in fanout.clients if len(c.seqs) == args.events and set(c.seqs) == everything]
    received = sorted(len(c.seqs) for c in fanout.clients)
    delays = sorted(d for c in fanout.clients for d in c.delays_ms)
    errors = [c.error for c in fanout.clients if c.error]
    result |= {"exact": len(exact), "not_exact": len(fanout.clients) - len(exact),
               "received_min": received[0] if received else 0, "received_max": received[-1] if received else 0,
               "duplicates": sum(len(c.seqs) - len(set(c.seqs)) for c in fanout.clients),
               "ended_early": sum(1 for c in fanout.clients if c.ended), "errors": len(errors),
               "first_error": errors[0] if errors else None, "client_events": len(delays),
               "p50_ms": quantile(delays, 0.50), "p99_ms": quantile(delays, 0.99),
               "max_ms": delays[-1] if delays else math.nan}
    return result


# --- the report ------------------------------------------------------------------------------------------------

def machine() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    memory = "?"
    with contextlib.suppress(OSError, StopIteration, ValueError), open("/proc/meminfo") as meminfo:
        kb = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
        memory = f"{kb / 1024**2:.1f} GiB"
    return {"nproc": str(len(os.sched_getaffinity(0))), "cpu": model, "memory": memory,
            "kernel": platform.release(), "python": platform.python_version()}


def table(header: list[str], rows: list[list[str]], right: tuple[int, ...] = ()) -> str:
    """Plain-text columns; those in `right` (numbers) right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.2f}"


def print_report(args, wrk_results: list[WrkResult], sse: dict | None, facts: dict, command: str) -> None:
    print("\n# read API benchmark (bench/read_api.py)")
    print(f"command: {command}")
    print(f"options: --seconds {args.seconds} --connections {args.connections} --wrk-threads {args.wrk_threads} "
          f"--sse-clients {args.sse_clients} --events {args.events} --rate {args.rate:g} --port {args.port} "
          f"--workers {args.workers} --seed {args.seed}")
    print(f"machine: nproc {facts['nproc']}, {facts['cpu']}, {facts['memory']} RAM, Linux {facts['kernel']}, "
          f"Python {facts['python']}, {facts.get('wrk', 'wrk ?')}")
    print(f"api: port {facts.get('port', '?')}, {args.workers} worker{'s' if args.workers > 1 else ''}; "
          f"seeded {facts.get('seeded', '?')}")
    if wrk_results:
        print(f"\n## HTTP (wrk -t{args.wrk_threads} -c{args.connections} -d{args.seconds}s --latency)")
        rows = [[r.name, f"{r.rps:,.0f}", f"{r.requests:,}", ms(r.p50_ms), ms(r.p90_ms), ms(r.p99_ms),
                 str(r.non_2xx), str(r.socket_errors), f"{r.api_cpu_pct:.0f}%", r.body] for r in wrk_results]
        print(table(["endpoint", "req/s", "requests", "p50 ms", "p90 ms", "p99 ms", "non-2xx", "sock err",
                     "api cpu", "one answer"], rows, right=tuple(range(1, 9))))
        print("paths:")
        for r in wrk_results:
            print(f"  {r.name}: {r.path}")
    if sse:
        print(f"\n## SSE fan-out (GET /v1/stream/trends, {args.events} events at {args.rate:g}/s)")
        rows = [["clients asked", f"{sse['clients']:,}"],
                ["clients connected (HTTP 200)", f"{sse.get('connected', 0):,}"],
                ["clients the API counted" if args.workers == 1 else "clients that got the warm-up event",
                 f"{sse.get('counted', 0):,}"],
                ["seconds until all were streaming", f"{sse.get('connect_s', math.nan):.1f}"],
                ["clients with every event exactly once", f"{sse['exact']:,}"],
                ["clients that did not get every event exactly once", f"{sse['not_exact']:,}"],
                ["events per client (min / max)", f"{sse['received_min']} / {sse['received_max']}"],
                ["duplicate deliveries", f"{sse['duplicates']:,}"],
                ["streams the server ended / client errors", f"{sse['ended_early']} / {sse['errors']}"],
                ["client-events received", f"{sse['client_events']:,}"],
                ["delivery delay p50 ms", ms(sse["p50_ms"])],
                ["delivery delay p99 ms", ms(sse["p99_ms"])],
                ["delivery delay max ms", ms(sse["max_ms"])],
                ["seconds to send the events", f"{sse.get('produce_s', math.nan):.1f}"]]
        if sse.get("first_error"):
            rows.append(["first client error", sse["first_error"][:80]])
        print(table(["live stream", "value"], rows, right=(1,)))
    if "rss_main_kb" in facts:
        peak = (f"{facts['rss_main_kb'] / 1024:,.1f} MiB (the server process)" if args.workers == 1 else
                f"{facts['rss_all_kb'] / 1024:,.1f} MiB over the supervisor and its {args.workers} workers "
                f"(supervisor {facts['rss_main_kb'] / 1024:,.1f} MiB)")
        print(f"\napi peak RSS (VmHWM): {peak}; RSS after start {facts['rss_start_kb'] / 1024:,.1f} MiB; "
              f"api CPU over the run {facts['api_cpu_s']:.1f} s")
    print("\n## summary")
    current = next((r for r in wrk_results if r.name == "trends/current"), None)
    rows = []
    if current:
        met = current.rps >= AIM_RPS and current.p99_ms < AIM_P99_MS and current.non_2xx == 0
        rows.append(["/v1/trends/current", f"≥ {AIM_RPS:,.0f} req/s at p99 < {AIM_P99_MS:g} ms",
                     f"{current.rps:,.0f} req/s, p99 {ms(current.p99_ms)} ms, {current.non_2xx} non-2xx",
                     "aim met" if met else "aim missed"])
    for r in wrk_results:
        if r is not current:
            rows.append([r.path.split("?")[0], "(no aim)", f"{r.rps:,.0f} req/s, p99 {ms(r.p99_ms)} ms, "
                                                           f"{r.non_2xx} non-2xx", "-"])
    if sse:
        met = (sse.get("connected", 0) >= AIM_SSE_CLIENTS and sse["not_exact"] == 0
               and sse["p99_ms"] < AIM_SSE_P99_MS)
        short = f" (only {sse.get('connected', 0):,} clients)" if sse.get("connected", 0) < AIM_SSE_CLIENTS else ""
        rows.append(["/v1/stream/trends", f"{AIM_SSE_CLIENTS:,} clients, all events once, p99 < "
                                          f"{AIM_SSE_P99_MS / 1000:g} s",
                     f"{sse.get('connected', 0):,} clients, {sse['not_exact']} not exact, p99 {ms(sse['p99_ms'])} ms",
                     "aim met" if met else "aim missed" + short])
    print(table(["endpoint", "aim", "measured", "verdict"], rows))
    print(f"\ncommand: {command}")
    print(f"machine: nproc {facts['nproc']}, CPU {facts['cpu']}")


# --- main ------------------------------------------------------------------------------------------------------

def raise_nofile(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log(f"RLIMIT_NOFILE raised from {soft} to {target} (the API inherits it)")
        if target < needed:
            log(f"the hard limit {hard} is below the {needed} descriptors wanted: some clients may not connect")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--sse-clients", type=int, default=1000, help="concurrent SSE clients (default 1000)")
    parser.add_argument("--events", type=int, default=200, help="events sent to the SSE clients (default 200)")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second (default 20)")
    parser.add_argument("--port", type=int, default=18090, help="the API's port (default 18090; a free one when "
                                                                "taken)")
    parser.add_argument("--workers", type=int, default=1, help="the API's worker processes (default 1)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the data and events (default 7)")
    args = parser.parse_args(argv)
    if min(args.seconds, args.connections, args.wrk_threads, args.events, args.workers) < 1 or args.rate <= 0 \
            or args.sse_clients < 0:
        parser.error("--seconds, --connections, --wrk-threads, --events, --workers and --rate must be positive")
    command = shlex.join([".venv/bin/python", "-m", "bench.read_api", *(sys.argv[1:] if argv is None else argv)])
    facts = machine()

    from kafka.admin import NewTopic

    settings = load_settings()
    wrk = ensure_wrk()
    facts["wrk"] = wrk_version(wrk)
    raise_nofile(args.sse_clients + 1024)
    run = uuid.uuid4().hex[:8]
    alerts_topic, anomalies_topic = f"bench.api.alerts.{run}", f"bench.api.anomalies.{run}"
    port = args.port
    if not port_free(port):
        port = free_port()
        log(f"port {args.port} is taken: the API listens on {port}")
    facts["port"] = port
    rng = random.Random(args.seed)
    wrk_results: list[WrkResult] = []
    sse: dict | None = None
    admin = clients.kafka_admin(settings)
    api: Api | None = None
    window_end: int | None = None
    failed = False
    try:
        clear_day(settings)
        started = time.monotonic()
        seeded = seed_day(settings, rng)
        analyze(settings)
        facts["seeded"] = ", ".join(f"{n:,} {table_name}" for table_name, n in seeded.items()) + \
            f" ({DAY:%Y-%m-%d}, {time.monotonic() - started:.1f}s)"
        window_end, taken = publish_current(settings, rng)
        log(f"seeded {facts['seeded']}; Redis current set of {CURRENT_TRENDS} trends, window_end {window_end}"
            + ("" if taken else " REFUSED: Redis holds a newer window (the API serves that one)"))
        facts["seeded"] += f"; {CURRENT_TRENDS} current trends in Redis" + ("" if taken else " (refused: newer held)")
        admin.create_topics([NewTopic(alerts_topic, 1, 1), NewTopic(anomalies_topic, 1, 1)])
        log(f"topics {alerts_topic}, {anomalies_topic} created")
        api = Api(port, args.workers, {"STREAMPULSE_API__ALERTS_TOPIC": alerts_topic,
                                       "STREAMPULSE_API__ANOMALIES_TOPIC": anomalies_topic})
        ready_at = time.monotonic()
        health = api.wait_ready(READY_CEILING_S)
        log(f"API ready in {time.monotonic() - ready_at:.1f}s: status {health['status']}, live stream "
            f"{health['live_stream']['status']} on {', '.join(health['live_stream']['topics'])}")
        facts["rss_start_kb"] = sum(status_kb(pid, "VmRSS") for pid in api.pids())
        cpu_start = cpu_seconds(api.pids())

        keyword = KEYWORDS[0]
        window = f"{settings.trending.tumble_s // 60}m"
        for name, path in (("trends/current", "/v1/trends/current"),
                           ("trends (history)", f"/v1/trends?from={FROM}&to={TO}&limit=100"),
                           ("anomalies", f"/v1/anomalies?from={FROM}&to={TO}&limit=100"),
                           ("keyword series", f"/v1/keywords/{keyword}/series?from={FROM}&to={TO}&window={window}")):
            wrk_results.append(run_wrk(wrk, api, name, path, args))

        if args.sse_clients:
            try:
                import uvloop

                runner = uvloop.run
            except ImportError:
                runner = asyncio.run
            sse = runner(sse_phase(settings, api, alerts_topic, run, args))
            log(f"SSE: {sse['exact']} of {sse['clients']} clients got every event exactly once; delay p50 "
                f"{ms(sse['p50_ms'])} ms, p99 {ms(sse['p99_ms'])} ms, max {ms(sse['max_ms'])} ms")
        facts["rss_main_kb"], facts["rss_all_kb"] = api.peak_rss_kb()
        facts["api_cpu_s"] = cpu_seconds(api.pids()) - cpu_start
    except BaseException:
        failed = True
        raise
    finally:
        if api is not None:
            code = api.stop()
            log(f"API stopped (exit {code})")
            if failed:
                log(f"the API's log ends:\n{api.tail()}")
            else:
                troubles = api.troubles()
                if troubles:
                    log(f"the API logged {len(troubles)} warning/error lines; the first:\n" + "\n".join(troubles[:10]))
            api.log_path.unlink(missing_ok=True)
        with contextlib.suppress(Exception):
            admin.delete_topics([alerts_topic, anomalies_topic])
            log("topics deleted")
        admin.close()
        clear_day(settings)
        analyze(settings)
        if window_end is not None:
            removed = forget_current(settings, window_end)
            log("seeded rows deleted; Redis current set " + ("removed" if removed else "left (no longer ours)"))
        print_report(args, wrk_results, sse, facts, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
