"""Every producer stops while the volume job runs live: with no input the watermark stands still and no
event-time timer fires, yet the job reports an outage of every series while it lasts (its processing-time
heartbeat, jobs/volume.py), ends each outage when posts come back, and raises no spike at the recovery.

Windows of 5 seconds (settings overridden through the environment) keep the test to a few minutes of wall time:
the silence lasts as many windows as a 5-minute outage lasts minutes, the job's rule works in windows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

from kafka.admin import NewTopic

from connectors import synthetic
from connectors.producer import PostProducer
from runtime import clients
from shared.settings import PROJECT_ROOT
from stack.processes import wait_until

TUMBLE_S = 5
SILENT_WINDOWS = 5
JOB_ENV = {"STREAMPULSE_VOLUME__TUMBLE_S": str(TUMBLE_S), "STREAMPULSE_VOLUME__WATERMARK_S": "1",
           "STREAMPULSE_VOLUME__SILENCE_AFTER_S": "3", "STREAMPULSE_FLINK__CHECKPOINT_INTERVAL_S": "2"}


class LiveFeed:
    """Posts sent as their creation time comes, 20 a second (one seeded schedule: one source, two languages,
    three communities), until stopped; what was due while stopped is never sent (the producers were down)."""

    def __init__(self, settings, topic: str, dlq_topic: str, start_ms: int):
        config = synthetic.SyntheticConfig(
            seed=41, start_ms=start_ms, duration_s=1200, rate=20.0, sources={"bluesky": 1.0},
            languages={"en": 0.6, "de": 0.4}, malformed=0, duplicate=0, out_of_order=0, late=0)
        self.schedule = sorted((event.payload for event in synthetic.generate(config)), key=lambda p: p["created_at"])
        self.position = 0
        self.producer = PostProducer(settings, "synthetic", topic=topic, dlq_topic=dlq_topic)
        self.stop_event, self.thread = threading.Event(), None
        self.sent_until = start_ms
        self.sent: list[int] = []  # creation times of the posts sent

    def send_until(self, until_ms: int, *, skip: bool = False) -> None:
        """Send (or skip) every post created before until_ms."""
        while self.position < len(self.schedule) and self.schedule[self.position]["created_at"] < until_ms:
            if not skip:
                self.producer.submit(self.schedule[self.position])
                self.sent.append(self.schedule[self.position]["created_at"])
            self.position += 1
        self.producer.flush()
        self.sent_until = until_ms

    def start(self) -> None:
        self.send_until(int(time.time() * 1000), skip=True)
        self.stop_event.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self) -> int:
        """Stop sending; returns the creation time up to which posts were sent."""
        self.stop_event.set()
        self.thread.join(timeout=30)
        return self.sent_until

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self.send_until(int(time.time() * 1000))
            self.stop_event.wait(0.2)


def series_seen(settings, since: datetime) -> set[tuple[str, str]]:
    with clients.postgres(settings, "reader") as conn:
        return set(conn.execute("SELECT DISTINCT dimension, series FROM volume_windows WHERE window_start >= %s "
                                "AND series LIKE 'bluesky%%'", (since,)).fetchall())


def outages(settings, since: datetime) -> dict[tuple[str, str], tuple]:
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT dimension, series, outage_start, last_window_end, ongoing FROM volume_outages "
                            "WHERE outage_start >= %s AND series LIKE 'bluesky%%'", (since,)).fetchall()
    return {(d, s): (start, end, ongoing) for d, s, start, end, ongoing in rows}


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def test_all_producers_stop_and_every_series_reports_an_outage_while_it_lasts(settings, kafka_topic, dlq_topic,
                                                                             tmp_path):
    window_ms = TUMBLE_S * 1000
    now = int(time.time() * 1000)
    history_start = (now - 120_000) // window_ms * window_ms
    with clients.postgres(settings, "writer") as conn:
        for table, column in (("volume_windows", "window_start"), ("volume_anomalies", "window_start"),
                              ("volume_outages", "outage_start")):
            conn.execute(f"DELETE FROM {table} WHERE {column} >= %s AND series LIKE 'bluesky%%'",
                         (utc(history_start),))
    feed = LiveFeed(settings, kafka_topic, dlq_topic, history_start)
    feed.send_until(now)  # two minutes of history at once: the baselines are warm when the job starts
    feed.start()
    anomalies_topic = f"test.anomalies.{uuid.uuid4().hex[:12]}"
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(anomalies_topic, 1, 1)])
    job_log = (tmp_path / "volume-job.log").open("w")  # a file, not a pipe nobody reads: a full pipe blocks the job
    job = subprocess.Popen(
        [sys.executable, "-m", "stack.cli", "run", "volume", "--", "--topic", kafka_topic, "--anomalies-topic",
         anomalies_topic, "--dlq-topic", dlq_topic, "--group-id", f"test-{kafka_topic}"],
        cwd=PROJECT_ROOT, env={**os.environ, **JOB_ENV}, stdout=subprocess.DEVNULL, stderr=job_log,
        start_new_session=True)
    try:
        # Live: the job's windows reach the wall clock.
        def running() -> bool:
            if job.poll() is not None:
                raise AssertionError(f"the volume job exited ({job.returncode}): "
                                     f"{(tmp_path / 'volume-job.log').read_text()[-3000:]}")
            return True

        wait_until(lambda: running() and len(series_seen(settings, utc(int(time.time() * 1000) - 15_000))) >= 5,
                   300, what="the volume job counting live windows of every series")
        series = series_seen(settings, utc(history_start))
        stopped_ms = feed.stop()
        # The outage starts with the silence, or up to two windows before it: the windows the watermark had not
        # closed when the posts stopped are still held upstream, and are scored when the clock passes them.
        since = utc(stopped_ms // window_ms * window_ms - 2 * window_ms)

        # Nothing arrives any more, yet every series reports an outage, starting at the silence, while it lasts.
        wait_until(lambda: series <= {k for k, (_, _, ongoing) in outages(settings, since).items() if ongoing}, 120,
                   what=f"an ongoing outage for every series of {sorted(series)} since {since} (silent from "
                        f"{utc(stopped_ms)}; the job said: {(tmp_path / 'volume-job.log').read_text()[-2000:]})")
        reported = outages(settings, since)
        assert all(as_ms(since) <= as_ms(start) <= stopped_ms + window_ms for start, _, _ in reported.values()), \
            reported
        assert running()
        # The silence goes on: the outages stay open and their ends move with the clock.
        first_ends = {k: end for k, (_, end, _) in reported.items()}
        wait_until(lambda: all(outages(settings, since)[k][1] > first_ends[k]
                               for k in series), 60, what="the outages' ends following the silence")

        # Posts again: each outage ends, and the recovery is no spike.
        feed.start()
        resumed_ms = int(time.time() * 1000)
        wait_until(lambda: all(not outages(settings, since)[k][2] for k in series), 120,
                   what="every outage ended by the returning posts")
        wait_until(lambda: len(series_seen(settings, utc(resumed_ms + 3 * window_ms))) >= len(series), 120,
                   what="three windows after the recovery counted")
        # Nothing lost: every window up to the recovery holds every post sent in it, the held ones included
        # (counted again when the returning posts moved the watermark past them).
        last_window = resumed_ms // window_ms * window_ms + 2 * window_ms
        sent = Counter(at // window_ms * window_ms for at in feed.sent if at < last_window)

        def counted() -> dict[int, int]:
            with clients.postgres(settings, "reader") as conn:
                rows = conn.execute("SELECT window_start, posts FROM volume_windows WHERE dimension = 'source' AND "
                                    "series = 'bluesky' AND window_start >= %s AND window_start < %s",
                                    (utc(history_start), utc(last_window))).fetchall()
            return {as_ms(start): n for start, n in rows}

        wait_until(lambda: counted() == dict(sent), 60, what="every post sent counted in its window")
        with clients.postgres(settings, "reader") as conn:
            spikes = conn.execute("SELECT dimension, series, window_start FROM volume_anomalies WHERE "
                                  "window_start >= %s AND series LIKE 'bluesky%%' AND direction <> 'outage'",
                                  (since,)).fetchall()
        assert spikes == [], f"alerts around the outage that are not the outage: {spikes}"
    finally:
        if feed.thread is not None and feed.thread.is_alive():
            feed.stop()
        feed.producer.close()
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(timeout=60)
        job_log.close()
        admin.delete_topics([anomalies_topic])
        admin.close()


def as_ms(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)
