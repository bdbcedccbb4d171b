"""The canonical SocialPost: the one record every source produces and every job reads.

`parse_post` is the single door into the stream: it takes what a source gives (a JSON line, raw
bytes, a mapping) and returns a validated `SocialPost`, or raises `InvalidPost` with a reason
from `RejectReason`, which the producer runtime sends to the dead-letter topic with the raw payload.
The wire form on `social.posts` comes in two encodings, which `decode_post` tells apart by the first byte
(shared/confluent_wire.py `is_framed` says why that is unambiguous):

- Confluent-framed (`encode_framed`, what producers write by default): magic byte 0, the writer schema's
  4-byte id in the schema registry, the Avro binary of version 1 (shared/social_post.avsc) or 2
  (shared/social_post_v2.avsc). The jobs read it with Avro schema resolution, writer schema (fetched by id,
  once per process) → their reader schema, version 1: a version-2 field is skipped, a missing one defaulted.
- legacy (`encode`/`decode`, `registry.producer_encoding: legacy`): schemaless Avro binary of version 1,
  which Flink's `avro` format also reads directly.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import fastavro

from shared import confluent_wire as wire

SCHEMA_PATH = Path(__file__).with_name("social_post.avsc")
SCHEMA = fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text()))
# Every version of the schema, as written (what producers register). Version 1 is the jobs' and the lake's reader
# schema and the model below; version 2 adds optional fields at the end (a writer's choice: `produce
# --schema-version`, registry.producer_schema_version).
SCHEMA_FILES = {1: SCHEMA_PATH, 2: Path(__file__).with_name("social_post_v2.avsc")}
SCHEMA_VERSIONS = tuple(SCHEMA_FILES)


def schema_json(version: int) -> dict[str, Any]:
    """The Avro schema of a SocialPost version, as written in its .avsc file."""
    return json.loads(SCHEMA_FILES[version].read_text())


def _without_logical_types(schema: dict[str, Any]) -> dict[str, Any]:
    # The binary encoding of a timestamp-millis is a plain long; skipping fastavro's logical-type
    # conversion halves the cost of encode/decode on the hot path. Bytes are identical (a unit test checks).
    fields = [{**f, "type": "long"} if isinstance(f["type"], dict) and "logicalType" in f["type"] else f
              for f in schema["fields"]]
    return fastavro.parse_schema({**schema, "fields": fields})


_WIRE_SCHEMA = _without_logical_types(json.loads(SCHEMA_PATH.read_text()))
_WIRE_SCHEMAS = {version: _without_logical_types(schema_json(version)) for version in SCHEMA_VERSIONS}
# What a version adds to the model's record, with the value a post without it writes.
_ADDED_FIELDS = {version: {f["name"]: f.get("default") for f in schema_json(version)["fields"]
                           if f["name"] not in {g["name"] for g in schema_json(1)["fields"]}}
                 for version in SCHEMA_VERSIONS}
# The SocialPost shape, written once (the Avro schema): name → Avro type, in the schema's order. The Flink
# DDL columns (flink_columns), the archive's row type and SocialPost itself follow it (tests/unit/test_post.py).
FIELDS: dict[str, Any] = {f["name"]: f["type"] for f in json.loads(SCHEMA_PATH.read_text())["fields"]}
SCHEMA_VERSION = 1

SOURCES = frozenset({"bluesky", "reddit", "mastodon", "synthetic"})
MAX_TEXT_CHARS = 40_000  # Reddit's self-post limit, the longest of our sources
MAX_ID_CHARS = 512
MAX_LIST_ITEMS = 256
# What reaches a sink key or a keyword is bounded here, where every post enters the system (the producers'
# parse_post and the jobs' decode_post): a 3 KB "language" or an 8,000-character tag must never become a
# PostgreSQL index key (btree rows stop at 2,704 bytes) or a keyword.
MAX_TAG_CHARS = 64  # Bluesky's facet tags allow 64 graphemes; a longer "tag" is dropped
MAX_LANGS = 8
MAX_LANG_CHARS = 35  # RFC 5646 §4.4.1: what every implementation must support
MAX_COMMUNITY_CHARS = 256  # a DNS host name (Mastodon) or r/<21 characters> (Reddit) fits
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 control characters
_BCP47_SHAPE = re.compile(r"[a-z]{2,8}(?:-[a-z0-9]{1,8})*")  # language[-script][-region][-variant...], lower-cased
MIN_CREATED_AT_MS = int(datetime(2005, 1, 1, tzinfo=UTC).timestamp() * 1000)  # before any of our sources existed
MAX_CLOCK_SKEW_MS = 10 * 60 * 1000  # a post "from the future" beyond this is a broken clock or a bad field

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class RejectReason(StrEnum):
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    TEXT_TOO_LONG = "text_too_long"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    UNDECODABLE = "undecodable"  # on social.posts: not the SocialPost Avro record (jobs only)
    TIMESTAMP_MISMATCH = "timestamp_mismatch"  # on social.posts: created_at is not the record's event time
    KEY_MISMATCH = "key_mismatch"  # on social.posts: the Kafka key is not the uid
    UNKNOWN_SCHEMA = "unknown_schema"  # on social.posts: Confluent-framed with an id the registry does not know


class InvalidPost(ValueError):
    """Input that cannot become a SocialPost; `reason` is a RejectReason, `detail` says what was wrong."""

    def __init__(self, reason: RejectReason, detail: str):
        super().__init__(f"{reason.value}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(slots=True, frozen=True)
class SocialPost:
    uid: str
    source: str
    author_id: str
    text: str
    created_at: int  # epoch millis, UTC: event time
    ingested_at: int  # epoch millis, UTC
    langs: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    reply_parent: str | None = None
    reply_root: str | None = None
    community: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # never serialised

    def to_record(self) -> dict[str, Any]:
        """The Avro record (and the JSON form of replay files)."""
        # Written out rather than dataclasses.asdict, which deep-copies and costs ~4x more per post.
        return {
            "uid": self.uid, "source": self.source, "author_id": self.author_id, "text": self.text,
            "langs": list(self.langs), "created_at": self.created_at, "ingested_at": self.ingested_at,
            "hashtags": list(self.hashtags), "mentions": list(self.mentions), "links": list(self.links),
            "reply_parent": self.reply_parent, "reply_root": self.reply_root, "community": self.community,
            "schema_version": self.schema_version,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_record(), ensure_ascii=False, separators=(",", ":"))


def encode(post: SocialPost, buffer: io.BytesIO | None = None) -> bytes:
    """Schemaless Avro binary of `post` (what Flink's `avro` format reads)."""
    buffer = buffer or io.BytesIO()
    buffer.seek(0)
    buffer.truncate()
    fastavro.schemaless_writer(buffer, _WIRE_SCHEMA, post.to_record())
    return buffer.getvalue()


def writer_record(post: SocialPost, version: int) -> dict[str, Any]:
    """The record a writer of schema `version` writes: the model's fields, schema_version set to `version`, and
    each field the version adds from the post's `extra` (e.g. lang_detected, which the producer fills)."""
    record = post.to_record()
    record["schema_version"] = version
    for name, default in _ADDED_FIELDS[version].items():
        record[name] = post.extra.get(name, default)
    return record


def encode_framed(post: SocialPost, schema_id: int, version: int = 1, buffer: io.BytesIO | None = None) -> bytes:
    """The Confluent wire form of `post`: magic byte 0, `schema_id` (the registry's id of SocialPost `version`),
    the Avro binary in that version."""
    buffer = buffer or io.BytesIO()
    buffer.seek(0)
    buffer.truncate()
    buffer.write(wire.frame(schema_id, b""))
    fastavro.schemaless_writer(buffer, _WIRE_SCHEMAS[version], writer_record(post, version))
    return buffer.getvalue()


def decode(payload: bytes) -> SocialPost:
    """A social.posts record as the SocialPost it holds, in either encoding (`read_record`: a framed record's writer
    schema from the registry `use_registry` set), without decode_post's checks: what tests and tools read back."""
    record = read_record(payload)
    for name in ("langs", "hashtags", "mentions", "links"):
        record[name] = tuple(record[name])
    return SocialPost(**record)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_post(raw: bytes | str | Mapping[str, Any], *, ingested_at: int | None = None,
               now: int | None = None) -> SocialPost:
    """Validate one post from a JSON document (bytes or str) or an already-parsed mapping.

    `ingested_at` defaults to the record's own value, else now. `now` (epoch millis) bounds
    `created_at` from above: tests pass it to stay deterministic. A `created_at` later than the post's
    ingestion (a client's clock ahead of ours, up to MAX_CLOCK_SKEW_MS) is clamped to the ingestion time,
    so that no post can carry the stream's event time into the future; `extra["clamped_ms"]` says by how
    much (the producers count it). Further ahead, the post is rejected.
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPost(RejectReason.INVALID_UTF8, f"payload is not UTF-8 at byte {exc.start}") from None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidPost(RejectReason.INVALID_JSON, f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except RecursionError:
            raise InvalidPost(RejectReason.INVALID_JSON, "nested too deeply") from None
    if not isinstance(raw, Mapping):
        raise InvalidPost(RejectReason.NOT_AN_OBJECT, f"expected a JSON object, got {type(raw).__name__}")
    now = now_ms() if now is None else now
    return _validated(raw, ingested_at=ingested_at, now=now)


def decode_post(payload: bytes | None, event_time: int | None = None, key: bytes | None = None) -> SocialPost:
    """A record of social.posts as the jobs read it: the SocialPost Avro record, held to the same rules as
    parse_post (producers are not the only thing that can write a topic), and, when given, with `created_at`
    equal to the record's event time — what the jobs' watermarks follow: the `created_at` header the
    producers write, capped at the record's timestamp (sql/flink/social_posts_source.sql) — and the uid equal
    to the record's key (the partition a post's copies share). Both encodings are read (`read_record`); the
    registry is asked for a framed record's writer schema once per id and process, and a registry that does not
    answer raises RegistryUnavailable (the job fails and restarts rather than quarantine good records). Raises
    InvalidPost."""
    if not payload:
        raise InvalidPost(RejectReason.UNDECODABLE, "empty record")
    record = read_record(payload)
    post = _validated(record, ingested_at=None, now=None)
    if post.extra.get("clamped_ms"):
        raise InvalidPost(RejectReason.TIMESTAMP_OUT_OF_RANGE, "created_at is later than ingested_at")
    if event_time is not None and post.created_at != event_time:
        raise InvalidPost(RejectReason.TIMESTAMP_MISMATCH,
                          f"created_at {_iso(post.created_at)} is not the record's event time {_iso(event_time)}")
    if key is not None and key != post.uid.encode():
        raise InvalidPost(RejectReason.KEY_MISMATCH, f"the record's key is not the uid {post.uid[:200]!r}")
    return post


class _Reader:
    """How a framed record is read: writer schema by id (cached) → resolved to the reader schema."""

    def __init__(self, writer_schemas: wire.WriterSchemas | None = None, reader_version: int = 1):
        self.writer_schemas = writer_schemas
        self.reader_version = reader_version
        self._resolved: dict[int, tuple[Any, Any] | None] = {}

    def schemas(self, schema_id: int) -> tuple[Any, Any] | None:
        """(writer, reader) parsed for fastavro, reader None when the writer schema is the reader's (no
        resolution needed); None when the registry has no such id."""
        if schema_id not in self._resolved:
            if self.writer_schemas is None:
                raise RuntimeError("a Confluent-framed record, but this process has no schema registry to read its "
                                   "writer schema from (shared.post.use_registry)")
            writer = self.writer_schemas.get(schema_id)
            if writer is None:
                self._resolved[schema_id] = None
            else:
                reader_json = schema_json(self.reader_version)
                same = _without_docs(writer) == _without_docs(reader_json)
                self._resolved[schema_id] = (_WIRE_SCHEMAS[self.reader_version], None) if same else (
                    _without_logical_types(writer), _WIRE_SCHEMAS[self.reader_version])
        return self._resolved[schema_id]


def _without_docs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_docs(v) for k, v in schema.items() if k != "doc"}
    if isinstance(schema, list):
        return [_without_docs(v) for v in schema]
    return schema


_READER = _Reader()


def use_registry(fetch=None, *, reader_version: int = 1) -> None:
    """Where this process's decode_post finds writer schemas: `fetch(id) → schema dict | None` (e.g.
    runtime/schema_registry.py SchemaRegistry(url).schema, which the jobs' minute stage sets), or None: none, and a
    framed record is an error. Resets the per-process cache."""
    global _READER
    _READER = _Reader(wire.WriterSchemas(fetch) if fetch is not None else None, reader_version)


def read_record(payload: bytes, reader: _Reader | None = None) -> dict[str, Any]:
    """The Avro record of a social.posts payload in the reader schema (version 1 unless `use_registry` said
    otherwise), from either encoding; InvalidPost (undecodable, or unknown_schema for a framed record whose id
    the registry does not know) when it is neither."""
    reader = reader or _READER
    if wire.is_framed(payload):
        try:
            schema_id = wire.schema_id_of(payload)
        except ValueError as exc:
            raise InvalidPost(RejectReason.UNDECODABLE, f"Confluent-framed record: {exc}") from None
        schemas = reader.schemas(schema_id)
        if schemas is None:
            raise InvalidPost(RejectReason.UNKNOWN_SCHEMA,
                              f"Confluent-framed record with schema id {schema_id}, which the registry does not know")
        start, what = wire.HEADER_BYTES, f"a record of schema id {schema_id}"
    else:
        schemas, start, what = (_WIRE_SCHEMA, None), 0, "a SocialPost Avro record"
    try:
        buffer = io.BytesIO(payload)
        buffer.seek(start)
        record = fastavro.schemaless_reader(buffer, schemas[0], schemas[1])
    except Exception as exc:  # fastavro raises whatever the bytes lead it to: EOFError, ValueError, ...
        raise InvalidPost(RejectReason.UNDECODABLE, f"not {what}: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(record, dict):
        raise InvalidPost(RejectReason.UNDECODABLE, f"not {what}: a {type(record).__name__}")
    if buffer.tell() != len(payload):
        raise InvalidPost(RejectReason.UNDECODABLE, f"{len(payload) - buffer.tell()} bytes after the record")
    return record


def _validated(raw: Mapping[str, Any], *, ingested_at: int | None, now: int | None) -> SocialPost:
    """The rules every post meets, however it arrives. `now` None: no bound from the clock (the jobs, which
    replay old data deterministically)."""
    source = _text_field(raw, "source", MAX_ID_CHARS)
    if source not in SOURCES:
        raise InvalidPost(RejectReason.INVALID_FIELD, f"source {source!r} is not one of {sorted(SOURCES)}")
    text = _text_field(raw, "text", None, allow_empty=True)
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidPost(RejectReason.TEXT_TOO_LONG, f"text has {len(text)} characters, the limit is {MAX_TEXT_CHARS}")
    if "\x00" in text:
        raise InvalidPost(RejectReason.INVALID_FIELD, "text contains a NUL character")
    created_at = timestamp_field(raw, "created_at")
    if created_at < MIN_CREATED_AT_MS or (now is not None and created_at > now + MAX_CLOCK_SKEW_MS):
        raise InvalidPost(RejectReason.TIMESTAMP_OUT_OF_RANGE,
                          f"created_at {_iso(created_at)} is outside 2005-01-01 .. now + 10 minutes"
                          + (f" ({_iso(now)})" if now is not None else ""))
    if ingested_at is not None:
        ingested = ingested_at
    elif raw.get("ingested_at") is not None:
        ingested = timestamp_field(raw, "ingested_at")
    else:
        ingested = now if now is not None else created_at
    clamped = max(0, created_at - ingested)
    version = raw.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS:
        raise InvalidPost(RejectReason.INVALID_FIELD,
                          f"schema_version {version!r} is not one of {', '.join(map(str, SCHEMA_VERSIONS))}")
    community = _optional_text_field(raw, "community") or ""
    if len(community) > MAX_COMMUNITY_CHARS:
        raise InvalidPost(RejectReason.INVALID_FIELD,
                          f"community has {len(community)} characters, the limit is {MAX_COMMUNITY_CHARS}")
    return SocialPost(
        uid=_id_field(raw, "uid"),
        source=source,
        author_id=_id_field(raw, "author_id"),
        text=text,
        created_at=created_at - clamped,
        ingested_at=ingested,
        langs=clean_langs(_list_field(raw, "langs")),
        hashtags=clean_tags(_list_field(raw, "hashtags")),
        mentions=_list_field(raw, "mentions"),
        links=_list_field(raw, "links"),
        reply_parent=_optional_text_field(raw, "reply_parent"),
        reply_root=_optional_text_field(raw, "reply_root"),
        community=_CONTROL.sub("", community).strip(),
        schema_version=version,
        extra={"clamped_ms": clamped} if clamped else {},
    )


def clean_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    """Hashtags without '#', control characters and surrounding space; empty or longer than MAX_TAG_CHARS
    ones dropped, repeats once."""
    cleaned = (_CONTROL.sub("", tag).strip().lstrip("#").strip() for tag in tags)
    return tuple(dict.fromkeys(tag for tag in cleaned if tag and len(tag) <= MAX_TAG_CHARS))


def clean_langs(langs: tuple[str, ...]) -> tuple[str, ...]:
    """Language codes in BCP 47's shape (lower-cased, e.g. "en", "pt-br", "zh-hant"), the first MAX_LANGS
    distinct ones; anything else is not a language and is dropped."""
    cleaned = (lang.strip().lower().replace("_", "-") for lang in langs)
    valid = (lang for lang in cleaned if len(lang) <= MAX_LANG_CHARS and _BCP47_SHAPE.fullmatch(lang))
    return tuple(dict.fromkeys(valid))[:MAX_LANGS]


def _id_field(raw: Mapping[str, Any], name: str) -> str:
    value = _text_field(raw, name, MAX_ID_CHARS)
    if _CONTROL.search(value):
        raise InvalidPost(RejectReason.INVALID_FIELD, f"{name} contains a control character")
    return value


def _check_utf8(value: str, name: str) -> str:
    # A str can still hold lone surrogates (JSON "\ud800"): they have no UTF-8 form.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidPost(RejectReason.INVALID_UTF8,
                              f"{name} has a character with no UTF-8 form at index {exc.start}") from None
    return value


def _text_field(raw: Mapping[str, Any], name: str, limit: int | None, *, allow_empty: bool = False) -> str:
    value = raw.get(name)
    if value is None:
        raise InvalidPost(RejectReason.MISSING_FIELD, f"{name} is required")
    if not isinstance(value, str):
        raise InvalidPost(RejectReason.INVALID_FIELD, f"{name} must be a string, got {type(value).__name__}")
    if not value and not allow_empty:
        raise InvalidPost(RejectReason.MISSING_FIELD, f"{name} is empty")
    if limit is not None and len(value) > limit:
        raise InvalidPost(RejectReason.INVALID_FIELD, f"{name} has {len(value)} characters, the limit is {limit}")
    return _check_utf8(value, name)


def _optional_text_field(raw: Mapping[str, Any], name: str) -> str | None:
    return _text_field(raw, name, MAX_ID_CHARS, allow_empty=True) if raw.get(name) is not None else None


def _list_field(raw: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = raw.get(name)
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise InvalidPost(RejectReason.INVALID_FIELD, f"{name} must be a list of strings")
    if len(value) > MAX_LIST_ITEMS:
        raise InvalidPost(RejectReason.INVALID_FIELD, f"{name} has {len(value)} items, the limit is {MAX_LIST_ITEMS}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise InvalidPost(RejectReason.INVALID_FIELD, f"{name} must hold non-empty strings, got {item!r}")
        _check_utf8(item, name)
    return tuple(value)


def timestamp_field(raw: Mapping[str, Any], name: str) -> int:
    """Epoch millis from an integer, or from an ISO-8601 string (as Bluesky and Mastodon send)."""
    value = raw.get(name)
    if value is None:
        raise InvalidPost(RejectReason.MISSING_FIELD, f"{name} is required")
    if isinstance(value, bool):
        raise InvalidPost(RejectReason.INVALID_FIELD, f"{name} must be epoch millis or ISO-8601, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):  # as fastavro reads timestamp-millis from container files
        if value.tzinfo is None:
            raise InvalidPost(RejectReason.INVALID_FIELD, f"{name} {value.isoformat()} has no time zone")
        return (value - _EPOCH) // _MS
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidPost(RejectReason.INVALID_FIELD, f"{name} {value!r} is not an ISO-8601 timestamp") from None
        if parsed.tzinfo is None:
            raise InvalidPost(RejectReason.INVALID_FIELD, f"{name} {value!r} has no time zone")
        return (parsed - _EPOCH) // _MS
    raise InvalidPost(RejectReason.INVALID_FIELD,
                      f"{name} must be epoch millis or ISO-8601, got {type(value).__name__}")


def _iso(millis: int) -> str:
    try:
        return (_EPOCH + millis * _MS).isoformat(timespec="milliseconds")
    except OverflowError:
        return f"{millis} ms"


@dataclass(slots=True, frozen=True)
class DeletionNotice:
    """A post deleted at its source (social.deletes, keyed by the uid): what the producers send and the deletions
    job reads. `local_id` is a Mastodon status's id on the instance that streamed the delete."""

    uid: str
    source: str
    deleted_at: int  # epoch millis: when the producer learned of the deletion
    reason: str | None = None
    local_id: str | None = None


