"""social.posts on the real schema registry (Apicurio Registry, Confluent-compatible API): a v1 producer, a v2
producer and a legacy (schemaless) producer write one topic together — the migration — and the trending and
volume jobs, whose reader schema is v1, read all three into sinks equal to the oracle's; a producer whose schema
breaks the subject's BACKWARD rule fails at its start with the registry's reason; the rule is on the subject."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from connectors.producer import PostProducer, SchemaRejected
from runtime import clients
from runtime import schema_registry as registry_client
from shared import confluent_wire as wire
from shared.post import SCHEMA_PATH, decode_post, schema_json, use_registry
from shared.settings import PROJECT_ROOT
from tests.integration.conftest import fresh_topic, read_topic
from tests.integration.sinks import (
    assert_trending_sinks_equal_oracle,
    clear_windows,
    remove_lake,
    volume_anomalies,
    volume_windows,
)
from tests.oracle import expected_anomalies, volume_counts

SAMPLE = PROJECT_ROOT / "connectors" / "samples" / "sample.jsonl"
SHIFT_MS = 3 * 86_400_000  # the bundled sample, three days earlier: a span no other test writes
BLOCK = 25  # posts a producer writes before the next one takes over


@pytest.fixture
def topics(settings):
    """The posts topic (two partitions), and single-partition dead-letter, alerts and anomalies topics."""
    made = [fresh_topic(settings, "test", 2), *(fresh_topic(settings, f"test.{kind}", 1)
                                                for kind in ("dlq", "alerts", "anomalies"))]
    yield dict(zip(("posts", "dlq", "alerts", "anomalies"), (next(t) for t in made), strict=True))
    for topic in made:
        next(topic, None)


def registry(settings) -> registry_client.SchemaRegistry:
    return registry_client.SchemaRegistry(settings.registry.base_url, settings.registry.timeout_s)


def run_job(settings, job: str, *options: str) -> None:
    result = subprocess.run([sys.executable, "-m", "stack.cli", "run", job, "--", "--bounded", *options],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{job} job failed:\n{result.stderr[-4000:]}"


def test_v1_v2_and_legacy_producers_write_together_and_both_jobs_equal_the_oracle(settings, topics):
    posts = []
    for line in SAMPLE.read_text().splitlines():
        post = json.loads(line)
        post["created_at"] -= SHIFT_MS
        post["ingested_at"] -= SHIFT_MS
        posts.append(post)
    first_ms, last_ms = min(p["created_at"] for p in posts), max(p["created_at"] for p in posts)
    clear_windows(settings, first_ms, last_ms)
    common = {"topic": topics["posts"], "dlq_topic": topics["dlq"]}
    producers = [PostProducer(settings, "replay", encoding="confluent", schema_version=1, **common),
                 PostProducer(settings, "replay", encoding="confluent", schema_version=2, **common),
                 PostProducer(settings, "replay", encoding="legacy", **common)]
    v1_id, v2_id = producers[0].schema_id, producers[1].schema_id
    assert v1_id != v2_id and producers[2].schema_id is None
    with registry(settings) as client:
        assert client.schema(v1_id) == schema_json(1) and client.schema(v2_id) == schema_json(2)
    # The three take turns in blocks of BLOCK posts, in the sample's order, each block flushed before the next
    # producer's: one topic of mixed encodings whose partitions keep the sample's event-time order (three
    # producers batching at once would interleave their batches in a partition, minutes apart in event time).
    for block, start in enumerate(range(0, len(posts), BLOCK)):
        producer = producers[block % 3]
        for post in posts[start:start + BLOCK]:
            producer.submit(post)
        producer.flush()
    for index, producer in enumerate(producers):
        producer.close()
        assert producer.summary.sent == sum(len(posts[s:s + BLOCK]) for s in range(index * BLOCK, len(posts),
                                                                                  3 * BLOCK))
        assert not producer.summary.rejected and not producer.summary.errors

    # The topic holds the three encodings, and every record decodes back (the writer schema asked by id).
    records = read_topic(settings, topics["posts"])
    kinds = {"legacy" if not wire.is_framed(r.value) else wire.schema_id_of(r.value) for r in records}
    assert kinds == {"legacy", v1_id, v2_id} and len(records) == len(posts)
    use_registry(registry(settings).schema)
    decoded = {decode_post(r.value, key=r.key).uid: decode_post(r.value, key=r.key) for r in records}
    assert {p.schema_version for p in decoded.values()} == {1, 2} and set(decoded) == {p["uid"] for p in posts}

    lake = f"test-registry-{uuid.uuid4().hex[:12]}"
    try:
        run_job(settings, "trending", "--topic", topics["posts"], "--alerts-topic", topics["alerts"], "--group-id",
                f"test-{topics['posts']}-trending", "--counts-path",
                f"s3://{settings.minio.bucket}/{lake}/keyword_counts")
        run_job(settings, "volume", "--topic", topics["posts"], "--anomalies-topic", topics["anomalies"],
                "--dlq-topic", topics["dlq"], "--group-id", f"test-{topics['posts']}-volume")
        # A bounded run closes every window by the end of its input (the watermark goes to the end).
        trending_end = last_ms + settings.trending.hop_size_s * 1000
        oracle = assert_trending_sinks_equal_oracle(settings, posts, topics["alerts"], trending_end,
                                                    f"{lake}/keyword_counts")
        assert oracle
    finally:
        remove_lake(settings, lake)
    # The volume job's windows (every one: its bounded run ends by closing them all) and its anomalies of the
    # minutes closed before the end of input, as tests/integration/test_volume_job.py checks them.
    tumble_ms = settings.volume.tumble_s * 1000
    all_end = (last_ms // tumble_ms + 1) * tumble_ms
    assert volume_windows(settings, first_ms, all_end) == volume_counts(posts, tumble_ms)
    closed_end = last_ms - settings.volume.watermark_s * 1000
    assert volume_anomalies(settings, first_ms, closed_end) == expected_anomalies(posts, settings.volume, closed_end)
    with clients.postgres(settings, "reader") as conn:  # nothing was quarantined: all three forms are posts
        quarantined = conn.execute("SELECT count(*) FROM quarantined_records WHERE topic = %s",
                                   (topics["posts"],)).fetchone()[0]
    assert quarantined == 0


def test_a_producer_whose_schema_breaks_backward_compatibility_fails_at_start_with_the_registrys_reason(
        settings, topics):
    # A required field without a default: a reader of this schema cannot read the records already written.
    incompatible = schema_json(2)
    incompatible["fields"].append({"name": f"required_{uuid.uuid4().hex[:8]}", "type": "int"})
    with registry(settings) as client:
        versions = client.versions(settings.registry.subject)
    try:
        refused_with_reasons(settings, topics, incompatible)
    finally:
        with registry(settings) as client:  # nothing was registered (and nothing is left behind if it was)
            added = [v for v in client.versions(settings.registry.subject) if v not in versions]
            for version in added:
                client.delete_version(settings.registry.subject, version)
    assert added == []


def refused_with_reasons(settings, topics, incompatible: dict) -> None:
    with pytest.raises(SchemaRejected) as info:
        PostProducer(settings, "replay", topic=topics["posts"], dlq_topic=topics["dlq"], encoding="confluent",
                     writer_schema=incompatible)
    message = str(info.value)
    assert settings.registry.subject in message and "HTTP 409" in message
    assert "Incompatible" in message and incompatible["fields"][-1]["name"] in message, message
    # A changed field type (a string that becomes an int: no Avro promotion reads one as the other) too.
    retyped = schema_json(1)
    retyped["fields"] = [{**f, "type": "int"} if f["name"] == "text" else f for f in retyped["fields"]]
    with pytest.raises(SchemaRejected, match="Incompatible"):
        PostProducer(settings, "replay", topic=topics["posts"], dlq_topic=topics["dlq"], writer_schema=retyped)


def test_the_posts_subject_is_backward_compatible_and_holds_version_1(settings):
    with registry(settings) as client:
        assert client.compatibility(settings.registry.subject) == "BACKWARD" == settings.registry.compatibility
        assert client.register(settings.registry.subject, json.loads(SCHEMA_PATH.read_text())) >= 1
        assert client.versions(settings.registry.subject)


def test_a_producer_fails_at_start_when_the_registry_is_down(settings, topics):
    from runtime.clients import ServiceUnavailable

    down = settings.model_copy(update={"registry": settings.registry.model_copy(
        update={"url": "http://127.0.0.1:9", "timeout_s": 2})})
    with pytest.raises(ServiceUnavailable) as info:
        PostProducer(down, "replay", topic=topics["posts"], dlq_topic=topics["dlq"])
    assert "http://127.0.0.1:9" in str(info.value) and "streampulse stack up" in str(info.value)
