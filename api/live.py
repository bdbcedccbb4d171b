"""The live stream behind GET /v1/stream/trends: one Kafka reader per process, fanned out to every client.

The reader follows the jobs' output topics read_committed (an alert is seen once its job's checkpoint committed
it, never an aborted one). Each event's id is the position after it: `topic:partition:next_offset` for every
partition followed, comma-separated. A client that reconnects with that id as Last-Event-ID gets every event
after it and none before it: from the events kept in memory (`api.stream_buffer_events`), or read from Kafka by
a reader of its own when it is further behind, then live. Position `topic:partition:0` everywhere replays what
the topics still hold.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

from shared.settings import Settings

log = logging.getLogger("streampulse.api.live")

Partition = tuple[str, int]
Position = dict[Partition, int]  # (topic, partition) → the next offset to deliver
MAX_ID_CHARS = 4096
CLIENT_BACKLOG_EVENTS = 10_000  # a client this far behind the live stream is dropped; it reconnects and catches up


def encode_position(position: Position) -> str:
    return ",".join(f"{topic}:{partition}:{offset}" for (topic, partition), offset in sorted(position.items()))


def decode_position(text: str, topics: tuple[str, ...]) -> Position:
    """A Last-Event-ID back into a position; ValueError naming what is wrong."""
    if len(text) > MAX_ID_CHARS:
        raise ValueError(f"longer than {MAX_ID_CHARS} characters")
    position: Position = {}
    for part in text.split(","):
        topic, _, rest = part.strip().rpartition(":")
        topic, _, partition = topic.rpartition(":")
        if topic not in topics:
            raise ValueError(f"{part!r} is not topic:partition:offset of a followed topic ({', '.join(topics)})")
        if not (partition.isdigit() and rest.isdigit()):
            raise ValueError(f"{part!r}: partition and offset must be whole numbers")
        position[topic, int(partition)] = int(rest)
    return position


@dataclass(frozen=True, slots=True)
class LiveEvent:
    topic: str
    partition: int
    offset: int
    kind: str  # "trend" or "anomaly": the SSE event name
    data: str  # the record's JSON value, as the job wrote it
    after: tuple[tuple[Partition, int], ...]  # the reader's position after this event
    id: str  # `after`, encoded
    wire: bytes  # the event as text/event-stream with that id, encoded once for every client that is caught up


def sse(kind: str, event_id: str, data: str) -> bytes:
    """One server-sent event (a `data:` line per line of the value)."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {kind}\nid: {event_id}\n{lines}\n".encode()


KEEPALIVE = b": keep-alive\n\n"


def wire_for(position: Position, batch: list[LiveEvent]) -> bytes:
    """The events of `batch` a client at `position` has not had (advancing it), with the ids that resume it
    exactly after each: the shared encoding when it is where the reader was, its own otherwise."""
    parts = []
    for event in batch:
        tp = (event.topic, event.partition)
        if event.offset < position.get(tp, 0):
            continue
        position[tp] = event.offset + 1
        caught_up = tuple(sorted(position.items())) == event.after
        parts.append(event.wire if caught_up else sse(event.kind, encode_position(position), event.data))
    return b"".join(parts)


class Subscription:
    """One client's queue of live batches (None: it fell too far behind and must reconnect)."""

    def __init__(self):
        self.queue: asyncio.Queue[list[LiveEvent] | None] = asyncio.Queue()
        self.pending = 0

    def offer(self, batch: list[LiveEvent]) -> bool:
        self.pending += len(batch)
        if self.pending > CLIENT_BACKLOG_EVENTS:
            self.queue.put_nowait(None)
            return False
        self.queue.put_nowait(batch)
        return True


