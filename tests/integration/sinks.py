"""What the jobs wrote, read back from every sink for comparison with the batch oracle (tests/oracle.py):
the Postgres tables, the Redis current-trend set, the transactional topics read committed, and the Parquet
lake. Each reader takes the test's span, so that rows other tests left behind do not count."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pyarrow.parquet as pq

from connectors.producer import PostProducer
from runtime import clients
from shared import names
from stack.processes import wait_until
from tests.integration.conftest import read_topic
from tests.oracle import expected_keyword_rows, expected_trends, recompute

REDIS_CURRENT = (names.REDIS_CURRENT, names.REDIS_CURRENT + ":meta")


def as_utc(ms: int) -> datetime:
    """Postgres `timestamp` (without time zone) columns hold UTC."""
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def as_ms(value: datetime) -> int:
    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


def clear_windows(settings, first_ms: int, last_ms: int) -> None:
    """Remove the trending and volume jobs' rows for a test's span, so that the test sees only its own."""
    with clients.postgres(settings, "writer") as conn:
        for table in ("keyword_window_counts", "window_posts", "trends", "volume_windows", "volume_anomalies"):
            conn.execute(f"DELETE FROM {table} WHERE window_end > %s AND window_start <= %s",
                         (as_utc(first_ms), as_utc(last_ms)))
        conn.execute("DELETE FROM late_posts WHERE window_start >= %s AND window_start <= %s",
                     (as_utc(first_ms // 60_000 * 60_000), as_utc(last_ms)))
    clients.redis(settings).delete(*REDIS_CURRENT)


def produce(settings, topic: str, dlq_topic: str, posts: list[dict]) -> None:
    producer = PostProducer(settings, "replay", topic=topic, dlq_topic=dlq_topic)
    for post in posts:
        producer.submit(post)
    producer.close()
    assert producer.summary.sent == len(posts)


def closed_minutes_equal_oracle(settings, counts_prefix: str, posts: list[dict], closed_end_ms: int) -> bool:
    """Whether the lake holds the oracle's count of every keyword in every minute closed by `closed_end_ms`."""
    first_ms = min(p["created_at"] for p in posts)
    expected = {key: counts for key, counts in minute_counts(posts).items() if key[0] + 60_000 <= closed_end_ms}
    stored = read_keyword_counts(settings, counts_prefix, first_ms, closed_end_ms - 60_000)
    return stored == expected


def keyword_rows(settings, first_ms: int, last_ms: int, table: str = "keyword_window_counts") -> dict:
    """keyword_window_counts (or a backfill's side table) of the span in the oracle's form
    (tests.oracle.expected_keyword_rows)."""
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute(f"SELECT window_kind, window_start, keyword, posts, authors, z FROM {table} "
                            "WHERE window_end > %s AND window_start <= %s", (as_utc(first_ms), as_utc(last_ms))
                            ).fetchall()
    return {(kind, as_ms(start), k): (n, a, None if z is None else round(z, 6)) for kind, start, k, n, a, z in rows}


def stored_trends(settings, first_ms: int, up_to_end_ms: int, table: str = "trends") -> list[tuple]:
    """The `trends` rows (or a backfill's side table's) of the span in the oracle's form
    (tests.oracle.expected_trends)."""
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT window_end, keyword, trend_rank, posts, authors, z, sample_uids, evidence, "
                            f"evidence_posts FROM {table} "
                            "WHERE window_end > %s AND window_end <= %s", (as_utc(first_ms), as_utc(up_to_end_ms))
                            ).fetchall()
    return sorted((as_ms(end), k, r, n, a, round(z, 6), s, e, en) for end, k, r, n, a, z, s, e, en in rows)


def committed_alerts(settings, topic: str, up_to_end_ms: int) -> list[tuple]:
    """(window_end_ms, keyword, rank) of every alert on `topic`, read committed."""
    records = [json.loads(r.value) for r in read_topic(settings, topic)]
    ends = [(as_ms(datetime.fromisoformat(a["window_end"])), a) for a in records]
    return sorted((end, a["keyword"], a["trend_rank"]) for end, a in ends if end <= up_to_end_ms)


