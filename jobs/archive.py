"""Archive job: every valid post from social.posts into the raw data lake as Parquet.

    social.posts ─► minute batches (JVM) ─► decode (Python, one stage) ─► filesystem sink, Parquet,
                    partitioned source=/dt=/hour= (event time, UTC) on s3://<minio.bucket>/posts, or a
                    local folder when no MinIO is configured

The topic is read as the other jobs read it (sql/flink/posts_by_minute.sql, runtime/minute_stage.py), so a
record that is not a valid post is quarantined instead of stopping the job; on-time and late posts alike are
archived. Part files commit on checkpoints (sql/flink/archive.sql), so what the lake holds is exactly what
the checkpoints covered: no duplicate after a restart, no half-written file; a post that a producer re-sent
is archived once (the first copy per uid).

    streampulse run archive -- [--bounded] [--topic social.posts] [--path s3://bucket/posts | file:///dir]
    flink run -py jobs/archive.py -- [same options]
"""

from __future__ import annotations

import sys

if __package__ in (None, ""):  # `flink run -py jobs/archive.py`: make the project importable
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from pyflink.common import Row, Types

from runtime.backfill import add_posts_by_minute
from runtime.flink import add_outputs, add_sql, interval, jdbc_options, posts_source_values, stream_env
from runtime.job import job_main, run_script
from runtime.lake import default_path, lake_path
from runtime.minute_stage import QUARANTINE, MinuteStage
from shared.names import POSTS_TOPIC
from shared.post import FIELDS, SocialPost, is_timestamp
from shared.settings import Settings

DEDUPE_TTL_S = 86_400


def _row_type(avro_type):
    if isinstance(avro_type, list):  # ["null", T]
        return _row_type(next(t for t in avro_type if t != "null"))
    if isinstance(avro_type, dict):
        return Types.OBJECT_ARRAY(Types.STRING()) if avro_type["type"] == "array" else Types.LONG()  # epoch ms
    return {"string": Types.STRING(), "int": Types.INT(), "long": Types.LONG()}[avro_type]


# A decoded post on its way to the lake: the Avro schema's fields, timestamps as epoch millis (<name>_ms).
POST_ROW = Types.ROW_NAMED([f"{name}_ms" if is_timestamp(t) else name for name, t in FIELDS.items()],
                           [_row_type(t) for t in FIELDS.values()])


def post_row(post: SocialPost) -> Row:
    return Row(*post.to_record().values())


class DecodePosts(MinuteStage):
    """Every valid post out, on time when its minute closes, late at once: the lake keeps them all."""

    job = "archive"

    def count(self, index: int, posts: list[SocialPost]) -> list[SocialPost]:
        return posts

    def merge(self, index: int, parts: list[list[SocialPost]]) -> list[SocialPost]:
        return [post for part in parts for post in part]

    def close_minute(self, index: int, posts: list[SocialPost], ctx):
        for post in posts:
            yield post_row(post)

    def late(self, window_start_ms: int, post: SocialPost):
        yield post_row(post)


def build(settings: Settings, args) -> object:
    topic, path = args.topic, args.path or default_path(settings)
    # The only state is the uids seen by the deduplication: kept a day, far longer than any re-send.
    env, t_env = stream_env(settings, "streampulse-archive",
                            extra={"table.local-time-zone": "UTC", "table.exec.state.ttl": f"{DEDUPE_TTL_S} s"})
    tumble_s = settings.trending.tumble_s
    values = {**posts_source_values(settings, topic=topic, group_id=args.group_id, bounded=args.bounded,
                                    watermark_s=settings.trending.watermark_s),
              "tumble": interval(tumble_s), "tumble_s": tumble_s, "batch_shards": settings.flink.minute_batch_shards,
              "path": path, "commit_delay": f"{args.commit_delay_s} s", "dedupe_ttl": f"{DEDUPE_TTL_S} s",
              **jdbc_options(settings)}
    statement_set = t_env.create_statement_set()
    add_posts_by_minute(t_env, statement_set, settings, args, values)
    add_sql(t_env, statement_set, "lake_posts", **values)
    decoded = (t_env.to_data_stream(t_env.from_path("posts_by_minute"))
               .key_by(lambda r: 0, key_type=Types.INT())
               .process(DecodePosts(topic, tumble_s), output_type=POST_ROW)
               .uid("decode-posts").name("Decode and check posts (quarantine what is not a post)"))
    views = {"decoded_posts": decoded, "quarantined_rows": decoded.get_side_output(QUARANTINE)}
    add_outputs(t_env, statement_set, views, ("archive", "quarantine_sink"), **values)
    return env


def arguments(parser) -> None:
    parser.add_argument("--path", type=lake_path, help="where the lake goes: s3://bucket/prefix or file:///folder "
                        "(default: s3://<minio.bucket>/posts, or <state>/lake/posts without MinIO)")
    parser.add_argument("--commit-delay-s", type=int, default=3600,
                        help="mark a partition done (_SUCCESS) once the watermark is this far past its hour")


main = job_main("archive", __doc__, build, topic=POSTS_TOPIC, arguments=arguments)

if __name__ == "__main__":
    run_script(main)
