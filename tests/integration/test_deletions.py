"""Deleted posts leave every store (issue 17): a post archived in the lake, scored as a trend sample in PostgreSQL
and cached in Redis, then deleted at its source, is gone from all three once the deletions job and a lake
compaction have run, and every other post is exactly where it was (the oracle: what the stores held before,
minus the deleted uids)."""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
import uuid

import pyarrow.parquet as pq

from connectors import synthetic
from connectors.producer import PostProducer
from runtime import clients
from runtime.trend_cache import DELETED, KEYWORD, TrendPublisher, redis_options
from shared.settings import PROJECT_ROOT
from tests.integration.sinks import as_utc, clear_windows, produce, read_lake, remove_lake

LABELS = PROJECT_ROOT / "connectors" / "samples" / "sample.labels.json"
# The bundled sample's bursts over three sources, five days before the sample's own hour: no other test's windows.
START = 1_793_534_400_000 - 5 * 86_400_000


def cli(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "stack.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"streampulse {' '.join(args[:3])} failed:\n{result.stderr[-4000:]}"
    return result


def trend_samples(settings, first_ms: int, last_ms: int) -> dict[tuple, list[str]]:
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT window_end, keyword, sample_uids FROM trends WHERE window_end > %s "
                            "AND window_start <= %s", (as_utc(first_ms), as_utc(last_ms))).fetchall()
    return {(end, keyword): json.loads(samples) for end, keyword, samples in rows}


def cached_samples(settings, first_ms: int, last_ms: int) -> dict[str, list[str]]:
    redis = clients.redis(settings)
    cached = {}
    for key in redis.scan_iter(match=KEYWORD + "*", _type="hash"):
        fields = redis.hgetall(key)
        if first_ms < int(fields.get("window_end", 0)) <= last_ms + 60_000:
            cached[key] = json.loads(fields["sample_uids"])
    return cached


def without(samples: dict, deleted: set[str]) -> dict:
    return {key: [uid for uid in uids if uid not in deleted] for key, uids in samples.items()}