def decode_deletion(payload: bytes, key: bytes | None = None) -> DeletionNotice:
    """A social.deletes record as a DeletionNotice, or InvalidPost saying why it is not one."""
    try:
        raw = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidPost(RejectReason.INVALID_UTF8, "the notice is not UTF-8") from None
    except ValueError as exc:
        raise InvalidPost(RejectReason.INVALID_JSON, f"the notice is not JSON: {exc}"[:300]) from None
    if not isinstance(raw, dict):
        raise InvalidPost(RejectReason.NOT_AN_OBJECT, f"the notice is a JSON {type(raw).__name__}, not an object")
    notice = DeletionNotice(uid=_id_field(raw, "uid"), source=_id_field(raw, "source"),
                            deleted_at=timestamp_field(raw, "deleted_at"), reason=_optional_text_field(raw, "reason"),
                            local_id=_optional_text_field(raw, "local_id"))
    if key is not None and key != notice.uid.encode():
        raise InvalidPost(RejectReason.KEY_MISMATCH, f"the record's key is not the uid {notice.uid[:200]!r}")
    return notice


def is_timestamp(avro_type: Any) -> bool:
    return isinstance(avro_type, dict) and avro_type.get("logicalType") == "timestamp-millis"


def flink_columns(timestamp_type: str = "TIMESTAMP_LTZ(3)", *, exclude: tuple[str, ...] = ()) -> str:
    """The SocialPost fields as Flink SQL column definitions, from the Avro schema: a plain Avro type is NOT
    NULL, a union with null is nullable, a timestamp-millis long is `timestamp_type` (what Flink's `avro` format
    maps it to, and what the lake stores)."""
    def column(avro_type: Any) -> str:
        if isinstance(avro_type, list):  # ["null", T]
            return column(next(t for t in avro_type if t != "null")).removesuffix(" NOT NULL")
        if is_timestamp(avro_type):
            return f"{timestamp_type} NOT NULL"
        if isinstance(avro_type, dict) and avro_type["type"] == "array":
            return f"ARRAY<{column(avro_type['items'])}> NOT NULL"
        return {"string": "STRING", "int": "INT", "long": "BIGINT"}[avro_type] + " NOT NULL"

    return ",\n    ".join(f"`{name}` {column(avro_type)}" for name, avro_type in FIELDS.items() if name not in exclude)
