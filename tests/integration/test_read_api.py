"""The read API (`streampulse api`) against the real stack, after bounded runs of the trending job (the bundled
sample) and the volume job (a synthetic outage and spike): every endpoint equals the sink tables and the batch
oracle, the live stream delivers each committed alert exactly once across reconnects (from Kafka and from its
buffer) and never an aborted one, bad parameters get one problem shape, and the API refuses to start without
its credentials."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from kafka import KafkaProducer

from connectors import synthetic
from runtime import clients
from shared.names import REDIS_CURRENT, REDIS_KEYWORD
from shared.settings import PROJECT_ROOT
from stack.processes import wait_until
from tests.integration.conftest import fresh_topic, read_topic
from tests.integration.sinks import as_ms, as_utc, produce
from tests.oracle import expected_conversations, expected_keyword_rows, expected_trends

SAMPLE = PROJECT_ROOT / "connectors" / "samples" / "sample.jsonl"
VOLUME_START = 1_793_534_400_000  # 2026-11-01T12:00:00Z, the sample's start too (other tables)
VOLUME_MINUTES = 45


def z(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def parse(text: str) -> datetime:
    """An API time (ISO 8601, Z) as the tables' naive UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=None)


def run_job(job: str, *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "stack.cli", "run", job, "--", "--bounded", *args],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{job} job failed:\n{result.stderr[-4000:]}"


@pytest.fixture(scope="module")
def sample(settings):
    """The trending job over the bundled sample and the volume job over a synthetic outage and spike, each
    writing its alerts to a fresh topic; the sample's posts and the time spans."""
    posts = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    first_ms, last_ms = min(p["created_at"] for p in posts), max(p["created_at"] for p in posts)
    volume_end = as_utc(VOLUME_START + VOLUME_MINUTES * 60_000)
    with clients.postgres(settings, "writer") as conn:  # these spans belong to this module while it runs
        for table in ("keyword_window_counts", "window_posts", "trends"):
            conn.execute(f"DELETE FROM {table} WHERE window_end > %s AND window_start <= %s",
                         (as_utc(first_ms), as_utc(last_ms)))
        for table in ("volume_windows", "volume_anomalies"):
            conn.execute(f"DELETE FROM {table} WHERE window_start >= %s AND window_start < %s",
                         (as_utc(VOLUME_START), volume_end))
        conn.execute("DELETE FROM volume_outages WHERE outage_start >= %s AND outage_start < %s",
                     (as_utc(VOLUME_START), volume_end))
        conn.execute("DELETE FROM conversations WHERE root_uid = ANY(%s)",
                     (sorted({p["reply_root"] or p["uid"] for p in posts}),))
    redis = clients.redis(settings)
    redis.delete(REDIS_CURRENT, REDIS_CURRENT + ":meta", *redis.keys(REDIS_KEYWORD + "*"))

    topics = [fresh_topic(settings, prefix, partitions) for prefix, partitions in
              (("test.api.posts", 2), ("test.api.dlq", 1), ("test.api.alerts", 1), ("test.api.anomalies", 1),
               ("test.api.volume", 2))]
    posts_topic, dlq, alerts, anomalies, volume_posts = (next(topic) for topic in topics)
    try:
        produce(settings, posts_topic, dlq, posts)
        run_job("trending", "--topic", posts_topic, "--alerts-topic", alerts, "--group-id", f"test-{posts_topic}",
                "--counts-path", f"s3://{settings.minio.bucket}/test-api-{uuid.uuid4().hex[:8]}/keyword_counts")
        run_job("conversations", "--topic", posts_topic, "--group-id", f"test-conversations-{posts_topic}")
        config = synthetic.SyntheticConfig(
            seed=31, start_ms=VOLUME_START, duration_s=VOLUME_MINUTES * 60, rate=8.0,
            sources={"bluesky": 5, "reddit": 3, "mastodon": 2},
            volume_events=[synthetic.VolumeEvent("source:reddit", 20 * 60, 5 * 60, 0),
                           synthetic.VolumeEvent("source:mastodon", 30 * 60, 3 * 60, 4)])
        produce(settings, volume_posts, dlq, [event.payload for event in synthetic.generate(config)])
        run_job("volume", "--topic", volume_posts, "--anomalies-topic", anomalies, "--dlq-topic", dlq,
                "--group-id", f"test-{volume_posts}")
        yield {"posts": posts, "first_ms": first_ms, "last_ms": last_ms, "alerts": alerts, "anomalies": anomalies,
               "group": f"test-{posts_topic}", "volume_end": volume_end}
    finally:
        for topic in topics:
            next(topic, None)  # each fixture generator deletes its topic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_api(sample: dict, log: Path, workers: int = 1):
    """`streampulse api --workers N` on a free port, following the module's alert topics; its base URL."""
    port = free_port()
    env = {**os.environ, "STREAMPULSE_API__ALERTS_TOPIC": sample["alerts"],
           "STREAMPULSE_API__ANOMALIES_TOPIC": sample["anomalies"],
           "STREAMPULSE_API__LAG_GROUPS": json.dumps([sample["group"]]),
           "STREAMPULSE_API__STREAM_BUFFER_EVENTS": "100"}
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "stack.cli", "api", "--port", str(port), "--workers",
                                    str(workers)], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            return True
        return httpx.get(base + "/v1/health", timeout=5).json()["live_stream"]["status"] == "following"

    try:
        wait_until(answers, timeout=60, what="the read API to answer")
        assert process.poll() is None, f"streampulse api exited {process.returncode}:\n{log.read_text()[-3000:]}"
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def api(sample, tmp_path_factory):
    with running_api(sample, tmp_path_factory.mktemp("api") / "api.log") as base:
        yield base


