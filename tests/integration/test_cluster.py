"""The trending job on a standalone Flink cluster: `flink run` submission, operator names in the REST API,
metrics on the TaskManager's and a producer's Prometheus endpoints, every Grafana dashboard query answered
by the stack's Prometheus, savepoint, cancel, resubmit from the savepoint, and window counts that go on
without loss or duplicates."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from runtime import clients
from shared.settings import PROJECT_ROOT
from stack.processes import wait_until
from stack.services import Prometheus
from tests.integration.conftest import cli, counts_path
from tests.integration.sinks import as_utc, clear_windows, closed_minutes_equal_oracle, produce
from tests.integration.test_trending_job import SAMPLE

DASHBOARD = PROJECT_ROOT / "docker" / "grafana" / "dashboards" / "streampulse.json"


def scrape(port: int, name: str) -> float:
    """Sum of every series of metric `name` on http://localhost:<port>/metrics (0 when absent)."""
    try:
        text = urllib.request.urlopen(f"http://localhost:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return 0.0
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE))


@pytest.fixture
def producer_with_metrics(settings):
    """`streampulse produce synthetic --metrics-port` paced at real time for a minute, into a scratch topic
    (5% malformed, so that the reject counter moves too); yields its metrics port."""
    from kafka.admin import NewTopic

    topic = f"test.metrics.{uuid.uuid4().hex[:12]}"
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(topic, 1, 1)])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "stack.cli", "produce", "synthetic", "--rate", "20", "--duration", "60", "--speed",
         "1", "--seed", "5", "--malformed", "0.05", "--topic", topic, "--dlq-topic", topic, "--metrics-port",
         str(port), "--no-resume", "--no-progress", "--cursor-name", topic],
        cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Its endpoint shows what it sent and what it rejected while it runs.
    wait_until(lambda: scrape(port, "streampulse_posts_produced_total") > 0 and
               scrape(port, "streampulse_posts_rejected_total") > 0, 50,
               what=f"posts produced and rejected on the producer's endpoint http://localhost:{port}/metrics")
    yield port
    process.terminate()
    _, stderr = process.communicate(timeout=60)
    admin.delete_topics([topic])
    admin.close()
    assert process.returncode in (0, -15), f"the producer failed:\n{stderr[-3000:]}"


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]


