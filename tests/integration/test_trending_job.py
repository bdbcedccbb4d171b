"""The trending job end to end on the bundled sample: every keyword's minute counts in the lake and the rows
Postgres receives equal a plain-Python recomputation, the labelled bursts (and nothing else) reach Postgres,
Redis and the alerts topic."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime

from connectors.producer import PostProducer
from runtime import clients
from shared.keywords import extract_keywords
from shared.names import REDIS_CURRENT, REDIS_KEYWORD
from shared.settings import PROJECT_ROOT
from tests.integration.conftest import read_topic
from tests.integration.sinks import (
    as_ms,
    as_utc,
    describe_difference,
    minute_counts,
    read_keyword_counts,
    remove_lake,
)
from tests.oracle import expected_keyword_rows, expected_trend_moods, expected_trends

SAMPLE = PROJECT_ROOT / "connectors" / "samples" / "sample.jsonl"
LABELS = PROJECT_ROOT / "connectors" / "samples" / "sample.labels.json"


def test_trending_job_counts_exactly_and_reports_the_burst(settings, kafka_topic, dlq_topic):
    posts = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    first_ms, last_ms = min(p["created_at"] for p in posts), max(p["created_at"] for p in posts)
    with clients.postgres(settings, "writer") as conn:  # the sample's time range belongs to this test
        for table in ("keyword_window_counts", "window_posts", "trends"):
            conn.execute(f"DELETE FROM {table} WHERE window_end > %s AND window_start <= %s",
                         (as_utc(first_ms), as_utc(last_ms)))
    clients.redis(settings).delete(REDIS_CURRENT, REDIS_CURRENT + ":meta", REDIS_KEYWORD + "election")
    producer = PostProducer(settings, "replay", topic=kafka_topic, dlq_topic=dlq_topic)
    for post in posts:
        producer.submit(post)
    producer.close()
    assert producer.summary.sent == len(posts)

    alerts_topic = dlq_topic  # a fresh single-partition topic
    lake = f"test-trending-{uuid.uuid4().hex[:12]}"
    try:
        result = subprocess.run([sys.executable, "-m", "stack.cli", "run", "trending", "--", "--bounded", "--topic",
                                 kafka_topic, "--alerts-topic", alerts_topic, "--group-id", f"test-{kafka_topic}",
                                 "--counts-path", f"s3://{settings.minio.bucket}/{lake}/keyword_counts"],
                                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        # Every keyword's count of every minute, in the lake.
        stored = read_keyword_counts(settings, f"{lake}/keyword_counts", first_ms, last_ms)
        assert stored == minute_counts(posts), describe_difference(stored, minute_counts(posts))
    finally:
        remove_lake(settings, lake)

    trending = settings.trending
    with clients.postgres(settings, "reader") as conn:
        # Postgres holds each minute's top keywords and what trended or came close: bounded, and exact.
        rows = conn.execute("SELECT window_kind, window_start, keyword, posts, authors, z FROM keyword_window_counts "
                            "WHERE window_end > %s AND window_start <= %s", (as_utc(first_ms), as_utc(last_ms))
                            ).fetchall()
        expected = expected_keyword_rows(posts, trending)
        assert {(kind, as_ms(start), k): (n, a, None if z is None else round(z, 6))
                for kind, start, k, n, a, z in rows} == expected
        # bounded per window by the settings, not by the vocabulary
        per_window = Counter((kind, start) for kind, start, *_ in rows)
        watched = {k for kind, _, k, *_ in rows if kind == "hop"}
        assert max(n for (kind, _), n in per_window.items() if kind == "hop") <= trending.watch_max
        assert max(n for (kind, _), n in per_window.items() if kind == "tumble") <= trending.top_keywords + len(watched)
        trends = conn.execute("SELECT window_start, window_end, keyword, trend_rank FROM trends "
                              "WHERE window_end > %s AND window_start <= %s", (as_utc(first_ms), as_utc(last_ms))
                              ).fetchall()
        scored = conn.execute("SELECT window_end, keyword, trend_rank, posts, authors, z, sample_uids, evidence, "
                              "evidence_posts FROM trends "
                              "WHERE window_end > %s AND window_start <= %s", (as_utc(first_ms), as_utc(last_ms))
                              ).fetchall()
        moods = conn.execute("SELECT window_end, keyword, sentiment, negative_share, sentiment_posts, usual_sentiment, "
                             "mood_change FROM trends WHERE window_end > %s AND window_start <= %s",
                             (as_utc(first_ms), as_utc(last_ms))).fetchall()
    # Every trend, with its rank, counts, z and samples, is what the batch oracle derives from the raw posts.
    assert sorted((as_ms(end), k, r, n, a, round(z, 6), s, e, en) for end, k, r, n, a, z, s, e, en in scored) == \
        expected_trends(posts, trending, last_ms + trending.hop_size_s * 1000)

    # Every labelled burst trends, inside its own time (start, end + one sliding window]; nothing else does,
    # and in particular not the sample's heaviest steady words.
    bursts = {b["keyword"]: b for b in json.loads(LABELS.read_text())["bursts"]}
    for keyword, burst in bursts.items():
        burst_trends = [t for t in trends if t[2] == keyword]
        assert burst_trends, (keyword, trends)
        assert all(as_utc(burst["start_ms"]) < end <= as_utc(burst["end_ms"] + trending.hop_size_s * 1000)
                   for _, end, _, _ in burst_trends), (keyword, burst_trends)
    heaviest = Counter(k for p in posts for k in extract_keywords(p["text"], p["hashtags"], p["langs"]))
    steady = [k for k, _ in heaviest.most_common(20) if k not in bursts]
    assert len(steady) >= 18 and not {t[2] for t in trends} & set(steady)
    assert {t[2] for t in trends} == set(bursts), trends
    burst_trends = [t for t in trends if t[2] == "election"]

    stored = clients.redis(settings).hgetall(REDIS_KEYWORD + "election")
    assert int(stored["window_end"]) == max(int(end.replace(tzinfo=UTC).timestamp() * 1000)
                                            for _, end, _, _ in burst_trends)
    alerts = [json.loads(r.value) for r in read_topic(settings, alerts_topic, isolation="read_committed")]
    assert len(alerts) == len(trends)
    assert {a["keyword"] for a in alerts} == {t[2] for t in trends}
    assert any(a["keyword"] == "election" and a["z"] >= trending.z_threshold for a in alerts)

    # Each trend's mood equals a recomputation from its window's posts (each English post's score, the mean,
    # the negative share, the usual mood before the window), in Postgres, in the alerts and in Redis.
    expected_moods = expected_trend_moods(posts, trending, last_ms + trending.hop_size_s * 1000)
    assert {(as_ms(end), k) for end, k, *_ in moods} == set(expected_moods)
    assert any(m.scored for m in expected_moods.values()) and any(m.usual is not None for m in expected_moods.values())
    for end, keyword, mean, negative, scored, usual, change in moods:
        mood = expected_moods[as_ms(end), keyword]
        assert scored == mood.scored and close(mean, mood.sentiment) and close(negative, mood.negative_share), (
            keyword, end, mood)
        assert close(usual, mood.usual) and close(change, mood.change), (keyword, end, mood)
    for alert in alerts:
        mood = expected_moods[as_ms(datetime.fromisoformat(alert["window_end"])), alert["keyword"]]
        assert alert["sentiment_posts"] == mood.scored and close(alert["sentiment"], mood.sentiment)
        assert close(alert["mood_change"], mood.change)
    mood = expected_moods[int(stored["window_end"]), "election"]
    assert int(stored["sentiment_posts"]) == mood.scored
    assert close(float(stored["sentiment"]) if stored["sentiment"] else None, mood.sentiment, places=6)
    assert close(float(stored["mood_change"]) if stored["mood_change"] else None, mood.change, places=6)


def close(value: float | None, expected: float | None, places: int = 9) -> bool:
    """Equal up to float summation order (or both absent)."""
    return (value is None) == (expected is None) and (value is None or abs(value - expected) <= 10 ** -places)
