"""The trending job on a standalone Flink cluster: `flink run` submission, operator names in the REST API,
metrics on the TaskManager's Prometheus endpoint, savepoint, cancel, resubmit from the savepoint, and
window counts that go on without loss or duplicates."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

import pytest

from connectors.producer import PostProducer
from shared import clients
from shared.settings import PROJECT_ROOT
from stack.cluster import Cluster
from stack.processes import wait_until
from tests.integration.test_trending_job import SAMPLE, as_utc, recompute

PROMETHEUS_PORTS = (9249, 9250)  # flink-conf/config.yaml: metrics.reporter.prom.port


def cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"streampulse {' '.join(args)}:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture
def cluster(settings):
    cli("cluster", "up")
    yield Cluster(settings)
    cli("cluster", "down")


def prometheus_value(name: str) -> float:
    """Sum of every series of metric `name` over the TaskManager's reporter ports (0 when absent)."""
    total = 0.0
    for port in PROMETHEUS_PORTS:
        try:
            text = urllib.request.urlopen(f"http://localhost:{port}/metrics", timeout=5).read().decode()
        except OSError:
            continue
        total += sum(float(m.group(1)) for m in re.finditer(rf"^{name}{{[^}}]*}} (\S+)$", text, re.MULTILINE))
    return total


def hop_counts(settings, first_ms: int, up_to_end_ms: int) -> dict:
    with clients.postgres(settings, "reader") as conn:
        rows = conn.execute("SELECT window_start, source, keyword, posts, authors FROM keyword_window_counts "
                            "WHERE window_kind = 'hop' AND window_end > %s AND window_end <= %s",
                            (as_utc(first_ms), as_utc(up_to_end_ms))).fetchall()
    return {(start, source, keyword): (n, a) for start, source, keyword, n, a in rows}


def test_submit_savepoint_resubmit_goes_on_without_loss_or_duplicates(settings, cluster, kafka_topic, dlq_topic):
    posts = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    first_ms, last_ms = posts[0]["created_at"], max(p["created_at"] for p in posts)
    split_ms = first_ms + 30 * 60_000  # the second half is produced while the job is stopped
    with clients.postgres(settings, "writer") as conn:
        for table in ("keyword_window_counts", "window_posts", "trends"):
            conn.execute(f"DELETE FROM {table} WHERE window_end > %s AND window_start <= %s",
                         (as_utc(first_ms), as_utc(last_ms)))

    def produce(selected):
        producer = PostProducer(settings, "replay", topic=dlq_topic, dlq_topic=kafka_topic)
        for post in selected:
            producer.submit(post)
        producer.close()
        assert producer.summary.sent == len(selected)

    produce([p for p in posts if p["created_at"] < split_ms])  # one partition: the sample's own order
    job_args = ["--", "--topic", dlq_topic, "--alerts-topic", kafka_topic, "--group-id", f"test-{dlq_topic}"]
    job_id = cli("submit", "trending", *job_args).strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", job_id), job_id

    def running():
        job = cluster.request("GET", f"/jobs/{job_id}")
        return job if job["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in job["vertices"]) else None

    job = wait_until(running, 300, what=f"job {job_id} RUNNING")
    names = " | ".join(v["name"] for v in job["vertices"])
    assert "Score keywords (EWMA z-score)" in names and "Rank trends per window" in names, names
    assert job_id in cli("jobs")

    # The election burst (minute 22) is scored once the watermark passes its windows: trends are emitted,
    # and the TaskManager's Prometheus endpoint shows the job's own metric and the source's input.
    wait_until(lambda: prometheus_value("flink_taskmanager_job_task_operator_trendsEmitted") > 0, 300,
               what="trendsEmitted > 0 on the TaskManager's Prometheus endpoint")
    assert prometheus_value("flink_taskmanager_job_task_numRecordsIn") > 0
    first_half_end = split_ms - settings.trending.watermark_s * 1000 - 60_000
    expected = {key: counts for key, counts in
                recompute(posts, settings.trending.hop_size_s * 1000, settings.trending.hop_slide_s * 1000).items()}

    def expected_until(end_ms: int) -> dict:
        size = settings.trending.hop_size_s * 1000
        return {(as_utc(start), source, keyword): counts for (start, source, keyword), counts in expected.items()
                if first_ms < start + size <= end_ms}

    wait_until(lambda: hop_counts(settings, first_ms, first_half_end) == expected_until(first_half_end), 300,
               what="the first half's window counts in Postgres")

    savepoint = cli("savepoint", job_id, "--cancel").strip().splitlines()[-1]
    wait_until(lambda: cluster.request("GET", f"/jobs/{job_id}")["state"] == "CANCELED", 120,
               what=f"job {job_id} CANCELED")
    produce([p for p in posts if p["created_at"] >= split_ms])
    resumed = cli("submit", "trending", "--from-savepoint", savepoint, *job_args).strip().splitlines()[-1]
    wait_until(lambda: cluster.request("GET", f"/jobs/{resumed}")["state"] == "RUNNING", 300,
               what=f"job {resumed} RUNNING from {savepoint}")

    # Every window that has closed (the last posts hold the watermark at their time − 30 s) equals the
    # recomputation over the whole sample: nothing lost at the stop, nothing counted twice after it.
    closed_end = last_ms - settings.trending.watermark_s * 1000 - 60_000
    wait_until(lambda: hop_counts(settings, first_ms, closed_end) == expected_until(closed_end), 300,
               what="every closed window's counts in Postgres after the resubmission")
    cli("cancel", resumed)
