"""The producer runtime every source uses: validate → Avro → `social.posts`, rejects → the dead-letter topic.

- the wire form (registry.producer_encoding): Confluent-framed Avro by default — the writer schema (SocialPost
  version registry.producer_schema_version, or --schema-version) registered under registry.subject when the
  producer starts, which fails then, naming the registry's reason, when the registry refuses it (its
  compatibility rule) — or legacy schemaless Avro version 1;

A source is an iterable of `SourceItem`s (a raw payload plus the cursor to resume after it).
`run_source` drives one through a `PostProducer`:

- kafka-python with acks=all and idempotence, lz4 compression, batching (linger), key = uid;
- bounded memory in flight: `submit` blocks while more than `max_in_flight_bytes` of records are
  unacknowledged (kafka-python 3 has no buffer_memory bound of its own), so a slow broker slows
  the source down instead of growing a queue;
- rejects go to `social.posts.dlq` as a JSON envelope with the reason, the detail and the raw
  payload (base64 when it is not UTF-8), and a counter moves;
- a cursor store: every `checkpoint_every_s` the producer flushes (everything before the cursor is
  acknowledged) and then writes the cursor atomically, so a restarted producer resumes after the
  last acknowledged item — at-least-once with a window of at most one checkpoint interval,
  and duplicates by uid are harmless downstream (jobs count distinct uids);
- SIGTERM/SIGINT stop the source loop, flush, save the cursor and close;
- Prometheus metrics on an HTTP port.
"""

from __future__ import annotations

import abc
import base64
import dataclasses
import hashlib
import io
import json
import logging
import os
import threading
import time
from collections import Counter as CountBy
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from runtime.schema_registry import RegistryUnavailable, SchemaRefused, SchemaRegistry
from runtime.stop import StopFlag
from shared.enrich import detect_language
from shared.names import DELETES_TOPIC, DLQ_TOPIC, POSTS_TOPIC
from shared.post import InvalidPost, RejectReason, SocialPost, encode, encode_framed, now_ms, parse_post, schema_json
from shared.settings import ConfigError, Settings

log = logging.getLogger(__name__)
DETECTS_LANGUAGES = frozenset({"bluesky", "reddit", "mastodon"})  # the live sources (see PostProducer)

EVENT_TIME_HEADER = "created_at"  # epoch millis as decimal text: the post's event time
LATENCY_SAMPLE_EVERY = 64  # timing every send costs more than the send; one in 64 is plenty for a histogram
MAX_DLQ_RAW_BYTES = 256 * 1024  # a dead letter's payload is cut here: the envelope stays far below Kafka's 1 MB
RESEND_ROUNDS = 5  # a record Kafka refused is sent again this many times (backing off) before the producer gives up


@dataclass(slots=True)
class SourceItem:
    """What a source yields: a raw post (JSON bytes/str or a mapping) and the cursor that follows it."""

    payload: bytes | str | Mapping[str, Any]
    cursor: Any = None
    uid_hint: str | None = None  # for the DLQ key when the payload cannot be parsed
    deleted: bool = False  # the payload is a deletion notice ({"uid", ...}) for social.deletes
    rejected: tuple[str, str] | None = None  # (reason, detail): the source could not read it; to the DLQ as is


class SourceError(RuntimeError):
    """A source that cannot start as configured; the message names the setting and what it expects."""


class Source(abc.ABC):
    """What the producer runtime runs (`run_source`): a source yields SourceItems, each with the cursor to save
    once Kafka has everything before it, until it runs out or its StopFlag is set. A live source subclasses this,
    sets `name` (the `source` its posts claim), and its module offers `open_source(args, settings, stop)` for
    `streampulse produce` (registered in connectors/cli.py LIVE_SOURCES)."""

    name: ClassVar[str]

    @abc.abstractmethod
    def items(self) -> Iterator[SourceItem]: ...

    def close(self) -> None:  # noqa: B027 (optional: most sources hold nothing to let go of)
        """Let go of connections and threads; called when the run ends."""


