"""Mastodon source: the streaming API (server-sent events) of one instance, through Mastodon.py.

- Streams: public, local, remote, or a hashtag (mastodon.stream / .tag); a user token is required
  (Mastodon 4.2+ streams nothing to anonymous clients, public timelines included).
- Each status becomes a SocialPost: uid = the status URI (global, the same on every server), HTML
  content to plain text, tags, mentions, links, language, reply parent/root, community = the instance's
  host. Boosts are skipped or unwrapped to the boosted status, sent once (mastodon.reblogs). Edits are
  published again under the same uid, once each (the edit time normalised: Mastodon.py gives a datetime,
  or the ISO string in status.update events); deletes go to social.deletes with the URI when the status
  was seen, else with the status's API address on this instance (local_uid), never without a uid.
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

from connectors.links import clean_link
from connectors.producer import CursorStore, Source, SourceError, SourceItem, StopFlag
from shared.post import MAX_TEXT_CHARS, InvalidPost, timestamp_field
from shared.settings import MastodonSettings

log = logging.getLogger("streampulse.mastodon")

BLOCKS = {"p", "div", "blockquote", "li", "ul", "ol", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}
VOID = {"br", "img", "hr", "wbr", "input", "meta", "link", "source"}  # no end tag: never skipped as an element
SEEN_URIS = 5000  # recent uris remembered to drop backfill/stream overlaps
# Local id → uri of the statuses seen, for their deletes (the stream names only the local id): about 30 MB, hours
# of a busy public stream. A delete of a status older than that, or streamed before this process started, is sent
# with local_uid() and its local_id, and logged as such by the deletions job (README: "Deleted posts").
KNOWN_IDS = 200_000
PAGE = 40  # the timeline API's maximum page


MAX_HTML_CHARS = 10 * MAX_TEXT_CHARS  # markup around the longest text any source allows; beyond, not a status


def status_id_key(status_id: str) -> tuple[int, str]:
    """Orders status ids: Mastodon's are decimal strings, Pleroma's and GoToSocial's are fixed-length sortable
    strings (flake ids, ULIDs); (length, text) orders both without assuming digits."""
    return len(status_id), status_id


class MastodonError(SourceError):
    """A configuration or server answer that retrying cannot fix."""


class _PlainText(HTMLParser):
    """Mastodon's status HTML as text: paragraphs as blank lines, <br> as newlines, entities decoded, the
    hidden parts of shortened links kept (so a link reads in full); every <a> kept with its classes and text,
    for html_to_text to tell links from mentions and hashtags. A quote post's fallback (`RE: <url>` in an
    element of class `quote-inline`, hidden by every client that shows the quote) is left out, text and link."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.anchors: list[tuple[str, set[str], list[str]]] = []  # href, classes, text parts
        self.has_text = False  # a block tag opens a paragraph only after some text (kept, not rescanned: linear)
        self._skip: tuple[str, int] | None = None  # (tag, depth) of the quote-inline element being skipped
        self._anchor: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        if self._skip is not None:
            if tag == self._skip[0]:
                self._skip = (tag, self._skip[1] + 1)
            return
        if "quote-inline" in classes and tag not in VOID:
            self._skip = (tag, 1)
            return
        if tag == "br":
            self.parts.append("\n")
        elif tag in BLOCKS and self.has_text:
            self.parts.append("\n\n")
        elif tag == "a":
            self._anchor = []
            self.anchors.append((attributes.get("href") or "", classes, self._anchor))

    def handle_endtag(self, tag):
        if self._skip is not None:
            if tag == self._skip[0]:
                self._skip = (tag, self._skip[1] - 1) if self._skip[1] > 1 else None
            return
        if tag == "a":
            self._anchor = None

    def handle_data(self, data):
        if self._skip is not None:
            return
        self.parts.append(data)
        if self._anchor is not None:
            self._anchor.append(data)
        self.has_text = self.has_text or bool(data.strip())


def _is_link(href: str, classes: set[str], text: str, mentions: list, tags: list) -> bool:
    """A plain link, not a mention or a hashtag: Mastodon marks those with classes; other server software
    (Pleroma, Misskey, GoToSocial, Friendica…) with `u-url`/`mention` or nothing, so the status's own lists
    decide too: an href of a mentioned account or of a tag, or a text `@user`/`#tag` that it mentions/tags."""
    if classes & {"mention", "hashtag", "u-url", "u-mention"}:
        return False
    mention_urls = {m.get("url") for m in mentions if isinstance(m, dict)}
    tag_urls = {t.get("url") for t in tags if isinstance(t, dict)}
    if href in mention_urls or href in tag_urls:
        return False
    label = text.strip()
    if label.startswith("@"):
        names = {str(m.get(k) or "").lower() for m in mentions if isinstance(m, dict) for k in ("acct", "username")}
        if label[1:].lower() in names or label[1:].split("@")[0].lower() in names:
            return False
    tag_names = {str(t.get("name") or "").lower() for t in tags if isinstance(t, dict)}
    return not (label.startswith("#") and label[1:].lower() in tag_names)


