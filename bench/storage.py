"""Bytes stored per million posts in each store, after the whole pipeline ran over one seeded input.

    python -m bench.storage [--count 100000] [--rate 30] [--seed 5]

One synthetic input (`--rate` posts per second of event time, on a day nobody else writes) goes into a fresh
4-partition topic; the archive, trending and volume jobs run over it bounded, as `streampulse run` runs them.
Then each store is measured where the bytes are:
- Kafka: the topic's partition folders on the broker's disk (log segments and their indexes, as allocated);
- MinIO: the objects of the raw-posts lake (Parquet, jobs/archive.py) and of the keyword minute counts
  (jobs/trending.py);
- PostgreSQL: pg_total_relation_size (heap, TOAST, indexes) of the input day's partition of every table the
  jobs write (sql/migrations/0010_partitions_by_day.sql), which holds nothing but this run's rows;
- Redis: MEMORY USAGE of the trend keys, bounded by trending.top_n and redis_ttl_s rather than by posts.
Figures are scaled to a million posts; what retention keeps is that times the posts of the retention period
(kafka.retention_hours, minio.retention_days, postgres.retention_days). Needs the local stack; it removes its
topic, objects and partitions afterwards.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from runtime import clients
from shared.names import REDIS_CURRENT, REDIS_KEYWORD, TIME_SERIES_TABLES
from shared.settings import PROJECT_ROOT, load_settings

START = "2026-09-14T00:00:00Z"  # event time of the input: a day no test, demo or other benchmark writes
TABLES = TIME_SERIES_TABLES


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def report(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:,.0f} {unit}", flush=True)


def run_job(job: str, *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "stack.cli", "run", job, "--", "--bounded", *args],
                            cwd=PROJECT_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the {job} job failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def kafka_bytes(settings, topic: str) -> int:
    """Blocks allocated on disk: Kafka preallocates each segment's index files at 10 MB (sparse), which their
    length would count."""
    data = settings.stack.state_path / "kafka" / "data"
    return sum(f.stat().st_blocks * 512 for folder in data.glob(f"{topic}-*") for f in folder.rglob("*") if f.is_file())


def lake_bytes(settings, prefix: str) -> int:
    client = clients.minio(settings)
    return sum(o.size for o in client.list_objects(settings.minio.bucket, prefix=prefix, recursive=True))


def postgres_bytes(settings, days: list[date]) -> dict[str, int]:
    with clients.postgres(settings, "admin") as conn:
        return {table: sum(conn.execute("SELECT coalesce(pg_total_relation_size(to_regclass(%s)), 0)",
                                        (f"public.{table}_{day:%Y%m%d}",)).fetchone()[0] for day in days)
                for table in TABLES}


def redis_bytes(settings) -> int:
    redis = clients.redis(settings)
    keys = [REDIS_CURRENT, REDIS_CURRENT + ":meta", *redis.scan_iter(REDIS_KEYWORD + "*")]
    return sum(redis.memory_usage(key) or 0 for key in keys)


def drop_partitions(settings, days: list[date]) -> None:
    with clients.postgres(settings, "admin") as conn:
        for table in TABLES:
            for day in days:
                name = f"{table}_{day:%Y%m%d}"
                if conn.execute("SELECT to_regclass(%s)", (f"public.{name}",)).fetchone()[0] is not None:
                    conn.execute(f'ALTER TABLE {table} DETACH PARTITION "{name}"')
                    conn.execute(f'DROP TABLE "{name}"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="posts in the input (default 100000)")
    parser.add_argument("--rate", type=float, default=30.0, help="posts per second of event time (default 30)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)

    from kafka.admin import NewTopic

    from stack.manager import maintain_partitions
    from tests.integration.sinks import remove_lake

    settings = load_settings()
    suffix = uuid.uuid4().hex[:8]
    topic, dlq = f"bench.posts.{suffix}", f"bench.dlq.{suffix}"
    posts_prefix, counts_prefix = f"bench-{suffix}/posts", f"bench-{suffix}/keyword_counts"
    start = datetime.fromisoformat(START).astimezone(UTC)
    span_days = args.count / args.rate / 86_400
    days = [start.date() + timedelta(days=n) for n in range(-1, int(span_days) + 2)]
    print(f"# python -m bench.storage --count {args.count} --rate {args.rate:g} --seed {args.seed}", flush=True)
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(topic, 4, 1), NewTopic(dlq, 1, 1)])
    drop_partitions(settings, days)
    # The input's days as partitions of their own (maintenance "on" its first day), so that their sizes are
    # this run's rows alone.
    maintain_partitions(settings, today=start.date())
    try:
        log(f"producing {args.count:,} synthetic posts into {topic} ...")
        subprocess.run([sys.executable, "-m", "stack.cli", "produce", "synthetic", "--count", str(args.count),
                        "--rate", str(args.rate), "--seed", str(args.seed), "--start", START, "--topic", topic,
                        "--dlq-topic", dlq, "--no-resume", "--no-progress", "--cursor-name", f"bench-{suffix}"],
                       cwd=PROJECT_ROOT, check=True, stderr=subprocess.DEVNULL)
        for job, job_args in (
                ("archive", ["--topic", topic, "--group-id", f"bench-archive-{suffix}", "--commit-delay-s", "0",
                             "--path", f"s3://{settings.minio.bucket}/{posts_prefix}"]),
                ("trending", ["--topic", topic, "--alerts-topic", dlq, "--group-id", f"bench-trending-{suffix}",
                              "--counts-path", f"s3://{settings.minio.bucket}/{counts_prefix}"]),
                ("volume", ["--topic", topic, "--anomalies-topic", dlq, "--dlq-topic", dlq, "--group-id",
                            f"bench-volume-{suffix}"])):
            log(f"{job} job over the input ...")
            log(f"{job}: {run_job(job, *job_args):.0f} s")
        per_million = 1_000_000 / args.count
        stores = {"kafka_social_posts": kafka_bytes(settings, topic),
                  "minio_raw_posts": lake_bytes(settings, posts_prefix + "/"),
                  "minio_keyword_counts": lake_bytes(settings, counts_prefix + "/")}
        stores |= {f"postgres_{table}": size for table, size in postgres_bytes(settings, days).items()}
        for name, size in stores.items():
            report(f"{name}_bytes_per_million_posts", size * per_million, "bytes")
        report("postgres_total_bytes_per_million_posts",
               sum(v for k, v in stores.items() if k.startswith("postgres_")) * per_million, "bytes")
        report("redis_trend_keys_bytes", redis_bytes(settings), "bytes (bounded by top_n and redis_ttl_s)")
    finally:
        admin.delete_topics([topic, dlq])
        admin.close()
        remove_lake(settings, f"bench-{suffix}")
        drop_partitions(settings, days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
