"""The raw data lake (jobs/archive.py writes it): where it is, and its compaction, which removes deleted posts.

Layout: <path>/source=<source>/dt=<YYYY-MM-DD>/hour=<HH>/<part files>, Parquet, one row per post (uid first).
Flink writes part files under hidden names and publishes them whole on a checkpoint; a published file is never
touched again by Flink, so the compaction may rewrite it.

Compaction (`streampulse lake compact`): every published file is checked against the deletion log (the
PostgreSQL `deletions` table, written by jobs/deletions.py) and rewritten without the deleted posts, or removed
when none is left. A file published before the previous run started was checked then against every deletion
logged before that, so it is checked against the deletions logged since (a set in memory); a file published
after that run started is checked against the whole log (its uids looked up in PostgreSQL). A rewrite replaces
the file in one step (an object PUT on S3, a rename on a local disk): a reader sees the old file or the new one.
Each run is recorded in `lake_compactions`: a deletion logged before a run of a lake started is gone from that lake
once the run finished, and is still waiting while no run has started since.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlparse

from runtime import clients
from runtime.stop import StopFlag
from shared.settings import Settings

log = logging.getLogger(__name__)

# Clocks differ (MinIO's file times, PostgreSQL's now()): a file this close to the last run counts as new.
CLOCK_MARGIN = timedelta(minutes=10)


def default_path(settings: Settings) -> str:
    """The lake on MinIO when the stack's keys are known, else a folder under the state folder."""
    if settings.minio.access_key and settings.minio.secret_key:
        return f"s3://{settings.minio.bucket}/posts"
    return (settings.stack.state_path / "lake" / "posts").as_uri()


def lake_path(value: str) -> str:
    """An argparse type: where files go, s3://bucket/prefix or file:///absolute/folder."""
    if not value.startswith(("s3://", "file:///")):
        raise argparse.ArgumentTypeError(f"{value!r}: expected s3://bucket/prefix or file:///absolute/folder")
    return value


class Lake:
    """The lake's files at s3://bucket/prefix (MinIO) or file:///folder: listed and read with pyarrow, replaced
    and removed in one step each (on S3 through the MinIO client: pyarrow's S3 filesystem leaves an empty
    "folder/" object behind a file it deletes)."""

    def __init__(self, settings: Settings, path: str):
        from pyarrow import fs

        url = urlparse(path)
        self.settings, self.path, self.s3 = settings, path, url.scheme == "s3"
        if self.s3:
            minio = settings.minio
            if not (minio.access_key and minio.secret_key):
                raise ValueError(f"{path}: minio.access_key and minio.secret_key are not set "
                                 "(run `streampulse stack up`)")
            self.fs = fs.S3FileSystem(access_key=minio.access_key.get_secret_value(),
                                      secret_key=minio.secret_key.get_secret_value(), endpoint_override=minio.endpoint,
                                      scheme="http", region="us-east-1", allow_bucket_creation=False)
            self.root = f"{url.netloc}{url.path}".rstrip("/")
            self.minio = clients.minio(settings)
        elif url.scheme == "file":
            self.fs, self.root = fs.LocalFileSystem(), url.path.rstrip("/")
        else:
            raise ValueError(f"lake path {path!r}: expected s3://bucket/prefix or file:///absolute/folder")

    def published_files(self) -> list:
        """The published part files (FileInfo): Flink's in-progress files and _SUCCESS markers are hidden."""
        from pyarrow import fs

        try:
            infos = self.fs.get_file_info(fs.FileSelector(self.root, recursive=True, allow_not_found=True))
        except FileNotFoundError:
            return []
        return [info for info in infos if info.type == fs.FileType.File
                and not info.base_name.startswith((".", "_")) and "inprogress" not in info.base_name]

    def source_of(self, file_path: str) -> str:
        """The source= folder a file is in."""
        folders = file_path[len(self.root) + 1:].split("/")[:-1]
        return dict(part.split("=", 1) for part in folders if "=" in part).get("source", "")

    def read(self, file_path: str, columns: list[str] | None = None):
        import pyarrow.parquet as pq

        return pq.read_table(file_path, columns=columns, filesystem=self.fs)

    def replace(self, file_path: str, table) -> None:
        """The file's new content in one step: an object PUT on S3, a rename over it on a local disk."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, compression="snappy")
        data = buffer.getvalue().to_pybytes()
        if self.s3:
            bucket, key = file_path.split("/", 1)
            self.minio.put_object(bucket, key, io.BytesIO(data), len(data))
            return
        folder, name = os.path.split(file_path)
        staged = os.path.join(folder, f".compacting-{name}")  # hidden, as Flink's own in-progress files are
        with open(staged, "wb") as out:
            out.write(data)
        os.replace(staged, file_path)

    def remove(self, file_path: str) -> None:
        if self.s3:
            bucket, key = file_path.split("/", 1)
            self.minio.remove_object(bucket, key)
        else:
            os.remove(file_path)

    def rewrite_without(self, file_path: str, deleted: set[str]) -> int:
        """Rewrite one file without the rows whose uid is in `deleted` (remove it if none is left); how many went."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = self.read(file_path)
        gone = pc.is_in(table.column("uid"), value_set=pa.array(sorted(deleted), pa.string()))
        removed = pc.sum(gone).as_py() or 0
        if removed:
            kept = table.filter(pc.invert(gone))
            if kept.num_rows:
                self.replace(file_path, kept)
            else:
                self.remove(file_path)
            log.info("%s: %d deleted posts removed, %d kept", file_path, removed, kept.num_rows)
        return removed


