"""The social.posts contract: what the Python producer writes, Flink's Kafka connector and `avro`
format read back field for field (DESIGN.md §4)."""

from __future__ import annotations

import json
import subprocess
import sys

from connectors.producer import PostProducer
from shared.post import MAX_TEXT_CHARS, parse_post
from shared.settings import PROJECT_ROOT

BASE_MS = 1_790_000_000_123  # 2026-09-21, with non-zero milliseconds to catch precision loss


def contract_posts() -> list[dict]:
    """Posts that exercise every field: scripts, emoji, empty and full lists, nulls, a maximal text."""
    texts = ["plain ascii", "emoji 🎉🔥👩‍👩‍👧 done", "مرحبا بالعالم", "שלום עולם", "東京で桜が咲いた #桜",
             "Grüße aus Köln, straße", "", "x" * MAX_TEXT_CHARS, "line\nbreaks\ttabs \"quotes\" \\ backslash"]
    posts = []
    for i, text in enumerate(texts):
        posts.append({
            "uid": f"at://did:plc:contract{i}/app.bsky.feed.post/3k{i}",
            "source": ["bluesky", "reddit", "mastodon"][i % 3],
            "author_id": f"did:plc:author{i}", "text": text, "langs": [["en"], [], ["ar", "en"]][i % 3],
            "created_at": BASE_MS + i * 61_001, "ingested_at": BASE_MS + i * 61_001 + 250,
            "hashtags": ["桜", "Köln"][: i % 3], "mentions": ["did:plc:m1"] if i % 2 else [],
            "links": ["https://example.org/a?b=c&d=é"] if i % 4 == 0 else [],
            "reply_parent": f"at://did:plc:x/app.bsky.feed.post/p{i}" if i % 2 else None,
            "reply_root": f"at://did:plc:x/app.bsky.feed.post/r{i}" if i % 2 else None,
            "community": ["", "r/python", "mastodon.social"][i % 3],
        })
    return posts


def test_flink_reads_back_every_field_the_producer_wrote(settings, kafka_topic):
    expected = {}
    # Flink's own `avro` format reads the schemaless encoding only (the jobs read both: shared/post.py)
    producer = PostProducer(settings, "contract-test", topic=kafka_topic, encoding="legacy")
    for raw in contract_posts():
        post = producer.submit(raw)
        assert post is not None, raw["uid"]
        expected[post.uid] = post.to_record()
    producer.close()
    assert producer.summary.sent == len(expected) and not producer.summary.rejected

    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "tests/integration/flink_scripts/read_posts.py"),
                             kafka_topic], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    read_back = {}
    for row in rows:
        assert row.pop("kafka_offset") >= 0 and row.pop("kafka_partition") in (0, 1)
        read_back[row["uid"]] = row
    assert len(rows) == len(expected)
    for uid, record in expected.items():
        assert read_back[uid] == record, uid
    # A record read back is itself a valid post: the contract closes the loop.
    assert parse_post(read_back[next(iter(expected))], now=BASE_MS).uid in expected
