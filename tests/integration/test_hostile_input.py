"""No input can stop the pipeline. With the trending, volume and archive jobs running on the standalone
cluster, a fixed, seeded corpus of hostile records is written straight into the posts topic — past the
producers and their checks — between two halves of an honest stream: random bytes, truncated Avro, a
tombstone, valid Avro with empty, huge, NUL-laden, far-past, mistimed and 2040 values, a key that is not the
uid, and accepted-but-nasty posts (NUL and 8,000-character tags, a 3 KB "language", an 8,000-character
token, 10,000 distinct junk words). Afterwards: every job RUNNING with zero restarts, every hostile record
accounted for — quarantined with its partition, offset and reason, or accepted as the post it cleans up
to — and every sink equal to the oracle over the posts that were accepted.

(Hostile input for each source's fake server: tests/integration/test_{bluesky,reddit,mastodon}_connector.py.)"""

from __future__ import annotations

import random
import uuid
from collections import Counter

import pytest
from kafka import KafkaProducer
from kafka.admin import NewTopic

from connectors import synthetic
from runtime import clients
from shared.post import SocialPost, encode
from stack.processes import wait_until
from tests.integration.conftest import cli, counts_path
from tests.integration.sinks import (
    as_utc,
    assert_trending_sinks_equal_oracle,
    clear_windows,
    produce,
    remove_lake,
    volume_windows,
    wait_for_lake,
)
from tests.oracle import volume_counts

START = 1_794_722_400_000  # 2026-11-15T06:00:00Z: a span no other test writes
HALF = 15 * 60_000
INPUT = synthetic.SyntheticConfig(
    seed=1130, start_ms=START, duration_s=30 * 60, rate=1.5, sources={"bluesky": 5, "reddit": 3, "mastodon": 2},
    bursts=[synthetic.Burst("#aurora", 22 * 60, 420, 10, baseline_per_min=1.0)])  # after the 20-window warm-up


def honest_post(n: int, created_at: int, **fields) -> SocialPost:
    values = {"uid": f"hostile-test:{n}", "source": "bluesky", "author_id": f"did:plc:hostile{n % 13}",
              "text": "harbour lights tonight", "created_at": created_at, "ingested_at": created_at,
              "langs": ("en",), "hashtags": (), "community": ""} | fields
    return SocialPost(**values)


def junk_reason(junk: bytes) -> str:
    """Random bytes that start with the Confluent magic byte 0 and hold a schema id are read as a framed record
    (shared/confluent_wire.py): an id far above any the registry gave out is unknown; anything else is undecodable."""
    return "unknown_schema" if len(junk) >= 5 and junk[0] == 0 and int.from_bytes(junk[1:5]) > 1_000_000 \
        else "undecodable"


def corpus(rng: random.Random, at: int) -> tuple[list[tuple], list[tuple[SocialPost, dict]]]:
    """(key, value, created_at header or None, expected quarantine reason) records, and the accepted ones: (the
    post as written, the post as the oracle must count it, after the rules every post meets)."""
    records: list[tuple] = []
    template = encode(honest_post(0, at))
    for i in range(20):  # random bytes of every length, some empty
        junk = rng.randbytes(rng.randrange(0, 3000))
        records.append((f"junk:{i}".encode(), junk, at + i, junk_reason(junk)))
    # a Confluent frame whose schema id the registry never gave out
    records.append((b"unknown-id", b"\x00\x7f\xff\xff\xf0" + template, at, "unknown_schema"))
    for i in range(10):  # Avro cut short
        records.append((f"cut:{i}".encode(), template[:rng.randrange(1, len(template))], at, "undecodable"))
    records.append((b"tombstone", None, at, "undecodable"))
    records.append((b"no-header", template, None, "timestamp_mismatch"))  # event time = the epoch: late at once
    records.append((b"trailing", template + b"\x00\x01", at, "undecodable"))

    def avro(n: int, reason: str | None, header: int | None = None, key: bytes | None = None, **fields):
        post = honest_post(n, fields.pop("created_at", at), **fields)
        records.append((key if key is not None else post.uid.encode(), encode(post),
                        post.created_at if header is None else header, reason))

    # An empty uid's length byte is 0, the Confluent magic byte: the record reads as a frame of an unknown schema id
    # (shared/confluent_wire.py is_framed). Quarantined all the same; parse_post's missing_field is a unit test's.
    avro(100, "unknown_schema", uid="")
    avro(101, "text_too_long", text="y" * 40_001)
    avro(102, "invalid_field", text="nul\x00inside")
    avro(103, "timestamp_out_of_range", created_at=978_307_200_000)  # 2001, before any source existed
    avro(104, "timestamp_mismatch", header=at, created_at=2_208_988_800_000)  # 2040, with an honest header
    avro(105, "timestamp_mismatch", header=at, created_at=at + 3_600_000)
    avro(106, "key_mismatch", key=b"someone-else")
    avro(107, "timestamp_out_of_range", ingested_at=at - 1)  # created after it was ingested
    avro(108, "invalid_field", uid="hostile-test:108\x00")
    avro(109, "invalid_field", source="myspace")

    accepted = []

    def nasty(n: int, cleaned: dict, **fields):
        post = honest_post(n, at + n, **fields)
        records.append((post.uid.encode(), encode(post), post.created_at, None))
        accepted.append((post, {**as_oracle(post), **cleaned}))

    nasty(200, {"hashtags": ["oktag"]}, hashtags=("ok\x00tag", "t" * 8000))
    nasty(201, {"langs": []}, langs=("x" * 3000,))
    nasty(202, {}, text=f"{'z' * 8000} harbour")
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [a + b + c for a in letters for b in letters for c in letters]
    junk = " ".join(rng.sample(words, 10_000))  # 10,000 distinct words in 39,999 characters: a valid post
    nasty(203, {}, text=junk)
    nasty(204, {"langs": ["pt-br"]}, langs=("PT_BR", "e n"), community="")
    rng.shuffle(records)
    return records, accepted