def test_a_deleted_post_leaves_the_lake_postgres_and_redis_and_nothing_else_does(settings, kafka_topic, dlq_topic,
                                                                                 deletes_topic):
    labelled = json.loads(LABELS.read_text())["config"]
    config = synthetic.SyntheticConfig(**{
        **labelled, "seed": 1717, "start_ms": START, "sources": {"bluesky": 5, "reddit": 3, "mastodon": 2},
        "bursts": [synthetic.Burst(**burst) for burst in labelled["bursts"]], "busy": (), "volume_events": ()})
    posts = [event.payload for event in synthetic.generate(config) if not event.expected_reject]
    first_ms, last_ms = min(p["created_at"] for p in posts), max(p["created_at"] for p in posts)
    clear_windows(settings, first_ms, last_ms)
    with clients.postgres(settings, "writer") as conn:  # what an interrupted run of this test may have left
        conn.execute("DELETE FROM deletions WHERE uid = ANY(%s)", ([p["uid"] for p in posts],))
    redis = clients.redis(settings)
    redis.zrem(DELETED, *[p["uid"] for p in posts])
    # Each keyword's hash only moves forward in time: one a later window left (another test) would keep this
    # test's older windows out of Redis.
    for key in redis.scan_iter(match=KEYWORD + "*", _type="hash"):
        redis.delete(key)
    produce(settings, kafka_topic, dlq_topic, posts)

    prefix = f"test-deletions-{uuid.uuid4().hex[:12]}"
    lake_path = f"s3://{settings.minio.bucket}/{prefix}/posts"
    deleted: set[str] = set()
    unseen = f"https://mastodon.example/api/v1/statuses/{uuid.uuid4().int % 10**18}"
    try:
        cli("run", "archive", "--", "--bounded", "--topic", kafka_topic, "--group-id", f"test-archive-{kafka_topic}",
            "--path", lake_path)
        cli("run", "trending", "--", "--bounded", "--topic", kafka_topic, "--alerts-topic", dlq_topic, "--group-id",
            f"test-trending-{kafka_topic}", "--counts-path", f"s3://{settings.minio.bucket}/{prefix}/keyword_counts")
        lake_before, objects = read_lake(settings, f"{prefix}/posts")
        assert set(lake_before) == {p["uid"] for p in posts}
        sampled_before = trend_samples(settings, first_ms, last_ms)
        cached_before = cached_samples(settings, first_ms, last_ms)
        sampled = {uid for uids in sampled_before.values() for uid in uids}
        cached = {uid for uids in cached_before.values() for uid in uids}
        assert cached and sampled - cached, (cached_before, sampled_before)

        # Deleted at the source: every post Redis caches, some other trend samples, and posts of every source.
        rng = random.Random(17)
        deleted = cached | set(rng.sample(sorted(sampled - cached), min(5, len(sampled - cached))))
        for source in ("bluesky", "reddit", "mastodon"):
            deleted |= set(rng.sample(sorted(p["uid"] for p in posts if p["source"] == source), 20))
        # One file the archive will publish again later, as a job that fell behind would: its deleted posts too.
        late_file = next(name for name in objects if not name.endswith("_SUCCESS")
                         and set(pq.read_table(io.BytesIO(clients.minio(settings).get_object(
                             settings.minio.bucket, name).read())).column("uid").to_pylist()) & deleted)
        late_bytes = clients.minio(settings).get_object(settings.minio.bucket, late_file).read()

        producer = PostProducer(settings, "replay", topic=kafka_topic, dlq_topic=dlq_topic,
                                deletes_topic=deletes_topic)
        for uid in sorted(deleted):
            producer.send_delete({"uid": uid})
        # Mastodon names a status it did not see by its id on the instance: logged as such, never dropped.
        producer.send_delete({"uid": unseen, "local_id": unseen.rsplit("/", 1)[1], "community": "mastodon.example"})
        producer.send_raw(deletes_topic, b"not-a-notice", b"{this is not json")  # quarantined, never a stop
        producer.close()

        cli("run", "deletions", "--", "--bounded", "--topic", deletes_topic, "--group-id", f"test-{deletes_topic}")

        # PostgreSQL and Redis: the deleted uids are gone from every sample, every other uid is still there.
        assert trend_samples(settings, first_ms, last_ms) == without(sampled_before, deleted)
        assert cached_samples(settings, first_ms, last_ms) == without(cached_before, deleted)
        with clients.postgres(settings, "reader") as conn:
            logged = {row[0] for row in conn.execute("SELECT uid FROM deletions WHERE uid = ANY(%s)",
                                                     (sorted(deleted),))}
            unseen_row = conn.execute("SELECT local_id FROM deletions WHERE uid = %s", (unseen,)).fetchone()
            quarantined = conn.execute("SELECT reason FROM quarantined_records WHERE topic = %s AND job = 'deletions'",
                                       (deletes_topic,)).fetchall()
        assert logged == deleted and quarantined == [("invalid_json",)]
        assert unseen_row == (unseen.rsplit("/", 1)[1],)

        # A trend published after the deletion (a window still open when the post was deleted) leaves it out too.
        victim = sorted(deleted)[0]
        publisher = TrendPublisher(redis_options(settings), 60)
        publisher.publish(first_ms, [("test-deletions", 1.0)], [("test-deletions", [victim, "kept-uid"], {"z": 1.0})])
        assert json.loads(clients.redis(settings).hget(KEYWORD + "test-deletions", "sample_uids")) == ["kept-uid"]
        with clients.postgres(settings, "writer") as conn:
            conn.execute("INSERT INTO trends (window_start, window_end, keyword, trend_rank, posts, authors, "
                         "baseline_mean, baseline_std, z, sample_uids) VALUES (%s, %s, 'test-deletions', 1, 2, 2, 1, "
                         "1, 1, %s)", (as_utc(first_ms), as_utc(first_ms + 60_000), json.dumps([victim, "kept-uid"])))
            assert conn.execute("SELECT sample_uids FROM trends WHERE keyword = 'test-deletions'").fetchone() == (
                '["kept-uid"]',)

        # The lake, after a compaction: the oracle exactly.
        cli("lake", "compact", "--path", lake_path)
        expected = {uid: row for uid, row in lake_before.items() if uid not in deleted}
        assert read_lake(settings, f"{prefix}/posts")[0] == expected
        with clients.postgres(settings, "reader") as conn:
            assert conn.execute("SELECT posts_removed FROM lake_compactions WHERE path = %s", (lake_path,)
                                ).fetchall() == [(len(deleted),)]

        # A file published after that run holds deleted posts: the next run takes them out.
        late_name = late_file.rsplit("/", 1)[0] + "/part-late-0"
        clients.minio(settings).put_object(settings.minio.bucket, late_name, io.BytesIO(late_bytes), len(late_bytes))
        late_uids = set(pq.read_table(io.BytesIO(late_bytes)).column("uid").to_pylist())
        second = cli("lake", "compact", "--path", lake_path).stdout
        assert f"{len(late_uids & deleted)} deleted posts removed" in second and "(0 deletions were waiting)" in second
        minio = clients.minio(settings)
        rows = pq.read_table(io.BytesIO(minio.get_object(settings.minio.bucket, late_name).read())).to_pylist()
        assert {row["uid"] for row in rows} == late_uids - deleted
    finally:
        remove_lake(settings, prefix)
        with clients.postgres(settings, "writer") as conn:
            conn.execute("DELETE FROM deletions WHERE uid = ANY(%s)", (sorted(deleted | {unseen}),))
            conn.execute("DELETE FROM lake_compactions WHERE path = %s", (lake_path,))
            conn.execute("DELETE FROM trends WHERE keyword = 'test-deletions'")
        clear_windows(settings, first_ms, last_ms)
        redis = clients.redis(settings)
        for key in redis.scan_iter(match=KEYWORD + "*", _type="hash"):
            if int(redis.hget(key, "window_end") or 0) <= last_ms + 60_000:
                redis.delete(key)