def html_to_text(html: str, *, mentions: list | None = None, tags: list | None = None) -> tuple[str, list[str]]:
    """Plain text and the links of a status's HTML content (at most MAX_HTML_CHARS of it: ValueError): absolute
    http(s) hrefs that are not mentions or hashtags (the status's `mentions` and `tags` help tell)."""
    if len(html or "") > MAX_HTML_CHARS:
        raise ValueError(f"content has {len(html):,} characters of HTML, more than {MAX_HTML_CHARS:,}")
    parser = _PlainText()
    parser.feed(html or "")
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    text = "\n".join(line.strip() for line in text.split("\n"))
    links = (clean_link(href) for href, classes, parts in parser.anchors
             if _is_link(href, classes, "".join(parts), mentions or [], tags or []))
    return re.sub(r"\n{3,}", "\n\n", text).strip(), list(dict.fromkeys(link for link in links if link))


def strip_emoji(text: str, emojis: list | None) -> str:
    """`text` without the status's custom emoji shortcodes (`:trans_heart:`), which are pictures, not words."""
    codes = [e["shortcode"] for e in emojis or [] if isinstance(e, dict) and isinstance(e.get("shortcode"), str)
             and e["shortcode"]]
    if not codes or ":" not in text:
        return text
    pattern = re.compile(":(?:" + "|".join(re.escape(code) for code in codes) + "):")
    stripped = pattern.sub("", text)
    if stripped == text:
        return text
    return "\n".join(re.sub(r"[ \t]{2,}", " ", line).strip() for line in stripped.split("\n")).strip()


def local_uid(instance: str, local_id: str) -> str:
    """The uid of a status known only by its id on the instance we read (a delete or a reply parent this process
    did not see): the status's API address there, `https://<instance>/api/v1/statuses/<id>` — absolute, the
    same every time, never a status URI (so it cannot be taken for one)."""
    return f"{instance.rstrip('/')}/api/v1/statuses/{local_id}"


def edit_time(value) -> str | None:
    """`edited_at` as epoch millis text, whatever form it comes in (Mastodon.py gives a datetime for updates and
    timeline pages, the ISO string in `status.update` events): None for an unedited status."""
    if value is None or value == "":
        return None
    try:
        return str(timestamp_field({"edited_at": value}, "edited_at"))
    except InvalidPost:
        return str(value)


def to_post(status: dict, host: str, reblogs: str = "skip", *, resolve=None, roots=None) -> dict | None:
    """A Mastodon Status as a SocialPost mapping, or None for a boost that is skipped.

    `resolve(local_id)` gives the uid of a status known by its id on this instance (a reply's parent): its URI
    when the source saw it, else local_uid(); `roots` maps a seen status's uid to its thread's root. Without
    them, local_uid() on https://<host>."""
    if status.get("reblog"):
        if reblogs == "skip":
            return None
        status = status["reblog"]
    emojis = status.get("emojis")
    text, links = html_to_text(status.get("content") or "", mentions=status.get("mentions"),
                               tags=status.get("tags"))
    text = strip_emoji(text, emojis)
    if status.get("spoiler_text"):
        warning = strip_emoji(status["spoiler_text"], emojis)
        text = f"{warning}\n\n{text}" if warning else text
    account = status.get("account") or {}
    card = status.get("card") or {}
    card_url = clean_link(card.get("url"))
    if card_url and card_url not in links:
        links.append(card_url)
    reply_parent = reply_root = None
    if status.get("in_reply_to_id") is not None:
        local = str(status["in_reply_to_id"])
        reply_parent = resolve(local) if resolve else local_uid(f"https://{host}", local)
        reply_root = (roots or {}).get(reply_parent) or reply_parent
    return {
        "uid": status.get("uri"), "source": "mastodon",
        "author_id": account.get("url") or account.get("acct"),
        "text": text, "langs": [status["language"]] if status.get("language") else [],
        "created_at": status.get("created_at"),  # a datetime, or an ISO string in status.update events
        "hashtags": [tag["name"] for tag in status.get("tags") or [] if tag.get("name")],
        "mentions": [m["acct"] for m in status.get("mentions") or [] if m.get("acct")],
        "links": links, "reply_parent": reply_parent, "reply_root": reply_root, "community": host,
    }


