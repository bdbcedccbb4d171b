"""What removing deleted posts from the lake costs: `streampulse lake compact` (runtime/lake.py) over a lake of
seeded posts, in both of its modes, measured in one run.

    python -m bench.lake_compaction [--count 500000] [--deleted 0.01] [--files 240] [--seed 3]

The lake is written in the archive's layout (source=/dt=/hour= Parquet files of the lake's columns, Snappy) into a
temporary folder, `--files` files in all; then
1. a first compaction with `--deleted` of the posts in the deletion log: every file is new to the compaction, so
   its uids are looked up in PostgreSQL (the whole log);
2. more deletions, and a second compaction, the files aged two hours first (as between runs hours apart): every
   file was there before the first run, so it is checked against the deletions logged since, a set in memory.
Each prints posts read per second, files rewritten and whether the lake then holds exactly the posts not deleted.
Needs the local stack's PostgreSQL; removes its rows and folder afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.synthetic import SyntheticConfig, generate
from runtime import clients, lake
from shared.post import FIELDS, is_timestamp, parse_post
from shared.settings import load_settings


def report(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:,.1f} {unit}", flush=True)


def write_lake(root: Path, posts: list[dict], files: int) -> None:
    """The archive's layout: a file per (source, hour) slice, the hours' posts spread over `files` files."""
    columns = [name for name in FIELDS if name != "source"]
    slices: dict[tuple, list[dict]] = defaultdict(list)
    for post in posts:
        created = datetime.fromtimestamp(post["created_at"] / 1000, UTC)
        slices[post["source"], f"{created:%Y-%m-%d}", f"{created:%H}"].append(post)
    per_slice = max(1, files // len(slices))
    for (source, day, hour), rows in slices.items():
        folder = root / f"source={source}" / f"dt={day}" / f"hour={hour}"
        folder.mkdir(parents=True)
        for part in range(per_slice):
            chunk = rows[part::per_slice]
            table = pa.table({name: [row[name] for row in chunk] for name in columns})
            for name in columns:
                if is_timestamp(FIELDS[name]):
                    index = table.schema.get_field_index(name)
                    table = table.set_column(index, name, table.column(name).cast(pa.timestamp("ms", tz="UTC")))
            pq.write_table(table, folder / f"part-{uuid.uuid4()}-0-{part}", compression="snappy")


def log_deletions(settings, uids: list[str]) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    with (clients.postgres(settings, "writer") as conn, conn.cursor() as cursor,
          cursor.copy("COPY deletions (uid, source, deleted_at) FROM STDIN") as copy):
        for uid in uids:
            copy.write_row((uid, "synthetic", now))


def lake_uids(root: Path) -> set[str]:
    return {uid for path in root.rglob("part-*") for uid in pq.read_table(path, columns=["uid"]).column("uid")
            .to_pylist()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500_000)
    parser.add_argument("--deleted", type=float, default=0.01, help="share of the posts deleted before each run")
    parser.add_argument("--files", type=int, default=240)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    settings = load_settings()
    print(f"# python -m bench.lake_compaction --count {args.count} --deleted {args.deleted} --files {args.files} "
          f"--seed {args.seed}", flush=True)
    config = SyntheticConfig(seed=args.seed, count=args.count, duration_s=None, rate=50,
                             sources={"bluesky": 5, "reddit": 3, "mastodon": 2})
    run = uuid.uuid4().hex[:8]
    posts = []
    for event in generate(config):
        post = parse_post(event.payload).to_record()
        post["uid"] = f"bench-{run}-{post['uid']}"  # never a uid another run or test logged as deleted
        posts.append(post)
    root = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    path = root.as_uri()
    rng = random.Random(args.seed)
    first = rng.sample([p["uid"] for p in posts], int(len(posts) * args.deleted))
    rest = sorted({p["uid"] for p in posts} - set(first))
    second = rng.sample(rest, int(len(posts) * args.deleted))
    try:
        started = time.perf_counter()
        write_lake(root, posts, args.files)
        files = len(list(root.rglob("part-*")))
        print(f"[bench] lake of {len(posts):,} posts in {files} files written in "
              f"{time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
        for label, deleted, gone in (("first", first, set(first)), ("second", second, set(first) | set(second))):
            if label == "second":  # files as old as between two runs hours apart: older than the last run
                hours_ago = time.time() - 2 * 3600
                for part in root.rglob("part-*"):
                    os.utime(part, (hours_ago, hours_ago))
            log_deletions(settings, deleted)
            started = time.perf_counter()
            result = lake.compact(settings, path)
            seconds = time.perf_counter() - started
            mode = "whole log looked up in PostgreSQL" if label == "first" else "deletions since, in memory"
            print(f"[bench] {label} run ({mode}): {result.line()}", file=sys.stderr, flush=True)
            report(f"compaction_{label}_posts_read_per_s", len(posts) / seconds, "posts/s")
            report(f"compaction_{label}_seconds", seconds, "s")
            report(f"compaction_{label}_files_rewritten", result.files_rewritten, "files")
            exact = lake_uids(root) == {p["uid"] for p in posts} - gone and result.posts_removed == len(deleted)
            report(f"compaction_{label}_exact", 1.0 if exact else 0.0, "(1 = the lake holds exactly the rest)")
    finally:
        with clients.postgres(settings, "writer") as conn:
            conn.execute("DELETE FROM deletions WHERE uid LIKE %s", (f"bench-{run}-%",))
            conn.execute("DELETE FROM lake_compactions WHERE path = %s", (path,))
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
