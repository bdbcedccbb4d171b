"""The trending job at parallelism 1, 2 and 4 on the local cluster, on one input, in one run.

    python -m bench.scaling [--count 300000] [--rate 30] [--seed 3] [--parallelism 1 2 4] [--taskmanagers 4]

Starts the standalone cluster with `--taskmanagers` TaskManagers (`streampulse cluster up`, slots spread over
them), produces the seeded synthetic input of bench/trending_throughput.py (4 partitions), and for each
parallelism submits the whole trending job with its defaults (`streampulse submit trending --parallelism N --
--bounded`) twice: over an empty topic of the same shape (its fixed cost: submission, start-up, the last
checkpoint) and over the input. Sustained rate = posts / (run − fixed); exactness against the batch oracle,
as in the throughput benchmark. While each run goes, the REST API's busyTimeMsPerSecond of every stage is
sampled: the busiest stage is what saturates first, and its busy share gives the model's ceiling,
posts/s ÷ busy share (the rate that stage would reach if it did nothing but work).

On a machine with fewer cores than TaskManagers × Python workers, more parallelism only adds overhead: the
figures show that cost, not a speed-up. Needs the local stack; stops the cluster at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict

from bench.trending_throughput import (
    clear_span,
    log,
    produce_input,
    report,
    report_exactness,
    scratch_topics,
    start_of_input,
)
from shared.settings import ENV_PREFIX, PROJECT_ROOT, load_settings


def streampulse(*args: str, env: dict | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "stack.cli", *args], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"streampulse {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


class BusySampler:
    """Every stage's busyTimeMsPerSecond (the busiest subtask's) every second while a job runs, averaged."""

    def __init__(self, cluster, job_id: str):
        self.cluster, self.job_id = cluster, job_id
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(1.0):
            try:
                job = self.cluster.request("GET", f"/jobs/{self.job_id}")
                if job["state"] != "RUNNING":
                    continue
                for vertex in job["vertices"]:
                    metrics = self.cluster.request(
                        "GET", f"/jobs/{self.job_id}/vertices/{vertex['id']}/subtasks/metrics"
                        "?get=busyTimeMsPerSecond&agg=max")
                    for metric in metrics:
                        busy = float(metric.get("max") or "nan")
                        if not math.isnan(busy):  # NaN while a subtask has not measured yet
                            self.samples[vertex["name"]].append(busy / 1000)
            except Exception:
                continue

    def stop(self) -> dict[str, float]:
        """Mean busy share (0..1) of each stage's busiest subtask over the samples."""
        self.done.set()
        self.thread.join()
        return {name: sum(values) / len(values) for name, values in self.samples.items() if values}


def run_bounded(cluster, parallelism: int, topic: str, alerts: str, lake: str, settings) -> tuple[float, dict]:
    """Submit the trending job bounded over `topic`, wait for FINISHED; (seconds from submission, busy shares)."""
    started = time.perf_counter()
    job_id = streampulse("submit", "trending", "--parallelism", str(parallelism), "--", "--bounded", "--topic", topic,
                         "--alerts-topic", alerts, "--group-id", f"bench-{uuid.uuid4().hex[:8]}",
                         "--counts-path", f"s3://{settings.minio.bucket}/{lake}").strip().splitlines()[-1]
    sampler = BusySampler(cluster, job_id)
    try:
        while True:
            state = cluster.request("GET", f"/jobs/{job_id}")["state"]
            if state == "FINISHED":
                break
            if state in ("FAILED", "CANCELED"):
                cause = cluster.request("GET", f"/jobs/{job_id}/exceptions").get("root-exception", "")
                raise SystemExit(f"job {job_id} at parallelism {parallelism} ended {state}:\n{cause[:3000]}")
            time.sleep(0.5)
    finally:
        busy = sampler.stop()
    return time.perf_counter() - started, busy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300_000, help="posts in the input (default 300000)")
    parser.add_argument("--rate", type=float, default=30.0, help="posts per second of event time (default 30)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 2, 4], metavar="N")
    parser.add_argument("--taskmanagers", type=int, default=4, help="TaskManagers of the cluster (default 4)")
    args = parser.parse_args(argv)

    from stack.cluster import Cluster
    from tests.integration.sinks import remove_lake

    env = os.environ | {f"{ENV_PREFIX}FLINK__TASKMANAGERS": str(args.taskmanagers)}
    os.environ.update(env)  # this process's Cluster and every `streampulse` it runs see the same cluster
    settings = load_settings()
    admin, suffix, topic, empty, alerts, lake = scratch_topics(settings)
    report("command", f"python -m bench.scaling --count {args.count} --rate {args.rate:g} --seed {args.seed} "
                      f"--parallelism {' '.join(map(str, args.parallelism))} --taskmanagers {args.taskmanagers}")
    report("settings", f"{args.taskmanagers} TaskManagers, state backend {settings.flink.state_backend}, checkpoints "
                       f"every {settings.flink.checkpoint_interval_s:g} s exactly-once, python "
                       f"{settings.flink.python_execution_mode} mode; machine {os.cpu_count()} cores")
    start_ms = start_of_input()
    rates: dict[int, float] = {}
    log(f"starting the cluster with {args.taskmanagers} TaskManagers ...")
    streampulse("cluster", "up")
    cluster = Cluster(settings)
    try:
        clear_span(settings, start_ms)
        posts = produce_input(settings, topic, alerts, args.count, args.rate, args.seed, suffix)
        for parallelism in args.parallelism:
            name = f"trending_p{parallelism}"
            clear_span(settings, start_ms)
            log(f"{name}: over the empty topic, then over the input ...")
            fixed, _ = run_bounded(cluster, parallelism, empty, alerts, f"{lake}-{name}-empty", settings)
            seconds, busy = run_bounded(cluster, parallelism, topic, alerts, f"{lake}-{name}", settings)
            rates[parallelism] = len(posts) / max(seconds - fixed, 1e-9)
            report(f"{name}_posts_per_s", f"{rates[parallelism]:,.0f}",
                   f"posts/s (run {seconds:.1f} s − fixed {fixed:.1f} s)")
            report_exactness(name, settings, f"{lake}-{name}", posts)
            if busy:
                stage, share = max(busy.items(), key=lambda item: item[1])
                report(f"{name}_busiest_stage", f"{share:.0%} busy: {stage.split('<br/>')[0][:90]}")
                report(f"{name}_busiest_stage_ceiling", f"{rates[parallelism] / max(share, 1e-9):,.0f}",
                       "posts/s (the busiest stage's rate if it were never idle)")
            remove_lake(settings, f"{lake}-{name}")
            remove_lake(settings, f"{lake}-{name}-empty")
        base = rates.get(min(args.parallelism))
        for parallelism, rate in rates.items():
            if base and parallelism != min(args.parallelism):
                report(f"speedup_p{parallelism}_vs_p{min(args.parallelism)}", f"{rate / base:.2f}")
    finally:
        admin.delete_topics([topic, empty, alerts])
        admin.close()
        clear_span(settings, start_ms)
        log("stopping the cluster ...")
        streampulse("cluster", "down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
