"""Bluesky source: the full firehose (com.atproto.sync.subscribeRepos), or Jetstream as the light one.

Firehose: binary WebSocket frames, each a DAG-CBOR header and body, decoded with the atproto package
(frames, subscribeRepos messages, the commit's CAR blocks). Only `app.bsky.feed.post` ops are read (the
path is checked before any CAR is decoded, so other collections cost next to nothing): creates become
SocialPosts (uid = the at:// URI, author = the repo DID), deletes go to social.deletes.

- Resume: the cursor is the seq of the last commit whose posts are all acknowledged (plus, after a stop
  in the middle of a commit, how many of its posts were); a reconnect asks for `?cursor=<seq>` and the
  server replays from that seq inclusive, so replays (and duplicate seqs) are dropped by seq. Reconnects
  back off exponentially with jitter, reset after a connection that lasted a minute.
- A frame that does not decode goes to the dead-letter topic with its bytes; the stream goes on. Relays do
  not validate records, so a post record of the wrong shape (`langs: 5`, a facet that is not a map) goes to
  the dead-letter topic too, and the cursor moves past it.
- `#info OutdatedCursor`: the server no longer has the events after our cursor; the size of the gap is
  logged when the next commit shows where the stream resumed. Error frames (`FutureCursor`,
  `ConsumerTooSlow`) close the connection and the source reconnects (with backoff): a future cursor is
  dropped (live from now), otherwise it resumes from the cursor.

Jetstream (`--jetstream`, v1 `/subscribe`): JSON text frames filtered to posts by the server, the
cursor in microseconds, rewound a few seconds on reconnect and deduplicated by (uri, cid).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from atproto import CAR, CID, firehose_models

from connectors.producer import CursorStore, Source, SourceItem, StopFlag
from shared.settings import BlueskySettings

log = logging.getLogger("streampulse.bluesky")

POST = "app.bsky.feed.post"
MAX_FRAME_BYTES = 5 * 1024 * 1024  # the relay's own cap, as atproto's client uses
RECV_TIMEOUT_S = 30.0  # silence this long means a dead connection: reconnect
SEEN = 20_000


class ServerError(RuntimeError):
    """An error frame, or a connection the server ended."""


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


# -- records to SocialPosts --------------------------------------------------------------------------------
def facets(record: dict) -> tuple[list[str], list[str], list[str]]:
    """Hashtags, mentions and links of a post record. Facet indexes are UTF-8 byte offsets: a mention is
    named by the handle it shows in the text (slice of the encoded text), or by its DID."""
    text = record.get("text")
    encoded = text.encode("utf-8", "replace") if isinstance(text, str) else b""
    tags, mentions, links = [], [], []
    # Relays pass records on unvalidated: anything not of the lexicon's shape is skipped, never trusted.
    for facet in _list(record.get("facets")):
        index = _dict(_dict(facet).get("index"))
        start, end = index.get("byteStart"), index.get("byteEnd")
        for feature in _list(_dict(facet).get("features")):
            feature = _dict(feature)
            kind = str(feature.get("$type") or "").rsplit("#", 1)[-1]
            if kind == "tag" and isinstance(feature.get("tag"), str) and feature["tag"]:
                tags.append(feature["tag"].lstrip("#"))
            elif kind == "link" and isinstance(feature.get("uri"), str) and feature["uri"]:
                links.append(feature["uri"])
            elif kind == "mention" and isinstance(feature.get("did"), str) and feature["did"]:
                shown = ""
                if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(encoded):
                    shown = encoded[start:end].decode("utf-8", errors="ignore").strip().lstrip("@")
                mentions.append(shown or feature["did"])
    tags += [t.lstrip("#") for t in _list(record.get("tags")) if isinstance(t, str)]
    return list(dict.fromkeys(tags)), list(dict.fromkeys(mentions)), list(dict.fromkeys(links))


def to_post(uri: str, did: str, record: dict) -> dict:
    """A post record (lexicon JSON form, as in CAR blocks and Jetstream) as a SocialPost mapping. Fields are
    passed on as they are (`langs: "en"` stays a string, which parse_post rejects, rather than becoming the
    languages "e" and "n"); only what this function reads itself is checked for its shape."""
    hashtags, mentions, links = facets(record)
    reply = _dict(record.get("reply"))
    text = record.get("text")
    return {
        "uid": uri, "source": "bluesky", "author_id": did, "text": "" if text is None else text,
        "langs": record.get("langs") or [], "created_at": record.get("createdAt"),
        "hashtags": hashtags, "mentions": mentions, "links": links,
        "reply_parent": _dict(reply.get("parent")).get("uri"), "reply_root": _dict(reply.get("root")).get("uri"),
        "community": "",
    }


def _post_item(uri: str, did: str, record: dict) -> SourceItem:
    """The SourceItem of one post record; a record this mapping cannot read goes to the dead-letter topic."""
    try:
        return SourceItem(to_post(uri, did, record), uid_hint=uri)
    except Exception as exc:  # a record no lexicon allows, in a shape nobody foresaw: never the stream's end
        return SourceItem({"uid": uri, "record": repr(record)[:10_000]}, uid_hint=uri,
                          rejected=("invalid_record", f"unreadable post record: {type(exc).__name__}: {exc}"))


# -- a reconnecting WebSocket -------------------------------------------------------------------------------
class _Stream:
    """Frames from a URL that depends on the cursor, reconnecting with backoff until stopped."""

    def __init__(self, settings: BlueskySettings, stop: StopFlag, idle_exit_s: float | None):
        self.settings, self.stop, self.idle_exit_s = settings, stop, idle_exit_s
        self.connections = 0
        self._reconnect: str | None = None

    def reconnect(self, reason: str) -> None:
        """Close this connection after the frame being read and connect again (with backoff)."""
        self._reconnect = reason

    def frames(self, url_of) -> Iterator[bytes | str]:
        from websockets.exceptions import ConnectionClosedOK, WebSocketException
        from websockets.sync.client import connect

        failures = 0
        while not self.stop.stopping:
            url = url_of()
            opened = time.monotonic()
            try:
                with connect(url, max_size=MAX_FRAME_BYTES, open_timeout=30, close_timeout=5) as ws:
                    self.connections += 1
                    last = time.monotonic()
                    while not self.stop.stopping:
                        try:
                            message = ws.recv(timeout=0.5)
                        except TimeoutError:
                            idle = time.monotonic() - last
                            if self.idle_exit_s is not None and idle > self.idle_exit_s:
                                return
                            if idle > RECV_TIMEOUT_S:
                                raise ServerError(f"nothing for {RECV_TIMEOUT_S:.0f} s") from None
                            continue
                        last = time.monotonic()
                        yield message
                        if self._reconnect:
                            reason, self._reconnect = self._reconnect, None
                            raise ServerError(reason)
                    return
            except ConnectionClosedOK:
                log.warning("%s closed the stream", url)
            except (OSError, WebSocketException, ServerError) as exc:
                log.warning("%s: %s", url, exc)
            if time.monotonic() - opened >= 60:
                failures = 0  # a connection that held a minute was fine: start the backoff over
            failures += 1
            wait = min(self.settings.max_backoff_s, self.settings.reconnect_backoff_s * 2 ** (failures - 1))
            wait *= random.uniform(0.5, 1.5)
            log.info("reconnecting in %.1f s", wait)
            self.stop.sleep(wait)


# -- the firehose ----------------------------------------------------------------------------------------------
class FirehoseSource(Source):
    name = "bluesky"

    def __init__(self, settings: BlueskySettings, *, cursor: dict | None = None, stop: StopFlag | None = None,
                 idle_exit_s: float | None = None):
        self.settings, self.stop = settings, stop or StopFlag()
        cursor = cursor or {}
        self.seq: int | None = cursor.get("seq")
        # A stop in the middle of a commit: how many of its items were already sent (they are not again).
        self.partial: tuple[int, int] | None = ((cursor["partial_seq"], cursor["partial_sent"])
                                                if "partial_seq" in cursor else None)
        self.stream = _Stream(settings, self.stop, idle_exit_s)
        self.outdated_from: int | None = None
        self.frames = self.skipped_replays = 0

    def url(self) -> str:
        # Resume at the last whole commit, or at the commit that was cut short when no whole one came before.
        seq = self.seq if self.seq is not None else (self.partial[0] if self.partial else None)
        query = f"?{urlencode({'cursor': seq})}" if seq is not None else ""
        return f"{self.settings.firehose_url.rstrip('/')}/com.atproto.sync.subscribeRepos{query}"

    def items(self) -> Iterator[SourceItem]:
        for message in self.stream.frames(self.url):
            if isinstance(message, str):
                continue  # the protocol is binary; a text frame means nothing
            self.frames += 1
            try:
                yield from self.read(message)
            except ServerError as exc:  # an error frame: the server closes; connect again from the cursor
                self.stream.reconnect(str(exc))

    def read(self, message: bytes) -> Iterator[SourceItem]:
        """The SourceItems of one frame (raises ServerError for an error frame)."""
        try:
            frame = firehose_models.Frame.from_bytes(message)
        except Exception as exc:  # libipld raises plain ValueErrors for bytes that are not DAG-CBOR
            yield SourceItem(message, cursor=self._cursor(), rejected=("invalid_frame", f"undecodable frame: {exc}"))
            return
        if frame.is_error:
            if frame.body.error == "FutureCursor":
                log.warning("the server says cursor %s is in the future (a seq reset?): continuing live", self.seq)
                self.seq = None
            raise ServerError(f"error frame {frame.body.error}: {frame.body.message}")
        if frame.type == "#info":
            if frame.body.get("name") == "OutdatedCursor":
                self.outdated_from = self.seq
            log.warning("info from the server: %s %s", frame.body.get("name"), frame.body.get("message"))
            return
        if frame.type != "#commit":
            return  # identity, account, sync, and types this client does not know
        body = frame.body
        seq, repo = body.get("seq"), body.get("repo")
        if not isinstance(seq, int) or not isinstance(repo, str):
            yield SourceItem(message, cursor=self._cursor(), rejected=("invalid_frame", "commit without seq or repo"))
            return
        if self.seq is not None and seq <= self.seq:
            self.skipped_replays += 1
            return  # replayed from our cursor (inclusive) or a duplicate seq
        if self.outdated_from is not None:
            log.warning("cursor %d was too old: resumed at seq %d, %d events lost", self.outdated_from, seq,
                        seq - self.outdated_from - 1)
            self.outdated_from = None
        ops = [op for op in body.get("ops") or [] if str(op.get("path", "")).startswith(POST + "/")]
        items = list(self._post_items(seq, repo, body, ops, message)) if ops else []
        previous, self.seq = self.seq, seq
        already = self.partial[1] if self.partial and self.partial[0] == seq else 0
        self.partial = None
        for i, item in enumerate(items):
            # The commit's last item carries its seq; an earlier one says how far into the commit it is, so a
            # restart after it replays the commit and skips what was sent.
            item.cursor = {"seq": seq} if i == len(items) - 1 else {
                **({"seq": previous} if previous is not None else {}), "partial_seq": seq, "partial_sent": i + 1}
            if i >= already:
                yield item

    def _post_items(self, seq: int, repo: str, body: dict, ops: list[dict], message: bytes) -> Iterator[SourceItem]:
        try:
            car = CAR.from_bytes(body["blocks"]) if any(op.get("action") != "delete" for op in ops) else None
        except Exception as exc:
            yield SourceItem(message, rejected=("invalid_frame", f"commit {seq}: unreadable CAR blocks: {exc}"))
            return
        for op in ops:
            uri = f"at://{repo}/{op['path']}"
            if op.get("action") == "delete":
                yield SourceItem({"uid": uri, "seq": seq}, deleted=True)
                continue
            try:
                record = car.blocks.get(CID.decode(op["cid"]))
            except Exception:
                record = None
            if not isinstance(record, dict):
                yield SourceItem({"uid": uri, "seq": seq}, uid_hint=uri,
                                 rejected=("missing_record", "the commit's CAR has no block for this post"))
            else:
                yield _post_item(uri, repo, record)

    def _cursor(self) -> dict | None:
        return {"seq": self.seq} if self.seq is not None else None


# -- Jetstream ---------------------------------------------------------------------------------------------------
class JetstreamSource(Source):
    name = "bluesky"

    def __init__(self, settings: BlueskySettings, *, cursor: dict | None = None, stop: StopFlag | None = None,
                 idle_exit_s: float | None = None):
        self.settings, self.stop = settings, stop or StopFlag()
        self.time_us: int | None = (cursor or {}).get("time_us")
        self.stream = _Stream(settings, self.stop, idle_exit_s)
        self.seen: OrderedDict[tuple, None] = OrderedDict()

    def url(self) -> str:
        params: dict[str, Any] = {"wantedCollections": POST}
        if self.time_us is not None:  # rewind: time cursors are not exact across hosts
            params["cursor"] = self.time_us - int(self.settings.jetstream_rewind_s * 1_000_000)
        return f"{self.settings.jetstream_url}?{urlencode(params)}"

    def items(self) -> Iterator[SourceItem]:
        for message in self.stream.frames(self.url):
            yield from self.read(message)

    def read(self, message: bytes | str) -> Iterator[SourceItem]:
        try:
            event = json.loads(message)
            kind, did, time_us = event["kind"], event.get("did"), int(event["time_us"])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            yield SourceItem(message, cursor=self._cursor(), rejected=("invalid_event", f"unreadable event: {exc}"))
            return
        commit = _dict(event.get("commit"))
        if kind == "commit" and commit.get("collection") == POST:
            uri = f"at://{did}/{POST}/{commit.get('rkey')}"
            key = (uri, commit.get("cid"), commit.get("operation"))
            if key not in self.seen:
                self.seen[key] = None
                while len(self.seen) > SEEN:
                    self.seen.popitem(last=False)
                self.time_us = max(self.time_us or 0, time_us)
                if commit.get("operation") == "delete":
                    yield SourceItem({"uid": uri, "time_us": time_us}, cursor=self._cursor(), deleted=True)
                elif isinstance(commit.get("record"), dict):
                    item = _post_item(uri, did, commit["record"])
                    item.cursor = self._cursor()
                    yield item
                return
        self.time_us = max(self.time_us or 0, time_us)

    def _cursor(self) -> dict | None:
        return {"time_us": self.time_us} if self.time_us is not None else None


def open_source(args, settings, stop: StopFlag) -> tuple[Source, CursorStore]:
    """`streampulse produce bluesky [--jetstream]`: the firehose or Jetstream, resumed from its cursor."""
    key = "jetstream_url" if args.jetstream else "firehose_url"
    bluesky = settings.bluesky.model_copy(update={key: args.endpoint} if args.endpoint else {})
    store, cursor = CursorStore.for_run(settings, args, "bluesky", getattr(bluesky, key))
    source_class = JetstreamSource if args.jetstream else FirehoseSource
    return source_class(bluesky, cursor=cursor, stop=stop, idle_exit_s=args.idle_exit_s), store
