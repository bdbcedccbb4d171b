"""The volume job on synthetic data with a scheduled spike of one source and an outage of another: both
are anomalies with the right direction and windows, the steady source gives none, and the window counts
equal a plain-Python recount."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from kafka.admin import NewTopic

from connectors import synthetic
from connectors.producer import PostProducer
from runtime import clients
from shared.settings import PROJECT_ROOT
from tests.integration.conftest import read_topic
from tests.integration.sinks import volume_anomalies
from tests.oracle import expected_anomalies

START = 1_793_534_400_000  # 2026-11-01T12:00:00Z
MINUTES = 45
OUTAGE = range(20, 25)  # reddit silent
SPIKE = range(30, 33)  # mastodon ×4


def minute_start(minute: int) -> datetime:
    return datetime.fromtimestamp(START / 1000, UTC).replace(tzinfo=None) + timedelta(minutes=minute)


def recount(posts: list[dict]) -> dict:
    """Posts per (dimension, series, window start), independently of the job's SQL."""
    counts = Counter()
    for post in posts:
        window = minute_start((post["created_at"] - START) // 60_000)
        lang = post["langs"][0] if post["langs"] else "und"
        counts["source", post["source"], window] += 1
        counts["lang", f"{post['source']}/{lang}", window] += 1
        if post["community"]:
            counts["community", f"{post['source']}/{post['community']}", window] += 1
    return dict(counts)


def test_a_spike_and_an_outage_are_anomalies_and_steady_series_are_not(settings, kafka_topic, dlq_topic):
    config = synthetic.SyntheticConfig(
        seed=31, start_ms=START, duration_s=MINUTES * 60, rate=8.0,
        sources={"bluesky": 5, "reddit": 3, "mastodon": 2}, malformed=0.001,
        volume_events=[synthetic.VolumeEvent("source:reddit", OUTAGE.start * 60, len(OUTAGE) * 60, 0),
                       synthetic.VolumeEvent("source:mastodon", SPIKE.start * 60, len(SPIKE) * 60, 4)])
    events = list(synthetic.generate(config))
    posts = [event.payload for event in events if not event.expected_reject]
    producer = PostProducer(settings, "synthetic", topic=kafka_topic, dlq_topic=dlq_topic)
    for event in events:
        producer.submit(event.payload)
    producer.close()
    assert producer.summary.sent == len(posts) and producer.summary.rejected_total > 0
    anomalies_topic = f"test.anomalies.{uuid.uuid4().hex[:12]}"
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(anomalies_topic, 1, 1)])

    end = minute_start(MINUTES)
    with clients.postgres(settings, "writer") as conn:
        for table in ("volume_windows", "volume_anomalies"):
            conn.execute(f"DELETE FROM {table} WHERE window_start >= %s AND window_start < %s",
                         (minute_start(0), end))
        conn.execute("DELETE FROM volume_outages WHERE outage_start >= %s AND outage_start < %s",
                     (minute_start(0), end))
        conn.execute("DELETE FROM rejected_posts WHERE source = 'synthetic'")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "stack.cli", "run", "volume", "--", "--bounded", "--topic", kafka_topic,
             "--anomalies-topic", anomalies_topic, "--dlq-topic", dlq_topic, "--group-id", f"test-{kafka_topic}"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"volume job failed:\n{result.stderr[-4000:]}"
        published = [json.loads(record.value) for record in read_topic(settings, anomalies_topic)]
    finally:
        admin.delete_topics([anomalies_topic])
        admin.close()

    with clients.postgres(settings, "reader") as conn:
        windows = conn.execute("SELECT dimension, series, window_start, posts FROM volume_windows "
                               "WHERE window_start >= %s AND window_start < %s", (minute_start(0), end)).fetchall()
        anomalies = conn.execute(
            "SELECT dimension, series, window_start, posts, direction, severity FROM volume_anomalies "
            "WHERE window_start >= %s AND window_start < %s", (minute_start(0), end)).fetchall()
    assert {(d, s, w): n for d, s, w, n in windows} == recount(posts)

    def minute(window: datetime) -> int:
        return int((window - minute_start(0)).total_seconds() // 60)

    # The sources: reddit's outage is a critical outage window in each silent minute (no rows arrive for it:
    # the job's timer scores those minutes), mastodon's spike a spike in each of its minutes, bluesky nothing.
    by_source = {(s, minute(w), direction) for d, s, w, _, direction, _ in anomalies if d == "source"}
    assert by_source == {("reddit", m, "outage") for m in OUTAGE} | {("mastodon", m, "spike") for m in SPIKE}
    assert all(n == 0 and severity == "critical" for d, s, _, n, _, severity in anomalies
               if (d, s) == ("source", "reddit"))
    # Languages and communities of those sources may follow them, in the same minutes and direction only.
    for dimension, series, window, _, direction, _ in anomalies:
        family = series.split("/")[0]
        allowed = {"reddit": ("outage", OUTAGE), "mastodon": ("spike", SPIKE)}.get(family)
        assert allowed and direction == allowed[0] and minute(window) in allowed[1], \
            f"unexpected anomaly: {dimension} {series} minute {minute(window)} {direction}"

    # reddit's outage is one episode: from its first silent minute to its last, ended by the recovery.
    with clients.postgres(settings, "reader") as conn:
        outages = conn.execute("SELECT outage_start, last_window_end, observed_posts, severity, ongoing "
                               "FROM volume_outages WHERE dimension = 'source' AND series = 'reddit' "
                               "AND outage_start >= %s AND outage_start < %s", (minute_start(0), end)).fetchall()
    assert outages == [(minute_start(OUTAGE.start), minute_start(OUTAGE.stop), 0, "critical", False)]

    # Every anomaly of the minutes closed before the end of input, z included, is the batch oracle's.
    closed_end = max(p["created_at"] for p in posts) - settings.volume.watermark_s * 1000
    assert volume_anomalies(settings, START, closed_end) == expected_anomalies(posts, settings.volume, closed_end)

    # The producer's rejects, counted per minute and reason from the dead-letter topic.
    with clients.postgres(settings, "reader") as conn:
        rejected = conn.execute("SELECT reason, sum(posts) FROM rejected_posts WHERE source = 'synthetic' "
                                "GROUP BY reason").fetchall()
    assert dict(rejected) == dict(producer.summary.rejected)

    # The anomalies topic (read_committed) carries the same anomalies, once each.
    assert sorted((a["dimension"], a["series"], a["window_start"]) for a in published) == sorted(
        (d, s, w.strftime("%Y-%m-%d %H:%M:%S")) for d, s, w, *_ in anomalies)
