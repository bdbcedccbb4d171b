"""The Confluent wire format of social.posts: byte 0 is the magic byte 0, bytes 1-4 the writer schema's id in the
schema registry (big-endian, unsigned), then the Avro binary of the record in that schema — what every Kafka Avro
tool reads. A contract shared by the producers (shared/post.py encode_framed) and the jobs (decode_post); the
registry's client is runtime/schema_registry.py, whose lookups `WriterSchemas` caches.
"""

from __future__ import annotations

import threading
from typing import Any

MAGIC = 0
HEADER_BYTES = 5


def frame(schema_id: int, body: bytes) -> bytes:
    """The Confluent framing of an Avro body written with schema `schema_id`."""
    return bytes((MAGIC,)) + schema_id.to_bytes(4, "big") + body


def is_framed(payload: bytes) -> bool:
    """True when `payload` starts with the magic byte 0. The legacy form (schemaless Avro of SocialPost) cannot:
    its first field is the uid, a string, whose first byte is the zig-zag varint of its length — 2 × length, so
    0 only for an empty uid, which no valid post has (a longer uid's first byte carries the varint's continuation
    bit, 0x80). A payload that starts with 0 is therefore framed, or not a post at all."""
    return len(payload) > 0 and payload[0] == MAGIC


def schema_id_of(payload: bytes) -> int:
    """The schema id of a framed payload; ValueError when it is too short to hold one."""
    if len(payload) < HEADER_BYTES:
        raise ValueError(f"{len(payload)} bytes: too short for the 5-byte Confluent header")
    return int.from_bytes(payload[1:HEADER_BYTES], "big")


class WriterSchemas:
    """Writer schemas by id for a reader: each id asked of the registry once per process (ids never change
    meaning), unknown ids remembered as unknown too. Thread-safe; `fetch` is replaceable (tests, a fixed set)."""

    def __init__(self, fetch):
        self._fetch = fetch
        self._known: dict[int, Any] = {}
        self._lock = threading.Lock()

    def get(self, schema_id: int) -> Any:
        try:
            return self._known[schema_id]
        except KeyError:
            pass
        with self._lock:
            if schema_id not in self._known:
                self._known[schema_id] = self._fetch(schema_id)
            return self._known[schema_id]
