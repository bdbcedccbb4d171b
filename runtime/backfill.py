"""Backfill: a job's own SQL and Python stages over a past period of the lake, in Flink's batch mode.

    streampulse backfill trending|volume --from 2026-10-05T00:00 --to 2026-10-06 [--target-tables NAME]
    streampulse run trending -- --from ... --to ...          (the same, as a job's options)

A job reads its posts through `add_posts_by_minute`: from social.posts when it streams (social_posts_source.sql,
posts_lateness.sql), from the lake's Parquet files when given a period (lake_posts.sql, lake_minute_posts.sql,
only the period's dt/hour partitions). Both end in the same `posts_by_minute` view (posts_by_minute.sql) and the
same Python stage: no copy of the windowing, the counting or the scoring. In batch mode each keyed operator sees
its input sorted by key and its event-time timers fire, in time order, when the key's input ends: every minute
is complete before it closes, so nothing is late.

What a backfill writes: the job's PostgreSQL tables, upserted with the stream's keys (a backfill of a period
the stream covered, from where the stream started, rewrites the same rows), or, with --target-tables NAME, side
tables <table>_NAME made like the real ones, to compare before replacing anything. Never Kafka alerts, Redis
or the lake's keyword counts: those say what is happening now, or are append-only.

A backfill starts cold, as the stream did when it started: baselines and warm-up begin at --from.
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from runtime import clients
from runtime.flink import add_sql
from runtime.lake import Lake, default_path, lake_path
from shared.settings import Settings

log = logging.getLogger(__name__)
SUFFIX = re.compile(r"^[a-z][a-z0-9_]{0,29}$")


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)


def utc_time(value: str) -> datetime:
    """An argparse type: an ISO-8601 date or time, UTC unless it says otherwise."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected an ISO-8601 date or time such as 2026-10-05 or "
                                         "2026-10-05T14:30 (UTC unless it has an offset)") from None
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).astimezone(UTC)


def table_suffix(value: str) -> str:
    """An argparse type: the side tables' suffix."""
    if not SUFFIX.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r}: expected a name of lower-case letters, digits and _, "
                                         "starting with a letter, at most 30 characters (tables <table>_NAME)")
    return value


def arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("backfill", "read a past period from the lake in batch mode, not the topic")
    group.add_argument("--from", dest="backfill_from", type=utc_time, metavar="TIME",
                       help="the period's start (ISO-8601, UTC unless it has an offset), inclusive")
    group.add_argument("--to", dest="backfill_to", type=utc_time, metavar="TIME", help="the period's end, exclusive")
    group.add_argument("--target-tables", dest="target_tables", type=table_suffix, metavar="NAME",
                       help="write side tables <table>_NAME (made like the real ones) instead of the real tables")
    group.add_argument("--lake", type=lake_path, help="where the posts are: s3://bucket/prefix or file:///folder "
                       "(default: the archive's, s3://<minio.bucket>/posts)")


def period_of(args: argparse.Namespace) -> Period | None:
    """The period to backfill, or None when the job streams. Both ends or neither."""
    start, end = getattr(args, "backfill_from", None), getattr(args, "backfill_to", None)
    if start is None and end is None:
        if getattr(args, "target_tables", None) or getattr(args, "lake", None):
            raise SystemExit("--target-tables and --lake are backfill options: give --from and --to too")
        return None
    if start is None or end is None:
        raise SystemExit("a backfill needs both --from and --to (ISO-8601 times, UTC)")
    if start >= end:
        raise SystemExit(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
    if getattr(args, "bounded", False):
        raise SystemExit("--bounded reads the topic; a backfill (--from/--to) reads the lake: give one or the other")
    return Period(start, end)


def add_posts_by_minute(t_env, statement_set, settings: Settings, args: argparse.Namespace,
                        values: dict[str, object]) -> None:
    """The `posts_by_minute` view a job's Python stage reads: the topic, or the lake over the backfill's period."""
    period = period_of(args)
    if period is None:
        files = ("social_posts_source", "posts_lateness", "posts_by_minute")
    else:
        last = period.end - timedelta(milliseconds=1)
        path = getattr(args, "lake", None) or default_path(settings)
        files = lake_files(settings, path, period.start, last)
        if not files:
            raise SystemExit(f"the lake at {path} has no posts from {period.start.isoformat()} to "
                             f"{period.end.isoformat()}: nothing to backfill (the archive job writes the lake; is "
                             "--lake right?)")
        log.info("backfill of %s .. %s: %d files of the lake at %s", period.start.isoformat(),
                 period.end.isoformat(), len(files), path)
        values = values | {
            "path": path, "commit_delay": "1 h",
            "from_ts": period.start.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            "to_ts": period.end.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            "from_hour": period.start.strftime("%Y-%m-%d %H"), "to_hour": last.strftime("%Y-%m-%d %H")}
        files = ("lake_posts", "lake_minute_posts", "posts_by_minute")
    for name in files:
        add_sql(t_env, statement_set, name, **values)


def lake_files(settings: Settings, path: str, first: datetime, last: datetime) -> list[str]:
    """The lake's published files in the hour partitions from `first` to `last` (UTC)."""
    low, high = first.strftime("%Y-%m-%d %H"), last.strftime("%Y-%m-%d %H")
    found = []
    for info in Lake(settings, path).published_files():
        partition = dict(part.split("=", 1) for part in info.path.split("/") if "=" in part)
        if "dt" in partition and "hour" in partition and low <= f"{partition['dt']} {partition['hour']}" <= high:
            found.append(info.path)
    return found


def target_tables(settings: Settings, args: argparse.Namespace, tables: tuple[str, ...]) -> str:
    """The `${table_suffix}` of a job's PostgreSQL sinks: "" (the real tables), or "_NAME" for a backfill into side
    tables, which are made here (as the stack's admin) like the real ones — columns, defaults, keys — when missing,
    and emptied when present, so that they hold exactly the backfill's rows."""
    name = getattr(args, "target_tables", None)
    if not name:
        return ""
    from psycopg import sql

    writer, reader = settings.postgres.writer_user, settings.postgres.reader_user
    with clients.postgres(settings, "admin") as conn:
        for table in tables:
            side = sql.Identifier(f"{table}_{name}")
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                                 "INCLUDING INDEXES)").format(side, sql.Identifier(table)))
            conn.execute(sql.SQL("TRUNCATE {}").format(side))
            conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                side, sql.Identifier(writer)))
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(side, sql.Identifier(reader)))
    return f"_{name}"