class LiveStream:
    def __init__(self, settings: Settings):
        self.settings = settings
        api = settings.api
        self.kinds = {api.alerts_topic: "trend", api.anomalies_topic: "anomaly"}
        self.topics = tuple(self.kinds)
        self.buffer: deque[LiveEvent] = deque()
        self.buffer_base: Position = {}  # the buffer holds every event from here on
        self.position: Position = {}  # after the last event published to clients
        self.subscriptions: set[Subscription] = set()
        self.ready = asyncio.Event()
        self.error: str | None = None  # why the reader is not following, for /v1/health
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- the process's reader (a thread: kafka-python blocks) ---

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._follow, name="live-stream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def consumer(self):
        from kafka import KafkaConsumer

        return KafkaConsumer(**self.settings.kafka.client_options("api"), client_id="streampulse-api",
                             group_id=None, enable_auto_commit=False, isolation_level="read_committed",
                             auto_offset_reset="earliest", request_timeout_ms=30_000)

    def partitions(self, consumer) -> list:
        from kafka import TopicPartition

        found = []
        for topic in self.topics:
            numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                raise RuntimeError(f"topic {topic} not found on {self.settings.kafka.bootstrap}")
            found += [TopicPartition(topic, n) for n in sorted(numbers)]
        return found

    def _follow(self) -> None:
        read: Position = {}
        while not self._stop.is_set():
            consumer = None
            try:
                consumer = self.consumer()
                assigned = self.partitions(consumer)
                consumer.assign(assigned)
                if read:  # after an error: on from where this reader was
                    for tp in assigned:
                        consumer.seek(tp, read.get((tp.topic, tp.partition), 0))
                else:  # live from now
                    consumer.seek_to_end(*assigned)
                    read = {(tp.topic, tp.partition): consumer.position(tp) for tp in assigned}
                    self._loop.call_soon_threadsafe(self._started, dict(read))
                self.error = None
                while not self._stop.is_set():
                    batch = []
                    for tp, records in consumer.poll(timeout_ms=200, max_records=2000).items():
                        for record in records:
                            read[tp.topic, tp.partition] = record.offset + 1
                            batch.append(self.event(tp.topic, tp.partition, record.offset, record.value, read))
                    if batch:
                        self._loop.call_soon_threadsafe(self._publish, batch)
            except Exception as exc:  # the reader must outlive a broker restart
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("live stream: cannot read %s from %s (%s); retrying in 5 s", ", ".join(self.topics),
                            self.settings.kafka.bootstrap, self.error)
                self._stop.wait(5)
            finally:
                if consumer is not None:
                    consumer.close()

    def event(self, topic: str, partition: int, offset: int, value: bytes | None, after: Position) -> LiveEvent:
        frozen = tuple(sorted(after.items()))
        kind, data, event_id = self.kinds[topic], (value or b"null").decode("utf-8", "replace"), encode_position(after)
        return LiveEvent(topic, partition, offset, kind, data, frozen, event_id, sse(kind, event_id, data))

    # --- on the event loop ---

    def _started(self, position: Position) -> None:
        self.position = dict(position)
        self.buffer_base = dict(position)
        self.ready.set()

    def _publish(self, batch: list[LiveEvent]) -> None:
        limit = self.settings.api.stream_buffer_events
        for event in batch:
            self.buffer.append(event)
            self.position[event.topic, event.partition] = event.offset + 1
        while len(self.buffer) > limit:
            gone = self.buffer.popleft()
            self.buffer_base[gone.topic, gone.partition] = gone.offset + 1
        for subscription in list(self.subscriptions):
            if not subscription.offer(batch):
                self.subscriptions.discard(subscription)
                log.warning("live stream: a client fell %d events behind; it is disconnected and will catch up "
                            "when it reconnects", CLIENT_BACKLOG_EVENTS)

    async def stream(self, start: Position | None, keepalive_s: float) -> AsyncIterator[bytes]:
        """text/event-stream from `start` (None: from now) on, each event once; a comment line every
        `keepalive_s` of silence, so that proxies keep the connection."""
        subscription = Subscription()
        self.subscriptions.add(subscription)  # before the snapshot: nothing published after it is missed
        snapshot = dict(self.position)
        position = dict(snapshot) if start is None else {tp: start.get(tp, 0) for tp in snapshot}
        try:
            if start is not None:
                if all(position[tp] >= self.buffer_base.get(tp, 0) for tp in position):
                    chunk = wire_for(position, [e for e in self.buffer if e.offset < snapshot[e.topic, e.partition]])
                    if chunk:
                        yield chunk
                else:
                    async for batch in self._read_kafka(dict(position), snapshot):
                        if chunk := wire_for(position, batch):
                            yield chunk
            while True:
                try:
                    batch = await asyncio.wait_for(subscription.queue.get(), keepalive_s)
                except TimeoutError:
                    yield KEEPALIVE
                    continue
                if batch is None:
                    return  # too far behind: the client reconnects with its last id and catches up
                subscription.pending -= len(batch)
                if chunk := wire_for(position, batch):
                    yield chunk
        finally:
            self.subscriptions.discard(subscription)

    async def _read_kafka(self, start: Position, until: Position) -> AsyncIterator[list[LiveEvent]]:
        """The events from `start` to `until` (exclusive), in batches, read by a reader of this client's own."""
        from kafka import TopicPartition

        behind = {TopicPartition(*tp): offset for tp, offset in start.items() if offset < until[tp]}
        if not behind:
            return
        consumer = await anyio.to_thread.run_sync(self.consumer)
        try:
            consumer.assign(list(behind))
            for tp, offset in behind.items():
                consumer.seek(tp, offset)
            read = dict(start)

            def poll() -> list[LiveEvent]:
                batch = []
                for tp, records in consumer.poll(timeout_ms=500, max_records=2000).items():
                    for record in records:
                        if record.offset < until[tp.topic, tp.partition]:
                            read[tp.topic, tp.partition] = record.offset + 1
                            batch.append(self.event(tp.topic, tp.partition, record.offset, record.value, read))
                for tp in behind:  # transaction markers and a topic's end move the position without a record
                    read[tp.topic, tp.partition] = max(read[tp.topic, tp.partition], consumer.position(tp))
                return batch

            while any(read[tp] < until[tp] for tp in read if tp in until):
                yield await anyio.to_thread.run_sync(poll)
        finally:
            await anyio.to_thread.run_sync(consumer.close)
