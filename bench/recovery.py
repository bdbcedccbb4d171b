"""Recovery after kill -9 of the TaskManager that runs a job, at a steady input rate.

    python -m bench.recovery [--job archive|volume] [--rate 5000] [--seconds 100] [--kill-at 40]

Starts a cluster with two TaskManagers (`streampulse cluster up`, flink.taskmanagers = 2), submits JOB
with `flink run` on a fresh topic, feeds it with a synthetic producer at RATE posts/s in real time for
SECONDS, and KILL_AT seconds in kills (-9) the TaskManager running the job. Prints the time from the kill
to the job RUNNING again (every task running, the failure recorded) and to caught up (its Kafka source's
pendingRecords back under one second of input), beside the source's lag before the kill.
Needs the local stack (`streampulse stack up`); stops the cluster and removes its topics at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid

from runtime import clients
from shared.settings import PROJECT_ROOT, load_settings
from stack.cluster import Cluster


def report(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:,.1f} {unit}", flush=True)


def cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "stack.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise SystemExit(f"streampulse {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", choices=("archive", "volume"), default="archive")
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=100)
    parser.add_argument("--kill-at", type=float, default=40)
    args = parser.parse_args()
    os.environ["STREAMPULSE_FLINK__TASKMANAGERS"] = "2"
    settings = load_settings()
    run = uuid.uuid4().hex[:8]
    topic, side = f"bench.recovery.{run}", f"bench.recovery.side.{run}"
    from kafka.admin import NewTopic

    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(topic, 2, 1), NewTopic(side, 1, 1)])
    print(f"# python -m bench.recovery --job {args.job} --rate {args.rate:g} --seconds {args.seconds:g} "
          f"--kill-at {args.kill_at:g}", flush=True)
    print("# 2 cores; the producer, the JobManager and two TaskManagers share them", flush=True)
    cli("cluster", "up")
    cluster = Cluster(settings)
    producer = None
    try:
        job_args = ["--topic", topic, "--group-id", f"bench-{run}"]
        job_args += ([f"--path=s3://{settings.minio.bucket}/bench-recovery-{run}"] if args.job == "archive"
                     else ["--anomalies-topic", side, "--dlq-topic", side])
        job_id = cli("submit", args.job, "--", *job_args).strip().splitlines()[-1]

        while not cluster.running_job(job_id):
            time.sleep(0.5)
        producer = subprocess.Popen(
            [sys.executable, "-m", "stack.cli", "produce", "synthetic", "--rate", str(args.rate), "--duration",
             str(args.seconds), "--speed", "1", "--topic", topic, "--dlq-topic", side, "--no-progress",
             "--no-resume", "--cursor-name", f"bench-recovery-{run}"],
            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()

        def pending() -> float | None:
            vertices = cluster.request("GET", f"/jobs/{job_id}")["vertices"]
            source = next(v for v in vertices if v["name"].startswith("Source"))
            names = [m["id"] for m in cluster.request("GET", f"/jobs/{job_id}/vertices/{source['id']}/metrics")
                     if m["id"].endswith(".pendingRecords")]
            if not names:
                return None
            values = cluster.request("GET", f"/jobs/{job_id}/vertices/{source['id']}/metrics?get={names[0]}")
            return float(values[0]["value"]) if values else None

        before = []
        while time.monotonic() - started < args.kill_at:
            lag = pending()
            if lag is not None:
                before.append(lag)
            time.sleep(0.5)
        busy = [tm["id"] for tm in cluster.request("GET", "/taskmanagers")["taskmanagers"]
                if tm["freeSlots"] < tm["slotsNumber"]]
        os.kill(cluster.worker_pid(busy[0]), signal.SIGKILL)
        killed = time.monotonic()

        def restarted() -> bool:
            failures = cluster.request("GET", f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"]
            return bool(failures) and cluster.running_job(job_id) is not None

        while not restarted():
            time.sleep(0.2)
        back = time.monotonic() - killed
        # Caught up: the new source's backlog under one second of input, in two readings a second apart (the
        # REST API refreshes metrics every second: a single reading could still be the dead task's).
        caught_up, low_since = None, None
        while time.monotonic() - killed < 300:
            lag = pending()
            if lag is not None and lag <= args.rate:
                low_since = low_since or time.monotonic()
                if time.monotonic() - low_since >= 1:
                    caught_up = low_since - killed
                    break
            else:
                low_since = None
            time.sleep(0.25)
        report("input_rate", args.rate, "posts/s")
        report("lag_before_kill_median", statistics.median(before) if before else float("nan"), "records")
        report("kill_to_running", back, "s")
        report("kill_to_caught_up", caught_up if caught_up is not None else float("nan"), "s")
        cli("cancel", job_id)
    finally:
        if producer is not None:
            producer.terminate()
            producer.wait(60)
        cli("cluster", "down")
        admin.delete_topics([topic, side])
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
