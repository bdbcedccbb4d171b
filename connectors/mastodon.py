"""Mastodon source: the streaming API (server-sent events) of one instance, through Mastodon.py.

- Streams: public, local, remote, or a hashtag (mastodon.stream / .tag); a user token is required
  (Mastodon 4.2+ streams nothing to anonymous clients, public timelines included).
- Each status becomes a SocialPost: uid = the status URI (global, the same on every server), HTML
  content to plain text, tags, mentions, links, language, community = the instance's host. Boosts are
  skipped or unwrapped to the boosted status (mastodon.reblogs). Edits (status.update) are published
  again under the same uid; deletes go to social.deletes with the URI when the status was seen.
- No stream has a cursor: the newest status id is kept, and after every (re)connection the gap is
  backfilled from the REST timeline with min_id, page by page (Link rel=prev), before live events are
  published. Statuses seen twice (backfill and stream overlap) are sent once.
"""

from __future__ import annotations

import logging
import queue
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urlparse

from connectors.producer import SourceItem, StopFlag
from shared.post import MAX_TEXT_CHARS
from shared.settings import MastodonSettings

log = logging.getLogger("streampulse.mastodon")

BLOCKS = {"p", "div", "blockquote", "li", "ul", "ol", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}
SEEN_URIS = 5000  # recent uris remembered to drop backfill/stream overlaps
PAGE = 40  # the timeline API's maximum page


MAX_HTML_CHARS = 10 * MAX_TEXT_CHARS  # markup around the longest text any source allows; beyond, not a status


def status_id_key(status_id: str) -> tuple[int, str]:
    """Orders status ids: Mastodon's are decimal strings, Pleroma's and GoToSocial's are fixed-length sortable
    strings (flake ids, ULIDs); (length, text) orders both without assuming digits."""
    return len(status_id), status_id


class MastodonError(RuntimeError):
    """A configuration or server answer that retrying cannot fix."""


