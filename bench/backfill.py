"""The trending job's backfill (batch mode, from the lake's Parquet) beside the same job streaming (from Kafka),
on the same posts, in one run.

    python -m bench.backfill [--count 300000] [--rate 30] [--seed 3]

One seeded synthetic input (bench/trending_throughput.py's: 4 partitions, bursts) is archived to a lake prefix
of its own (the archive job), then:
- `stream`: the whole trending job with its default settings over the topic (`streampulse run trending --
  --bounded`), its fixed cost measured over an empty topic of the same shape;
- `backfill`: `streampulse backfill trending` over the input's whole period into side tables, its fixed cost
  measured by a backfill of the input's first minute.
Both print posts/s without and with the fixed cost, and peak RSS. Exactness: every row the backfill wrote
(trends, keyword_window_counts, window_posts) against the stream's, and the stream's trends against the batch
oracle (tests/oracle.py). Needs the local stack.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from bench.trending_throughput import (
    clear_span,
    log,
    measured,
    produce_input,
    report,
    report_exactness,
    scratch_topics,
    start_of_input,
)
from runtime import clients
from shared.settings import PROJECT_ROOT, load_settings

SIDE = "bench"  # side tables <table>_bench
COMPARED = {"trends": "window_end", "keyword_window_counts": "window_end", "window_posts": "window_end"}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def streampulse(*args: str) -> list[str]:
    return [sys.executable, "-m", "stack.cli", *args]


def same_rows(settings, first_ms: int, last_ms: int) -> tuple[int, int]:
    """(rows equal in the side tables and the stream's, rows in either) over the input's span."""
    from tests.integration.sinks import as_utc

    span = (as_utc(first_ms), as_utc(last_ms + 3_600_000))
    equal = total = 0
    with clients.postgres(settings, "reader") as conn:
        for table, column in COMPARED.items():
            query = f"SELECT * FROM {{}} WHERE {column} > %s AND {column} <= %s"
            streamed = set(conn.execute(query.format(table), span).fetchall())
            backfilled = set(conn.execute(query.format(f"{table}_{SIDE}"), span).fetchall())
            equal += len(streamed & backfilled)
            total += len(streamed | backfilled)
            if streamed != backfilled:
                log(f"{table}: only streamed {sorted(streamed - backfilled)[:6]}; "
                    f"only backfilled {sorted(backfilled - streamed)[:6]}")
    return equal, total


def report_rows_exactness(name: str, settings, posts: list[dict], suffix: str) -> None:
    """The keyword rows and trends in PostgreSQL (the real tables, or the side tables) against the oracle's."""
    from tests.integration.sinks import keyword_rows, stored_trends
    from tests.oracle import expected_keyword_rows, expected_trends

    first_ms, last_ms = min(p["created_at"] for p in posts), max(p["created_at"] for p in posts)
    end_ms = last_ms + settings.trending.hop_size_s * 1000 + 60_000
    stored, expected = keyword_rows(settings, first_ms, end_ms, f"keyword_window_counts{suffix}"), \
        expected_keyword_rows(posts, settings.trending)
    report(f"{name}_exact_keyword_rows", f"{len(set(stored.items()) & set(expected.items())):,}/{len(expected):,}",
           f"({len(stored):,} stored)")
    trends, oracle = stored_trends(settings, first_ms, end_ms, f"trends{suffix}"), \
        expected_trends(posts, settings.trending, end_ms)
    report(f"{name}_exact_trends", f"{len(set(trends) & set(oracle))}/{len(oracle)}", f"({len(trends)} stored)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300_000, help="posts in the input (default 300000)")
    parser.add_argument("--rate", type=float, default=30.0, help="posts per second of event time (default 30)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)

    from tests.integration.sinks import remove_lake

    settings = load_settings()
    admin, suffix, topic, empty, alerts, counts = scratch_topics(settings)
    posts_prefix = f"bench-{suffix}/posts"
    lake = f"s3://{settings.minio.bucket}/{posts_prefix}"
    report("command", f"python -m bench.backfill --count {args.count} --rate {args.rate:g} --seed {args.seed}")
    report("settings", f"parallelism {settings.flink.parallelism}, state backend {settings.flink.state_backend}, "
                       f"machine {os.cpu_count()} cores")
    start_ms = start_of_input()
    env = os.environ | {"PYTHONPATH": str(PROJECT_ROOT)}
    clear_span(settings, start_ms)
    try:
        posts = produce_input(settings, topic, alerts, args.count, args.rate, args.seed, suffix)
        first_ms, last_ms = min(p["created_at"] for p in posts), max(p["created_at"] for p in posts)
        log("archiving the input into the lake ...")
        archived = measured(streampulse("run", "archive", "--", "--bounded", "--topic", topic, "--group-id",
                                        f"bench-archive-{suffix}", "--path", lake), env=env)
        report("archive_seconds", f"{archived.seconds:.1f}", "s")

        log("stream: over the empty topic, then over the input ...")
        stream = [streampulse("run", "trending", "--", "--bounded", "--topic", name, "--alerts-topic", alerts,
                              "--group-id", f"bench-{name}", "--counts-path",
                              f"s3://{settings.minio.bucket}/{counts}-{kind}")
                  for name, kind in ((empty, "empty"), (topic, "input"))]
        fixed, run = measured(stream[0], env=env), measured(stream[1], env=env)
        rates = {"stream": len(posts) / (run.seconds - fixed.seconds)}
        report("stream_posts_per_s", f"{rates['stream']:,.0f}",
               f"posts/s (run {run.seconds:.1f} s − fixed {fixed.seconds:.1f} s)")
        report("stream_raw_posts_per_s", f"{len(posts) / run.seconds:,.0f}", "posts/s (start-up included)")
        report("stream_peak_rss", f"{run.peak_rss / 2**20:,.0f}", "MiB")
        report_exactness("stream", settings, f"{counts}-input", posts)

        log("backfill: the input's first minute, then its whole period ...")
        period = ("--lake", lake, "--target-tables", SIDE, "--from", iso(first_ms))
        first_minute = sum(1 for p in posts if p["created_at"] < first_ms + 60_000)
        fixed = measured(streampulse("backfill", "trending", *period, "--to", iso(first_ms + 60_000)), env=env)
        run = measured(streampulse("backfill", "trending", *period, "--to", iso(last_ms + 1)), env=env)
        rates["backfill"] = (len(posts) - first_minute) / (run.seconds - fixed.seconds)
        report("backfill_posts_per_s", f"{rates['backfill']:,.0f}",
               f"posts/s (run {run.seconds:.1f} s − first minute {fixed.seconds:.1f} s)")
        report("backfill_raw_posts_per_s", f"{len(posts) / run.seconds:,.0f}", "posts/s (start-up included)")
        report("backfill_peak_rss", f"{run.peak_rss / 2**20:,.0f}", "MiB")
        for name, suffix in (("stream", ""), ("backfill", f"_{SIDE}")):
            report_rows_exactness(name, settings, posts, suffix)
        equal, total = same_rows(settings, first_ms, last_ms)
        report("backfill_rows_equal_to_stream", f"{equal:,}/{total:,}")
        report("backfill_vs_stream", f"{rates['backfill'] / rates['stream']:.2f}")
    finally:
        admin.delete_topics([topic, empty, alerts])
        admin.close()
        for prefix in (posts_prefix, f"{counts}-empty", f"{counts}-input"):
            remove_lake(settings, prefix)
        clear_span(settings, start_ms)
        with clients.postgres(settings, "admin") as conn:
            for table in (*COMPARED, "late_posts"):
                conn.execute(f"DROP TABLE IF EXISTS {table}_{SIDE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
