"""Backfill (runtime/backfill.py): a period streamed by the jobs and archived, then recomputed from the lake in
Flink's batch mode into side tables, gives every row the stream wrote; with a changed keyword rule it gives the
oracle's rows for the new rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest

from connectors import synthetic
from runtime import clients
from shared.settings import PROJECT_ROOT
from tests.integration.sinks import as_ms, as_utc, clear_windows, produce, read_lake, remove_lake
from tests.oracle import expected_keyword_rows, expected_trends

SAMPLE = PROJECT_ROOT / "connectors" / "samples" / "sample.jsonl"
VOLUME_START = 1_793_880_000_000  # 2026-11-05T12:00:00Z: a span no other test writes

# Each table's key and the columns compared (all of them: the backfill must write what the stream wrote).
TRENDING_TABLES = {
    "trends": "window_end",
    "keyword_window_counts": "window_end",
    "window_posts": "window_end",
}
VOLUME_TABLES = {
    "volume_windows": "window_end",
    "volume_anomalies": "window_end",
    "volume_outages": "last_window_end",
}


def run(*args: str, env: dict | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "stack.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=900, env={**os.environ, **(env or {})})
    assert result.returncode == 0, f"streampulse {' '.join(args)} failed:\n{result.stderr[-4000:]}"
    return result.stderr


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def rows(settings, table: str, time_column: str, first_ms: int, last_ms: int) -> list[tuple]:
    """Every row of the table (all columns) whose time falls in the span, sorted."""
    with clients.postgres(settings, "reader") as conn:
        found = conn.execute(f"SELECT * FROM {table} WHERE {time_column} > %s AND {time_column} <= %s",
                             (as_utc(first_ms), as_utc(last_ms))).fetchall()
    return sorted(found, key=repr)


def assert_same(backfilled: list[tuple], streamed: list[tuple], table: str) -> None:
    missing, extra = set(streamed) - set(backfilled), set(backfilled) - set(streamed)
    assert backfilled == streamed, (f"{table}: {len(missing)} streamed rows not backfilled, e.g. {sorted(missing)[:5]};"
                                    " "
                                    f"{len(extra)} backfilled rows not streamed, e.g. {sorted(extra)[:5]}")


@pytest.fixture
def side_tables(settings):
    """A side-table name for the test's backfills; its tables are dropped afterwards."""
    name = f"bf{uuid.uuid4().hex[:8]}"
    yield name
    with clients.postgres(settings, "admin") as conn:
        for table in [*TRENDING_TABLES, "late_posts", *VOLUME_TABLES]:
            for suffix in (name, name + "_rule"):
                conn.execute(f"DROP TABLE IF EXISTS {table}_{suffix}")


def archive(settings, topic: str, prefix: str) -> str:
    path = f"s3://{settings.minio.bucket}/{prefix}"
    run("run", "archive", "--", "--bounded", "--topic", topic, "--group-id", f"test-archive-{topic}", "--path", path)
    return path


