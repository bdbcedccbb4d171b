"""A backfill's options (runtime/backfill.py), the lake rows the minute stage reads in a backfill
(runtime/minute_stage.py), and the INSERTs a backfill leaves out (runtime/flink.py add_sql)."""

from __future__ import annotations

import argparse
import base64
import json
from datetime import UTC, datetime

import pytest

from runtime import backfill
from runtime.flink import add_sql, sql_statements
from runtime.minute_stage import decode_records


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bounded", action="store_true")
    backfill.arguments(parser)
    return parser.parse_args(argv)


def test_times_are_utc_unless_they_say_otherwise():
    assert backfill.utc_time("2026-10-05") == datetime(2026, 10, 5, tzinfo=UTC)
    assert backfill.utc_time("2026-10-05T14:30") == datetime(2026, 10, 5, 14, 30, tzinfo=UTC)
    assert backfill.utc_time("2026-10-05T14:30+02:00") == datetime(2026, 10, 5, 12, 30, tzinfo=UTC)
    for bad in ("yesterday", "2026-13-01", "05/10/2026"):
        with pytest.raises(argparse.ArgumentTypeError, match="ISO-8601"):
            backfill.utc_time(bad)


def test_a_period_needs_both_ends_in_order_and_no_topic_options():
    period = backfill.period_of(parse("--from", "2026-10-05", "--to", "2026-10-06T00:00:00.001"))
    assert (period.start_ms, period.end_ms) == (1_791_158_400_000, 1_791_244_800_001)
    assert backfill.period_of(parse()) is None  # the job streams
    for argv, message in [(("--from", "2026-10-05"), "both --from and --to"),
                          (("--from", "2026-10-06", "--to", "2026-10-05"), "is not before"),
                          (("--from", "2026-10-05", "--to", "2026-10-05"), "is not before"),
                          (("--from", "2026-10-05", "--to", "2026-10-06", "--bounded"), "--bounded reads the topic"),
                          (("--target-tables", "check",), "backfill options")]:
        with pytest.raises(SystemExit, match=message):
            backfill.period_of(parse(*argv))


def test_side_table_names_are_plain_identifiers():
    assert backfill.table_suffix("check_2") == "check_2"
    for bad in ("", "Check", "2nd", "a-b", "x; DROP TABLE trends", "a" * 31):
        with pytest.raises(argparse.ArgumentTypeError, match="lower-case letters"):
            backfill.table_suffix(bad)


def lake_record(document: dict, event_time: str) -> list:
    """A record as lake_minute_posts.sql batches it: no partition or offset, the uid as key, the post's JSON."""
    payload = base64.b64encode(json.dumps(document).encode()).decode()
    return [None, None, event_time, base64.b64encode(document["uid"].encode()).decode(), payload]


POST = {"uid": "at://did:plc:a/app.bsky.feed.post/1", "source": "bluesky", "author_id": "did:plc:a",
        "text": "hello #world", "langs": ["en"], "created_at": "2026-10-05T12:00:01.250Z",
        "ingested_at": "2026-10-05T12:00:02.000Z", "hashtags": ["world"], "mentions": [], "links": [],
        "reply_parent": None, "reply_root": None, "community": "", "schema_version": 1}


def test_a_lake_row_is_read_as_the_producers_read_a_post_and_held_to_its_event_time():
    copy = dict(POST)
    bad = dict(POST, uid="x", text="a\x00b")
    posts, quarantined = decode_records(json.dumps([lake_record(POST, "2026-10-05T12:00:01.250Z"),
                                                    lake_record(copy, "2026-10-05T12:00:01.250Z"),
                                                    lake_record(bad, "2026-10-05T12:00:01.250Z"),
                                                    lake_record(dict(POST, uid="y"), "2026-10-05T12:00:09Z")]))
    assert [p.uid for p in posts] == [POST["uid"]]  # the copy counts once
    assert posts[0].created_at == 1_791_201_601_250 and posts[0].hashtags == ("world",)
    assert [(q.partition, q.reason) for q in quarantined] == [(None, "invalid_field"), (None, "timestamp_mismatch")]


def test_a_backfill_leaves_out_the_inserts_only_a_live_job_writes(monkeypatch):
    class Recorder:
        def __init__(self):
            self.inserts, self.ddl = [], []

        def add_insert_sql(self, statement):
            self.inserts.append(statement.split()[2])

        def execute_sql(self, statement):
            self.ddl.append(statement)

    values = {"jdbc_url": "jdbc:postgresql://h/db", "jdbc_user": "u", "jdbc_password": "p", "alerts_sink":
              "'connector' = 'blackhole'", "counts_path": "file:///tmp/x", "table_suffix": "_check"}
    live, replay = Recorder(), Recorder()
    add_sql(live, live, "trending_outputs", **values)
    add_sql(replay, replay, "trending_outputs", skip_inserts_into=frozenset({"trend_alerts_sink",
                                                                             "keyword_counts_lake"}), **values)
    assert set(live.inserts) - set(replay.inserts) == {"trend_alerts_sink", "keyword_counts_lake"}
    assert replay.inserts and len(live.ddl) == len(replay.ddl)
    assert all("'table-name' = 'trends_check'" in s or "'trends" not in s
               for s in sql_statements("trending_outputs", **values))


def test_only_the_periods_hour_partitions_are_listed(tmp_path):
    from shared.settings import load_settings

    for source, dt, hour in [("bluesky", "2026-10-05", "11"), ("bluesky", "2026-10-05", "12"),
                             ("reddit", "2026-10-05", "13"), ("reddit", "2026-10-06", "00")]:
        folder = tmp_path / f"source={source}" / f"dt={dt}" / f"hour={hour}"
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"x")
        (folder / ".part-1.inprogress").write_bytes(b"x")  # not published yet
        (folder / "_SUCCESS").write_bytes(b"")
    found = backfill.lake_files(load_settings(with_credentials=False), tmp_path.as_uri(),
                                datetime(2026, 10, 5, 12, 30, tzinfo=UTC), datetime(2026, 10, 5, 23, 59, tzinfo=UTC))
    assert sorted(path.split(str(tmp_path))[1] for path in found) == [
        "/source=bluesky/dt=2026-10-05/hour=12/part-0.parquet", "/source=reddit/dt=2026-10-05/hour=13/part-0.parquet"]