class CursorStore:
    """One JSON file per producer under the state folder, replaced atomically (write, fsync, rename)."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def for_source(cls, settings: Settings, name: str) -> CursorStore:
        return cls(settings.stack.state_path / "cursors" / f"{name}.json")

    @classmethod
    def for_run(cls, settings: Settings, args, source: str, *identity: str) -> tuple[CursorStore, Any]:
        """The cursor file of a `streampulse produce` run: --cursor-name, or one per source and what it reads
        (`identity`), and the cursor to resume from (None with --no-resume)."""
        digest = hashlib.sha256("\0".join(identity).encode()).hexdigest()[:12]
        store = cls.for_source(settings, args.cursor_name or f"{source}-{digest}")
        return store, None if args.no_resume else store.load()

    def load(self) -> Any:
        try:
            return json.loads(self.path.read_text())["cursor"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as exc:
            raise ValueError(f"cursor file {self.path} is unreadable ({exc}); delete it to start over") from exc

    def save(self, cursor: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as out:
            json.dump({"cursor": cursor, "saved_at_ms": now_ms()}, out)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class ProducerMetrics:
    """The producer's Prometheus series. A private registry per producer keeps tests independent."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        kw = {"registry": self.registry, "namespace": "streampulse"}
        self.produced = Counter("posts_produced", "Posts acknowledged by Kafka", ["source"], **kw)
        self.rejected = Counter("posts_rejected", "Posts sent to the dead-letter topic", ["source", "reason"], **kw)
        self.errors = Counter("produce_errors", "Records Kafka did not acknowledge", ["source", "topic"], **kw)
        self.latency = Histogram("send_latency_seconds", "Time from send to acknowledgement (sampled)", ["source"],
                                 buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), **kw)
        self.lag = Gauge("source_lag_seconds", "now − created_at of the last post sent", ["source"], **kw)
        self.clamped = Counter("posts_clamped", "Posts whose created_at was later than their ingestion, set to it",
                               ["source"], **kw)
        self.languages = Counter("languages_detected", "Posts without a language given one by detection",
                                 ["source", "language"], **kw)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", addr, port)


@dataclass
class ProduceSummary:
    sent: int = 0
    rejected: CountBy = field(default_factory=CountBy)
    errors: int = 0
    deleted: int = 0
    elapsed_s: float = 0.0
    cursor: Any = None

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def line(self) -> str:
        rate = self.sent / self.elapsed_s if self.elapsed_s else 0.0
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"
        timing = f", {self.elapsed_s:.1f} s, {rate:,.0f} posts/s" if self.elapsed_s else ""
        deletes = f", deletes {self.deleted:,}" if self.deleted else ""
        return (f"sent {self.sent:,}, rejected {self.rejected_total:,} ({reasons}){deletes}, errors {self.errors:,}"
                f"{timing}")


class MissingTopic(RuntimeError):
    pass


class ProduceError(RuntimeError):
    """Kafka kept refusing records: the producer stops rather than move its cursor past them."""


class SchemaRejected(ProduceError):
    """The schema registry refused the producer's writer schema: it does not start. The message names the
    subject and the registry's reason."""


def register_writer_schema(settings: Settings, version: int, schema: dict | None = None) -> int:
    """Register the writer schema (SocialPost `version`, or `schema`) under registry.subject and return its id.
    SchemaRejected when the registry refuses it; ServiceUnavailable (with the URL and the fix) when it is down."""
    from runtime.clients import ServiceUnavailable

    registry = settings.registry
    try:
        with SchemaRegistry(registry.base_url, registry.timeout_s) as client:
            return client.register(registry.subject, schema if schema is not None else schema_json(version))
    except SchemaRefused as exc:
        raise SchemaRejected(f"the schema registry refused the producer's writer schema for subject "
                             f"{exc.subject!r} (HTTP {exc.status}): {exc.reason}") from None
    except RegistryUnavailable as exc:
        raise ServiceUnavailable("the schema registry", registry.base_url, exc.cause) from None