@dataclass
class CompactionReport:
    path: str
    started_at: datetime
    finished_at: datetime | None = None
    files_read: int = 0
    files_rewritten: int = 0
    posts_removed: int = 0
    removed_by_source: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    pending_before: int = 0  # deletions logged and not yet applied when the run started
    oldest_pending_s: float | None = None

    def line(self) -> str:
        took = (self.finished_at - self.started_at).total_seconds() if self.finished_at else 0.0
        return (f"lake {self.path}: {self.files_read} files read, {self.files_rewritten} rewritten, "
                f"{self.posts_removed} deleted posts removed in {took:.1f} s "
                f"({self.pending_before} deletions were waiting)")


def _deleted_among(conn, uids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(uids), 50_000):
        found |= {row[0] for row in conn.execute("SELECT uid FROM deletions WHERE uid = ANY(%s)",
                                                 (uids[start:start + 50_000],))}
    return found


def compact(settings: Settings, path: str | None = None, *, progress=None) -> CompactionReport:
    """One compaction of the lake at `path` (default: the archive job's). See the module's docstring."""
    path = path or default_path(settings)
    lake = Lake(settings, path)
    with clients.postgres(settings, "writer") as conn:
        started = conn.execute("SELECT now() AT TIME ZONE 'UTC'").fetchone()[0]
        report = CompactionReport(path, started)
        last = conn.execute("SELECT max(started_at) FROM lake_compactions WHERE path = %s", (path,)).fetchone()[0]
        pending = conn.execute("SELECT count(*), min(received_at) FROM deletions WHERE received_at >= %s",
                               (last or datetime.min,)).fetchone()
        report.pending_before = pending[0]
        report.oldest_pending_s = (started - pending[1]).total_seconds() if pending[1] else None
        since = last - CLOCK_MARGIN if last else None
        recent: set[str] = set()
        if since is not None:
            recent = {row[0] for row in conn.execute("SELECT uid FROM deletions WHERE received_at >= %s", (since,))}
        files = lake.published_files()
        for number, info in enumerate(files, 1):
            uids = lake.read(info.path, ["uid"]).column("uid")
            report.files_read += 1
            if since is not None and info.mtime is not None and info.mtime.replace(tzinfo=None) < since:
                deleted = recent
            else:  # published since the last run (or no run yet): against the whole log
                deleted = _deleted_among(conn, uids.to_pylist())
            removed = lake.rewrite_without(info.path, deleted) if deleted and len(uids) else 0
            if removed:
                report.files_rewritten += 1
                report.posts_removed += removed
                report.removed_by_source[lake.source_of(info.path)] += removed
            if progress and (number % 100 == 0 or number == len(files)):
                progress(f"{number}/{len(files)} files read, {report.posts_removed} deleted posts removed")
        finished = conn.execute("SELECT now() AT TIME ZONE 'UTC'").fetchone()[0]
        report.finished_at = finished
        with conn.transaction():
            conn.execute("INSERT INTO lake_compactions (path, started_at, finished_at, files_read, files_rewritten, "
                         "posts_removed) VALUES (%s, %s, %s, %s, %s, %s)",
                         (path, started, finished, report.files_read, report.files_rewritten, report.posts_removed))
            # The log keeps what this run applied for the tables' retention (a post re-archived late, a trend
            # rewritten by a replay), and everything it did not apply yet.
            conn.execute("DELETE FROM deletions WHERE received_at < %s",
                         (min(started, finished - timedelta(days=settings.postgres.retention_days)),))
    return report


def say(line: str) -> None:
    print(f"[lake compact] {line}", file=sys.stderr, flush=True)


def compact_and_report(settings: Settings, path: str | None) -> CompactionReport:
    """One compaction with its progress, its figures and a bound it missed on the terminal (stderr)."""
    report = compact(settings, path, progress=say)
    say(report.line())
    if report.oldest_pending_s is not None and report.oldest_pending_s > settings.deletions.lake_within_s:
        say(f"WARNING: a deletion waited {_duration(report.oldest_pending_s)} for this run, more than "
            f"deletions.lake_within_s ({_duration(settings.deletions.lake_within_s)}): was compaction stopped?")
    return report


def compact_forever(settings: Settings, path: str | None, every_s: int, stop: StopFlag) -> None:
    """Compact every `every_s` seconds until `stop` is set (a run under way finishes first)."""
    while not stop.stopping:
        compact_and_report(settings, path)
        stop.sleep(every_s)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 7200 else f"{seconds / 60:.1f} min"