def get(base: str, path: str, **params) -> httpx.Response:
    return httpx.get(base + path, params=params, timeout=30)


def all_pages(base: str, path: str, **params) -> tuple[list[dict], int]:
    """Every item, following next_cursor; and how many pages that took."""
    items, cursor, pages = [], None, 0
    while True:
        response = get(base, path, **params, **({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        body = response.json()
        items, pages = items + body["items"], pages + 1
        if not (cursor := body["next_cursor"]):
            return items, pages


def test_trends_history_equals_the_table_and_the_oracle(settings, sample, api):
    span = {"from": z(sample["first_ms"]), "to": z(sample["last_ms"])}  # windows after it may be other tests'

    items, pages = all_pages(api, "/v1/trends", **span, limit=7)
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT window_end, keyword, trend_rank, posts, authors, z, sample_uids, evidence, "
                            "evidence_posts, baseline_mean, p_value FROM trends WHERE window_end >= %s "
                            "AND window_end < %s ORDER BY window_end, trend_rank, keyword",
                            (as_utc(sample["first_ms"]), as_utc(sample["last_ms"]))).fetchall()
    assert len(items) == len(rows) > 7 and pages == len(rows) // 7 + 1  # through the cursor, page by page
    assert [(i["window_end"], i["keyword"], i["rank"], i["posts"], i["authors"], i["z"], i["sample_uids"],
             i["evidence"], i["evidence_posts"], i["baseline_mean"], i["p_value"]) for i in items] == [
        (z(as_ms(end)), k, r, n, a, zz, json.loads(s), e, en, m, p) for end, k, r, n, a, zz, s, e, en, m, p in rows]
    oracle = expected_trends(sample["posts"], settings.trending, sample["last_ms"])
    assert sorted((as_ms(parse(i["window_end"])), i["keyword"], i["rank"], i["posts"],
                   i["authors"], round(i["z"], 6), json.dumps(i["sample_uids"]), i["evidence"], i["evidence_posts"])
                  for i in items) == oracle

    # Each trend's mood, as the table holds it.
    with clients.postgres(settings, "reader") as conn:
        moods = conn.execute("SELECT sentiment, negative_share, sentiment_posts, usual_sentiment, mood_change "
                             "FROM trends WHERE window_end >= %s AND window_end < %s ORDER BY window_end, trend_rank, "
                             "keyword", (as_utc(sample["first_ms"]), as_utc(sample["last_ms"]))).fetchall()
    assert [(i["sentiment"], i["negative_share"], i["sentiment_posts"], i["usual_sentiment"], i["mood_change"])
            for i in items] == [tuple(m) for m in moods] and any(m[2] for m in moods)

    # `#Aurora` is the hashtag the jobs count as `#aurora`; `Election` the word `election`.
    for typed, counted in (("#Aurora", "#aurora"), ("Election", "election")):
        only, _ = all_pages(api, "/v1/trends", **span, keyword=typed, limit=3)
        assert only == [i for i in items if i["keyword"] == counted] and only


def test_keyword_series_equal_the_oracle_and_closed_windows_are_cached(settings, sample, api):
    oracle = expected_keyword_rows(sample["posts"], settings.trending)
    to_ms = sample["last_ms"] - 10 * 60_000
    span = {"from": z(sample["first_ms"] // 60_000 * 60_000), "to": z(to_ms)}
    for window, kind in (("1m", "tumble"), ("5m", "hop")):
        response = get(api, f"/v1/keywords/{quote('#Aurora')}/series", **span, window=window)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["keyword"] == "#aurora" and body["window"] == window
        expected = sorted((start, n, a) for (k, start, keyword), (n, a, _) in oracle.items()
                          if k == kind and keyword == "#aurora" and start < to_ms)
        assert [(as_ms(parse(p["window_start"])), p["posts"], p["authors"]) for p in body["points"]] == expected
        assert expected
        assert all(p["window_posts"] and p["window_posts"] >= p["posts"] for p in body["points"])
        # These windows closed long ago: the answer never changes, so it is cacheable and revalidates.
        assert "immutable" in response.headers["cache-control"]
        again = httpx.get(str(response.url), headers={"If-None-Match": response.headers["etag"]}, timeout=30)
        assert again.status_code == 304


def test_anomalies_equal_the_table(settings, sample, api):
    span = {"from": z(VOLUME_START), "to": z(as_ms(sample["volume_end"]))}
    items, pages = all_pages(api, "/v1/anomalies", **span, limit=5)
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT dimension, series, window_start, posts, z, direction, severity, p_value "
                            "FROM volume_anomalies WHERE window_start >= %s AND window_start < %s "
                            "ORDER BY window_start, dimension, series",
                            (as_utc(VOLUME_START), sample["volume_end"])).fetchall()
    assert len(rows) > 5 and pages == len(rows) // 5 + 1
    assert [(i["dimension"], i["series"], i["window_start"], i["posts"], i["z"], i["direction"], i["severity"],
             i["p_value"]) for i in items] == [(d, s, z(as_ms(w)), n, zz, di, se, p)
                                               for d, s, w, n, zz, di, se, p in rows]
    critical, _ = all_pages(api, "/v1/anomalies", **span, series="reddit", severity="critical", dimension="source")
    assert critical == [i for i in items if (i["series"], i["severity"], i["dimension"]) == ("reddit", "critical",
                                                                                             "source")] and critical


def test_current_trends_equal_redis_and_the_trends_table(settings, sample, api):
    response = get(api, "/v1/trends/current")
    assert response.status_code == 200
    body = response.json()
    redis = clients.redis(settings)
    window_end = int(redis.hget(REDIS_CURRENT + ":meta", "window_end"))
    ranking = redis.zrevrange(REDIS_CURRENT, 0, -1, withscores=True)
    assert body["window_end"] == z(window_end) and ranking
    assert sorted((t["keyword"], t["z"]) for t in body["trends"]) == sorted(ranking)
    assert [t["rank"] for t in body["trends"]] == list(range(1, len(ranking) + 1))
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT keyword, trend_rank, posts, authors, sample_uids FROM trends WHERE window_end = %s "
                            "ORDER BY trend_rank", (as_utc(window_end),)).fetchall()
    assert [(t["keyword"], t["rank"], t["posts"], t["authors"], t["sample_uids"]) for t in body["trends"]] == [
        (k, r, n, a, json.loads(s)) for k, r, n, a, s in rows]


def test_health_reports_the_stores_and_the_jobs_lag(settings, sample, api):
    response = get(api, "/v1/health")
    body = response.json()
    assert response.status_code == 200
    assert {name: body["services"][name]["status"] for name in ("postgres", "redis", "kafka")} == {
        "postgres": "up", "redis": "up", "kafka": "up"}
    # No Flink cluster runs here (the jobs ran embedded): the API still answers and says how to start one.
    assert body["services"]["flink"]["status"] == "down" and "cluster up" in body["services"]["flink"]["fix"]
    assert body["status"] == "degraded"
    admin = clients.kafka_admin(settings)
    try:
        committed = admin.list_group_offsets([sample["group"]]).get(sample["group"]) or {}
        from kafka.admin import OffsetSpec
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in committed}) if committed else {}
    finally:
        admin.close()
    lag = body["consumer_lag"][sample["group"]]
    expected = sum(ends[tp].offset - meta.offset for tp, meta in committed.items() if meta.offset >= 0)
    assert (lag is None) if not committed else lag["total"] == expected


