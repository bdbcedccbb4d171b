"""The Python stage of a job that reads social.posts by minute (sql/flink/posts_by_minute.sql).

Its input is one row per minute of event time and shard (a JSON batch of raw Kafka records) and one row per
late record. `MinuteStage` does what every such job needs, so that a job says only what it counts:

- decodes and validates every record (shared/post.py decode_post); a record that is not a valid SocialPost
  is quarantined — skipped, counted in `quarantinedRecords`, and sent with its partition, offset and reason
  to the QUARANTINE side output (the `quarantined_records` table) — and the job goes on;
- drops re-sent copies (the same uid twice in a minute's batch; copies share a partition, so a batch);
- counts each batch as it arrives (`count`, the job's), keeps the partial counts in state, and when the
  watermark closes the minute merges them (`merge`) and hands the minute over (`close_minute`);
- treats a batch for a minute it has already closed — after a restore, watermarks start again from nothing
  and a late record can reach a window that had fired — as late, like any late record (`late`), so a
  closed minute is never replaced by a partial recount.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, NamedTuple

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from runtime.schema_registry import SchemaRegistry
from shared.post import InvalidPost, RejectReason, SocialPost, decode_post, parse_post, use_registry

QUARANTINE_PAYLOAD_BYTES = 64 * 1024
QUARANTINE_ROW = Types.ROW_NAMED(
    ["topic", "kafka_partition", "kafka_offset", "event_time_ms", "reason", "detail", "payload", "payload_bytes",
     "job"],
    [Types.STRING(), Types.INT(), Types.LONG(), Types.LONG(), Types.STRING(), Types.STRING(),
     Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.INT(), Types.STRING()])
QUARANTINE = OutputTag("quarantine", QUARANTINE_ROW)


class Quarantined(NamedTuple):
    partition: int
    offset: int
    event_time_ms: int | None
    reason: str
    detail: str
    payload: bytes


def decode_records(records: str) -> tuple[list[SocialPost], list[Quarantined]]:
    """A batch's records ([partition, offset, event time, key, payload] with base64 bytes) as valid posts,
    one per uid, and the records that are not. A record with no partition is a lake row (a backfill,
    sql/flink/lake_minute_posts.sql): its payload is the post's JSON document, held to the producers' rules."""
    posts: dict[str, SocialPost] = {}
    quarantined = []
    for partition, offset, event_time, key, payload in json.loads(records):
        raw = base64.b64decode(payload) if payload is not None else b""
        event_ms = _epoch_ms(event_time)
        try:
            if partition is None:
                post = _lake_post(raw, event_ms)
            else:
                post = decode_post(raw, event_ms, base64.b64decode(key) if key is not None else None)
        except InvalidPost as exc:
            quarantined.append(Quarantined(partition, offset, event_ms, str(exc.reason), exc.detail, raw))
            continue
        posts.setdefault(post.uid, post)  # a re-sent copy counts once
    return list(posts.values()), quarantined


def _lake_post(document: bytes, event_ms: int | None) -> SocialPost:
    post = parse_post(document)
    if post.extra.get("clamped_ms") or (event_ms is not None and post.created_at != event_ms):
        raise InvalidPost(RejectReason.TIMESTAMP_MISMATCH, "the lake row's created_at is not its event time")
    return post


def _epoch_ms(iso: str | None) -> int | None:
    """Flink's JSON form of a TIMESTAMP_LTZ ("2026-10-05T00:00:00.123Z") as epoch millis."""
    if iso is None:
        return None
    moment = datetime.fromisoformat(iso)
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


