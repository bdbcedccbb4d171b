"""Exactly-once through faults around the jobs. With the trending, volume and archive jobs running on the
standalone cluster, a replay producer streams an hour of posts from a file while, in turn, the producer
is killed (-9) and restarted, the Kafka broker is killed (-9) and restarted, PostgreSQL is stopped while
the jobs write and started again, and the TaskManager running the jobs is killed (-9; its supervisor
starts a new one). Nobody touches the jobs: they recover by themselves, and once the
input is drained every sink equals the batch oracle (tests/oracle.py) computed from the same file —
every keyword's minute counts in the lake, the keyword rows and trends in Postgres, the committed alerts and
the Redis current set; volume windows, anomalies
and the committed anomalies topic; the Parquet lake. Nothing lost, nothing twice.

(tests/integration/test_recovery.py kills a TaskManager while a second one is ready to take over.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from kafka.admin import NewTopic

from connectors import synthetic
from runtime import clients
from shared.settings import PROJECT_ROOT
from stack.processes import pid_alive, wait_until
from stack.services import Kafka, Postgres
from tests.integration.conftest import cli, counts_path, read_topic
from tests.integration.sinks import (
    as_utc,
    assert_trending_sinks_equal_oracle,
    clear_windows,
    remove_lake,
    volume_anomalies,
    volume_windows,
    wait_for_lake,
)
from tests.oracle import expected_anomalies, volume_counts

START = 1_793_880_000_000  # 2026-11-05T12:00:00Z: a span no other test writes
INPUT = synthetic.SyntheticConfig(
    seed=97, start_ms=START, duration_s=3600, rate=1.5, sources={"bluesky": 5, "reddit": 3, "mastodon": 2},
    out_of_order=0.02, out_of_order_max_s=10,
    bursts=[synthetic.Burst("#aurora", 20 * 60, 480, 10, baseline_per_min=1.0),
            synthetic.Burst("election", 38 * 60, 300, 5)],
    volume_events=[synthetic.VolumeEvent("source:reddit", 30 * 60, 5 * 60, 0),  # silent minutes 30-34
                   synthetic.VolumeEvent("source:mastodon", 45 * 60, 3 * 60, 4)])  # ×4 minutes 45-47
SPEED = 40  # × real time: the hour streams in about 90 s, long enough to fault it three times


class ReplayProducer:
    """`streampulse produce replay FILE` as a separate process, with the cursor it saves every 5 s."""

    def __init__(self, settings, path, topic: str, dlq_topic: str):
        self.name = f"test-faults-{uuid.uuid4().hex[:8]}"
        self.cursor_file = settings.stack.state_path / "cursors" / f"{self.name}.json"
        self.argv = [sys.executable, "-m", "stack.cli", "produce", "replay", str(path), "--topic", topic,
                     "--dlq-topic", dlq_topic, "--speed", str(SPEED), "--cursor-name", self.name, "--no-progress"]
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)

    def saved(self) -> int:
        """Records acknowledged by Kafka as of the last saved cursor."""
        try:
            return json.loads(self.cursor_file.read_text())["cursor"]["record"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def finished(self) -> bool:
        return self.process.poll() is not None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
        self.cursor_file.unlink(missing_ok=True)


def failures(cluster, job_id: str) -> int:
    return len(cluster.request("GET", f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"])


@pytest.fixture
def topics(settings):
    """Single-partition topics for the trend alerts and the volume anomalies, deleted afterwards."""
    names = {kind: f"test.{kind}.{uuid.uuid4().hex[:12]}" for kind in ("alerts", "anomalies")}
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(name, 1, 1) for name in names.values()])
    yield names
    admin = clients.kafka_admin(settings)  # the broker was restarted in between
    admin.delete_topics(list(names.values()))
    admin.close()


@pytest.mark.timeout(1500)
def test_producer_broker_and_database_faults_leave_every_sink_equal_to_the_oracle(settings, cluster, kafka_topic,
                                                                                  dlq_topic, topics, tmp_path,
                                                                                  counts_lake):
    posts = [event.payload for event in synthetic.generate(INPUT)]
    input_file = tmp_path / "posts.jsonl"
    input_file.write_text("".join(json.dumps(post) + "\n" for post in posts))
    first_ms, last_ms = min(p["created_at"] for p in posts), max(p["created_at"] for p in posts)
    clear_windows(settings, first_ms, last_ms)
    lake = f"test-faults-{uuid.uuid4().hex[:12]}"
    group = f"test-{kafka_topic}"
    jobs = {
        "trending": ["--topic", kafka_topic, "--alerts-topic", topics["alerts"], "--group-id", f"{group}-trending",
                     *counts_path(settings, counts_lake)],
        "volume": ["--topic", kafka_topic, "--anomalies-topic", topics["anomalies"], "--dlq-topic", dlq_topic,
                   "--group-id", f"{group}-volume"],
        "archive": ["--topic", kafka_topic, "--path", f"s3://{settings.minio.bucket}/{lake}", "--group-id",
                    f"{group}-archive"],
    }
    job_ids = {name: cli("submit", name, "--", *args).strip().splitlines()[-1] for name, args in jobs.items()}

    def all_running() -> bool:
        return all(cluster.running_job(job_id) for job_id in job_ids.values())

    wait_until(all_running, 300, what=f"jobs {job_ids} RUNNING")
    producer = ReplayProducer(settings, input_file, kafka_topic, dlq_topic)
    timings: dict[str, float] = {}
    try:
        producer.start()
        # 1. The producer dies (kill -9) a fifth of the way in; restarted, it resumes after its saved cursor,
        # re-sending what Kafka acknowledged after that (at most 5 s worth: the jobs count each uid once).
        wait_until(lambda: producer.saved() >= len(posts) // 5, 300, what="a fifth of the input produced")
        producer.kill()
        resumed_at = producer.saved()
        producer.start()

        # 2. The broker dies (kill -9) and comes back, while the producer and the jobs use it.
        wait_until(lambda: producer.saved() >= 2 * len(posts) // 5, 300, what="two fifths of the input produced")
        kafka = Kafka(settings)
        pid = kafka.pid()
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: not pid_alive(pid), 30, what=f"the broker (pid {pid}) gone")
        kafka.start()
        kafka.wait_ready()
        wait_until(all_running, 300, what="every job RUNNING after the broker's restart")
        timings["broker back, every job running"] = time.monotonic() - killed

        # 3. PostgreSQL stops while the jobs write (a JDBC sink that cannot flush fails its job), then starts.
        wait_until(lambda: producer.saved() >= 3 * len(posts) // 5 or producer.finished(), 300,
                   what="three fifths of the input produced")
        writers = {name: failures(cluster, job_ids[name]) for name in ("trending", "volume")}
        postgres = Postgres(settings)
        postgres.stop()
        stopped = time.monotonic()
        wait_until(lambda: any(failures(cluster, job_ids[n]) > count for n, count in writers.items()), 180,
                   what="a job failing to write to the stopped PostgreSQL")
        postgres.start()
        postgres.wait_ready()
        wait_until(all_running, 300, what="every job RUNNING after PostgreSQL's restart")
        timings["PostgreSQL stopped → every job running again"] = time.monotonic() - stopped

        # 4. The TaskManager that runs all three jobs dies (kill -9); its supervisor starts a new one.
        wait_until(lambda: producer.saved() >= 4 * len(posts) // 5 or producer.finished(), 300,
                   what="four fifths of the input produced")
        before = {name: failures(cluster, job_id) for name, job_id in job_ids.items()}
        pid = cluster.worker_pid("taskmanager")
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: all(failures(cluster, job_id) > before[name] for name, job_id in job_ids.items())
                   and all_running(), 300, what="every job restarted and RUNNING after the TaskManager's kill")
        timings["TaskManager killed → every job running again"] = time.monotonic() - killed

        producer.process.wait(timeout=600)
        stderr = producer.process.stderr.read()
        assert producer.process.returncode == 0, f"the restarted producer failed:\n{stderr[-3000:]}"
    finally:
        producer.close()

    try:
        # Everything closed by the final watermark (the last posts hold it at their time − 30 s) equals the
        # oracle: trending first (counts, trends, committed alerts, Redis)...
        closed_end = last_ms - settings.trending.watermark_s * 1000 - settings.trending.hop_slide_s * 1000
        assert_trending_sinks_equal_oracle(settings, posts, topics["alerts"], closed_end, counts_lake, timeout_s=600)

        # ...the volume job: every series' minute counts, and the anomalies with their scores, in Postgres
        # and once each on the committed anomalies topic...
        tumble = settings.volume.tumble_s * 1000
        counts = {key: n for key, n in volume_counts(posts, tumble).items() if key[2] + tumble <= closed_end}
        wait_until(lambda: volume_windows(settings, first_ms, closed_end) == counts, 300,
                   what="the volume windows in Postgres equal the oracle's")
        anomalies = expected_anomalies(posts, settings.volume, closed_end)
        assert {(s, (start - START) // 60_000, d) for dim, s, start, _, d, *_ in anomalies if dim == "source"} == \
            {("reddit", m, "outage") for m in range(30, 35)} | {("mastodon", m, "spike") for m in range(45, 48)}
        try:
            wait_until(lambda: volume_anomalies(settings, first_ms, closed_end) == anomalies, 120,
                       what="the volume anomalies in Postgres equal the oracle's")
        except TimeoutError:
            stored = volume_anomalies(settings, first_ms, closed_end)
            in_topic = {(a["dimension"], a["series"], a["window_start"])
                        for a in (json.loads(r.value) for r in read_topic(settings, topics["anomalies"]))}

            def described(row: tuple) -> tuple:  # (dimension, series, minute, posts, also on the topic?)
                key = (row[0], row[1], as_utc(row[2]).strftime("%Y-%m-%d %H:%M:%S"))
                return row[0], row[1], (row[2] - START) // 60_000, row[3], key in in_topic

            restarts = {name: failures(cluster, job_id) for name, job_id in job_ids.items()}
            pytest.fail("volume anomalies in Postgres differ from the oracle: missing "
                        f"{[described(r) for r in anomalies if r not in stored]}, unexpected "
                        f"{[described(r) for r in stored if r not in anomalies]}; job restarts {restarts}")

        def published() -> list[tuple]:
            records = [json.loads(r.value) for r in read_topic(settings, topics["anomalies"])]
            return sorted((a["dimension"], a["series"], a["window_start"]) for a in records
                          if a["window_start"] <= as_utc(closed_end - tumble).strftime("%Y-%m-%d %H:%M:%S"))

        expected_published = sorted((d, s, as_utc(start).strftime("%Y-%m-%d %H:%M:%S"))
                                    for d, s, start, *_ in anomalies)
        try:
            wait_until(lambda: published() == expected_published, 120,
                       what="the committed anomalies topic carries the oracle's anomalies once each")
        except TimeoutError:
            got = published()
            uncommitted = len(read_topic(settings, topics["anomalies"], isolation="read_uncommitted"))
            pytest.fail(f"the committed anomalies topic differs from the oracle: {len(got)} records, "
                        f"{len(expected_published)} expected, {uncommitted} uncommitted in all; missing "
                        f"{sorted(set(expected_published) - set(got))[:10]}, unexpected "
                        f"{sorted(set(got) - set(expected_published))[:10]}, twice "
                        f"{sorted({r for r in got if got.count(r) > 1})[:10]}")

        # ...and the lake: every post of a closed minute exactly once, once a checkpoint committed its part files.
        wait_for_lake(settings, lake, posts, closed_end)  # read_lake raises on a post archived twice

        # The re-sent records are the only Kafka duplicates, and the only posts that can have come late.
        in_kafka = len(read_topic(settings, kafka_topic, isolation="read_uncommitted"))
        assert in_kafka >= len(posts)
        with clients.postgres(settings, "reader") as conn:
            late = conn.execute("SELECT coalesce(sum(posts), 0) FROM late_posts WHERE window_start >= %s AND "
                                "window_start <= %s", (as_utc(first_ms // 60_000 * 60_000), as_utc(last_ms))
                                ).fetchone()[0]
        assert late <= in_kafka - len(posts)
        print(f"\nproducer resumed at record {resumed_at}, re-sent {in_kafka - len(posts)}, {late} of them late; "
              + "; ".join(f"{what}: {seconds:.1f} s" for what, seconds in timings.items()))  # informative
        print("job restarts: " + ", ".join(f"{name} {failures(cluster, job_id)}" for name, job_id in job_ids.items()))
    finally:
        for job_id in job_ids.values():
            cli("cancel", job_id)
        remove_lake(settings, lake)