class Events:
    """A server-sent-event reader: (event, id, data) in arrival order."""

    def __init__(self, base: str, last_event_id: str | None = None):
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.client = httpx.Client(timeout=httpx.Timeout(60, connect=10))
        self.context = self.client.stream("GET", base + "/v1/stream/trends", headers=headers)
        self.response = self.context.__enter__()
        assert self.response.status_code == 200, self.response.read()
        self.lines = self.response.iter_lines()

    def take(self, n: int) -> list[tuple[str, str, str]]:
        events, fields = [], {}
        while len(events) < n:
            line = next(self.lines)
            if line == "":
                if "data" in fields:
                    events.append((fields.get("event"), fields.get("id"), fields["data"]))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        return events

    def close(self) -> None:
        self.context.__exit__(None, None, None)
        self.client.close()


def clients_connected(base: str) -> int:
    return httpx.get(base + "/v1/health", timeout=10).json()["live_stream"]["clients"]


def test_the_live_stream_delivers_every_committed_alert_once_across_reconnects(settings, sample, api):
    committed = ([("trend", r.value.decode()) for r in read_topic(settings, sample["alerts"])]
                 + [("anomaly", r.value.decode()) for r in read_topic(settings, sample["anomalies"])])
    assert len(committed) > 6
    start = f"{sample['alerts']}:0:0,{sample['anomalies']}:0:0"  # from the start of what the topics hold

    # From Kafka (the API started after these were written): a few, a forced reconnect, then the rest.
    seen = []
    first = Events(api, start)
    seen += first.take(3)
    first.close()
    second = Events(api, seen[-1][1])
    seen += second.take(len(committed) - 3)
    assert sorted((kind, data) for kind, _, data in seen) == sorted(committed)
    assert len({event_id for _, event_id, _ in seen}) == len(seen)

    # Live: an aborted transaction is never delivered; committed records arrive once, in order.
    producer = KafkaProducer(**settings.kafka.client_options("jobs"), transactional_id=f"test-api-{uuid.uuid4().hex}")
    producer.init_transactions()

    def write(values: list[dict], commit: bool = True) -> None:
        producer.begin_transaction()
        for value in values:
            producer.send(sample["alerts"], json.dumps(value).encode())
        producer.commit_transaction() if commit else producer.abort_transaction()

    try:
        write([{"keyword": "aborted", "n": 0}], commit=False)
        write([{"keyword": "live", "n": 1}])
        (kind, live_id, data), = second.take(1)
        assert (kind, json.loads(data)) == ("trend", {"keyword": "live", "n": 1})
        second.close()
        wait_until(lambda: clients_connected(api) == 0, timeout=30, what="the client's subscription to end")

        # Reconnect within the buffer: the events written while away, nothing before them.
        write([{"keyword": "while-away", "n": n} for n in (2, 3)])
        third = Events(api, live_id)
        assert [json.loads(data)["n"] for _, _, data in third.take(2)] == [2, 3]
        write([{"keyword": "after", "n": 4}])
        assert [json.loads(data)["n"] for _, _, data in third.take(1)] == [4]
        third.close()
    finally:
        producer.close()


