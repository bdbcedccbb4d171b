"""The producer runtime against the real broker: dead letters, cursor resume after SIGTERM, back-pressure,
metrics."""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter

import pytest

from connectors.producer import CursorStore, PostProducer, ProducerMetrics
from runtime import clients
from shared.post import decode, now_ms
from shared.settings import PROJECT_ROOT
from tests.integration.conftest import read_topic

BASE_MS = now_ms() - 3_600_000


def post_line(i: int, run: str, spacing_ms: int = 10) -> str:
    return json.dumps({"uid": f"replay:{run}:{i}", "source": "synthetic", "author_id": f"author-{i % 7}",
                       "text": f"post number {i} #replay", "created_at": BASE_MS + i * spacing_ms,
                       "langs": ["en"], "hashtags": ["replay"]})


def streampulse(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stack.cli", *args], cwd=PROJECT_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_replay_sends_valid_posts_and_dead_letters_the_rest(settings, kafka_topic, dlq_topic, tmp_path):
    run = uuid.uuid4().hex[:8]
    lines = [post_line(i, run).encode() for i in range(50)]
    bad = {
        b'{"uid": "broken", "source": "synth': "invalid_json",
        post_line(50, run).encode().replace(b"post number", b"post \xff number"): "invalid_utf8",
        post_line(51, run).replace(str(BASE_MS + 510), "0").encode(): "timestamp_out_of_range",
    }
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"\n".join(lines[:20] + list(bad) + lines[20:]) + b"\n")

    proc = streampulse("produce", "replay", str(path), "--topic", kafka_topic, "--dlq-topic", dlq_topic,
                       "--no-progress", "--cursor-name", f"test-{run}")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "sent 50, rejected 3" in stderr

    posts = [decode(r.value) for r in read_topic(settings, kafka_topic)]
    assert sorted(p.uid for p in posts) == sorted(f"replay:{run}:{i}" for i in range(50))
    letters = [json.loads(r.value) for r in read_topic(settings, dlq_topic)]
    assert sorted(letter["reason"] for letter in letters) == sorted(bad.values())
    by_reason = {letter["reason"]: letter for letter in letters}
    assert by_reason["invalid_json"]["raw"] == '{"uid": "broken", "source": "synth'
    assert by_reason["invalid_utf8"]["raw_encoding"] == "base64"  # the raw bytes survive exactly
    assert by_reason["timestamp_out_of_range"]["detail"].startswith("created_at 1970-01-01")


def test_sigterm_flushes_and_a_restart_resumes_without_loss_or_duplicates(settings, kafka_topic, dlq_topic,
                                                                         tmp_path):
    run = uuid.uuid4().hex[:8]
    total = 3000
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(post_line(i, run, spacing_ms=10) for i in range(total)) + "\n")  # 30 s of event time
    cursor_name = f"test-{run}"
    cursor = CursorStore.for_source(settings, cursor_name)
    common = ["produce", "replay", str(path), "--topic", kafka_topic, "--dlq-topic", dlq_topic, "--no-progress",
              "--cursor-name", cursor_name]
    try:
        proc = streampulse(*common, "--speed", "1")  # real time: the run would take 30 s
        deadline = time.monotonic() + 60
        while len(read_topic(settings, kafka_topic)) < 200:  # wait for a condition, not a duration
            assert proc.poll() is None and time.monotonic() < deadline, "replay did not start publishing"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        assert "stopped by signal" in stderr

        first = read_topic(settings, kafka_topic)
        saved = cursor.load()
        assert 200 <= len(first) < total
        assert saved["record"] == len(first)  # everything before the cursor was flushed, nothing after sent

        proc = streampulse(*common)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        uids = [decode(r.value).uid for r in read_topic(settings, kafka_topic)]
        assert len(uids) == total and len(set(uids)) == total
        assert cursor.load()["record"] == total
    finally:
        cursor.clear()


def test_memory_in_flight_stays_bounded_and_metrics_are_served(settings, kafka_topic, dlq_topic):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics = ProducerMetrics()
    metrics.serve(port)
    limit = 16 * 1024
    producer = PostProducer(settings, "synthetic", topic=kafka_topic, dlq_topic=dlq_topic, metrics=metrics,
                            max_in_flight_bytes=limit)
    run = uuid.uuid4().hex[:8]
    for i in range(2000):
        producer.submit(post_line(i, run))
    producer.submit(b"not json")
    producer.close()

    assert producer.summary.sent == 2000 and producer.summary.rejected == {"invalid_json": 1}
    assert 0 < producer.peak_in_flight_bytes <= limit
    assert len(read_topic(settings, kafka_topic)) == 2000
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'streampulse_posts_produced_total{source="synthetic"} 2000.0' in body
    assert 'streampulse_posts_rejected_total{reason="invalid_json",source="synthetic"} 1.0' in body
    lag = [line for line in body.splitlines() if line.startswith("streampulse_source_lag_seconds{")]
    assert lag and float(lag[0].split()[-1]) > 3000  # the posts are about an hour old


