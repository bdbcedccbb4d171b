"""Exactly-once through a killed TaskManager: the trending job on a two-TaskManager cluster loses the one it
runs on (kill -9) mid-stream, restarts on the other by itself, and once the input is drained its window
counts, trends, alerts and Redis current set equal the batch oracle's — nothing lost, nothing twice."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from shared.settings import load_settings
from stack.cluster import Cluster
from stack.processes import pid_alive, wait_until
from tests.integration.conftest import cli, counts_path
from tests.integration.sinks import (
    assert_trending_sinks_equal_oracle,
    clear_windows,
    closed_minutes_equal_oracle,
    produce,
)
from tests.integration.test_trending_job import SAMPLE


@pytest.fixture
def two_taskmanagers(settings, monkeypatch):
    monkeypatch.setenv("STREAMPULSE_FLINK__TASKMANAGERS", "2")
    cli("cluster", "up")
    cluster = Cluster(load_settings())
    yield cluster
    cli("cluster", "down")


def test_a_killed_taskmanager_is_replaced_and_every_sink_equals_the_oracle(settings, two_taskmanagers, kafka_topic,
                                                                             dlq_topic, counts_lake):
    cluster = two_taskmanagers
    trending = settings.trending
    posts = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    first_ms, last_ms = posts[0]["created_at"], max(p["created_at"] for p in posts)
    split_ms = first_ms + 25 * 60_000  # the rest is produced after the kill
    clear_windows(settings, first_ms, last_ms)
    # One partition: the sample's own order.
    produce(settings, dlq_topic, kafka_topic, [p for p in posts if p["created_at"] < split_ms])
    job_id = cli("submit", "trending", "--", "--topic", dlq_topic, "--alerts-topic", kafka_topic,
                 "--group-id", f"test-{dlq_topic}", *counts_path(settings, counts_lake)).strip().splitlines()[-1]
    wait_until(lambda: cluster.running_job(job_id), 300, what=f"job {job_id} RUNNING")
    progress_end = first_ms + 15 * 60_000
    early = [p for p in posts if p["created_at"] < split_ms]
    wait_until(lambda: closed_minutes_equal_oracle(settings, counts_lake, early, progress_end), 300,
               what="the first 15 minutes' keyword counts in the lake")

    # A completed checkpoint first, so that the job restores state rather than starting over.
    wait_until(lambda: cluster.request("GET", f"/jobs/{job_id}/checkpoints")["counts"]["completed"] >= 1, 300,
               what=f"a completed checkpoint of job {job_id}")

    # kill -9 the TaskManager that runs the job (its resource id is its process's role).
    busy = [tm["id"] for tm in cluster.request("GET", "/taskmanagers")["taskmanagers"]
            if tm["freeSlots"] < tm["slotsNumber"]]
    assert len(busy) == 1, busy
    pid = cluster.worker_pid(busy[0])
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: not pid_alive(pid), 30, what=f"{busy[0]} (pid {pid}) gone")

    def restarted() -> bool:
        failures = cluster.request("GET", f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"]
        return bool(failures) and cluster.running_job(job_id) is not None

    wait_until(restarted, 180, what=f"job {job_id} RUNNING again after losing {busy[0]}")
    print(f"\nkill -9 {busy[0]} → RUNNING again in {time.monotonic() - killed:.1f} s")  # informative, not asserted
    produce(settings, dlq_topic, kafka_topic, [p for p in posts if p["created_at"] >= split_ms])

    # Every closed window (the last posts hold the watermark at their time − 30 s) equals the oracle.
    closed_end = last_ms - trending.watermark_s * 1000 - trending.hop_slide_s * 1000
    assert_trending_sinks_equal_oracle(settings, posts, kafka_topic, closed_end, counts_lake)
    cli("cancel", job_id)