def test_two_worker_processes_resume_a_client_wherever_it_reconnects(settings, sample, tmp_path):
    """Each worker follows the topics with a reader of its own; an id from one resumes exactly on the other."""
    committed = len(read_topic(settings, sample["alerts"])) + len(read_topic(settings, sample["anomalies"]))
    start = f"{sample['alerts']}:0:0,{sample['anomalies']}:0:0"
    with running_api(sample, tmp_path / "api.log", workers=2) as base:
        seen, last_id = [], start
        while len(seen) < committed:  # three events per connection: each reconnect may land on either worker
            stream = Events(base, last_id)
            taken = stream.take(min(3, committed - len(seen)))
            stream.close()
            seen += taken
            last_id = taken[-1][1]
    assert len(seen) == committed
    # Each id is a position past the one before it in one partition and equal in the others: nothing twice.
    offsets = [[int(part.rsplit(":", 1)[1]) for part in event_id.split(",")] for _, event_id, _ in seen]
    for before, after in pairwise(offsets):
        assert all(b <= a for b, a in zip(before, after, strict=True)) and before != after


def test_conversations_list_the_sessions_busiest_first_page_by_page(settings, sample, api):
    span = {"from": z(sample["first_ms"]), "to": z(sample["last_ms"] + 1)}
    items, pages = all_pages(api, "/v1/conversations", **span, limit=4)
    oracle = expected_conversations(sample["posts"], settings.conversations)
    assert len(items) == len(oracle) > 4 and pages == len(oracle) // 4 + 1
    assert [i["posts"] for i in items] == sorted((i["posts"] for i in items), reverse=True)
    assert {(i["root_uid"], as_ms(parse(i["session_start"]))): (
        as_ms(parse(i["session_end"])), i["posts"], i["authors"], ",".join(i["sources"]),
        [list(k) for k in i["top_keywords"]], i["root_in_session"]) for i in items} == oracle
    assert not any(i["is_open"] for i in items)
    busy, _ = all_pages(api, "/v1/conversations", **span, min_posts=3)
    assert busy == [i for i in items if i["posts"] >= 3]


