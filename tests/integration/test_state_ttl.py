"""The trending job's keyword baselines expire (issue 17): a keyword absent from every window for longer than
trending.state_ttl_s of event time loses its baseline (the job drops it from its state), and when it returns it is
scored with the cold-start rule for a keyword new after the warm-up; a keyword that never went quiet keeps its
baseline and does not trend. The job's trends equal the oracle's with the same TTL; without the TTL the returning
keyword would not trend at all."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid

from connectors.producer import PostProducer
from runtime import clients
from shared.settings import PROJECT_ROOT
from tests.integration.sinks import as_ms, as_utc
from tests.oracle import expected_trends

TTL_S = 600  # ten 1-minute windows
MINUTE_MS = 60_000


def post(uid: str, author: int, created_ms: int, text: str) -> dict:
    return {"uid": uid, "source": "synthetic", "author_id": f"ttl-author-{author}", "text": text, "langs": ["en"],
            "created_at": created_ms, "ingested_at": created_ms, "hashtags": [], "mentions": [], "links": [],
            "reply_parent": None, "reply_root": None, "community": None, "schema_version": 1}


def minute_posts(rng: random.Random, base_ms: int, minute: int, words: list[str]) -> list[dict]:
    """One minute: 40 posts of filler words by many authors, and 4 posts of each of `words` by authors of a pool
    of ten."""
    start = base_ms + minute * MINUTE_MS
    filler = [f"filler{n}" for n in range(30)]
    posts = [post(f"ttl:{minute}:f{i}", 100 + rng.randrange(400), start + rng.randrange(MINUTE_MS),
                  " ".join(rng.sample(filler, 3))) for i in range(40)]
    for word in words:
        posts += [post(f"ttl:{minute}:{word}:{i}", rng.randrange(10), start + rng.randrange(MINUTE_MS), word)
                  for i in range(4)]
    return sorted(posts, key=lambda p: p["created_at"])


def test_a_keyword_absent_past_its_ttl_returns_with_the_cold_start_rule(settings, kafka_topic, dlq_topic):
    rng = random.Random(17)
    suffix = uuid.uuid4().hex[:8]
    target, steady = f"returning{suffix}", f"steady{suffix}"
    # An hour of 2010 no other test writes (posts before 2005 are refused): the rows it reads and removes are its own.
    base_ms = 1_262_304_000_000 + rng.randrange(300 * 24 * 60) * MINUTE_MS
    # The target is in minutes 0..19, absent 20..39 (its last window ends at minute 24, 17 windows before it is
    # back), and back from minute 40; the steady keyword is in every minute.
    posts = [p for m in range(50) for p in minute_posts(rng, base_ms, m, [steady, target] if m < 20 or m >= 40
                                                         else [steady])]
    last_end_ms = base_ms + 50 * MINUTE_MS
    with_ttl = settings.trending.model_copy(update={"state_ttl_s": TTL_S})
    expected = [t for t in expected_trends(posts, with_ttl, last_end_ms) if t[1] in (target, steady)]
    assert {keyword for _, keyword, *_ in expected} == {target}
    # Without the TTL (the default of a day), its old baseline, decayed, still expects several posts a window.
    assert not [t for t in expected_trends(posts, settings.trending, last_end_ms) if t[1] in (target, steady)]

    producer = PostProducer(settings, "replay", topic=kafka_topic, dlq_topic=dlq_topic)
    for p in posts:
        producer.submit(p)
    producer.close()
    assert producer.summary.sent == len(posts)
    result = subprocess.run(
        [sys.executable, "-m", "stack.cli", "run", "trending", "--", "--bounded", "--topic", kafka_topic,
         "--alerts-topic", dlq_topic, "--group-id", f"{kafka_topic}-ttl", "--counts-path",
         (settings.stack.state_path / "lake" / f"ttl-{suffix}").as_uri()],
        cwd=PROJECT_ROOT, env={**os.environ, "STREAMPULSE_TRENDING__STATE_TTL_S": str(TTL_S)}, capture_output=True,
        text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    try:
        with clients.postgres(settings, "reader") as conn:
            rows = conn.execute("SELECT window_end, keyword, trend_rank, posts, authors, z, sample_uids, evidence, "
                                "evidence_posts, baseline_mean FROM trends WHERE keyword IN (%s, %s)",
                                (target, steady)).fetchall()
    finally:
        with clients.postgres(settings, "writer") as conn:
            for table in ("keyword_window_counts", "window_posts", "trends"):
                conn.execute(f"DELETE FROM {table} WHERE window_start >= %s AND window_start < %s",
                             (as_utc(base_ms - 10 * MINUTE_MS), as_utc(last_end_ms + 10 * MINUTE_MS)))
    got = sorted((as_ms(end), keyword, rank, n, a, round(z, 6), samples, evidence, evidence_posts)
                 for end, keyword, rank, n, a, z, samples, evidence, evidence_posts, _ in rows)
    assert got == sorted(expected)
    # It trends on its return, against the cold-start expectation (well under a post a window).
    first = min(rows)
    assert base_ms + 41 * MINUTE_MS <= as_ms(first[0]) <= base_ms + 46 * MINUTE_MS and first[-1] < 1.0, rows
