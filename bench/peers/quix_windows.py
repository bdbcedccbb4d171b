"""The trending job's window counting as a Quix Streams 3.28 application (a throughput-benchmark peer).

    python bench/peers/quix_windows.py --bootstrap HOST:PORT --topic T --out FILE.csv [--group-id G]

Run with the venv from bench/peers/quix.requirements.txt and the project root on PYTHONPATH.
Reads T from the beginning up to its end offsets at start; per keyword (shared.keywords), over all
sources, counts the distinct uids (posts) and distinct author_ids of 1-minute tumbling windows and
of 5-minute windows sliding by 1 minute (event time = created_at; windows aligned to the epoch),
and writes `window_kind,window_start_ms,window_end_ms,keyword,posts,authors` rows.

Pipeline (one Application, one process):
1. The posts topic, values decoded by an Avro Deserializer (shared.post.decode).
2. A merge step. Quix has no watermark across partitions: a window's "now" is the largest timestamp
   seen for its key (closing_strategy="key") or in its store partition ("partition"), and the
   consumer hands out each Kafka partition in large chunks, so a keyword's windows would see one
   partition's posts minutes ahead of another's and drop the others as late (measured: 33 % of the
   windows exact on a 20,000-post, 4-partition input). The step computes the Flink job's watermark
   per record (the minimum over unfinished input partitions of their largest created_at − 30 s),
   drops the posts the trending job calls late (their 1-minute window ends at or before that
   watermark) and holds the others in a heap until the watermark reaches their created_at. After
   the last record of every partition (end offsets taken at start) it releases the rest, then one
   end-of-input marker per repartition partition.
3. Keywords exploded, `group_by(keyword)` (Quix's repartition topic), event time set from the value.
4. `tumbling_window` and `hopping_window` with `grace_ms` = 30 s and a custom Collector (each
   window's (uid, author_id) items are stored once per message and read when the window closes; the
   collector counts the distinct uids and authors), `.final(closing_strategy="partition")`. The
   end-of-input marker's timestamp lies past every window's end + grace, so it closes the
   partition's last windows (Quix closes windows only when time advances; a bounded run would
   otherwise never emit the last ones). Once every repartition partition has seen its marker the
   app stops. Quix's internal topics for the group (repartition__<group>--...) and the group's
   committed offsets are deleted at start and at exit; state lives in a temporary folder; no
   changelog topics (like the Bytewax peer, which runs without recovery, no fault tolerance is kept;
   the merge step's heap is not in Quix state either).
"""

from __future__ import annotations

import argparse
import csv
import heapq
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

try:
    import shared.post  # noqa: F401
except ImportError:  # run without PYTHONPATH: the project root is two folders up
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

try:  # quixstreams imports authlib, whose import warns (httpx) through a filter of its own: quiet it
    from authlib.deprecate import AuthlibDeprecationWarning

    warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)
except ImportError:
    pass
from quixstreams import Application, message_context
from quixstreams.dataframe.windows.aggregations import Collector
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models.serializers import Deserializer
from quixstreams.sinks import BatchingSink, SinkBatch

from shared.keywords import extract_keywords
from shared.post import decode

log = logging.getLogger("peer.quix")
HEADER = ("window_kind", "window_start_ms", "window_end_ms", "keyword", "posts", "authors")
END_KEY = "\x00end-of-input-"  # keyword-space keys of the end-of-input markers (no keyword starts with NUL)