class _PlainText(HTMLParser):
    """Mastodon's status HTML as text: paragraphs as blank lines, <br> as newlines, entities decoded, the
    hidden parts of shortened links kept (so a link reads in full) and the hrefs of plain links kept."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []
        self.has_text = False  # a block tag opens a paragraph only after some text (kept, not rescanned: linear)

    def handle_starttag(self, tag, attrs):
        if tag == "br":
            self.parts.append("\n")
        elif tag in BLOCKS and self.has_text:
            self.parts.append("\n\n")
        elif tag == "a":
            attributes = dict(attrs)
            classes = (attributes.get("class") or "").split()
            href = attributes.get("href")
            if href and "mention" not in classes and "hashtag" not in classes:
                self.links.append(href)

    def handle_data(self, data):
        self.parts.append(data)
        self.has_text = self.has_text or bool(data.strip())


def html_to_text(html: str) -> tuple[str, list[str]]:
    """Plain text and the links of a status's HTML content (at most MAX_HTML_CHARS of it: ValueError)."""
    if len(html or "") > MAX_HTML_CHARS:
        raise ValueError(f"content has {len(html):,} characters of HTML, more than {MAX_HTML_CHARS:,}")
    parser = _PlainText()
    parser.feed(html or "")
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    text = "\n".join(line.strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip(), list(dict.fromkeys(parser.links))


def to_post(status: dict, host: str, reblogs: str = "skip") -> dict | None:
    """A Mastodon Status as a SocialPost mapping, or None for a boost that is skipped."""
    if status.get("reblog"):
        if reblogs == "skip":
            return None
        status = status["reblog"]
    text, links = html_to_text(status.get("content") or "")
    if status.get("spoiler_text"):
        text = f"{status['spoiler_text']}\n\n{text}"
    account = status.get("account") or {}
    card = status.get("card") or {}
    if card.get("url") and card["url"] not in links:
        links.append(card["url"])
    return {
        "uid": status.get("uri"), "source": "mastodon",
        "author_id": account.get("url") or account.get("acct"),
        "text": text, "langs": [status["language"]] if status.get("language") else [],
        "created_at": status.get("created_at"),  # a datetime, or an ISO string in status.update events
        "hashtags": [tag["name"] for tag in status.get("tags") or [] if tag.get("name")],
        "mentions": [m["acct"] for m in status.get("mentions") or [] if m.get("acct")],
        "links": links, "community": host,
    }


class MastodonSource:
    """Yields SourceItems from the live stream, backfilling every gap from the timeline API."""

    def __init__(self, settings: MastodonSettings, *, cursor: dict | None = None, stop: StopFlag | None = None,
                 client=None, idle_exit_s: float | None = None):
        from mastodon import Mastodon

        if settings.access_token is None or not settings.access_token.get_secret_value():
            raise MastodonError(
                f"mastodon.access_token is not set: {settings.instance} streams only to a user token (Mastodon "
                "4.2+). Create one under Preferences → Development (scope read:statuses) and set "
                "STREAMPULSE_MASTODON__ACCESS_TOKEN")
        if settings.stream == "hashtag" and not settings.tag:
            raise MastodonError("mastodon.tag is required with mastodon.stream = hashtag (a tag without the #)")
        self.settings, self.stop, self.idle_exit_s = settings, stop or StopFlag(), idle_exit_s
        self.host = urlparse(settings.instance).netloc
        self.client = client or Mastodon(api_base_url=settings.instance,
                                         access_token=settings.access_token.get_secret_value(),
                                         version_check_mode="none", request_timeout=30)
        self.last_id: str | None = (cursor or {}).get("last_id")
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.uri_of: OrderedDict[str, str] = OrderedDict()  # local id → uri, for deletes
        self.events: queue.Queue = queue.Queue(maxsize=10_000)
        self.connections = 0

    # -- the stream, in a thread that feeds the queue ---------------------------------------------------
    def _listener(self):
        from mastodon import StreamListener

        events = self.events

        class Listener(StreamListener):
            def on_update(self, status):
                events.put(("update", status))

            def on_status_update(self, status):
                events.put(("update", status))

            def on_delete(self, status_id):
                events.put(("delete", str(status_id)))

            def on_unknown_event(self, name, unknown_event=None):
                log.debug("ignoring stream event %s", name)

        return Listener()

    def _stream_forever(self) -> None:
        """One connection: returns (or raises) when it ends; the end is put on the queue."""
        try:
            listener = self._listener()
            stream = self.settings.stream
            if stream == "hashtag":
                self.client.stream_hashtag(self.settings.tag, listener)
            else:
                self.client.stream_public(listener, local=stream == "local", remote=stream == "remote")
            self.events.put(("closed", None))
        except Exception as exc:  # any failure of the connection means: reconnect
            self.events.put(("closed", exc))

    # -- backfill -----------------------------------------------------------------------------------------
    def _timeline(self, **kw):
        stream = self.settings.stream
        if stream == "hashtag":
            return self.client.timeline_hashtag(self.settings.tag, limit=PAGE, **kw)
        return self.client.timeline_public(limit=PAGE, local=stream == "local", remote=stream == "remote", **kw)

    def _backfill(self) -> Iterator[dict]:
        """Every status after last_id, oldest first (min_id pages walk forward)."""
        if self.last_id is None:
            return
        page = self._timeline(min_id=self.last_id)
        while page:
            yield from sorted(page, key=lambda s: status_id_key(str(s.get("id"))))
            page = self.client.fetch_previous(page)

    # -- items --------------------------------------------------------------------------------------------
    def items(self) -> Iterator[SourceItem]:
        failures = 0
        while not self.stop.stopping:
            self.connections += 1
            threading.Thread(target=self._stream_forever, name="mastodon-stream", daemon=True).start()
            try:
                for status in self._backfill():  # the stream is open: nothing falls between the two
                    yield from self._status(status)
                failures = 0
            except Exception as exc:  # a failed backfill is retried after the next connect
                log.warning("backfill from %s after id %s failed: %s", self.host, self.last_id, exc)
            closed = yield from self._drain()
            if closed is None:
                return  # stopped, or idle for idle_exit_s
            failures += 1 if isinstance(closed, Exception) else 0
            wait = min(60.0, self.settings.reconnect_backoff_s * 2 ** max(0, failures - 1)) * random.uniform(0.8, 1.2)
            log.warning("stream from %s ended (%s): backfilling and reconnecting in %.1f s", self.host,
                        closed if isinstance(closed, Exception) else "closed by the server", wait)
            self.stop.sleep(wait)

    def _drain(self):
        """Live events until the connection ends (returns its exception, or True) or the source stops (None)."""
        idle_since = time.monotonic()
        while not self.stop.stopping:
            try:
                kind, value = self.events.get(timeout=0.2)
            except queue.Empty:
                if self.idle_exit_s is not None and time.monotonic() - idle_since > self.idle_exit_s:
                    return None
                continue
            idle_since = time.monotonic()
            if kind == "closed":
                return value if value is not None else True
            if kind == "update":
                yield from self._status(value)
            else:
                uri = self.uri_of.get(value)
                yield SourceItem({"uid": uri, "local_id": value, "community": self.host}, cursor=self._cursor(),
                                 deleted=True)
        return None

    def _status(self, status: dict) -> Iterator[SourceItem]:
        status_id = str(status.get("id"))
        if self.last_id is None or status_id_key(status_id) > status_id_key(self.last_id):
            self.last_id = status_id
        uri = status.get("uri")
        if uri:
            self.uri_of[status_id] = uri
            _trim(self.uri_of, SEEN_URIS)
        edited = status.get("edited_at")
        key = f"{uri}@{edited}" if edited else uri  # an edit is new content under the same uid
        if key in self.seen:
            return
        self.seen[key] = None
        _trim(self.seen, SEEN_URIS)
        try:
            post = to_post(status, self.host, self.settings.reblogs)
        except Exception as exc:  # one status this mapping cannot read goes to the DLQ; the rest go on
            yield SourceItem({"uid": uri, "id": status_id}, cursor=self._cursor(), uid_hint=uri,
                             rejected=("invalid_status", f"unreadable status: {type(exc).__name__}: {exc}"[:500]))
            return
        if post is not None:
            yield SourceItem(post, cursor=self._cursor(), uid_hint=uri)

    def _cursor(self) -> dict:
        return {"last_id": self.last_id}


def _trim(mapping: OrderedDict, size: int) -> None:
    while len(mapping) > size:
        mapping.popitem(last=False)