def as_oracle(post: SocialPost) -> dict:
    return {"uid": post.uid, "source": post.source, "author_id": post.author_id, "text": post.text,
            "hashtags": list(post.hashtags), "langs": list(post.langs), "created_at": post.created_at,
            "community": post.community}


def job_failures(cluster, job_id: str) -> int:
    return len(cluster.request("GET", f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"])


@pytest.mark.timeout(1500)
def test_hostile_records_are_quarantined_or_cleaned_and_no_job_stops(settings, cluster, counts_lake):
    posts = [event.payload for event in synthetic.generate(INPUT)]
    first_ms, last_ms = min(p["created_at"] for p in posts), max(p["created_at"] for p in posts)
    clear_windows(settings, first_ms, last_ms)
    suffix = uuid.uuid4().hex[:10]
    topic, dlq, alerts, anomalies = (f"test.hostile.{suffix}", f"test.hostile.dlq.{suffix}",
                                     f"test.hostile.alerts.{suffix}", f"test.hostile.anomalies.{suffix}")
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(topic, 2, 1), *(NewTopic(t, 1, 1) for t in (dlq, alerts, anomalies))])
    lake = f"test-hostile-{suffix}"
    jobs = {
        "trending": ["--topic", topic, "--alerts-topic", alerts, "--group-id", f"{suffix}-trending",
                     *counts_path(settings, counts_lake)],
        "volume": ["--topic", topic, "--anomalies-topic", anomalies, "--dlq-topic", dlq, "--group-id",
                   f"{suffix}-volume"],
        "archive": ["--topic", topic, "--path", f"s3://{settings.minio.bucket}/{lake}", "--group-id",
                    f"{suffix}-archive"],
    }
    job_ids = {name: cli("submit", name, "--", *args).strip().splitlines()[-1] for name, args in jobs.items()}
    try:
        wait_until(lambda: all(cluster.running_job(j) for j in job_ids.values()), 300, what="every job RUNNING")
        produce(settings, topic, dlq, [p for p in posts if p["created_at"] < START + HALF])
        # Straight into the topic, as anyone who can write it could: the producers' checks are not in the way.
        records, accepted = corpus(random.Random(20261130), START + HALF)
        raw = KafkaProducer(**settings.kafka.client_options("admin"), acks="all", max_request_size=2_000_000)
        written = []
        for key, value, created_at, reason in records:
            headers = [("created_at", str(created_at).encode())] if created_at is not None else []
            meta = raw.send(topic, key=key, value=value, headers=headers).get(timeout=60)
            written.append((meta.partition, meta.offset, reason))
        raw.close()
        produce(settings, topic, dlq, [p for p in posts if p["created_at"] >= START + HALF])

        expected_quarantine = {(partition, offset): reason for partition, offset, reason in written if reason}
        assert len(expected_quarantine) == len(records) - len(accepted)

        def quarantined() -> dict:
            with clients.postgres(settings, "reader") as conn:
                rows = conn.execute("SELECT kafka_partition, kafka_offset, reason FROM quarantined_records "
                                    "WHERE topic = %s", (topic,)).fetchall()
            return {(partition, offset): reason for partition, offset, reason in rows}

        # Every hostile record that is not a post is in the quarantine, where it was and why, once.
        try:
            wait_until(lambda: quarantined() == expected_quarantine, 300,
                       what="every hostile record quarantined with its partition, offset and reason")
        except TimeoutError:
            found, expected = set(quarantined().items()), set(expected_quarantine.items())
            raise AssertionError(f"quarantined but not expected: {sorted(found - expected)}; "
                                 f"expected but not quarantined: {sorted(expected - found)}") from None
        reasons = Counter(expected_quarantine.values())
        assert reasons["undecodable"] + reasons["unknown_schema"] == 34 and reasons["unknown_schema"] >= 2

        # The accepted ones are counted as the posts they clean up to; every sink equals the oracle.
        counted = posts + [oracle_form for _, oracle_form in accepted]
        closed_end = last_ms - settings.trending.watermark_s * 1000 - settings.trending.hop_slide_s * 1000
        assert_trending_sinks_equal_oracle(settings, counted, alerts, closed_end, counts_lake, timeout_s=600)
        tumble = settings.volume.tumble_s * 1000
        expected_volume = {key: n for key, n in volume_counts(counted, tumble).items() if key[2] + tumble <= closed_end}
        wait_until(lambda: volume_windows(settings, first_ms, closed_end) == expected_volume, 300,
                   what="the volume windows in Postgres equal the oracle's")
        wait_for_lake(settings, lake, counted, closed_end)

        # No job ever stopped: RUNNING, and not one restart.
        assert all(cluster.running_job(j) for j in job_ids.values())
        assert {name: job_failures(cluster, j) for name, j in job_ids.items()} == dict.fromkeys(job_ids, 0)
        with clients.postgres(settings, "reader") as conn:
            late = conn.execute("SELECT coalesce(sum(posts), 0) FROM late_posts WHERE window_start >= %s AND "
                                "window_start <= %s", (as_utc(first_ms // 60_000 * 60_000), as_utc(last_ms))
                                ).fetchone()[0]
        assert late == 0  # the honest posts around them were all counted on time
    finally:
        for job_id in job_ids.values():
            cli("cancel", job_id)
        remove_lake(settings, lake)
        admin.delete_topics([topic, dlq, alerts, anomalies])
        admin.close()


def test_posts_after_2038_land_in_their_own_minutes(settings, counts_lake):
    """TIMESTAMPDIFF(SECOND, ...) is an INT: a post dated after 2038-01-19 once landed in a window in 1901."""
    import subprocess
    import sys

    from shared.post import parse_post
    from shared.settings import PROJECT_ROOT
    from tests.integration.sinks import minute_counts, read_keyword_counts

    at = 2_222_222_220_000  # 2040-06-02T03:57:00Z, a minute boundary after 2038
    posts = [{"uid": f"y2038:{n}", "source": "reddit", "author_id": f"u{n % 5}", "text": f"tide tables {n % 3}",
              "created_at": at + n * 7_000, "ingested_at": at + n * 7_000, "langs": ["en"], "hashtags": [],
              "community": "r/tides"} for n in range(30)]
    topic = f"test.y2038.{uuid.uuid4().hex[:10]}"
    admin = clients.kafka_admin(settings)
    # The broker refuses timestamps ahead of its clock; this topic alone accepts the future it is about.
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"message.timestamp.after.max.ms": str(2**63 - 1)}),
                         NewTopic(f"{topic}.dlq", 1, 1)])
    try:
        # Written as a producer would in 2040: a record sent then, with the post's time in its header.
        writer = KafkaProducer(**settings.kafka.client_options("admin"), acks="all")
        for post in posts:
            record = parse_post(post, now=post["ingested_at"])
            writer.send(topic, key=record.uid.encode(), value=encode(record), timestamp_ms=record.ingested_at,
                        headers=[("created_at", str(record.created_at).encode())])
        writer.close()
        result = subprocess.run([sys.executable, "-m", "stack.cli", "run", "trending", "--", "--bounded", "--topic",
                                 topic, "--alerts-topic", f"{topic}.dlq", "--group-id", f"test-{topic}",
                                 *counts_path(settings, counts_lake)],
                                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        stored = read_keyword_counts(settings, counts_lake, at, at + 3_600_000)
        assert stored == minute_counts(posts) and {start for start, _ in stored} == {at, at + 60_000, at + 120_000,
                                                                                      at + 180_000}
        with clients.postgres(settings, "reader") as conn:
            totals = conn.execute("SELECT window_start, posts FROM window_posts WHERE window_kind = 'tumble' AND "
                                  "source = '*' AND window_start >= %s ORDER BY 1", (as_utc(at),)).fetchall()
        assert [n for _, n in totals] == [9, 9, 8, 4] and totals[0][0] == as_utc(at)
    finally:
        admin.delete_topics([topic, f"{topic}.dlq"])
        admin.close()
        with clients.postgres(settings, "writer") as conn:
            for table in ("keyword_window_counts", "window_posts", "trends"):
                conn.execute(f"DELETE FROM {table} WHERE window_start >= %s", (as_utc(at - 600_000),))
