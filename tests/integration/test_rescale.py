"""The trending job rescaled from savepoints on a cluster of two TaskManagers: parallelism 2 → 1 → 2, over a topic
of four partitions, and every sink equals the oracle over the whole input: nothing lost or counted twice when the
keyed state and the source's splits were redistributed."""

from __future__ import annotations

import json

import pytest

from shared.settings import load_settings
from stack.cluster import Cluster
from stack.processes import wait_until
from tests.integration.conftest import cli, counts_path, fresh_topic
from tests.integration.sinks import (
    assert_trending_sinks_equal_oracle,
    clear_windows,
    closed_minutes_equal_oracle,
    produce,
)
from tests.integration.test_trending_job import SAMPLE

MINUTE = 60_000


@pytest.fixture
def two_taskmanagers(settings, monkeypatch):
    """`streampulse cluster up` with flink.taskmanagers = 2 (from the environment, as a user would set it)."""
    monkeypatch.setenv("STREAMPULSE_FLINK__TASKMANAGERS", "2")
    cli("cluster", "up")
    cluster = Cluster(load_settings())
    try:
        wait_until(lambda: cluster.overview().get("taskmanagers") == 2, 120, what="two TaskManagers registered")
        yield cluster
    finally:
        cli("cluster", "down")


@pytest.fixture
def four_partitions(settings):
    yield from fresh_topic(settings, "test.rescale", 4)


def test_rescaled_from_savepoints_two_to_one_to_two_every_sink_equals_the_oracle(
        settings, two_taskmanagers, four_partitions, kafka_topic, dlq_topic, counts_lake):
    cluster = two_taskmanagers
    posts = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    first_ms = posts[0]["created_at"]
    # Posts a few minutes after the sample's last, enough of them (fixed uids: fixed partitions) that every one
    # of the four partitions has some: each partition's watermark then passes the sample's end.
    flush_ms = max(p["created_at"] for p in posts) + 3 * MINUTE
    flush = [{**posts[0], "uid": f"test-rescale-flush-{n}", "text": "end of the rescale test", "hashtags": [],
              "created_at": flush_ms, "ingested_at": flush_ms} for n in range(40)]  # the producer clamps to ingestion
    everything = posts + flush
    clear_windows(settings, first_ms, flush_ms)
    segments = [[p for p in posts if p["created_at"] < first_ms + 15 * MINUTE],
                [p for p in posts if first_ms + 15 * MINUTE <= p["created_at"] < first_ms + 30 * MINUTE],
                [p for p in posts if p["created_at"] >= first_ms + 30 * MINUTE] + flush]
    job_args = ["--", "--topic", four_partitions, "--alerts-topic", kafka_topic,
                "--group-id", f"test-{four_partitions}", *counts_path(settings, counts_lake)]

    def run(parallelism: int, savepoint: str | None) -> str:
        """Submit at `parallelism` (from `savepoint`), check where it runs; its job id."""
        submit = ["submit", "trending", "--parallelism", str(parallelism)]
        job_id = cli(*submit, *(["--from-savepoint", savepoint] if savepoint else []), *job_args).split()[-1]
        job = wait_until(lambda: cluster.running_job(job_id), 300, what=f"job {job_id} RUNNING at {parallelism}")
        source = next(v for v in job["vertices"] if v["name"].startswith("Source: social_posts"))
        assert source["parallelism"] == parallelism, source
        detail = cluster.request("GET", f"/jobs/{job_id}")
        assert {v["maxParallelism"] for v in detail["vertices"]} == {settings.flink.max_parallelism}
        if parallelism == 2:  # the slots are spread: one source reader on each TaskManager
            hosts = cluster.request("GET", f"/jobs/{job_id}/vertices/{source['id']}/taskmanagers")["taskmanagers"]
            assert len({h["taskmanager-id"] for h in hosts}) == 2, hosts
        return job_id

    def stop_with_savepoint(job_id: str, produced: list[dict]) -> str:
        """Once the job is well into what it was given (its state holds minutes of it): savepoint and cancel."""
        segment_end = produced[-1]["created_at"]
        wait_until(lambda: closed_minutes_equal_oracle(settings, counts_lake, produced, segment_end - 5 * MINUTE),
                   300, what=f"the minutes up to {segment_end - 5 * MINUTE} in the lake (job {job_id})")
        savepoint = cli("savepoint", job_id, "--cancel").split()[-1]
        wait_until(lambda: cluster.request("GET", f"/jobs/{job_id}")["state"] == "CANCELED", 120,
                   what=f"job {job_id} CANCELED")
        return savepoint

    produce(settings, four_partitions, dlq_topic, segments[0])
    savepoint = stop_with_savepoint(run(2, None), segments[0])
    produce(settings, four_partitions, dlq_topic, segments[1])
    savepoint = stop_with_savepoint(run(1, savepoint), segments[0] + segments[1])
    produce(settings, four_partitions, dlq_topic, segments[2])
    job_id = run(2, savepoint)
    try:
        closed_end = flush_ms - settings.trending.watermark_s * 1000 - MINUTE
        assert_trending_sinks_equal_oracle(settings, everything, kafka_topic, closed_end, counts_lake)
    finally:
        cli("cancel", job_id)
