"""Archive job: every valid post from social.posts into the raw data lake as Parquet.

    social.posts (Avro) ─► filesystem sink, Parquet, partitioned source=/dt=/hour= (event time, UTC)
                           on s3://<minio.bucket>/posts, or a local folder when no MinIO is configured

Pure Flink SQL (sql/flink/archive.sql). Part files commit on checkpoints, so what the lake holds is
exactly what the checkpoints covered: no duplicate after a restart, no half-written file; a post that a
producer re-sent is archived once (the first copy per uid).

    streampulse run archive -- [--bounded] [--topic social.posts] [--path s3://bucket/posts | file:///dir]
    flink run -py jobs/archive.py -- [same options]
"""

from __future__ import annotations

import argparse
import logging
import sys

if __package__ in (None, ""):  # `flink run -py jobs/archive.py`: make the project importable
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from shared.flink import add_sql, posts_source_values, stream_env
from shared.settings import Settings, load_settings

log = logging.getLogger(__name__)

DEDUPE_TTL_S = 86_400


def default_path(settings: Settings) -> str:
    """The lake on MinIO when the stack's keys are known, else a folder under the state folder."""
    if settings.minio.access_key and settings.minio.secret_key:
        return f"s3://{settings.minio.bucket}/posts"
    return (settings.stack.state_path / "lake" / "posts").as_uri()


def build(settings: Settings, *, topic: str, path: str, bounded: bool, group_id: str, commit_delay_s: int):
    # The only state is the uids seen by the deduplication: kept a day, far longer than any re-send.
    env, t_env = stream_env(settings, "streampulse-archive",
                            extra={"table.local-time-zone": "UTC", "table.exec.state.ttl": f"{DEDUPE_TTL_S} s"})
    values = {**posts_source_values(settings, topic=topic, group_id=group_id, bounded=bounded,
                                    watermark_s=settings.trending.watermark_s),
              "path": path, "commit_delay": f"{commit_delay_s} s", "dedupe_ttl": f"{DEDUPE_TTL_S} s"}
    statement_set = t_env.create_statement_set()
    for name in ("social_posts_source", "archive"):
        add_sql(t_env, statement_set, name, **values)
    statement_set.attach_as_datastream()  # run through env.execute, as `flink run` expects
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streampulse run archive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topic", default="social.posts")
    parser.add_argument("--group-id", default="streampulse-archive")
    parser.add_argument("--path", help="where the lake goes: s3://bucket/prefix or file:///folder "
                                       "(default: s3://<minio.bucket>/posts, or <state>/lake/posts without MinIO)")
    parser.add_argument("--commit-delay-s", type=int, default=3600,
                        help="mark a partition done (_SUCCESS) once the watermark is this far past its hour")
    parser.add_argument("--bounded", action="store_true",
                        help="read the topic from the start to its current end, then finish (tests)")
    args = parser.parse_args([a for a in (argv if argv is not None else sys.argv[1:]) if a != "--"])
    if args.path and not args.path.startswith(("s3://", "file:///")):
        parser.error(f"--path {args.path!r}: expected s3://bucket/prefix or file:///absolute/folder")
    settings = load_settings()
    path = args.path or default_path(settings)
    env = build(settings, topic=args.topic, path=path, bounded=args.bounded, group_id=args.group_id,
                commit_delay_s=args.commit_delay_s)
    log.info("archive job: %s → %s", args.topic, path)
    env.execute("streampulse-archive")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(main())