class PostProducer:
    """Validates and publishes posts; thread-safe accounting, one instance per source process."""

    def __init__(self, settings: Settings, source: str, *, topic: str = POSTS_TOPIC, dlq_topic: str = DLQ_TOPIC,
                 deletes_topic: str = DELETES_TOPIC, metrics: ProducerMetrics | None = None,
                 max_in_flight_bytes: int = 32 * 1024 * 1024,
                 linger_ms: int = 20, batch_size: int = 256 * 1024, now: Callable[[], int] = now_ms,
                 detect_languages: bool | None = None, encoding: str | None = None,
                 schema_version: int | None = None, writer_schema: dict | None = None):
        from kafka import KafkaProducer
        from kafka.errors import KafkaTimeoutError

        from runtime.clients import ServiceUnavailable

        self.source, self.topic, self.dlq_topic, self.deletes_topic = source, topic, dlq_topic, deletes_topic
        # The wire form, settled before Kafka is touched: a registry that refuses the writer schema (or is down)
        # stops the producer at its start. `writer_schema` (a schema of its own, registered as it is) is for tests.
        self.encoding = encoding or settings.registry.producer_encoding
        if self.encoding not in ("confluent", "legacy"):
            raise ConfigError(f"encoding {self.encoding!r} is not confluent or legacy")
        if self.encoding == "legacy" and schema_version not in (None, 1):
            raise ConfigError(f"the legacy encoding writes SocialPost version 1 only, not {schema_version}: "
                              "use --encoding confluent for a later version")
        self.schema_version = 1 if self.encoding == "legacy" else (
            schema_version or settings.registry.producer_schema_version)
        self.schema_id = (register_writer_schema(settings, self.schema_version, writer_schema)
                          if self.encoding == "confluent" else None)
        # A live source's post without a language gets the detected one (shared/enrich.py), once, here: Kafka, the
        # lake and every job then agree on it. Replayed and synthetic posts are published as recorded.
        self.detect_languages = source in DETECTS_LANGUAGES if detect_languages is None else detect_languages
        self.metrics = metrics or ProducerMetrics()
        self.summary = ProduceSummary()
        self._now = now
        self._buffer = io.BytesIO()
        self._max_in_flight = max_in_flight_bytes
        self._in_flight = 0
        self.peak_in_flight_bytes = 0
        self._in_flight_cv = threading.Condition()
        self._failed: list[tuple] = []  # records Kafka refused, sent again by flush()
        self._sends = 0
        self._produced = self.metrics.produced.labels(source)
        self._lag = self.metrics.lag.labels(source)
        self._latency = self.metrics.latency.labels(source)
        try:
            self._kafka = KafkaProducer(
                **settings.kafka.client_options("producer"), client_id=f"streampulse-producer-{source}",
                acks="all", enable_idempotence=True, compression_type="lz4", linger_ms=linger_ms,
                batch_size=batch_size, max_in_flight_requests_per_connection=5, delivery_timeout_ms=120_000,
                bootstrap_timeout_ms=10_000, max_block_ms=15_000, metrics_enabled=False,
            )
        except KafkaTimeoutError as exc:
            raise ServiceUnavailable("Kafka", settings.kafka.bootstrap, "no broker answered") from exc
        for name in (topic, dlq_topic):
            try:
                self._kafka.partitions_for(name)
            except KafkaTimeoutError:
                self._kafka.close(timeout=1)
                raise MissingTopic(f"Kafka topic {name!r} does not exist on {settings.kafka.bootstrap}: "
                                   "`streampulse stack up` creates the standard topics") from None

    # -- publishing -------------------------------------------------------------------------------------

    def submit(self, payload: bytes | str | Mapping[str, Any], *, uid_hint: str | None = None) -> SocialPost | None:
        """Validate one raw post and send it, or send it to the DLQ with the reason. Returns the post or None."""
        try:
            post = parse_post(payload, now=self._now())
        except InvalidPost as exc:
            self.reject(payload, exc.reason, exc.detail, uid_hint=uid_hint)
            return None
        if self.detect_languages:
            detected = None if post.langs else detect_language(post.text)
            if detected:
                post = dataclasses.replace(post, langs=(detected,))
                self.metrics.languages.labels(self.source, detected).inc()
            post.extra["lang_detected"] = bool(detected)  # written by schema version 2
        if post.schema_version != self.schema_version:
            post = dataclasses.replace(post, schema_version=self.schema_version)
        self.send(post)
        return post

    def send(self, post: SocialPost) -> None:
        if self.schema_id is None and post.schema_version != 1:  # the legacy form is version 1 only
            post = dataclasses.replace(post, schema_version=1)
        value = (encode(post, self._buffer) if self.schema_id is None
                 else encode_framed(post, self.schema_id, self.schema_version, self._buffer))
        # The post's event time travels in a header, where the jobs' watermarks read it (sql/flink/
        # social_posts_source.sql); the record's own timestamp stays the time it was sent, which the broker
        # bounds and Kafka's retention counts from (a replay of old posts is not deleted on arrival).
        self._send(self.topic, post.uid.encode(), value, post,
                   headers=[(EVENT_TIME_HEADER, str(post.created_at).encode())])
        self._lag.set(max(0.0, (self._now() - post.created_at) / 1000))
        if post.extra.get("clamped_ms"):
            self.metrics.clamped.labels(self.source).inc()

    def reject(self, payload: Any, reason: RejectReason | str, detail: str, *, uid_hint: str | None = None) -> None:
        reason = str(reason)
        envelope = {"reason": reason, "detail": detail, "source": self.source, "rejected_at": self._now(),
                    **_raw_field(payload)}
        self._send(self.dlq_topic, uid_hint.encode() if uid_hint else None,
                   json.dumps(envelope, ensure_ascii=False).encode(), None, headers=[("reason", reason.encode())])
        self.summary.rejected[reason] += 1
        self.metrics.rejected.labels(self.source, reason).inc()

    def send_delete(self, notice: Mapping[str, Any]) -> None:
        """A post was deleted at its source: {"uid", ...} to the deletes topic, keyed like the post."""
        uid = notice.get("uid")
        record = {"source": self.source, "deleted_at": self._now(), **notice}
        self.send_raw(self.deletes_topic, uid.encode() if uid else None,
                      json.dumps(record, ensure_ascii=False).encode())
        self.summary.deleted += 1

    def send_raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Other records a source owns (e.g. deletes to social.deletes), with the same accounting."""
        self._send(topic, key, value, None)

    def _send(self, topic: str, key: bytes | None, value: bytes, post: SocialPost | None, headers=None) -> None:
        size = len(value) + (len(key) if key else 0)
        with self._in_flight_cv:
            while self._in_flight + size > self._max_in_flight and self._in_flight:
                self._in_flight_cv.wait()  # back-pressure: callbacks release space as Kafka acknowledges
            self._in_flight += size
            self.peak_in_flight_bytes = max(self.peak_in_flight_bytes, self._in_flight)
        self._sends += 1
        started = time.perf_counter() if self._sends % LATENCY_SAMPLE_EVERY == 0 else None
        record = (topic, key, value, post, headers)
        future = self._kafka.send(topic, key=key, value=value, headers=headers)
        future.add_both(self._acknowledged, size, record, started)

    def _acknowledged(self, size: int, record: tuple, started: float | None, result) -> None:
        # Runs on kafka-python's sender thread, for successes and failures alike.
        with self._in_flight_cv:
            self._in_flight -= size
            self._in_flight_cv.notify_all()
        topic, is_post = record[0], record[3] is not None
        if isinstance(result, BaseException):
            self.summary.errors += 1
            self.metrics.errors.labels(self.source, topic).inc()
            log.error("Kafka did not acknowledge a record for %s (it will be sent again): %s", topic, result)
            with self._in_flight_cv:
                self._failed.append(record)
            return
        if is_post:
            self.summary.sent += 1
            self._produced.inc()
        if started is not None:
            self._latency.observe(time.perf_counter() - started)

    def flush(self, timeout_s: float | None = None, *, sleep: Callable[[float], None] = time.sleep) -> None:
        """Wait until every record sent so far is acknowledged, sending refused ones again (backing off);
        raises ProduceError when Kafka still refuses some after RESEND_ROUNDS rounds, so that a cursor saved
        after a flush never passes a record that was lost."""
        self._kafka.flush(timeout=timeout_s)
        for round_ in range(1, RESEND_ROUNDS + 1):
            with self._in_flight_cv:
                failed, self._failed = self._failed, []
            if not failed:
                return
            log.warning("sending %d refused records again (round %d of %d)", len(failed), round_, RESEND_ROUNDS)
            sleep(min(30.0, 2.0 ** round_))
            for topic, key, value, post, headers in failed:
                self._send(topic, key, value, post, headers)
            self._kafka.flush(timeout=timeout_s)
        with self._in_flight_cv:
            lost = len(self._failed)
        if lost:
            raise ProduceError(f"Kafka refused {lost} records {RESEND_ROUNDS + 1} times; stopping without moving the "
                               "cursor past them (see the errors above)")

    def close(self) -> None:
        self._kafka.flush()
        self._kafka.close()


def _raw_field(payload: Any) -> dict[str, Any]:
    """The dead letter's copy of the payload, cut to MAX_DLQ_RAW_BYTES (its full size is kept beside it)."""
    field = _raw_text(payload)
    size = len(field["raw"].encode("utf-8", "surrogatepass"))
    if size > MAX_DLQ_RAW_BYTES:
        cut = field["raw"].encode("utf-8", "surrogatepass")[:MAX_DLQ_RAW_BYTES].decode("utf-8", "ignore")
        field |= {"raw": cut, "raw_truncated": True, "raw_bytes": size}
    return field