class PostDeserializer(Deserializer):
    """Schemaless Avro SocialPost (shared/social_post.avsc) -> shared.post.SocialPost."""

    def __call__(self, value: bytes, ctx: Any) -> Any:
        return decode(value)


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition librdkafka's "murmur2" partitioner (Quix's producer setting, Java-compatible) picks."""
    m, length = 0x5BD1E995, len(key)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length - length % 4
    extra = length % 4
    if extra >= 3:
        h ^= key[tail + 2] << 16
    if extra >= 2:
        h ^= key[tail + 1] << 8
    if extra >= 1:
        h ^= key[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def end_keys(partitions: int) -> dict[int, str]:
    """One end-of-input key per repartition partition."""
    keys: dict[int, str] = {}
    i = 0
    while len(keys) < partitions:
        key = f"{END_KEY}{i}"
        keys.setdefault(murmur2_partition(key.encode(), partitions), key)
        i += 1
    return keys


class PartitionMerge:
    """Flink's watermark and lateness rule before Quix's windows (see the module docstring).

    Per record, the watermark is the minimum over the input partitions not yet finished of (largest
    created_at read from it − lateness), none until each has given a record. As in the trending job
    (sql/flink/trending_input.sql), a post whose tumbling window ends at or before the watermark it meets
    is late and joins no window (dropped here, counted). The others wait in a heap until the watermark
    reaches their created_at, so what leaves is never ahead of the watermark: no window of a post that is
    not late has been closed by Quix when the post gets there.
    """

    def __init__(self, bounds: dict[int, tuple[int, int]], lateness_ms: int, tumble_ms: int, repartitions: int,
                 horizon_ms: int):
        self._end = {p: end for p, (start, end) in bounds.items() if start < end}  # unfinished partitions
        self._max: dict[int, int | None] = dict.fromkeys(self._end)
        self._lateness_ms, self._tumble_ms, self._horizon_ms = lateness_ms, tumble_ms, horizon_ms
        self._end_keys = end_keys(repartitions)
        self._heap: list[tuple[int, int, Any]] = []
        self._seq = 0
        self.watermark: int | None = None
        self._closed_before = -(2**63)  # the watermark rounded down to the tumbling grid: earlier posts are late
        self.posts = self.late = self.peak = 0
        self._largest = 0

    @property
    def unfinished(self) -> list[int]:
        return sorted(self._end)

    def __call__(self, post: Any) -> list:
        ctx = message_context()
        partition, offset = ctx.partition, ctx.offset
        stop = self._end.get(partition)
        if stop is None or offset >= stop:
            return []  # past the end offsets taken at start
        self.posts += 1
        created = post.created_at
        heap = self._heap
        if created < self._closed_before:
            self.late += 1
        else:
            self._seq += 1
            heapq.heappush(heap, (created, self._seq, post))
            if len(heap) > self.peak:
                self.peak = len(heap)
        maxima = self._max
        if created > self._largest:
            self._largest = created
        moved = True
        if offset + 1 >= stop:
            del self._end[partition], maxima[partition]
        elif maxima[partition] is None or created > maxima[partition]:
            maxima[partition] = created
        else:
            moved = False
        if not maxima:  # the whole input is read: release everything, then close every window
            released = [entry[2] for entry in sorted(heap)]
            heap.clear()
            log.info("input read: %d posts (%d late: in no window; at most %d held for ordering); closing the "
                     "windows", self.posts, self.late, self.peak)
            closing_time = self._largest + self._horizon_ms
            released.extend(EndOfInput(key, closing_time) for key in self._end_keys.values())
            return released
        if moved and None not in maxima.values():
            watermark = min(maxima.values()) - self._lateness_ms
            if self.watermark is None or watermark > self.watermark:
                self.watermark = watermark
                self._closed_before = watermark // self._tumble_ms * self._tumble_ms
        released = []
        if self.watermark is not None:
            while heap and heap[0][0] <= self.watermark:
                released.append(heapq.heappop(heap)[2])
        return released


class EndOfInput:
    __slots__ = ("created_at", "key")

    def __init__(self, key: str, created_at: int):
        self.key, self.created_at = key, created_at


def keyword_items(post: Any) -> list[list]:
    if type(post) is EndOfInput:
        return [[post.key, None, None, post.created_at]]
    created, uid, author = post.created_at, post.uid, post.author_id
    return [[keyword, uid, author, created] for keyword in extract_keywords(post.text, post.hashtags, post.langs)]


class DistinctPostsAuthors(Collector):
    """(distinct uids, distinct author_ids) of the collected [keyword, uid, author_id, created_at] items."""

    def result(self, items) -> tuple[int, int]:
        authors = {item[1]: item[2] for item in items}  # a re-sent post (same uid) counts once
        return len(authors), len(set(authors.values()))


class CsvRowsSink(BatchingSink):
    """Writes (kind, start, end, posts, authors) values keyed by keyword as the peers' CSV rows."""

    def __init__(self, path: Path):
        super().__init__()
        self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._writer = csv.writer(self._file)
        self._writer.writerow(HEADER)
        self.rows = 0

    def write(self, batch: SinkBatch) -> None:
        writer = self._writer
        for item in batch:
            kind, start, end, posts, authors = item.value
            writer.writerow((kind, start, end, item.key, posts, authors))
        self.rows += batch.size
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class LateCounter:
    """on_late callback: counts the (keyword, window) items dropped as late instead of logging each one."""

    def __init__(self):
        self.count = 0

    def __call__(self, *args: Any) -> bool:
        self.count += 1
        return False


