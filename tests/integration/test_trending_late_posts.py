"""Posts later than the watermark are counted per minute in `late_posts`, not silently dropped."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from connectors.producer import PostProducer
from runtime import clients
from shared.settings import PROJECT_ROOT

T0 = 1_794_214_800_000  # 2026-11-09T09:00:00Z, an hour no other test writes


def post(n: int, created_at: int, text: str) -> dict:
    return {"uid": f"late-test:{n}", "source": "synthetic", "author_id": f"author-{n % 7}", "text": text,
            "langs": ["en"], "created_at": created_at, "ingested_at": created_at, "hashtags": [], "mentions": [],
            "links": [], "reply_parent": None, "reply_root": None, "community": "late-test", "schema_version": 1}


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).replace(tzinfo=None)


def test_posts_behind_the_watermark_land_in_late_posts(settings, kafka_topic, dlq_topic):
    watermark_ms = settings.trending.watermark_s * 1000
    on_time = [post(i, T0 + i * 5_000, "sunrise over the harbour") for i in range(10)]  # minute 0
    ahead = [post(100 + i, T0 + 300_000 + i * 1_000, "ferry schedule changed") for i in range(10)]  # minute 5
    # After `ahead` the watermark is 5:09 − 30 s: minute 0's window has closed, minute 4's has not.
    late = [post(200 + i, T0 + 20_000 + i * 1_000, "sunrise over the harbour") for i in range(3)]
    out_of_order = [post(300 + i, T0 + 300_000 - watermark_ms // 2 + i, "ferry schedule changed") for i in range(2)]
    tail = [post(400, T0 + 600_000, "evening tide")]  # moves the watermark past every window above
    posts = on_time + ahead + late + out_of_order + tail

    with clients.postgres(settings, "writer") as conn:
        conn.execute("DELETE FROM late_posts WHERE window_start >= %s AND window_start < %s",
                     (utc(T0), utc(T0 + 3_600_000)))
        conn.execute("DELETE FROM keyword_window_counts WHERE window_start >= %s AND window_start < %s",
                     (utc(T0 - 300_000), utc(T0 + 3_600_000)))
    topic = dlq_topic  # one partition: the order above is the order the job reads
    producer = PostProducer(settings, "replay", topic=topic, dlq_topic=kafka_topic)
    for p in posts:
        producer.submit(p)
    producer.close()
    assert producer.summary.sent == len(posts)

    result = subprocess.run([sys.executable, "-m", "stack.cli", "run", "trending", "--", "--bounded", "--topic",
                             topic, "--alerts-topic", kafka_topic, "--group-id", f"test-{topic}"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    with clients.postgres(settings, "reader") as conn:
        late_rows = conn.execute("SELECT window_start, source, posts FROM late_posts "
                                 "WHERE window_start >= %s AND window_start < %s ORDER BY 1",
                                 (utc(T0), utc(T0 + 3_600_000))).fetchall()
        tumble = dict(conn.execute(
            "SELECT window_start, posts FROM keyword_window_counts WHERE window_kind = 'tumble' AND source = '*' "
            "AND keyword = %s AND window_start >= %s AND window_start < %s", ("sunrise", utc(T0), utc(T0 + 3_600_000))
        ).fetchall())
        ferry = dict(conn.execute(
            "SELECT window_start, posts FROM keyword_window_counts WHERE window_kind = 'tumble' AND source = '*' "
            "AND keyword = %s AND window_start >= %s AND window_start < %s", ("ferry", utc(T0), utc(T0 + 3_600_000))
        ).fetchall())
    # The three late posts are counted where they belong, and the closed window kept its on-time count.
    assert late_rows == [(utc(T0), "synthetic", 3)]
    assert tumble == {utc(T0): 10}
    # Out of order within the watermark is not late: minute 4 still counts its two posts.
    assert ferry == {utc(T0 + 240_000): 2, utc(T0 + 300_000): 10}