def _raw_text(payload: Any) -> dict[str, str]:
    if isinstance(payload, Mapping):
        return {"raw": json.dumps(payload, ensure_ascii=False, default=str), "raw_encoding": "json"}
    if isinstance(payload, str):
        try:
            payload.encode("utf-8")
            return {"raw": payload, "raw_encoding": "utf-8"}
        except UnicodeEncodeError:
            payload = payload.encode("utf-8", "surrogatepass")
    try:
        return {"raw": bytes(payload).decode("utf-8"), "raw_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"raw": base64.b64encode(bytes(payload)).decode(), "raw_encoding": "base64"}


class EventTimePacer:
    """Releases items at `speed`× real time by their event time; speed 0 means as fast as possible."""

    def __init__(self, speed: float, clock: Callable[[], float] = time.monotonic, sleep=time.sleep):
        self.speed, self._clock, self._sleep = speed, clock, sleep
        self._origin: tuple[float, int] | None = None

    def wait(self, event_ms: int, stop: StopFlag | None = None) -> None:
        if self.speed <= 0:
            return
        if self._origin is None:
            self._origin = (self._clock(), event_ms)
            return
        due = self._origin[0] + (event_ms - self._origin[1]) / 1000 / self.speed
        while (delay := due - self._clock()) > 0 and not (stop and stop.stopping):
            self._sleep(min(delay, 0.5))


def run_source(producer: PostProducer, items: Iterable[SourceItem], *, cursor_store: CursorStore | None = None,
               checkpoint_every_s: float = 5.0, pacer: EventTimePacer | None = None,
               event_time: Callable[[SourceItem], int | None] | None = None, progress=None,
               stop: StopFlag | None = None) -> ProduceSummary:
    """Drive a source to its end (or to a stop signal), checkpointing the cursor after acknowledged flushes."""
    stop = stop or StopFlag()
    started = last_checkpoint = time.monotonic()
    cursor = None
    try:
        for item in items:
            if pacer and event_time and (ms := event_time(item)) is not None:
                pacer.wait(ms, stop)
            if stop.stopping:
                break
            if item.rejected:
                producer.reject(item.payload, *item.rejected, uid_hint=item.uid_hint)
            elif item.deleted:
                producer.send_delete(item.payload)
            else:
                producer.submit(item.payload, uid_hint=item.uid_hint)
            cursor = item.cursor if item.cursor is not None else cursor
            if progress is not None:
                progress.update(1)
            if cursor_store and time.monotonic() - last_checkpoint >= checkpoint_every_s:
                producer.flush()  # everything up to `cursor` is now acknowledged (refused records sent again)
                cursor_store.save(cursor)
                last_checkpoint = time.monotonic()
    finally:
        try:
            producer.flush()  # raises ProduceError, and saves nothing, when records stay refused
            if cursor_store and cursor is not None:
                cursor_store.save(cursor)
        finally:
            producer.summary.elapsed_s = time.monotonic() - started
            producer.summary.cursor = cursor
    return producer.summary
