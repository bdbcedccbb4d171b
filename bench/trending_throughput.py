"""The trending job's throughput beside the pure-SQL ceiling and the Python peers, in one run, on one input.

    python -m bench.trending_throughput [--count 300000] [--rate 30] [--seed 3] [--only NAME ...]
                                        [--sql-timeout 900]

One seeded synthetic input (4 partitions like social.posts; `--rate` posts per second of event time, 30
by default: the live Bluesky firehose's rate, so that the input spans hours of windows as real traffic
does) is read, each contender a fresh process, by:
- `trending`: the whole trending job with its default settings (`streampulse run trending -- --bounded`:
  RocksDB, exactly-once checkpoints, Postgres, Redis, the transactional alerts topic and the lake; each
  trend's mood, from the sentiment of every English post);
- `trending_no_sentiment`: the same job with `trending.sentiment: false`: what the mood costs;
- `sql_count_distinct`, `sql_count_star`: the pure-SQL window count (sql/flink/bench_window_count.sql:
  the same source and windows, keywords split in SQL, into a blackhole) with COUNT(DISTINCT) — exact
  posts and authors, what the previous trending job did — and with COUNT(*), the cheapest SQL windows;
- `bytewax`, `quix`: the same windows in Bytewax and in Quix Streams (bench/peers/, own venvs).

Every contender also runs over an empty topic of the same shape: its fixed cost (start-up, planning, the
last checkpoint), subtracted in `posts/s` and kept in `raw posts/s`. Peak RSS is the sum over the process
and its children (the PyFlink client and its JVM), sampled every 0.2 s. Each output is checked against
the batch oracle (tests/oracle.py): the job's lake of minute counts and its trends, the peers' CSVs; a
contender that is fast but wrong is reported with its exactness. Needs the local stack.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import process_tree
from runtime import clients
from shared.settings import PROJECT_ROOT, load_settings

START = "2026-10-05T00:00:00Z"  # event time of the input: a day no test or demo writes
CONTENDERS = ("trending", "trending_no_sentiment", "sql_count_star", "sql_count_distinct", "bytewax", "quix")
# The job run with one setting changed: what that part of it costs, measured in the same run.
VARIANTS = {"trending_no_sentiment": {"STREAMPULSE_TRENDING__SENTIMENT": "false"}}
# Bursts in the input so that the job's trend path (ranking, Redis, alerts) runs too.
BURSTS = ["election:3600:600:6", "#aurora:7200:900:8:120:2"]


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def report(name: str, value, unit: str = "") -> None:
    print(f"{name}: {value}{' ' + unit if unit else ''}", flush=True)


@dataclass
class Run:
    seconds: float
    peak_rss: int  # bytes, the process tree's sum
    finished: bool  # False when killed at the timeout


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and every descendant, from /proc."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total


def measured(command: list[str], *, env: dict | None = None, timeout_s: float | None = None) -> Run:
    """Run `command` to the end (or `timeout_s`), timing it and sampling its process tree's RSS."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors,
                                   start_new_session=True)
        peak, done = 0, threading.Event()

        def sample():
            nonlocal peak
            while not done.wait(0.2):
                peak = max(peak, _tree_rss(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            process.wait(timeout=timeout_s)
            finished = True
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
            finished = False
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        if finished and process.returncode != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"{' '.join(command)} failed (exit {process.returncode}):\n{tail}")
        return Run(elapsed, peak, finished)


def window_count_job(topic: str, group_id: str, aggregate: str) -> int:
    """The pure-SQL window count, bounded, in this process (`--window-count-job`)."""
    from runtime.flink import add_sql, interval, kafka_source, posts_source_values, table_env

    settings = load_settings()
    trending = settings.trending
    t_env = table_env(settings, "streampulse-bench-window-count", extra={"table.local-time-zone": "UTC"})
    counts = {"count_distinct": ("COUNT(DISTINCT uid)", "COUNT(DISTINCT author_id)"),
              "count_star": ("COUNT(*)", "COUNT(*)")}[aggregate]
    values = {**posts_source_values(settings, topic=topic, group_id=group_id, bounded=True,
                                    watermark_s=trending.watermark_s),
              # Periodic watermarks, as an unbounded job has: the SQL windows pay a timer check per record for
              # a watermark per event (measured 397 s against 78 s for 20,000 posts). The trending job keeps its
              # bounded default (a watermark per event, reproducible lateness): the comparison favours the SQL.
              "kafka_source": kafka_source(settings, topic=topic, group_id=group_id, bounded=True),
              "tumble": interval(trending.tumble_s), "hop_size": interval(trending.hop_size_s),
              "hop_slide": interval(trending.hop_slide_s), "posts_agg": counts[0], "authors_agg": counts[1]}
    statements = t_env.create_statement_set()
    for name in ("social_posts_avro", "bench_window_count"):
        add_sql(t_env, statements, name, **values)
    statements.execute().wait()
    return 0


def command_for(name: str, topic: str, alerts: str, lake: str, out: Path, settings) -> list[str]:
    group = f"bench-{uuid.uuid4().hex[:8]}"
    if name.startswith("trending"):
        return [sys.executable, "-m", "stack.cli", "run", "trending", "--", "--bounded", "--topic", topic,
                "--alerts-topic", alerts, "--group-id", group, "--counts-path", f"s3://{settings.minio.bucket}/{lake}"]
    if name.startswith("sql_"):
        return [sys.executable, "-m", "bench.trending_throughput", "--window-count-job", topic, "--group-id", group,
                "--aggregate", name.removeprefix("sql_")]
    from bench.peers import peer_command

    return peer_command(name, settings.kafka.bootstrap, topic, out, group)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300_000, help="posts in the input (default 300000)")
    parser.add_argument("--rate", type=float, default=30.0, help="posts per second of event time (default 30)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS), metavar="NAME",
                        help=f"contenders to run (default: all of {', '.join(CONTENDERS)})")
    parser.add_argument("--sql-timeout", type=float, default=900,
                        help="stop a pure-SQL run after this many seconds and report a bound (default 900)")
    parser.add_argument("--window-count-job", metavar="TOPIC", help=argparse.SUPPRESS)
    parser.add_argument("--group-id", help=argparse.SUPPRESS)
    parser.add_argument("--aggregate", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.window_count_job:
        return window_count_job(args.window_count_job, args.group_id, args.aggregate)

    from bench.peers import check, ensure_venv, peer_environment
    from tests.integration.sinks import remove_lake

    settings = load_settings()
    admin, suffix, topic, empty, alerts, lake = scratch_topics(settings)
    report("command", f"python -m bench.trending_throughput --count {args.count} --rate {args.rate:g} "
                      f"--seed {args.seed} --only {' '.join(args.only)}")
    report("settings", f"parallelism {settings.flink.parallelism}, state backend {settings.flink.state_backend}, "
                       f"checkpoints every {settings.flink.checkpoint_interval_s:g} s exactly-once, "
                       f"python {settings.flink.python_execution_mode} mode; machine {os.cpu_count()} cores")
    start_ms = start_of_input()
    rates: dict[str, float] = {}
    clear_span(settings, start_ms)
    try:
        for peer in ("bytewax", "quix"):
            if peer in args.only:
                ensure_venv(peer)
        posts = produce_input(settings, topic, alerts, args.count, args.rate, args.seed, suffix)
        last_ms = max(p["created_at"] for p in posts)
        for name in args.only:
            with tempfile.TemporaryDirectory() as scratch:
                out = Path(scratch) / f"{name}.csv"
                login = peer_environment(*settings.kafka.credentials("admin"))  # the peers' SCRAM login
                env = os.environ | {"PYTHONPATH": str(PROJECT_ROOT)} | login | VARIANTS.get(name, {})
                clear_span(settings, start_ms)  # each run of the job writes the same rows afresh
                timeout = args.sql_timeout if name.startswith("sql_") else None
                log(f"{name}: over the empty topic, then over the input ...")
                fixed = measured(command_for(name, empty, alerts, f"{lake}-{name}-empty", out, settings), env=env)
                run = measured(command_for(name, topic, alerts, f"{lake}-{name}", out, settings), env=env,
                               timeout_s=timeout)
                if not run.finished:
                    report(f"{name}_posts_per_s", f"< {len(posts) / (run.seconds - fixed.seconds):,.0f}",
                           f"posts/s (not finished after {run.seconds:.0f} s)")
                    continue
                rates[name] = len(posts) / max(run.seconds - fixed.seconds, 1e-9)
                report(f"{name}_posts_per_s", f"{rates[name]:,.0f}",
                       f"posts/s (run {run.seconds:.1f} s − fixed {fixed.seconds:.1f} s)")
                report(f"{name}_raw_posts_per_s", f"{len(posts) / run.seconds:,.0f}", "posts/s (start-up included)")
                report(f"{name}_peak_rss", f"{run.peak_rss / 2**20:,.0f}", "MiB")
                if name.startswith("trending"):
                    report_exactness(name, settings, f"{lake}-{name}", posts)
                    rows = postgres_rows(settings, start_ms, last_ms)
                    report(f"{name}_postgres_rows", f"{rows:,}", f"rows ({rows / len(posts):.3f} per post)")
                elif not name.startswith("sql_"):
                    exact, total = check(out, posts)
                    report(f"{name}_exact_windows", f"{exact:,}/{total:,}")
        for name in ("trending_no_sentiment", "sql_count_star", "sql_count_distinct", "bytewax", "quix"):
            if "trending" in rates and name in rates:
                report(f"trending_vs_{name}", f"{rates['trending'] / rates[name]:.2f}")
    finally:
        admin.delete_topics([topic, empty, alerts])
        admin.close()
        for name in args.only:
            remove_lake(settings, f"{lake}-{name}")
            remove_lake(settings, f"{lake}-{name}-empty")
        clear_span(settings, start_ms)  # leave the dashboards' tables as they were
    return 0


def scratch_topics(settings):
    """A run's own topics — the input and an empty one of the same shape (4 partitions, like social.posts),
    and one for alerts and dead letters — and lake prefix: (admin client, suffix, input, empty, alerts, lake)."""
    from kafka.admin import NewTopic

    suffix = uuid.uuid4().hex[:8]
    topic, empty, alerts = f"bench.posts.{suffix}", f"bench.empty.{suffix}", f"bench.alerts.{suffix}"
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(topic, 4, 1), NewTopic(empty, 4, 1), NewTopic(alerts, 1, 1)])
    return admin, suffix, topic, empty, alerts, f"bench-{suffix}/keyword_counts"