class MastodonSource(Source):
    """Yields SourceItems from the live stream, backfilling every gap from the timeline API."""

    name = "mastodon"

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
        self.uri_of: OrderedDict[str, str] = OrderedDict()  # local id → uri, for deletes and reply parents
        self.root_of: OrderedDict[str, str] = OrderedDict()  # uri → the uid of its thread's root, for replies
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
            # A status that is not an object sorts first and goes to the DLQ on its own (_status).
            yield from sorted(page, key=lambda s: status_id_key(str(s.get("id"))) if isinstance(s, dict) else (0, ""))
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
            else:  # a delete names the local id only: the uri when this process saw the status, else local_uid()
                yield SourceItem({"uid": self._uid_of(value), "local_id": value, "community": self.host},
                                 cursor=self._cursor(), deleted=True)
        return None

    def _uid_of(self, local_id: str) -> str:
        """The uid of a status by its id on this instance: its URI when seen, else local_uid()."""
        return self.uri_of.get(local_id) or local_uid(self.settings.instance, local_id)

    def _status(self, status) -> Iterator[SourceItem]:
        """One status from the stream or a backfill page: its post once per version (uri and edit time), or a
        dead letter for this status alone when it cannot be read."""
        try:
            item = self._map(status)
        except Exception as exc:  # one status this mapping cannot read goes to the DLQ; the rest go on
            fields = status if isinstance(status, dict) else {}
            uri = fields.get("uri") if isinstance(fields.get("uri"), str) else None
            yield SourceItem(status if isinstance(status, dict) else {"status": repr(status)[:1000]},
                             cursor=self._cursor(), uid_hint=uri,
                             rejected=("invalid_status", f"unreadable status: {type(exc).__name__}: {exc}"[:500]))
            return
        if item is not None:
            yield item

    def _map(self, status: dict) -> SourceItem | None:
        status_id = str(status["id"])
        if self.last_id is None or status_id_key(status_id) > status_id_key(self.last_id):
            self.last_id = status_id
        uri = status.get("uri")
        if isinstance(uri, str) and uri:
            self.uri_of[status_id] = uri  # for a delete of this status (a boost's own id: the boost, not the original)
            _trim(self.uri_of, KNOWN_IDS)
        target = status
        if status.get("reblog"):
            if self.settings.reblogs == "skip":
                return None
            # Unwrapped: the boosted status once, as any status (a boost of one already sent sends nothing).
            target = status["reblog"]
            if isinstance(target.get("uri"), str) and target.get("id") is not None:
                self.uri_of[str(target["id"])] = target["uri"]
        target_uri = target.get("uri")
        edited = edit_time(target.get("edited_at"))
        base = target_uri if isinstance(target_uri, str) and target_uri else f"id:{target.get('id')}"
        key = f"{base}@{edited}" if edited else base  # an edit is new content under the same uid
        if key in self.seen:
            return None
        self.seen[key] = None
        _trim(self.seen, SEEN_URIS)
        post = to_post(target, self.host, "unwrap", resolve=self._uid_of, roots=self.root_of)
        if isinstance(target_uri, str) and target_uri:
            self.root_of[target_uri] = post["reply_root"] or target_uri
            _trim(self.root_of, SEEN_URIS)
        return SourceItem(post, cursor=self._cursor(), uid_hint=target_uri if isinstance(target_uri, str) else None)

    def _cursor(self) -> dict:
        return {"last_id": self.last_id}


def _trim(mapping: OrderedDict, size: int) -> None:
    while len(mapping) > size:
        mapping.popitem(last=False)


def open_source(args, settings, stop: StopFlag) -> tuple[MastodonSource, CursorStore]:
    """`streampulse produce mastodon`: the settings with the command line's overrides, resumed from its cursor."""
    overrides = {"instance": args.instance, "stream": args.stream, "tag": args.tag, "reblogs": args.reblogs}
    mastodon = settings.mastodon.model_copy(update={k: v for k, v in overrides.items() if v})
    store, cursor = CursorStore.for_run(settings, args, "mastodon", mastodon.instance, mastodon.stream,
                                        str(mastodon.tag))
    return MastodonSource(mastodon, cursor=cursor, stop=stop, idle_exit_s=args.idle_exit_s), store