class EndTracker:
    """Stops the app once every repartition partition has passed its end-of-input marker."""

    def __init__(self, app: Application, partitions: int):
        self._app, self._pending = app, set(range(partitions))

    def __call__(self, value: list) -> None:
        if value[1] is None:
            self._pending.discard(message_context().partition)
            if not self._pending:
                self._app.stop()


def kafka_config(bootstrap: str) -> dict:
    """librdkafka's connection settings: the broker address, and the SCRAM login the harness hands over in
    PEER_KAFKA_USERNAME / PEER_KAFKA_PASSWORD (environment, never argv) when the broker wants one."""
    config = {"bootstrap.servers": bootstrap}
    if os.environ.get("PEER_KAFKA_USERNAME"):
        config |= {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
                   "sasl.username": os.environ["PEER_KAFKA_USERNAME"],
                   "sasl.password": os.environ["PEER_KAFKA_PASSWORD"]}
    return config


def topic_bounds(bootstrap: str, topic: str, group_id: str) -> dict[int, tuple[int, int]]:
    """partition -> (low, high) offsets now."""
    consumer = Consumer(kafka_config(bootstrap) | {"group.id": group_id, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        if metadata.error is not None:
            raise RuntimeError(f"topic {topic!r} at {bootstrap}: {metadata.error.str()}")
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in metadata.partitions}
    finally:
        consumer.close()


def clean_up(bootstrap: str, group_id: str) -> None:
    """Delete the consumer group's committed offsets and Quix's internal topics for it (so that a reused group id
    still reads from the beginning, and runs leave nothing behind)."""
    admin = AdminClient(kafka_config(bootstrap))
    names = [name for name in admin.list_topics(timeout=30).topics
             if name.startswith((f"repartition__{group_id}--", f"changelog__{group_id}--"))]
    for name, future in (admin.delete_topics(names, operation_timeout=30) if names else {}).items():
        try:
            future.result()
            log.info("deleted the internal topic %s", name)
        except KafkaException as exc:
            log.warning("could not delete the internal topic %s: %s", name, exc)
    for future in admin.delete_consumer_groups([group_id], request_timeout=30).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() not in ("GROUP_ID_NOT_FOUND", "_GROUP_ID_NOT_FOUND"):
                raise RuntimeError(f"consumer group {group_id!r}: {exc.args[0].str()} (still in use?)") from exc


def run(args: argparse.Namespace, state_dir: str) -> tuple[int, int]:
    clean_up(args.bootstrap, args.group_id)
    bounds = topic_bounds(args.bootstrap, args.topic, args.group_id)
    records = sum(high - low for low, high in bounds.values())
    log.info("reading %s: %d records in %d partitions", args.topic, records, len(bounds))
    tumble_ms, size_ms, slide_ms, lateness_ms = (args.tumble_s * 1000, args.hop_size_s * 1000,
                                                 args.hop_slide_s * 1000, round(args.lateness_s * 1000))
    config = kafka_config(args.bootstrap)
    broker = ConnectionConfig(bootstrap_servers=args.bootstrap, security_protocol=config.get("security.protocol",
                                                                                           "PLAINTEXT").lower(),
                              sasl_mechanism=config.get("sasl.mechanisms"), sasl_username=config.get("sasl.username"),
                              sasl_password=config.get("sasl.password"))
    app = Application(broker_address=broker, consumer_group=args.group_id, auto_offset_reset="earliest",
                      state_dir=state_dir, use_changelog_topics=False, loglevel="WARNING",
                      consumer_poll_timeout=1.0 if records else 0.05)
    sink = CsvRowsSink(args.out)
    try:
        if records == 0:
            app.dataframe(app.topic(args.topic, value_deserializer=PostDeserializer()))
            app.run(timeout=0.01)  # nothing to count: join the group (the fixed cost) and stop once assigned
            return 0, 0
        posts_topic = app.topic(args.topic, key_deserializer="bytes", value_deserializer=PostDeserializer())
        merge = PartitionMerge(bounds, lateness_ms, tumble_ms, repartitions=len(bounds),
                               horizon_ms=max(tumble_ms, size_ms) + lateness_ms + max(tumble_ms, slide_ms))
        sdf = app.dataframe(posts_topic)
        sdf = sdf.apply(merge, expand=True)
        sdf = sdf.apply(keyword_items, expand=True)
        sdf = sdf.group_by(lambda item: item[0], name="keyword", key_serializer="str", key_deserializer="str")
        sdf = sdf.set_timestamp(lambda item, key, timestamp, headers: item[3])
        sdf = sdf.update(EndTracker(app, len(bounds)))
        late = LateCounter()
        tumble = (sdf.tumbling_window(tumble_ms, grace_ms=lateness_ms, on_late=late)
                  .agg(counts=DistinctPostsAuthors()).final(closing_strategy="partition")
                  .apply(lambda w: ("tumble", w["start"], w["end"], *w["counts"])))
        hop = (sdf.hopping_window(size_ms, slide_ms, grace_ms=lateness_ms, on_late=late)
               .agg(counts=DistinctPostsAuthors()).final(closing_strategy="partition")
               .apply(lambda w: ("hop", w["start"], w["end"], *w["counts"])))
        tumble.concat(hop).sink(sink)
        app.run()
        if merge.unfinished:
            raise RuntimeError(f"stopped before the end of the input: partitions {merge.unfinished} unfinished")
        log.info("%d late keyword-window items (their window had closed)", late.count)
        return merge.posts, sink.rows
    finally:
        sink.close()
        clean_up(args.bootstrap, args.group_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, HOST:PORT")
    parser.add_argument("--topic", required=True, help="the posts topic (schemaless Avro SocialPost values)")
    parser.add_argument("--out", required=True, type=Path, help="the CSV file to write")
    parser.add_argument("--group-id", default="streampulse-peer-quix",
                        help="consumer group; also names Quix's internal topics (both deleted at start and exit)")
    parser.add_argument("--lateness-s", type=float, default=30.0, help="allowed out-of-orderness (default 30)")
    parser.add_argument("--tumble-s", type=int, default=60)
    parser.add_argument("--hop-size-s", type=int, default=300)
    parser.add_argument("--hop-slide-s", type=int, default=60)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="streampulse-peer-quix-") as state_dir:
        posts, rows = run(args, state_dir)
    elapsed = time.perf_counter() - started
    log.info("done: %d posts, %d rows, %.2f s (%.0f posts/s)", posts, rows, elapsed,
             posts / elapsed if elapsed else 0.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