def assert_trending_sinks_equal_oracle(settings, posts: list[dict], alerts_topic: str, closed_end_ms: int,
                                       counts_prefix: str, *, timeout_s: float = 300) -> list[tuple]:
    """Wait until the trending job's sinks hold the oracle's results for every window closed by
    `closed_end_ms`: every keyword's minute counts in the lake (under s3://<bucket>/<counts_prefix>), the
    keyword rows and trends in Postgres, the committed alerts once each, and the Redis current set at the
    latest trending window (never an older one). Returns the oracle's trends."""
    trending = settings.trending
    first_ms = min(p["created_at"] for p in posts)
    try:
        wait_until(lambda: closed_minutes_equal_oracle(settings, counts_prefix, posts, closed_end_ms), timeout_s,
                   what="every closed minute's keyword counts in the lake equal the oracle's")
    except TimeoutError as exc:
        expected = {key: counts for key, counts in minute_counts(posts).items() if key[0] + 60_000 <= closed_end_ms}
        stored = read_keyword_counts(settings, counts_prefix, first_ms, closed_end_ms - 60_000)
        per_minute = sorted({start for start, _ in expected} | {start for start, _ in stored})
        minutes = [(start, sum(1 for s, _ in stored if s == start), sum(1 for s, _ in expected if s == start))
                   for start in per_minute]
        raise AssertionError(f"{exc}: {describe_difference(stored, expected)}; keywords per minute (start, stored, "
                             f"expected) where they differ: {[m for m in minutes if m[1] != m[2]]}") from None
    oracle = expected_trends(posts, trending, closed_end_ms)
    assert oracle, "the input's bursts must trend"
    wait_until(lambda: stored_trends(settings, first_ms, closed_end_ms) == oracle, 120,
               what="the trends in Postgres equal the oracle's")
    # Every keyword row is the oracle's (none overwritten by a partial recount), and every closed window's
    # watched keywords are there.
    expected = expected_keyword_rows(posts, trending)
    closed_hop = {key: row for key, row in expected.items()
                  if key[0] == "hop" and key[1] + trending.hop_size_s * 1000 <= closed_end_ms}
    def closed_hop_rows() -> dict:
        return {k: r for k, r in keyword_rows(settings, first_ms, closed_end_ms).items() if k in closed_hop}

    wait_until(lambda: closed_hop_rows() == closed_hop, 120,
               what="the closed windows' watched keywords in Postgres equal the oracle's")
    stored = keyword_rows(settings, first_ms, closed_end_ms)
    wrong = {key: row for key, row in stored.items() if expected.get(key) != row}
    assert wrong == {}, f"keyword rows that differ from the oracle: {sorted(wrong.items())[:10]}"
    # Each of the oracle's trends exactly once on the alerts topic: nothing from an aborted attempt.
    wait_until(lambda: committed_alerts(settings, alerts_topic, closed_end_ms) == [(e, k, r) for e, k, r, *_ in oracle],
               120, what="the committed alerts equal the oracle's trends, once each")
    redis = clients.redis(settings)
    latest_end = max(end for end, *_ in oracle)
    held = int(redis.hget(REDIS_CURRENT[1], "window_end") or 0)
    assert held >= latest_end
    if held == latest_end:
        current = redis.zrange(REDIS_CURRENT[0], 0, -1)
        assert set(current) == {k for end, k, *_ in oracle if end == latest_end}
    return oracle