def produce_input(settings, topic: str, dlq_topic: str, count: int, rate: float, seed: int, suffix: str
                  ) -> list[dict]:
    """The seeded synthetic input (BURSTS, from START) into `topic`, reported; returns its posts as read back."""
    from bench.peers import read_posts

    log(f"producing {count:,} synthetic posts into {topic} ...")
    subprocess.run([sys.executable, "-m", "stack.cli", "produce", "synthetic", "--count", str(count),
                    "--rate", str(rate), "--seed", str(seed), "--start", START, "--topic", topic,
                    *[x for burst in BURSTS for x in ("--burst", burst)], "--dlq-topic", dlq_topic, "--no-resume",
                    "--no-progress", "--cursor-name", f"bench-{suffix}",
                    # schemaless Avro: what Flink's plain `avro` format (the SQL ceiling) and the peers read
                    "--encoding", "legacy"],
                   cwd=PROJECT_ROOT, check=True, stderr=subprocess.DEVNULL)
    posts = read_posts(settings.kafka.bootstrap, topic, settings.kafka.client_options("admin"))
    start_ms, last_ms = start_of_input(), max(p["created_at"] for p in posts)
    report("input", f"{len(posts):,} posts, seed {seed}, {rate:g} posts/s of event time from {START} "
                    f"({(last_ms - start_ms) / 3_600_000:.1f} h), bursts {' '.join(BURSTS)}, 4 partitions")
    return posts


