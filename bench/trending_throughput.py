"""Sustained throughput of the trending job, beside the pure-SQL window count on the same input.

    python -m bench.trending_throughput [--count 200000] [--seed 3] [--parallelism 1 2]

One synthetic input (seeded, 2 partitions) is read, for each parallelism, by
- the whole trending job (`streampulse run trending --bounded`: keyword UDF, windows, scoring,
  Postgres, Redis and the transactional alerts sink, checkpoints every flink.checkpoint_interval_s);
- the pure-SQL window count (sql/flink/bench_window_count.sql: the same source and windows with
  keywords split in SQL, into a blackhole): the JVM upper bound.
Each is a fresh process. Its fixed cost (JVM and Python workers starting, job graph, final
checkpoint) is measured by the same run over an empty topic and subtracted, so the figure is
posts / (run − empty run). Needs the local stack (`streampulse stack up`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from shared import clients
from shared.settings import PROJECT_ROOT, load_settings

START = "2026-10-05T00:00:00Z"  # event time of the input: a day no test or demo writes


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(command: list[str], parallelism: int) -> float:
    env = os.environ | {"STREAMPULSE_FLINK__PARALLELISM": str(parallelism)}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def job_command(kind: str, topic: str, alerts: str) -> list[str]:
    group = f"bench-{uuid.uuid4().hex[:8]}"
    if kind == "trending":
        return [sys.executable, "-m", "shared.cli", "run", "trending", "--", "--bounded", "--topic", topic,
                "--alerts-topic", alerts, "--group-id", group]
    return [sys.executable, "-m", "bench.trending_throughput", "--window-count-job", topic, "--group-id", group]


def window_count_job(topic: str, group_id: str) -> int:
    """The pure-SQL window count, bounded, in this process."""
    from shared.flink import add_sql, interval, posts_source_values, table_env

    settings = load_settings()
    trending = settings.trending
    t_env = table_env(settings, "streampulse-bench-window-count", extra={"table.local-time-zone": "UTC"})
    values = {**posts_source_values(settings, topic=topic, group_id=group_id, bounded=True,
                                    watermark_s=trending.watermark_s),
              # Periodic watermarks, as an unbounded job has: a watermark per event (what bounded jobs use to
              # make lateness reproducible) costs the window operators a timer check per record, several
              # times the whole count on RocksDB (measured 397 s against 78 s for 20,000 posts).
              "bounded_option": "'scan.bounded.mode' = 'latest-offset',",
              "tumble": interval(trending.tumble_s), "hop_size": interval(trending.hop_size_s),
              "hop_slide": interval(trending.hop_slide_s)}
    statements = t_env.create_statement_set()
    for name in ("social_posts_source", "bench_window_count"):
        add_sql(t_env, statements, name, **values)
    statements.execute().wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000, help="posts in the input (default 200000)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--window-count-job", metavar="TOPIC", help=argparse.SUPPRESS)
    parser.add_argument("--group-id", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.window_count_job:
        return window_count_job(args.window_count_job, args.group_id)

    from kafka.admin import NewTopic

    settings = load_settings()
    suffix = uuid.uuid4().hex[:8]
    topic, empty, alerts = f"bench.posts.{suffix}", f"bench.empty.{suffix}", f"bench.alerts.{suffix}"
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(topic, 2, 1), NewTopic(empty, 2, 1), NewTopic(alerts, 1, 1)])
    print(f"command: python -m bench.trending_throughput --count {args.count} --seed {args.seed} "
          f"--parallelism {' '.join(map(str, args.parallelism))}")
    print(f"checkpoints: every {settings.flink.checkpoint_interval_s:g} s, exactly-once; state backend "
          f"{settings.flink.state_backend}; machine: {os.cpu_count()} cores")
    try:
        log(f"producing {args.count:,} synthetic posts into {topic} ...")
        subprocess.run([sys.executable, "-m", "shared.cli", "produce", "synthetic", "--count", str(args.count),
                        "--rate", "1000", "--seed", str(args.seed), "--start", START, "--topic", topic,
                        "--dlq-topic", alerts, "--no-resume", "--no-progress", "--cursor-name", f"bench-{suffix}"],
                       cwd=PROJECT_ROOT, check=True, stderr=subprocess.DEVNULL)
        print(f"input: {args.count:,} posts, seed {args.seed}, 1,000 posts/s of event time from {START}, "
              f"2 partitions")
        for parallelism in args.parallelism:
            rates = {}
            for kind in ("sql_window_count", "trending"):
                log(f"parallelism {parallelism}: {kind} over the empty topic, then over the input ...")
                fixed = timed(job_command(kind, empty, alerts), parallelism)
                total = timed(job_command(kind, topic, alerts), parallelism)
                rates[kind] = args.count / max(total - fixed, 1e-9)
                print(f"p{parallelism}_{kind}: {rates[kind]:,.0f} posts/s "
                      f"(run {total:.1f} s − fixed {fixed:.1f} s)", flush=True)
            print(f"p{parallelism}_trending_vs_sql: {rates['trending'] / rates['sql_window_count']:.2f}", flush=True)
    finally:
        admin.delete_topics([topic, empty, alerts])
        admin.close()
        start = datetime.fromisoformat(START).astimezone(UTC).replace(tzinfo=None)
        with clients.postgres(settings, "writer") as conn:  # leave the dashboards' tables as they were
            for table in ("keyword_window_counts", "window_posts", "trends", "late_posts"):
                conn.execute(f"DELETE FROM {table} WHERE window_start >= %s AND window_start < %s",
                             (start - timedelta(hours=1), start + timedelta(days=1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
