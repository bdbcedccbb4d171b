"""PostgreSQL retention by whole days (issue 17): the jobs' tables are partitioned by day; maintenance creates the
days ahead (moving rows the DEFAULT partition held for them), and drops the days past postgres.retention_days
while a newer day stays."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from runtime import clients
from shared.names import TIME_SERIES_TABLES
from stack.manager import maintain_partitions

PARTITIONED = set(TIME_SERIES_TABLES)


def trends_partitions(settings, year: int) -> set[str]:
    with clients.postgres(settings, "admin") as conn:
        return {name for (name,) in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'trends'::regclass AND c.relname LIKE %s", (f"trends_{year}%",))}


def insert_trend(settings, window_end: datetime, keyword: str) -> None:
    with clients.postgres(settings, "writer") as conn:
        conn.execute("INSERT INTO trends (window_start, window_end, keyword, trend_rank, posts, authors, "
                     "baseline_mean, baseline_std, z, sample_uids) VALUES (%s, %s, %s, 1, 10, 5, 1.0, 1.0, 9.0, '[]')",
                     (window_end - timedelta(minutes=5), window_end, keyword))


def partition_of(settings, keyword: str) -> str | None:
    with clients.postgres(settings, "reader") as conn:
        row = conn.execute("SELECT tableoid::regclass::text FROM trends WHERE keyword = %s", (keyword,)).fetchone()
    return row[0] if row else None


def test_day_partitions_are_made_ahead_and_dropped_past_the_retention(settings):
    retention, ahead = settings.postgres.retention_days, settings.postgres.partitions_ahead_days
    with clients.postgres(settings, "admin") as conn:
        kinds = dict(conn.execute("SELECT c.relname, c.relkind FROM pg_class c WHERE c.relname = ANY(%s)",
                                  (list(PARTITIONED),)).fetchall())
    assert kinds == dict.fromkeys(PARTITIONED, "p")  # every time-series table is partitioned
    # A row for a day no partition covers yet waits in the DEFAULT partition ...
    insert_trend(settings, datetime(2019, 1, 9, 12, 0), "retention-early")
    assert partition_of(settings, "retention-early") == "trends_default"
    try:
        # ... and moves into its day when maintenance (run "on" 2019-01-10) creates the days around it.
        made = maintain_partitions(settings, today=date(2019, 1, 10))
        assert ("created", "trends_20190109") in made and ("created", f"trends_{20190110 + ahead}") in made
        assert partition_of(settings, "retention-early") == "trends_20190109"
        assert trends_partitions(settings, 2019) == {f"trends_{d:%Y%m%d}" for d in (
            date(2019, 1, 9) + timedelta(days=n) for n in range(ahead + 2))}
        # Run again later: the days that ended `retention` days before go, whole; a newer day stays.
        later = date(2019, 1, 9) + timedelta(days=retention + 1)  # 2019-01-09 ended retention days before
        insert_trend(settings, datetime(2019, 1, 10, 12, 0), "retention-kept")
        dropped = {name for action, name in maintain_partitions(settings, today=later) if action == "dropped"}
        assert "trends_20190109" in dropped and "trends_20190110" not in dropped
        assert partition_of(settings, "retention-early") is None
        assert partition_of(settings, "retention-kept") == "trends_20190110"
        assert {"keyword_window_counts_20190109", "volume_outages_20190109"} <= {
            name for action, name in maintain_partitions(settings, today=later) if action == "dropped"} | dropped
    finally:
        # Maintenance on the real date drops every 2019 day: they are long past the retention.
        maintain_partitions(settings)
        with clients.postgres(settings, "writer") as conn:
            conn.execute("DELETE FROM trends WHERE keyword LIKE 'retention-%'")
    assert trends_partitions(settings, 2019) == set()


def test_quarantined_records_older_than_the_retention_are_deleted_and_newer_ones_kept(settings):
    today = date(2019, 3, 1)
    old, kept = today - timedelta(days=settings.postgres.retention_days + 1), today - timedelta(days=1)
    topic = "test.retention.quarantine"
    with clients.postgres(settings, "writer") as conn:
        for offset, when in enumerate((old, kept)):
            conn.execute("INSERT INTO quarantined_records (topic, kafka_partition, kafka_offset, reason, detail, "
                         "payload_bytes, job, quarantined_at) VALUES (%s, 0, %s, 'invalid_json', 'test', 0, 'test', "
                         "%s)", (topic, offset, when))
    try:
        actions = maintain_partitions(settings, today=today)
        with clients.postgres(settings, "reader") as conn:
            left = conn.execute("SELECT kafka_offset FROM quarantined_records WHERE topic = %s", (topic,)).fetchall()
        assert left == [(1,)]
        assert any(action == "expired" and name.startswith("quarantined_records:") for action, name in actions)
    finally:
        maintain_partitions(settings)  # the 2019 days it made are past the retention again
        with clients.postgres(settings, "writer") as conn:
            conn.execute("DELETE FROM quarantined_records WHERE topic = %s", (topic,))