def test_submit_savepoint_resubmit_goes_on_without_loss_or_duplicates(settings, cluster, kafka_topic, dlq_topic,
                                                                    producer_with_metrics, counts_lake):
    test_started = time.time()
    posts = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    first_ms, last_ms = posts[0]["created_at"], max(p["created_at"] for p in posts)
    split_ms = first_ms + 30 * 60_000  # the second half is produced while the job is stopped
    clear_windows(settings, first_ms, last_ms)

    def produce_sample(selected):
        produce(settings, dlq_topic, kafka_topic, selected)  # one partition: the sample's own order

    first_half = [p for p in posts if p["created_at"] < split_ms]
    produce_sample(first_half)
    job_args = ["--", "--topic", dlq_topic, "--alerts-topic", kafka_topic, "--group-id", f"test-{dlq_topic}",
                *counts_path(settings, counts_lake)]
    job_id = cli("submit", "trending", *job_args).strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", job_id), job_id

    job = wait_until(lambda: cluster.running_job(job_id), 300, what=f"job {job_id} RUNNING")
    names = [v["name"] for v in job["vertices"]]
    assert any("Count keywords per minute, score sliding windows" in name for name in names), names
    # The topic is read once: one source vertex, not one per branch of the plan.
    assert sum("Source: social_posts" in name for name in names) == 1, names
    assert job_id in cli("jobs")

    # The election burst (minute 22) is scored once the watermark passes its windows: trends are emitted,
    # and the TaskManager's Prometheus endpoint shows the job's own metric and the source's input.
    flink_ports = settings.prometheus.flink_metrics_ports
    wait_until(lambda: sum(scrape(p, "flink_taskmanager_job_task_operator_trendsEmitted") for p in flink_ports) > 0,
               300, what="trendsEmitted > 0 on the TaskManager's Prometheus endpoint")
    assert sum(scrape(p, "flink_taskmanager_job_task_numRecordsIn") for p in flink_ports) > 0

    first_half_end = split_ms - settings.trending.watermark_s * 1000 - 60_000
    wait_until(lambda: closed_minutes_equal_oracle(settings, counts_lake, first_half, first_half_end), 300,
               what="the first half's minute counts in the lake")

    # The watermark has passed those windows: a copy of the first post now is late, counted in the latePosts
    # metric (PyFlink shows a Python counter once it has moved) and in no window.
    with clients.postgres(settings, "writer") as conn:
        conn.execute("DELETE FROM late_posts WHERE window_start = %s", (as_utc(first_ms // 60_000 * 60_000),))
    produce_sample([posts[0] | {"uid": f"{posts[0]['uid']}-late-copy"}])
    wait_until(lambda: sum(scrape(p, "flink_taskmanager_job_task_operator_latePosts") for p in flink_ports) == 1,
               120, what="latePosts = 1 on the TaskManager's Prometheus endpoint")

    def late_rows():
        with clients.postgres(settings, "reader") as conn:
            return conn.execute("SELECT source, posts FROM late_posts WHERE window_start = %s",
                                (as_utc(first_ms // 60_000 * 60_000),)).fetchall()

    wait_until(lambda: late_rows() == [(posts[0]["source"], 1)], 120, what="the late copy in late_posts")

    # The stack's Prometheus scrapes both (the producer announced itself through file_sd), and every
    # query of the Grafana dashboard returns series over the test's span.
    prometheus = Prometheus(settings)

    unanswered: list[str] = []

    def every_query_answered() -> bool:
        unanswered[:] = [f"{title}: {expr}" for title, expr in dashboard_queries()
                         if not prometheus.query_range(expr, test_started, time.time(), step_s=5)]
        return not unanswered

    try:
        wait_until(every_query_answered, 180, interval=2, what="every dashboard query")
    except TimeoutError:
        pytest.fail("Prometheus has no series for these dashboard queries:\n" + "\n".join(unanswered))

    savepoint = cli("savepoint", job_id, "--cancel").strip().splitlines()[-1]
    wait_until(lambda: cluster.request("GET", f"/jobs/{job_id}")["state"] == "CANCELED", 120,
               what=f"job {job_id} CANCELED")
    # While the job is stopped: another late copy of the first minute, first in the range the restored job
    # reads. Watermarks are not in a savepoint, so the restored job's SQL sees it on time and its minute
    # fires again with this one post; the Python stage knows that minute is closed and counts it late
    # instead of overwriting the minute's counts with a partial one.
    produce_sample([posts[0] | {"uid": f"{posts[0]['uid']}-late-after-restore"}])
    produce_sample([p for p in posts if p["created_at"] >= split_ms])
    resumed = cli("submit", "trending", "--from-savepoint", savepoint, *job_args).strip().splitlines()[-1]
    wait_until(lambda: cluster.request("GET", f"/jobs/{resumed}")["state"] == "RUNNING", 300,
               what=f"job {resumed} RUNNING from {savepoint}")

    # Every window that has closed (the last posts hold the watermark at their time − 30 s) equals the
    # recomputation over the whole sample: nothing lost at the stop, nothing counted twice after it.
    closed_end = last_ms - settings.trending.watermark_s * 1000 - 60_000
    wait_until(lambda: closed_minutes_equal_oracle(settings, counts_lake, posts, closed_end), 300,
               what="every closed minute's counts in the lake after the resubmission")
    wait_until(lambda: late_rows() == [(posts[0]["source"], 2)], 120, what="both late copies in late_posts")
    assert closed_minutes_equal_oracle(settings, counts_lake, posts, closed_end)  # the first minute untouched
    cli("cancel", resumed)