def start_of_input() -> int:
    return int(datetime.fromisoformat(START).astimezone(UTC).timestamp() * 1000)


def report_exactness(name: str, settings, lake: str, posts: list[dict]) -> None:
    """A trending run's minute counts (in the lake under `lake`) and trends against the oracle's."""
    from tests.integration.sinks import minute_counts, read_keyword_counts, stored_trends
    from tests.oracle import expected_trends

    start_ms, last_ms = start_of_input(), max(p["created_at"] for p in posts)
    counts = read_keyword_counts(settings, lake, start_ms, last_ms)
    expected = minute_counts(posts)
    exact = sum(1 for key, value in expected.items() if counts.get(key) == value)
    exact -= sum(1 for key in counts if key not in expected)
    report(f"{name}_exact_minute_counts", f"{exact:,}/{len(expected):,}")
    oracle = expected_trends(posts, settings.trending, last_ms + settings.trending.hop_size_s * 1000)
    trends = stored_trends(settings, start_ms, last_ms + settings.trending.hop_size_s * 1000)
    report(f"{name}_exact_trends", f"{'yes' if trends == oracle else 'NO'} ({len(trends)} stored, "
                                   f"{len(oracle)} in the oracle)")


TABLES = ("keyword_window_counts", "window_posts", "trends", "late_posts")


def clear_span(settings, start_ms: int) -> None:
    """Remove the trending job's rows from the input's day (and the hour before), before and after a run."""
    from tests.integration.sinks import as_utc

    with clients.postgres(settings, "writer") as conn:
        for table in TABLES:
            conn.execute(f"DELETE FROM {table} WHERE window_start >= %s AND window_start <= %s",
                         (as_utc(start_ms - 3_600_000), as_utc(start_ms + 86_400_000)))


def postgres_rows(settings, first_ms: int, last_ms: int) -> int:
    """Rows the trending job wrote to PostgreSQL for the input's span (upserts: each row once)."""
    from tests.integration.sinks import as_utc

    span = (as_utc(first_ms - 3_600_000), as_utc(last_ms + 3_600_000))
    with clients.postgres(settings, "reader") as conn:
        return sum(conn.execute(f"SELECT count(*) FROM {table} WHERE window_start >= %s AND window_start <= %s",
                                span).fetchone()[0]
                   for table in TABLES)


if __name__ == "__main__":
    sys.exit(main())
