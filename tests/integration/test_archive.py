"""The archive job: after a bounded run, the Parquet files in MinIO hold exactly the valid posts, each once
although some were sent twice."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime

from connectors import synthetic
from connectors.producer import PostProducer
from runtime import clients
from shared.settings import PROJECT_ROOT
from tests.integration.sinks import read_lake, remove_lake

START = 1_793_534_400_000  # 2026-11-01T12:00:00Z


def test_the_lake_holds_exactly_the_valid_posts_partitioned_by_source_date_and_hour(settings, kafka_topic,
                                                                                     dlq_topic):
    # 2 hours and a bit of event time over three sources, 2% malformed (rejected before Kafka), 3% re-sent.
    config = synthetic.SyntheticConfig(seed=23, start_ms=START - 20 * 60_000, duration_s=7500, rate=0.8,
                                       sources={"bluesky": 5, "reddit": 3, "mastodon": 2}, malformed=0.02,
                                       duplicate=0.03)
    producer = PostProducer(settings, "replay", topic=kafka_topic, dlq_topic=dlq_topic)
    for event in synthetic.generate(config):
        producer.submit(event.payload)
    producer.close()
    valid = {e.uid: e.payload for e in synthetic.generate(config) if not e.expected_reject}
    copies = sum(1 for e in synthetic.generate(config) if e.is_duplicate)
    assert copies > 0 and producer.summary.sent == len(valid) + copies and producer.summary.rejected_total > 0

    prefix = f"test-archive-{uuid.uuid4().hex[:12]}"
    path = f"s3://{settings.minio.bucket}/{prefix}"
    result = subprocess.run(
        [sys.executable, "-m", "stack.cli", "run", "archive", "--", "--bounded", "--topic", kafka_topic,
         "--group-id", f"test-{kafka_topic}", "--path", path], cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=900)
    assert result.returncode == 0, f"archive job failed:\n{result.stderr[-4000:]}"

    try:
        archived, objects = read_lake(settings, prefix)
        # Files commit on checkpoints: nothing in progress, no multipart upload left open.
        assert not [name for name in objects if "inprogress" in name or name.rsplit("/", 1)[-1].startswith(".")]
        minio = clients.minio(settings)
        assert not list(minio._list_multipart_uploads(settings.minio.bucket, prefix=prefix).uploads)
        parts = [name for name in objects if not name.endswith("_SUCCESS")]
        assert parts, objects
        assert len(archived) == len(valid) and set(archived) == set(valid)

        for uid, post in valid.items():
            row = archived[uid]
            created = datetime.fromtimestamp(post["created_at"] / 1000, UTC)
            assert (row["source"], row["dt"], row["hour"]) == (post["source"], f"{created:%Y-%m-%d}",
                                                               f"{created:%H}")
            assert row["created_at"].replace(tzinfo=UTC) == created
            assert (row["text"], row["langs"], row["hashtags"], row["community"]) == (
                post["text"], post["langs"], post["hashtags"], post["community"])
        # Each (source, date, hour) partition is marked done once the final watermark passed it.
        partitions = {name.rsplit("/", 1)[0] for name in parts}
        assert {name.rsplit("/", 1)[0] for name in objects if name.endswith("_SUCCESS")} == partitions
        assert len({p.split("/")[1] for p in partitions}) == 3  # three sources
        assert {p.split("/", 2)[2] for p in partitions} == {f"dt=2026-11-01/hour={h}" for h in (11, 12, 13)}
    finally:
        remove_lake(settings, prefix)