def volume_windows(settings, first_ms: int, up_to_end_ms: int) -> dict:
    """(dimension, series, window_start_ms) -> posts, in the oracle's form (tests.oracle.volume_counts)."""
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT dimension, series, window_start, posts FROM volume_windows "
                            "WHERE window_start >= %s AND window_end <= %s",
                            (as_utc(first_ms // 60_000 * 60_000), as_utc(up_to_end_ms))).fetchall()
    return {(d, s, as_ms(start)): n for d, s, start, n in rows}


def volume_anomalies(settings, first_ms: int, up_to_end_ms: int) -> list[tuple]:
    """The `volume_anomalies` rows of the span in the oracle's form (tests.oracle.expected_anomalies)."""
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT dimension, series, window_start, posts, direction, severity, z "
                            "FROM volume_anomalies WHERE window_start >= %s AND window_end <= %s",
                            (as_utc(first_ms // 60_000 * 60_000), as_utc(up_to_end_ms))).fetchall()
    return sorted((d, s, as_ms(start), n, direction, severity, round(z, 6))
                  for d, s, start, n, direction, severity, z in rows)


def read_lake(settings, prefix: str) -> tuple[dict[str, dict], list[str]]:
    """The archive job's Parquet objects under s3://<bucket>/<prefix>/: uid -> row (with its partition
    columns), and every object name. A uid found twice fails: the lake holds each post once."""
    minio, bucket = clients.minio(settings), settings.minio.bucket
    objects = [o.object_name for o in minio.list_objects(bucket, prefix=prefix + "/", recursive=True)]
    archived: dict[str, dict] = {}
    for name in objects:
        if name.endswith("_SUCCESS") or "inprogress" in name or name.rsplit("/", 1)[-1].startswith("."):
            continue
        partition = dict(p.split("=", 1) for p in name[len(prefix) + 1:].split("/")[:-1])
        for row in pq.read_table(io.BytesIO(minio.get_object(bucket, name).read())).to_pylist():
            assert row["uid"] not in archived, f"{row['uid']} archived twice"
            archived[row["uid"]] = row | partition
    return archived, objects


def wait_for_lake(settings, prefix: str, posts: list[dict], closed_end: int, timeout_s: float = 300) -> None:
    """The archive writes a minute's posts once the watermark closes it (and late posts at once): wait until
    every post of a minute ended by `closed_end` is in the lake, then check it holds nothing else."""
    uids = {p["uid"] for p in posts}
    closed = {p["uid"] for p in posts if p["created_at"] // 60_000 * 60_000 + 60_000 <= closed_end}
    wait_until(lambda: closed <= set(read_lake(settings, prefix)[0]), timeout_s,
               what=f"the lake under {prefix}/ holds the {len(closed)} posts of the closed minutes")
    unexpected = set(read_lake(settings, prefix)[0]) - uids
    assert not unexpected, f"the lake holds posts never accepted: {sorted(unexpected)[:10]}"


def read_keyword_counts(settings, prefix: str, first_ms: int, last_ms: int) -> dict:
    """The trending job's lake of minute counts under s3://<bucket>/<prefix>/, for the minutes of the span:
    (window_start_ms, keyword) -> (posts, authors). A minute and keyword found twice fails."""
    minio, bucket = clients.minio(settings), settings.minio.bucket
    counts: dict = {}
    for item in minio.list_objects(bucket, prefix=prefix + "/", recursive=True):
        name = item.object_name
        if "inprogress" in name or name.rsplit("/", 1)[-1].startswith((".", "_")):
            continue
        for row in pq.read_table(io.BytesIO(minio.get_object(bucket, name).read())).to_pylist():
            start = as_ms(row["window_start"].replace(tzinfo=None))
            if first_ms // 60_000 * 60_000 <= start <= last_ms:
                assert (start, row["keyword"]) not in counts, f"{row['keyword']} at {start} in the lake twice"
                counts[start, row["keyword"]] = (row["posts"], row["authors"])
    return counts


def describe_difference(stored: dict, expected: dict, limit: int = 8) -> str:
    """What a failed comparison of two keyed results needs to say: counts, and a few keys of each kind."""
    missing = sorted(k for k in expected if k not in stored)
    extra = sorted(k for k in stored if k not in expected)
    wrong = sorted(k for k in expected if k in stored and stored[k] != expected[k])
    return (f"{len(stored)} stored, {len(expected)} expected; missing {len(missing)} {missing[:limit]}; "
            f"unexpected {len(extra)} {extra[:limit]}; different {len(wrong)} "
            f"{[(k, stored[k], expected[k]) for k in wrong[:limit]]}")


def minute_counts(posts: list[dict]) -> dict:
    """The oracle's minute counts of every keyword (all sources), in read_keyword_counts' form."""
    return {(start, keyword): counts for (start, source, keyword), counts in recompute(posts, 60_000, 60_000).items()
            if source == "*"}


def remove_lake(settings, prefix: str) -> None:
    minio, bucket = clients.minio(settings), settings.minio.bucket
    for name in minio.list_objects(bucket, prefix=prefix + "/", recursive=True):
        minio.remove_object(bucket, name.object_name)
