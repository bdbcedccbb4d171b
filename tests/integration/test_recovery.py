"""Exactly-once through a killed TaskManager: the trending job on a two-TaskManager cluster loses the one it
runs on (kill -9) mid-stream, restarts on the other by itself, and once the input is drained its window
counts, trends, alerts and Redis current set equal the batch oracle's — nothing lost, nothing twice."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime

import pytest

from shared import clients
from shared.settings import load_settings
from stack.cluster import Cluster
from stack.processes import pid_alive, wait_until
from tests.integration.conftest import read_topic
from tests.integration.test_cluster import clear_windows, cli, hop_counts, produce
from tests.integration.test_trending_job import SAMPLE, as_ms, as_utc
from tests.oracle import expected_trends, recompute


@pytest.fixture
def two_taskmanagers(settings, monkeypatch):
    monkeypatch.setenv("STREAMPULSE_FLINK__TASKMANAGERS", "2")
    cli("cluster", "up")
    cluster = Cluster(load_settings())
    yield cluster
    cli("cluster", "down")


def test_a_killed_taskmanager_is_replaced_and_every_sink_equals_the_oracle(settings, two_taskmanagers, kafka_topic,
                                                                             dlq_topic):
    cluster = two_taskmanagers
    trending = settings.trending
    posts = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    first_ms, last_ms = posts[0]["created_at"], max(p["created_at"] for p in posts)
    split_ms = first_ms + 25 * 60_000  # the rest is produced after the kill
    clients.redis(settings).delete("streampulse:trends:current", "streampulse:trends:current:meta")
    clear_windows(settings, first_ms, last_ms)
    # One partition: the sample's own order.
    produce(settings, dlq_topic, kafka_topic, [p for p in posts if p["created_at"] < split_ms])
    job_id = cli("submit", "trending", "--", "--topic", dlq_topic, "--alerts-topic", kafka_topic,
                 "--group-id", f"test-{dlq_topic}").strip().splitlines()[-1]
    wait_until(lambda: cluster.running_job(job_id), 300, what=f"job {job_id} RUNNING")
    size, slide = trending.hop_size_s * 1000, trending.hop_slide_s * 1000
    expected = {(as_utc(start), source, keyword): counts
                for (start, source, keyword), counts in recompute(posts, size, slide).items()}

    def expected_until(end_ms: int) -> dict:
        return {key: counts for key, counts in expected.items() if first_ms < as_ms(key[0]) + size <= end_ms}

    progress_end = first_ms + 15 * 60_000
    wait_until(lambda: hop_counts(settings, first_ms, progress_end) == expected_until(progress_end), 300,
               what="the first 15 minutes' window counts in Postgres")

    # A completed checkpoint first, so that the job restores state rather than starting over.
    wait_until(lambda: cluster.request("GET", f"/jobs/{job_id}/checkpoints")["counts"]["completed"] >= 1, 300,
               what=f"a completed checkpoint of job {job_id}")

    # kill -9 the TaskManager that runs the job (its resource id is its process's role).
    busy = [tm["id"] for tm in cluster.request("GET", "/taskmanagers")["taskmanagers"]
            if tm["freeSlots"] < tm["slotsNumber"]]
    assert len(busy) == 1, busy
    pid = cluster.processes[busy[0]].pid()
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
    closed_end = last_ms - trending.watermark_s * 1000 - slide
    wait_until(lambda: hop_counts(settings, first_ms, closed_end) == expected_until(closed_end), 300,
               what="every closed window's counts in Postgres after the failover")
    oracle = expected_trends(posts, trending, closed_end)
    assert oracle, "the sample's bursts must trend"

    def stored_trends() -> list[tuple]:
        with clients.postgres(settings, "reader") as conn:
            rows = conn.execute("SELECT window_end, keyword, trend_rank, posts, authors, z, sample_uids FROM trends "
                                "WHERE window_end > %s AND window_end <= %s", (as_utc(first_ms), as_utc(closed_end))
                                ).fetchall()
        return sorted((as_ms(end), k, r, n, a, round(z, 6), s) for end, k, r, n, a, z, s in rows)

    wait_until(lambda: stored_trends() == oracle, 120, what="the trends in Postgres equal the oracle's")

    # The alerts topic, read committed: each of the oracle's trends exactly once, nothing from the failed attempt.
    def alerts() -> list[tuple]:
        records = [json.loads(r.value) for r in read_topic(settings, kafka_topic)]
        return sorted((as_ms(datetime.fromisoformat(a["window_end"])), a["keyword"], a["trend_rank"]) for a in records
                      if as_ms(datetime.fromisoformat(a["window_end"])) <= closed_end)

    wait_until(lambda: alerts() == [(end, k, r) for end, k, r, *_ in oracle], 120,
               what="the committed alerts equal the oracle's trends, once each")
    # Redis: the current set is the latest trending window's ranking, and never an older one.
    latest_end = max(end for end, *_ in oracle)
    current = clients.redis(settings).zrange("streampulse:trends:current", 0, -1, withscores=True)
    held = int(clients.redis(settings).hget("streampulse:trends:current:meta", "window_end") or 0)
    assert held >= latest_end
    if held == latest_end:
        assert {k for k, _ in current} == {k for end, k, *_ in oracle if end == latest_end}
    cli("cancel", job_id)