def test_bad_parameters_get_one_problem_shape(settings, sample, api):
    cases = [("/v1/trends", {"from": "2026-11-03T00:00:00Z", "to": "2026-11-02T00:00:00Z"}, 400, "from"),
             ("/v1/trends", {"from": "2026-01-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}, 400, "from"),
             ("/v1/trends", {"from": "yesterday"}, 422, "from"),
             ("/v1/trends", {"limit": "100000"}, 400, "limit"),
             ("/v1/trends", {"cursor": "bm90IGEgY3Vyc29y"}, 400, "cursor"),
             ("/v1/trends", {"keyword": "x" * 500}, 400, "keyword"),
             ("/v1/anomalies", {"severity": "apocalyptic"}, 422, "severity"),
             ("/v1/keywords/%23/series", {}, 400, "keyword"),
             ("/v1/keywords/aurora/series", {"window": "7m"}, 422, "window"),
             ("/v1/conversations", {"min_posts": "0"}, 422, "min_posts")]
    for path, params, status, parameter in cases:
        response = httpx.get(api + path, params=params, timeout=30)
        assert response.status_code == status, (path, params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == status and body["title"] and body["instance"].startswith("/v1/")
        assert [e["parameter"] for e in body["errors"]] == [parameter], body
    response = httpx.get(api + "/v1/stream/trends", headers={"Last-Event-ID": "nope:0:1"}, timeout=30)
    assert response.status_code == 400 and response.json()["errors"][0]["parameter"] == "Last-Event-ID"
    response = httpx.get(api + "/v1/nothing", timeout=30)
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    # The OpenAPI document describes every route.
    paths = httpx.get(api + "/openapi.json", timeout=30).json()["paths"]
    assert {"/v1/trends/current", "/v1/trends", "/v1/keywords/{keyword}/series", "/v1/anomalies", "/v1/health",
            "/v1/stream/trends", "/v1/conversations"} <= set(paths)


@pytest.mark.parametrize("key", ["STREAMPULSE_POSTGRES__READER_PASSWORD", "STREAMPULSE_KAFKA__API_PASSWORD",
                                 "STREAMPULSE_REDIS__API_PASSWORD"])
def test_the_api_refuses_to_start_without_its_credentials(settings, key):
    result = subprocess.run([sys.executable, "-m", "stack.cli", "api", "--port", str(free_port())],
                            cwd=PROJECT_ROOT, env={**os.environ, key: ""}, capture_output=True, text=True, timeout=60)
    dotted = key.removeprefix("STREAMPULSE_").lower().replace("__", ".")
    assert result.returncode == 2 and f"{dotted} is not set" in result.stderr, result.stderr


def test_the_api_logins_read_and_cannot_write(settings):
    import redis as redis_lib
    from kafka.errors import KafkaError

    rs = settings.redis
    reader = redis_lib.Redis(host=rs.host, port=rs.port, username=rs.api_user,
                             password=rs.api_password.get_secret_value(), decode_responses=True)
    assert reader.ping() and reader.exists(REDIS_CURRENT) in (0, 1)
    for write in (lambda: reader.set(REDIS_CURRENT + ":x", 1), lambda: reader.delete(REDIS_CURRENT),
                  lambda: reader.get("not-ours"), lambda: reader.keys("*")):
        with pytest.raises(redis_lib.exceptions.NoPermissionError):
            write()
    producer = KafkaProducer(**settings.kafka.client_options("api"), max_block_ms=10_000, retries=0)
    try:
        with pytest.raises(KafkaError):
            producer.send(settings.api.alerts_topic, b"{}").get(timeout=20)
    finally:
        producer.close()