class MinuteStage(KeyedProcessFunction):
    """Base of a job's minute stage (see the module docstring). Keyed by one constant: every minute of the
    stream passes through one place, where the job's per-minute state lives."""

    job = "job"  # the name quarantined records are marked with

    def __init__(self, topic: str, tumble_s: int):
        from shared.settings import load_settings

        self.topic, self.tumble_ms = topic, tumble_s * 1000
        # The schema registry as the job's client saw it (its environment may set STREAMPULSE_REGISTRY__URL; a
        # cluster's workers do not inherit it): where decode_post fetches a framed record's writer schema.
        self.registry_url = load_settings(with_credentials=False).registry.base_url

    # -- what a job provides ---------------------------------------------------------------------------------

    def count(self, index: int, posts: list[SocialPost]) -> Any:
        """Count one batch of minute `index`'s posts (one shard): a picklable partial count."""
        raise NotImplementedError

    def merge(self, index: int, parts: list[Any]) -> Any:
        """The minute's count from its batches' partial counts (in a fixed order)."""
        raise NotImplementedError

    def close_minute(self, index: int, counts: Any, ctx):
        """The minute is complete: yield what it produces."""
        raise NotImplementedError

    def after_close(self, closed: int, ctx):
        """Every minute up to `closed` is closed (called once per timer): yield what follows."""
        return ()

    def late(self, window_start_ms: int, post: SocialPost):
        """A valid post whose minute had closed: yield what it produces (it is already counted in latePosts)."""
        return ()

    def closed_batch(self, index: int, posts: list[SocialPost], ctx):
        """An on-time batch for a minute already closed (after a restore, or a minute a job closed by the clock):
        late, like any late record, unless the job knows better."""
        yield from self.late_batch(index * self.tumble_ms, posts, ctx)

    def closes_with(self, index: int) -> range:
        """The minutes whose closing (an event-time timer at each one's end) minute `index`'s posts need: its own,
        and those after it that complete a window it is in. Registered with the posts, never from a timer: in
        batch mode (a backfill) a timer registered while the end of input fires the others is lost."""
        return range(index, index + 1)

    def late_batch(self, window_start_ms: int, posts: list[SocialPost], ctx):
        for post in posts:
            self.late_posts.inc()
            yield from self.late(window_start_ms, post)

    # -- the machinery ---------------------------------------------------------------------------------------

    def open(self, runtime_context: RuntimeContext):
        use_registry(SchemaRegistry(self.registry_url).schema)  # a framed record's writer schema, by id
        pickled = Types.PICKLED_BYTE_ARRAY()
        self.batches = runtime_context.get_map_state(MapStateDescriptor("minute-batches", Types.STRING(), pickled))
        self.closed_state = runtime_context.get_state(ValueStateDescriptor("closed-minute", Types.LONG()))
        metrics = runtime_context.get_metrics_group()
        self.late_posts = metrics.counter("latePosts")
        self.quarantined = metrics.counter("quarantinedRecords")
        self.batch_cache: dict[str, Any] = {}  # what this instance wrote; a restored one reads the state

    def process_element(self, value, ctx):
        posts, bad = decode_records(value.records)
        for record in bad:
            self.quarantined.inc()
            detail = record.detail[:2000].replace("\x00", "\\x00")  # PostgreSQL text holds no NUL
            yield QUARANTINE, Row(self.topic, record.partition, record.offset, record.event_time_ms, record.reason,
                                  detail, bytes(record.payload[:QUARANTINE_PAYLOAD_BYTES]), len(record.payload),
                                  self.job)
        index = value.window_start_ms // self.tumble_ms
        closed = self.closed_state.value()
        if value.kind == "late":
            yield from self.late_batch(value.window_start_ms, posts, ctx)
            return
        if closed is not None and index <= closed:
            yield from self.closed_batch(index, posts, ctx)
            return
        if posts:
            key = f"{index}/{value.shard}"
            counts = self.count(index, posts)
            self.batches.put(key, counts)
            self.batch_cache[key] = counts
            for minute in self.closes_with(index):
                ctx.timer_service().register_event_time_timer((minute + 1) * self.tumble_ms - 1)

    def on_timer(self, timestamp: int, ctx):
        yield from self.close_until((timestamp + 1) // self.tumble_ms - 1, ctx)

    def close_until(self, closed: int, ctx):
        """Close every minute up to `closed` (the watermark passed it, or a job decided the stream has stopped)."""
        pending: dict[int, list[str]] = {}
        for key in list(self.batches.keys()):
            pending.setdefault(int(key.split("/")[0]), []).append(key)
        for index in sorted(m for m in pending if m <= closed):
            keys = sorted(pending[index])
            parts = [self.batch_cache.pop(key) if key in self.batch_cache else self.batches.get(key) for key in keys]
            for key in keys:
                self.batches.remove(key)
            yield from self.close_minute(index, self.merge(index, parts), ctx)
        previous = self.closed_state.value()
        self.closed_state.update(closed if previous is None else max(previous, closed))
        yield from self.after_close(closed, ctx)