def test_compaction_on_watch_runs_every_interval_and_says_when_a_deletion_waited_past_the_bound(settings, tmp_path):
    import os
    import signal

    from stack.processes import wait_until

    lake_path = (tmp_path / "lake").as_uri()
    uid = f"test-overdue-{uuid.uuid4().hex[:12]}"
    with clients.postgres(settings, "writer") as conn:  # a deletion logged two minutes ago, never applied
        conn.execute("INSERT INTO deletions (uid, source, deleted_at, received_at) VALUES (%s, 'bluesky', "
                     "now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' - interval '2 minutes')", (uid,))
    env = os.environ | {"STREAMPULSE_DELETIONS__COMPACT_EVERY_S": "10", "STREAMPULSE_DELETIONS__LAKE_WITHIN_S": "60"}
    watch = subprocess.Popen([sys.executable, "-m", "stack.cli", "lake", "compact", "--watch", "--path", lake_path],
                             cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def runs() -> int:
            with clients.postgres(settings, "reader") as conn:
                return conn.execute("SELECT count(*) FROM lake_compactions WHERE path = %s", (lake_path,)).fetchone()[0]

        wait_until(lambda: runs() >= 2 or watch.poll() is not None, 120, what="two compactions 10 s apart")
        assert watch.poll() is None, watch.stderr.read()[-2000:]
    finally:
        watch.send_signal(signal.SIGINT)
        _, stderr = watch.communicate(timeout=60)
        with clients.postgres(settings, "writer") as conn:
            conn.execute("DELETE FROM deletions WHERE uid = %s", (uid,))
            conn.execute("DELETE FROM lake_compactions WHERE path = %s", (lake_path,))
    assert watch.returncode == 130, stderr[-2000:]
    # (the oldest waiting deletion is this one, or an older one another run left in the log)
    assert re.search(r"WARNING: a deletion waited [\d.]+ (min|h) for this run, more than "
                     r"deletions.lake_within_s \(1\.0 min\)", stderr), stderr[-2000:]
    assert stderr.count(f"lake {lake_path}: 0 files read") >= 2