def test_100k_synthetic_posts_with_1_percent_malformed_land_exactly(settings, kafka_topic, dlq_topic):
    proc = streampulse("produce", "synthetic", "--count", "100000", "--rate", "500", "--seed", "20261124",
                       "--malformed", "0.01", "--topic", kafka_topic, "--dlq-topic", dlq_topic, "--no-resume",
                       "--no-progress", "--cursor-name", f"test-{uuid.uuid4().hex[:8]}")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]

    uids = Counter(r.key for r in read_topic(settings, kafka_topic, timeout_s=300))
    assert len(uids) == 99_000 and max(uids.values()) == 1  # none lost, none doubled
    letters = read_topic(settings, dlq_topic, timeout_s=120)
    assert len(letters) == 1_000
    assert len({r.key for r in letters}) == 1_000 and not set(uids) & {r.key for r in letters}
    reasons = Counter(json.loads(r.value)["reason"] for r in letters)
    assert sum(reasons.values()) == 1_000 and len(reasons) == 6


def test_event_time_travels_in_a_header_and_no_post_moves_it_into_the_future(settings, kafka_topic, dlq_topic):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    producer = PostProducer(settings, "replay", topic=kafka_topic, dlq_topic=dlq_topic)
    sent_from = now_ms()
    ahead = producer.submit(json.loads(post_line(1, "future")) | {"created_at": sent_from + 5 * 60_000})
    producer.submit(json.loads(post_line(2, "future")))
    producer.close()
    # The producer clamps a post from a fast clock to its ingestion, and counts it.
    assert sent_from <= ahead.created_at <= now_ms() and ahead.extra["clamped_ms"] > 4 * 60_000
    assert producer.metrics.clamped.labels("replay")._value.get() == 1
    # The event time is in the `created_at` header, where the jobs' watermarks read it; the record's timestamp
    # is when it was sent (Kafka's retention counts from it: a replay of last month is not deleted at once).
    records = read_topic(settings, kafka_topic)
    assert [int(dict(r.headers)["created_at"]) for r in records] == [decode(r.value).created_at for r in records]
    assert all(sent_from <= r.timestamp <= now_ms() for r in records)
    # Whoever writes, the broker refuses a record stamped more than a minute ahead of its clock, and the jobs
    # cap a record's event time at its timestamp.
    raw = KafkaProducer(**settings.kafka.client_options("admin"), retries=0)
    try:
        with pytest.raises(KafkaError, match="InvalidTimestamp"):
            raw.send(kafka_topic, b"x", timestamp_ms=now_ms() + 10 * 60_000).get(timeout=30)
    finally:
        raw.close()


def test_a_record_kafka_keeps_refusing_stops_the_producer_before_its_cursor_passes_it(settings, dlq_topic, tmp_path):
    from kafka.admin import NewTopic

    from connectors.producer import ProduceError, SourceItem, run_source

    topic = f"test.small.{uuid.uuid4().hex[:12]}"
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "2000"})])
    try:
        producer = PostProducer(settings, "replay", topic=topic, dlq_topic=dlq_topic)
        producer.flush = lambda timeout_s=None, _flush=producer.flush: _flush(timeout_s, sleep=lambda s: None)
        big = {"text": secrets.token_hex(10_000)}  # incompressible: still over 2,000 bytes after lz4
        items = [SourceItem(json.loads(post_line(i, "big")) | (big if i == 3 else {}), cursor=i) for i in range(6)]
        store = CursorStore(tmp_path / "cursor.json")
        with pytest.raises(ProduceError, match="refused 1 records"):
            run_source(producer, items, cursor_store=store, checkpoint_every_s=0)
        producer._kafka.close()
        # Never past the refused record (3): the cursor stays where everything before it was acknowledged.
        assert store.load() == 2
    finally:
        admin.delete_topics([topic])
        admin.close()


def test_a_dead_letter_is_cut_to_fit_kafka():
    from connectors.producer import MAX_DLQ_RAW_BYTES, _raw_field

    field = _raw_field(b"\xff" + b"a" * 900_000)  # not UTF-8: base64, 1.2 MB
    assert field["raw_truncated"] and field["raw_bytes"] > 1_000_000 and len(field["raw"]) == MAX_DLQ_RAW_BYTES
    assert "raw_truncated" not in _raw_field("short and fine")
