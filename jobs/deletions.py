"""Deletions job: posts deleted at their source leave what StreamPulse keeps.

    social.deletes ─► decode (Python: a record that is not a deletion notice is quarantined) ─► Redis: the uid
                      leaves every trend hash and is remembered so that no later trend shows it
                   ─► PostgreSQL `deletions` (upsert by uid): its triggers take the uid out of trends.sample_uids,
                      and `streampulse lake compact` (runtime/lake.py) takes it out of the lake within
                      deletions.lake_within_s

Redis and PostgreSQL forget a deleted post seconds after its notice arrives; the lake, where posts sit in
Parquet files, is rewritten in batches (README: "Deleted posts").

    streampulse run deletions -- [--bounded] [--topic social.deletes]
    flink run -py jobs/deletions.py -- [same options]
"""

from __future__ import annotations

import sys
import time

if __package__ in (None, ""):  # `flink run -py jobs/deletions.py`: make the project importable
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from pyflink.common import Row, Types
from pyflink.datastream import ProcessFunction, RuntimeContext

from runtime.flink import add_outputs, add_sql, jdbc_options, kafka_source, stream_env
from runtime.job import job_main, run_script
from runtime.minute_stage import QUARANTINE, QUARANTINE_PAYLOAD_BYTES
from runtime.trend_cache import DeletedPosts, redis_options
from shared.names import DELETES_TOPIC
from shared.post import InvalidPost, decode_deletion
from shared.settings import Settings

NOTICE_ROW = Types.ROW_NAMED(["uid", "source", "deleted_at_ms", "reason", "local_id"],
                             [Types.STRING(), Types.STRING(), Types.LONG(), Types.STRING(), Types.STRING()])


class ForgetDeleted(ProcessFunction):
    """Each notice: out of Redis at once, then on to the log; a record that is not a notice to quarantine."""

    def __init__(self, topic: str, redis_options: dict, keep_s: int):
        self.topic, self.redis_options, self.keep_s = topic, redis_options, keep_s

    def open(self, runtime_context: RuntimeContext):
        self.redis = DeletedPosts(self.redis_options, self.keep_s)
        metrics = runtime_context.get_metrics_group()
        self.notices = metrics.counter("deletionNotices")
        self.scrubbed = metrics.counter("trendSamplesScrubbed")
        self.quarantined = metrics.counter("recordsQuarantined")

    def process_element(self, value, ctx: ProcessFunction.Context):
        payload = bytes(value.payload or b"")
        try:
            notice = decode_deletion(payload, bytes(value.kafka_key) if value.kafka_key is not None else None)
        except InvalidPost as exc:
            self.quarantined.inc()
            yield QUARANTINE, Row(self.topic, value.kafka_partition, value.kafka_offset, ctx.timestamp(),
                                  exc.reason.value, exc.detail, payload[:QUARANTINE_PAYLOAD_BYTES], len(payload),
                                  "deletions")
            return
        self.notices.inc()
        self.scrubbed.inc(self.redis.forget(notice.uid, int(time.time() * 1000)))
        yield Row(notice.uid, notice.source, notice.deleted_at, notice.reason, notice.local_id)


def build(settings: Settings, args) -> object:
    topic, bounded, group_id = args.topic, args.bounded, args.group_id
    env, t_env = stream_env(settings, "streampulse-deletions", extra={"table.local-time-zone": "UTC"})
    values = {"kafka_source": kafka_source(settings, topic=topic, group_id=group_id, bounded=bounded),
              **jdbc_options(settings)}
    statement_set = t_env.create_statement_set()
    add_sql(t_env, statement_set, "deletions", **values)
    notices = (t_env.to_data_stream(t_env.from_path("deletion_inputs"))
               .process(ForgetDeleted(topic, redis_options(settings), settings.deletions.redis_keep_s),
                        output_type=NOTICE_ROW)
               .uid("forget-deleted").name("Decode notices, forget the posts in Redis (quarantine what is not one)"))
    views = {"deletion_notices": notices, "quarantined_rows": notices.get_side_output(QUARANTINE)}
    add_outputs(t_env, statement_set, views, ("deletions_log", "quarantine_sink"), **values)
    return env


main = job_main("deletions", __doc__, build, topic=DELETES_TOPIC)

if __name__ == "__main__":
    run_script(main)
