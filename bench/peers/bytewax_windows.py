"""The trending job's window counting as a Bytewax 0.21 dataflow (a throughput-benchmark peer).

    python bench/peers/bytewax_windows.py --bootstrap HOST:PORT --topic T --out FILE.csv [--group-id G]

Run with the venv from bench/peers/bytewax.requirements.txt and the project root on PYTHONPATH.
Reads T from the beginning up to its end offsets at start; per keyword (shared.keywords), over all
sources, counts the distinct uids (posts) and distinct author_ids of 1-minute tumbling windows and
of 5-minute windows sliding by 1 minute (event time = created_at; windows aligned to the epoch),
and writes `window_kind,window_start_ms,window_end_ms,keyword,posts,authors` rows.

Dataflow: one source partition (one librdkafka consumer assigned every Kafka partition) decodes the
Avro posts and stamps each with the watermark it meets, computed like the Flink job's: per record,
the minimum over the Kafka partitions not yet finished of (largest created_at read from it − 30 s).
`flat_map_batch` explodes posts into (keyword, (time, watermark, uid, author)); two `fold_window`s
(TumblingWindower, SlidingWindower, aligned to the epoch) fold each window into {uid: author_id}
with a custom Clock that reads the carried watermark. Why not the built-in EventClock: Bytewax keeps
a watermark per key (there is no per-stream or per-partition mode), EventClock's is the largest
timestamp seen for that key − wait, and it also moves with wall-clock time. Kafka hands out the
partitions in uneven chunks, so a keyword's posts from a partition read behind the others would be
late (measured: 34 % of the windows exact on a 20,000-post, 4-partition input); a replay slower
than 30 s would drop more. As in the trending job, a post is late when its 1-minute window's end is
not after the watermark it met, and then it joins no window (counted on stderr); the carried value
is the watermark rounded down to the minute, which makes Bytewax's "timestamp < watermark" test
that rule. End of input closes every window.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

try:
    import shared.post  # noqa: F401
except ImportError:  # run without PYTHONPATH: the project root is two folders up
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bytewax.operators as op
from bytewax._bytewax import cli_main  # what `python -m bytewax.run` calls
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.operators.windowing import (
    UTC_MAX,
    UTC_MIN,
    Clock,
    ClockLogic,
    SlidingWindower,
    TumblingWindower,
    fold_window,
)
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import Consumer, KafkaException, TopicPartition

from shared.keywords import extract_keywords
from shared.post import decode

log = logging.getLogger("peer.bytewax")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HEADER = ("window_kind", "window_start_ms", "window_end_ms", "keyword", "posts", "authors")


def kafka_config(bootstrap: str) -> dict:
    """librdkafka's connection settings: the broker address, and the SCRAM login the harness hands over in
    PEER_KAFKA_USERNAME / PEER_KAFKA_PASSWORD (environment, never argv) when the broker wants one."""
    config = {"bootstrap.servers": bootstrap}
    if os.environ.get("PEER_KAFKA_USERNAME"):
        config |= {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
                   "sasl.username": os.environ["PEER_KAFKA_USERNAME"],
                   "sasl.password": os.environ["PEER_KAFKA_PASSWORD"]}
    return config


def to_datetime(millis: int) -> datetime:
    return EPOCH + timedelta(milliseconds=millis)


# --- input: every Kafka partition, bounded by the end offsets at start, with Flink's watermark ---


class _BoundedTopicPartition(StatefulSourcePartition):
    """All partitions of one topic through one consumer; items are (SocialPost, closed-before datetime).

    The watermark is Flink's, per record: before each record, the minimum over the Kafka partitions not
    yet finished of (largest created_at read from it − lateness); none until every unfinished partition
    has given a record. Like the trending job (sql/flink/trending_input.sql), a post is late when its
    tumbling window's end is not after that watermark, and then it joins no window. The item carries the
    watermark rounded down to the tumbling grid: "created_at < it" is exactly that rule, and a window
    closes when its end is not after it, which for windows on that grid is the same as the watermark.
    """

    def __init__(self, bootstrap: str, topic: str, group_id: str, lateness_ms: int, tumble_ms: int,
                 batch_size: int, resume: dict[int, int] | None):
        self._consumer = Consumer(kafka_config(bootstrap) | {"group.id": group_id, "enable.auto.commit": False,
                                                             "enable.partition.eof": False})
        metadata = self._consumer.list_topics(topic, timeout=30).topics[topic]
        if metadata.error is not None:
            raise RuntimeError(f"topic {topic!r} at {bootstrap}: {metadata.error.str()}")
        self._topic, self._lateness_ms, self._tumble_ms, self._batch_size = topic, lateness_ms, tumble_ms, batch_size
        self._end: dict[int, int] = {}  # unfinished partition -> end offset at start
        self._next: dict[int, int] = {}  # partition -> next offset to read (the snapshot)
        assignment = []
        for partition in sorted(metadata.partitions):
            low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            start = max(low, (resume or {}).get(partition, low))
            self._next[partition] = start
            if start < high:
                self._end[partition] = high
                assignment.append(TopicPartition(topic, partition, start))
        self._consumer.assign(assignment)
        self._max: dict[int, int | None] = dict.fromkeys(self._end)  # largest created_at per unfinished partition
        self._closed_before_ms: int | None = None
        self._closed_before = UTC_MIN
        self.posts = self.late = 0
        log.info("reading %s: %d records in %d partitions", topic,
                 sum(end - self._next[p] for p, end in self._end.items()), len(metadata.partitions))

    def _advance(self) -> None:
        maxima = self._max
        if not maxima:
            self._closed_before = UTC_MAX  # every partition read: the end of time
            return
        if None in maxima.values():
            return
        watermark = min(maxima.values()) - self._lateness_ms
        closed_before = watermark // self._tumble_ms * self._tumble_ms
        if self._closed_before_ms is None or closed_before > self._closed_before_ms:
            self._closed_before_ms = closed_before
            self._closed_before = to_datetime(closed_before)

    def next_batch(self) -> list[tuple[Any, datetime]]:
        if not self._end:
            raise StopIteration()
        batch = []
        end, maxima = self._end, self._max
        for message in self._consumer.consume(self._batch_size, 0.001):
            if message.error() is not None:
                raise KafkaException(message.error())
            partition, offset = message.partition(), message.offset()
            stop = end.get(partition)
            if stop is None or offset >= stop:
                continue  # past the end offsets taken at start
            post = decode(message.value())
            batch.append((post, self._closed_before))  # the watermark this record meets
            if self._closed_before_ms is not None and post.created_at < self._closed_before_ms:
                self.late += 1  # the windows will drop it
            self._next[partition] = offset + 1
            largest = maxima[partition]
            if offset + 1 >= stop:
                del end[partition], maxima[partition]
                self._consumer.pause([TopicPartition(self._topic, partition)])
                self._advance()
            elif largest is None or post.created_at > largest:
                maxima[partition] = post.created_at
                self._advance()
        self.posts += len(batch)
        return batch

    def snapshot(self) -> dict[int, int]:
        return dict(self._next)

    def close(self) -> None:
        self._consumer.close()


class BoundedTopicSource(FixedPartitionedSource):
    """One Bytewax partition for the whole topic, so that one watermark can see every Kafka partition."""

    def __init__(self, bootstrap: str, topic: str, group_id: str, lateness_ms: int, tumble_ms: int, batch_size: int):
        self._args = (bootstrap, topic, group_id, lateness_ms, tumble_ms, batch_size)
        self.partition: _BoundedTopicPartition | None = None

    def list_parts(self) -> list[str]:
        return ["all"]

    def build_part(self, step_id: str, for_part: str, resume_state: dict[int, int] | None) -> _BoundedTopicPartition:
        self.partition = _BoundedTopicPartition(*self._args, resume_state)
        return self.partition


# --- time: the watermark the source carried ---


class _CarriedWatermarkLogic(ClockLogic):
    def __init__(self, watermark: datetime):
        self.watermark = watermark

    def before_batch(self) -> None:
        pass

    def on_item(self, value: tuple) -> tuple[datetime, datetime]:
        if value[1] > self.watermark:
            self.watermark = value[1]
        return value[0], self.watermark

    def on_notify(self) -> datetime:
        return self.watermark

    def on_eof(self) -> datetime:
        return UTC_MAX

    def to_system_utc(self, timestamp: datetime) -> datetime | None:
        return None  # event time only: windows close on later items or at EOF, never on a wall-clock timer

    def snapshot(self) -> datetime:
        return self.watermark


class CarriedWatermarkClock(Clock):
    """Timestamp and watermark read from the item: (event time, watermark, ...)."""

    def build(self, resume_state: datetime | None) -> _CarriedWatermarkLogic:
        return _CarriedWatermarkLogic(UTC_MIN if resume_state is None else resume_state)


# --- output ---


class _CsvPartition(StatelessSinkPartition):
    def __init__(self, path: Path):
        self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._writer = csv.writer(self._file)
        self._writer.writerow(HEADER)
        self.rows = 0

    def write_batch(self, items: list[tuple]) -> None:
        self._writer.writerows(items)
        self.rows += len(items)

    def close(self) -> None:
        self._file.close()


class CsvSink(DynamicSink):
    def __init__(self, path: Path):
        self._path = path
        self.partition: _CsvPartition | None = None

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CsvPartition:
        if worker_count != 1:
            raise RuntimeError("this peer runs one worker (its source watermark sees every partition)")
        self.partition = _CsvPartition(self._path)
        return self.partition


# --- the dataflow ---


def keyword_items(batch: list[tuple[Any, datetime]]) -> list[tuple[str, tuple]]:
    items = []
    append = items.append
    for post, watermark in batch:
        value = (to_datetime(post.created_at), watermark, post.uid, post.author_id)
        for keyword in extract_keywords(post.text, post.hashtags, post.langs):
            append((keyword, value))
    return items


def fold_post(window: dict, value: tuple) -> dict:
    window[value[2]] = value[3]  # uid -> author_id: a re-sent post (same uid) counts once
    return window


def merge_windows(a: dict, b: dict) -> dict:
    a.update(b)
    return a


def build_flow(source: BoundedTopicSource, sink: CsvSink, tumble_ms: int, hop_size_ms: int,
               hop_slide_ms: int) -> Dataflow:
    flow = Dataflow("streampulse_peer_windows")
    posts = op.input("posts", flow, source)
    keyed = op.flat_map_batch("keywords", posts, keyword_items)
    clock = CarriedWatermarkClock()
    rows = []
    for kind, size_ms, slide_ms in (("tumble", tumble_ms, tumble_ms), ("hop", hop_size_ms, hop_slide_ms)):
        windower = (TumblingWindower(length=timedelta(milliseconds=size_ms), align_to=EPOCH) if kind == "tumble"
                    else SlidingWindower(length=timedelta(milliseconds=size_ms),
                                         offset=timedelta(milliseconds=slide_ms), align_to=EPOCH))
        out = fold_window(kind, keyed, clock, windower, dict, fold_post, merge_windows, ordered=False)

        def to_row(item, kind=kind, size_ms=size_ms, slide_ms=slide_ms):
            keyword, (window_id, window) = item
            start = window_id * slide_ms  # windows are aligned to the epoch
            return (kind, start, start + size_ms, keyword, len(window), len(set(window.values())))

        rows.append(op.map(f"{kind}_rows", out.down, to_row))  # out.late: the late posts, counted at the source
    op.output("csv", op.merge("rows", *rows), sink)
    return flow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, HOST:PORT")
    parser.add_argument("--topic", required=True, help="the posts topic (schemaless Avro SocialPost values)")
    parser.add_argument("--out", required=True, type=Path, help="the CSV file to write")
    parser.add_argument("--group-id", default="streampulse-peer-bytewax",
                        help="consumer group id (no offsets are committed)")
    parser.add_argument("--batch-size", type=int, default=5000,
                        help="records per consume() call (default 5000)")
    parser.add_argument("--lateness-s", type=float, default=30.0, help="allowed out-of-orderness (default 30)")
    parser.add_argument("--tumble-s", type=int, default=60)
    parser.add_argument("--hop-size-s", type=int, default=300)
    parser.add_argument("--hop-slide-s", type=int, default=60)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    started = time.perf_counter()
    source = BoundedTopicSource(args.bootstrap, args.topic, args.group_id, round(args.lateness_s * 1000),
                                args.tumble_s * 1000, args.batch_size)
    sink = CsvSink(args.out)
    flow = build_flow(source, sink, args.tumble_s * 1000, args.hop_size_s * 1000, args.hop_slide_s * 1000)
    cli_main(flow, workers_per_process=1)
    elapsed = time.perf_counter() - started
    posts, late = (source.partition.posts, source.partition.late) if source.partition else (0, 0)
    rows = sink.partition.rows if sink.partition else 0
    log.info("done: %d posts (%d late: in no window), %d rows, %.2f s (%.0f posts/s)", posts, late, rows, elapsed,
             posts / elapsed if elapsed else 0.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