def test_a_trending_backfill_rewrites_what_the_stream_wrote_and_applies_a_new_keyword_rule(
        settings, kafka_topic, dlq_topic, side_tables):
    posts = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    first_ms, last_ms = min(p["created_at"] for p in posts), max(p["created_at"] for p in posts)
    end_ms = last_ms + settings.trending.hop_size_s * 1000 + 60_000  # past every window the posts are in
    clear_windows(settings, first_ms, end_ms)
    produce(settings, kafka_topic, dlq_topic, posts)
    prefix = f"test-backfill-{uuid.uuid4().hex[:12]}"
    try:
        lake = archive(settings, kafka_topic, prefix)
        assert len(read_lake(settings, prefix)[0]) == len(posts)
        run("run", "trending", "--", "--bounded", "--topic", kafka_topic, "--alerts-topic", dlq_topic,
            "--group-id", f"test-{kafka_topic}", "--counts-path", f"{lake}-counts")
        # The period as the stream saw it: its first post to just after its last.
        period = ("--from", iso(first_ms), "--to", iso(last_ms + 1), "--lake", lake)
        run("backfill", "trending", *period, "--target-tables", side_tables)

        for table, column in TRENDING_TABLES.items():
            streamed = rows(settings, table, column, first_ms, end_ms)
            assert streamed, table
            assert_same(rows(settings, f"{table}_{side_tables}", column, first_ms, end_ms), streamed, table)

        # A new keyword rule: the sample's burst keyword is no longer counted. The backfill gives the oracle's
        # rows for the new rule (and no trend of it).
        ignored = ["election", "#aurora"]
        rule = {"STREAMPULSE_TRENDING__IGNORE_KEYWORDS": json.dumps(ignored)}
        run("backfill", "trending", *period, "--target-tables", side_tables + "_rule", env=rule)
    finally:
        remove_lake(settings, prefix)
        remove_lake(settings, prefix + "-counts")

    new_rule = settings.trending.model_copy(update={"ignore_keywords": ignored})
    with clients.postgres(settings, "reader") as conn:
        counted = conn.execute(f"SELECT window_kind, window_start, keyword, posts, authors, z "
                               f"FROM keyword_window_counts_{side_tables}_rule").fetchall()
        trends = conn.execute(f"SELECT window_end, keyword, trend_rank, posts, authors, z, sample_uids, evidence, "
                              f"evidence_posts FROM trends_{side_tables}_rule").fetchall()
    assert {(kind, as_ms(start), k): (n, a, None if z is None else round(z, 6))
            for kind, start, k, n, a, z in counted} == expected_keyword_rows(posts, new_rule)
    assert not {k for _, k, *_ in counted} & set(ignored)
    assert sorted((as_ms(end), k, r, n, a, round(z, 6), s, e, en) for end, k, r, n, a, z, s, e, en in trends) == \
        expected_trends(posts, new_rule, end_ms)
    with_rule = {k for _, k, *_ in trends}
    assert with_rule != {k for _, _, k, *_ in rows(settings, "trends", "window_end", first_ms, end_ms)}
    assert not with_rule & set(ignored)


def test_a_volume_backfill_rewrites_the_streamed_windows_anomalies_and_outages(settings, kafka_topic, dlq_topic,
                                                                                deletes_topic, side_tables):
    minutes = 45
    config = synthetic.SyntheticConfig(
        seed=47, start_ms=VOLUME_START, duration_s=minutes * 60, rate=8.0,
        sources={"bluesky": 5, "reddit": 3, "mastodon": 2},
        volume_events=[synthetic.VolumeEvent("source:reddit", 20 * 60, 5 * 60, 0),
                       synthetic.VolumeEvent("source:mastodon", 30 * 60, 3 * 60, 4)])
    posts = [event.payload for event in synthetic.generate(config) if not event.expected_reject]
    first_ms, last_ms = min(p["created_at"] for p in posts), max(p["created_at"] for p in posts)
    end_ms = last_ms + 3_600_000
    clear_windows(settings, first_ms, end_ms)
    with clients.postgres(settings, "writer") as conn:
        conn.execute("DELETE FROM volume_outages WHERE last_window_end > %s AND outage_start <= %s",
                     (as_utc(first_ms), as_utc(end_ms)))
    produce(settings, kafka_topic, dlq_topic, posts)
    prefix = f"test-backfill-{uuid.uuid4().hex[:12]}"
    try:
        lake = archive(settings, kafka_topic, prefix)
        run("run", "volume", "--", "--bounded", "--topic", kafka_topic, "--anomalies-topic", deletes_topic,
            "--dlq-topic", dlq_topic, "--group-id", f"test-{kafka_topic}")
        run("backfill", "volume", "--from", iso(first_ms), "--to", iso(last_ms + 1), "--lake", lake,
            "--target-tables", side_tables)
    finally:
        remove_lake(settings, prefix)

    for table, column in VOLUME_TABLES.items():
        streamed = rows(settings, table, column, first_ms, end_ms)
        assert streamed, table
        assert_same(rows(settings, f"{table}_{side_tables}", column, first_ms, end_ms), streamed, table)
    anomalies = rows(settings, "volume_anomalies", "window_end", first_ms, end_ms)
    assert {(a[0], a[1]) for a in anomalies} >= {("source", "mastodon")}  # the spike is in what was compared
