"""`make demo` / `streampulse demo`: the trending job on the local stack, end to end, with a readable result.

The bundled sample (connectors/samples/sample.jsonl, with labelled bursts) is replayed through the
producer runtime into a fresh Kafka topic, the trending job runs over it on the embedded Flink
mini-cluster (bounded: it stops at the topic's end), and the trends per window are printed from
PostgreSQL beside Redis's current set.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

from kafka.admin import NewTopic

from connectors.producer import PostProducer
from runtime import clients
from shared.names import REDIS_CURRENT
from shared.settings import PROJECT_ROOT, Settings

SAMPLE = PROJECT_ROOT / "connectors" / "samples" / "sample.jsonl"


def run(settings: Settings, sample: Path = SAMPLE) -> int:
    from jobs import trending

    run_id = uuid.uuid4().hex[:8]
    topic, dlq = f"demo.posts.{run_id}", f"demo.dlq.{run_id}"
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(topic, 2, 1), NewTopic(dlq, 1, 1)])
    try:
        step = time.monotonic()
        producer = PostProducer(settings, "replay", topic=topic, dlq_topic=dlq)
        posts = [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]
        for post in posts:
            producer.submit(post)
        producer.close()
        print(f"[demo] {producer.summary.line()} → Kafka topic {topic} ({time.monotonic() - step:.1f}s)",
              file=sys.stderr)
        print("[demo] running the trending job on the embedded Flink mini-cluster (about half a minute)",
              file=sys.stderr)
        step = time.monotonic()
        trending.main(["--bounded", "--topic", topic, "--group-id", f"demo-{run_id}"])
        print(f"[demo] the trending job finished in {time.monotonic() - step:.1f}s", file=sys.stderr)
    finally:
        admin.delete_topics([topic, dlq])
        admin.close()

    first = min(p["created_at"] for p in posts)
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute(
            "SELECT window_end, trend_rank, keyword, posts, authors, baseline_mean, z, sentiment, mood_change "
            "FROM trends WHERE window_end > to_timestamp(%s / 1000.0) AT TIME ZONE 'UTC' "
            "ORDER BY window_end, trend_rank",
            (first,)).fetchall()
    print(f"\n{'window end (UTC)':<20}{'rank':>5}  {'keyword':<16}{'posts':>6}{'authors':>8}{'expected':>9}{'z':>7}"
          f"{'mood':>7}{'vs usual':>9}")
    for end, position, keyword, count, authors, mean, z, mood, change in rows:
        print(f"{end:%Y-%m-%d %H:%M}{position:>6}  {keyword:<16}{count:>6}{authors:>8}{mean:>9.1f}{z:>7.1f}"
              f"{_signed(mood):>7}{_signed(change):>9}")
    current = clients.redis(settings).zrevrange(REDIS_CURRENT, 0, -1, withscores=True)
    print(f"\nRedis {REDIS_CURRENT}: " + (", ".join(f"{k} (z {s:.1f})" for k, s in current) or "empty"))
    pg = settings.postgres
    print(f"\nLabelled bursts: {SAMPLE.with_name('sample.labels.json').relative_to(PROJECT_ROOT)}.\n"
          f"Next: psql 'host={pg.host} port={pg.port} dbname={pg.database} user={pg.reader_user}' "
          f"(password in {settings.credentials_file}) — tables keyword_window_counts, trends, window_posts;\n"
          f"alerts on Kafka topic trends.alerts (read_committed); `streampulse produce synthetic --help` for more "
          f"data; `streampulse stack status`.", file=sys.stderr)
    return 0


def _signed(value: float | None) -> str:
    """A sentiment or its change (VADER compound, -1..1); '–' where no English post was scored."""
    return "–" if value is None else f"{value:+.2f}"
