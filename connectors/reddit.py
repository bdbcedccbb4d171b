"""Reddit source: new submissions and comments of chosen subreddits, polled through the official API.

- Auth: an app-only OAuth token (client credentials) against oauth.reddit.com when reddit.client_id and
  reddit.client_secret are set, renewed before it expires and after a 401; the public JSON listings of
  www.reddit.com (10 requests/min) otherwise. Every request carries the User-Agent form Reddit asks
  for, `<platform>:<app id>:<version> (by /u/<username>)`.
- Polling: each listing (`/r/<sub>/new`, `/r/<sub>/comments`) is read newest first, 100 at a time; a poll
  pages back with `after` until it reaches an item it has seen (at most 10 pages, Reddit's ~1000-item
  depth), so a burst between polls leaves no gap, and the first poll of a new cursor takes one page.
  Items are published oldest first and deduplicated by fullname (t3_/t1_), the Kafka key, and version: an
  edit seen again (a new `edited` time) is published once more under the same fullname; a deleted or
  removed item (`[deleted]`/`[removed]`, `removed_by_category`) becomes a deletion notice on social.deletes.
- Rate limits: X-Ratelimit-Remaining/-Reset spread the requests over the window; a 429 waits Retry-After
  (or the reset), 5xx/408 and connection errors back off exponentially with jitter.
- Deletions of older items: each poll also re-reads recently seen items through /api/info, 100 per request
  (reddit.recheck_batches_per_poll requests, newest first and in turn), so an item deleted or removed after it
  left the listing's first pages still becomes a deletion notice, once.
- Resume: the cursor holds each listing's recently seen fullnames (with the version: `t1_x@<edited>`,
  `t1_x@deleted`), so a restarted producer sends nothing twice and catches up on what it missed.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from connectors.links import clean_link, links_in_text, unescape_markdown
from connectors.producer import CursorStore, Source, SourceError, SourceItem, StopFlag
from shared.settings import RedditSettings

log = logging.getLogger("streampulse.reddit")

PAGE_LIMIT = 100  # Reddit's maximum per listing request
MAX_PAGES = 10  # listings go no deeper than about 1000 items
SEEN_PER_LISTING = 1000  # fullnames remembered per listing (in the cursor)
# Reddit's usernames are 3-20 characters today; older accounts have longer ones (u/a_poem_for_your_sprog).
MENTION = re.compile(r"(?<![\w/])/?u/([A-Za-z0-9_-]{3,})")
GONE = ("[deleted]", "[removed]")  # what Reddit shows in place of a deleted or removed author or text
USER_AGENT_FORM = re.compile(r"^\S+:\S+:\S+ \(by /u/[\w-]+\)$")


class RedditError(SourceError):
    """A request Reddit refused for good (bad credentials, private or unknown subreddit)."""


@dataclass
class Listing:
    subreddit: str
    kind: str  # "new" (submissions) or "comments"
    seen: list[str] = field(default_factory=list)  # newest last

    @property
    def path(self) -> str:
        return f"/r/{self.subreddit}/{self.kind}"


def check_settings(settings: RedditSettings) -> None:
    """Fail before any request, naming the key and the expected form."""
    if not settings.user_agent or not USER_AGENT_FORM.match(settings.user_agent):
        raise RedditError(
            "reddit.user_agent is required in Reddit's form `<platform>:<app id>:<version> (by /u/<username>)`, "
            "e.g. `linux:streampulse:0.1 (by /u/yourname)`: set STREAMPULSE_REDDIT__USER_AGENT or --user-agent")
    if bool(settings.client_id) != bool(settings.client_secret):
        missing = "reddit.client_secret" if settings.client_id else "reddit.client_id"
        raise RedditError(f"{missing} is not set: app-only OAuth needs both the client id and its secret "
                          "(STREAMPULSE_REDDIT__CLIENT_ID, STREAMPULSE_REDDIT__CLIENT_SECRET); "
                          "leave both unset for the public JSON listings")


class RedditClient:
    """HTTP with Reddit's rules: token, User-Agent, rate-limit headers, retries."""

    def __init__(self, settings: RedditSettings, *, sleep: Callable[[float], None] = time.sleep,
                 stop: StopFlag | None = None, max_backoff_s: float = 60.0):
        check_settings(settings)
        self.settings, self._sleep, self._stop = settings, sleep, stop or StopFlag()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = settings.user_agent
        self.oauth = settings.client_id is not None
        self._token: str | None = None
        self._token_expires = 0.0
        self.remaining: float | None = None
        self.reset_s: float | None = None
        self.max_backoff_s = max_backoff_s

    def _base(self) -> str:
        return (self.settings.oauth_url if self.oauth else self.settings.base_url).rstrip("/")

    def _fetch_token(self) -> None:
        url = self.settings.base_url.rstrip("/") + "/api/v1/access_token"
        response = self.session.post(url, data={"grant_type": "client_credentials"}, timeout=30,
                                     auth=(self.settings.client_id.get_secret_value(),
                                           self.settings.client_secret.get_secret_value()))
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 200 or "error" in body or "access_token" not in body:
            raise RedditError(f"Reddit refused the app-only token at {url} (HTTP {response.status_code}: "
                              f"{body.get('error', response.text[:200])}): check reddit.client_id and "
                              "reddit.client_secret")
        self._token = body["access_token"]
        self._token_expires = time.monotonic() + float(body.get("expires_in", 3600)) - 60

    def get(self, path: str, params: dict[str, Any]) -> dict:
        url = self._base() + path + ("" if self.oauth else ".json")
        failures = 0
        while True:
            self._respect_rate_limit()
            headers = {}
            if self.oauth:
                if self._token is None or time.monotonic() >= self._token_expires:
                    self._fetch_token()
                headers["Authorization"] = f"bearer {self._token}"
            try:
                response = self.session.get(url, params=params, headers=headers, timeout=30)
            except (requests.ConnectionError, requests.Timeout) as exc:
                failures += 1
                self._backoff(failures, f"{url}: {exc}")
                continue
            self._read_rate_limit(response)
            status = response.status_code
            if status == 200:
                try:
                    body = response.json()
                except ValueError:  # an HTML error page or a cut-off body with status 200: a server fault
                    body = None
                if isinstance(body, dict) and isinstance(body.get("data"), dict):
                    return body
                failures += 1
                self._backoff(failures, f"{url}: HTTP 200 without a JSON listing ({response.text[:80]!r})")
                continue
            if status == 429:
                wait = _number(response.headers.get("Retry-After")) or self.reset_s or 2.0 ** min(failures, 6)
                log.warning("429 from %s: waiting %.0f s", url, wait)
                failures += 1
                self._wait(wait)
            elif status == 401 and self.oauth and failures == 0:
                self._token = None  # expired or revoked: one fresh token, then give up
                failures += 1
            elif status >= 500 or status == 408:
                failures += 1
                self._backoff(failures, f"{url}: HTTP {status}")
            elif status in (403, 404):
                raise RedditError(f"{url}: HTTP {status}: the subreddit is private, banned or does not exist")
            else:
                raise RedditError(f"{url}: HTTP {status}: {response.text[:200]}")

    def _read_rate_limit(self, response: requests.Response) -> None:
        remaining, reset = response.headers.get("X-Ratelimit-Remaining"), response.headers.get("X-Ratelimit-Reset")
        if remaining is not None and reset is not None:  # cached responses carry none
            self.remaining, self.reset_s = _number(remaining), _number(reset)

    def _respect_rate_limit(self) -> None:
        # Spread what remains of the window over the time left in it; wait for the reset when none is left.
        if self.remaining is None or self.reset_s is None:
            return
        if self.remaining < 1:
            self._wait(self.reset_s)
            self.remaining = None
        elif self.remaining < 10:
            self._wait(self.reset_s / self.remaining)

    def _backoff(self, failures: int, why: str) -> None:
        wait = min(self.max_backoff_s, 2.0 ** (failures - 1)) * random.uniform(0.8, 1.2)
        log.warning("%s: retrying in %.1f s (attempt %d)", why, wait, failures + 1)
        self._wait(wait)

    def _wait(self, seconds: float) -> None:
        self._stop.sleep(seconds, self._sleep)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class RedditSource(Source):
    """Yields SourceItems for every new submission and comment, oldest first, polling until stopped."""

    name = "reddit"

    def __init__(self, settings: RedditSettings, *, kinds: tuple[str, ...] = ("new", "comments"),
                 cursor: dict | None = None, stop: StopFlag | None = None, polls: int | None = None,
                 client: RedditClient | None = None, sleep: Callable[[float], None] = time.sleep):
        self.settings, self.stop, self.polls, self._sleep = settings, stop or StopFlag(), polls, sleep
        self.client = client or RedditClient(settings, sleep=sleep, stop=self.stop)
        seen = (cursor or {}).get("seen", {})
        names = [sub.removeprefix("r/") for sub in settings.subreddits]
        self.listings = [Listing(name, kind, list(seen.get(f"/r/{name}/{kind}", [])))
                         for name in names for kind in kinds]
        self.author_fallbacks = 0  # posts whose author id is u/<username> (no author_fullname in the payload)
        self.recheck_from = 0  # where the next /api/info batch starts among the recently seen items

    def cursor(self) -> dict:
        return {"seen": {listing.path: listing.seen[-SEEN_PER_LISTING:] for listing in self.listings}}

    def items(self) -> Iterator[SourceItem]:
        poll = 0
        while not self.stop.stopping and (self.polls is None or poll < self.polls):
            poll += 1
            for listing in self.listings:
                for child in self.poll(listing):
                    # Seen once yielded: the cursor saved after this item's acknowledgement covers it and
                    # nothing after it, so a crash mid-poll re-reads the rest on restart.
                    name = child["data"]["name"]
                    try:
                        key = version_key(child["data"])
                    except Exception:  # an edited or removal field nobody foresaw: the item's first version
                        key = name
                    listing.seen.append(key)
                    del listing.seen[:-SEEN_PER_LISTING]
                    try:
                        kind, payload = map_child(child)
                    except Exception as exc:  # an item of a shape nobody foresaw: the DLQ, and the poll goes on
                        yield SourceItem(child, cursor=self.cursor(), uid_hint=name,
                                         rejected=("invalid_item", f"unreadable listing item: {exc!r}"[:500]))
                        continue
                    if kind == "delete":
                        yield SourceItem(payload, cursor=self.cursor(), uid_hint=name, deleted=True)
                        continue
                    if author_id(child["data"])[1] and payload["author_id"]:
                        self.author_fallbacks += 1
                        if self.author_fallbacks == 1 or self.author_fallbacks % 1000 == 0:
                            log.info("%d items without author_fullname so far: author id u/<username> (%s)",
                                     self.author_fallbacks, payload["author_id"])
                    yield SourceItem(payload, cursor=self.cursor(), uid_hint=name)
            yield from self.recheck()
            if self.polls is None or poll < self.polls:
                self.stop.sleep(self.settings.poll_interval_s, self._sleep)

    def recheck(self) -> Iterator[SourceItem]:
        """Deletion notices for recently seen items that are gone now, asked of /api/info in batches of 100."""
        owner: dict[str, Listing] = {}
        gone: set[str] = set()
        for listing in self.listings:
            for key in reversed(listing.seen):  # newest first
                name, _, version = key.partition("@")
                if version == "deleted":
                    gone.add(name)
                owner.setdefault(name, listing)
        names = [name for name in owner if name not in gone]
        for _ in range(self.settings.recheck_batches_per_poll):
            if not names or self.stop.stopping:
                return
            if self.recheck_from >= len(names):
                self.recheck_from = 0
            batch = names[self.recheck_from:self.recheck_from + PAGE_LIMIT]
            self.recheck_from += len(batch)
            data = self.client.get("/api/info", {"id": ",".join(batch), "raw_json": 1})["data"]
            for child in data.get("children") or []:
                if not (isinstance(child, dict) and isinstance(child.get("data"), dict)
                        and child["data"].get("name") in owner and removal(child["data"])):
                    continue
                name = child["data"]["name"]
                listing = owner[name]
                listing.seen.append(f"{name}@deleted")
                del listing.seen[:-SEEN_PER_LISTING]
                yield SourceItem(to_delete(child), cursor=self.cursor(), uid_hint=name, deleted=True)

    def poll(self, listing: Listing) -> list[dict]:
        """The listing's items not seen before, and new versions (an edit, a deletion) of items seen on the pages
        read, oldest first. Paging back stops at the first item seen before, whatever its version."""
        seen = set(listing.seen)
        seen_names = {key.partition("@")[0] for key in seen}
        fresh: dict[str, dict] = {}
        after = None
        for _ in range(MAX_PAGES if listing.seen else 1):
            params = {"limit": PAGE_LIMIT, "raw_json": 1} | ({"after": after} if after else {})
            data = self.client.get(listing.path, params)["data"]
            children = [c for c in data.get("children") or [] if isinstance(c, dict) and c.get("kind") in ("t1", "t3")
                        and isinstance(c.get("data"), dict) and isinstance(c["data"].get("name"), str)]
            new = [c for c in children if c["data"]["name"] not in seen_names]
            for child in children:
                name = child["data"]["name"]
                try:
                    key = version_key(child["data"])
                except Exception:
                    key = name
                if key not in seen and (name not in seen_names or key != name):
                    fresh[key] = child
            after = data.get("after")
            if len(new) < len(children) or not after or not children or not isinstance(after, str):
                break  # reached what the last poll saw, or the end of the listing
        return sorted(fresh.values(), key=lambda c: (_created(c["data"]), c["data"]["name"]))


def _created(data: dict) -> float:
    """created_utc for ordering: a number; anything else (NaN, a string, nothing) sorts first."""
    value = data.get("created_utc")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


def removal(data: dict) -> str | None:
    """"deleted" or "removed" when the item is gone from Reddit (what the listing shows in its place), else None.

    Deleted by its author: body/selftext `[deleted]` and author `[deleted]` (an account deleted since leaves the
    author `[deleted]` too); removed by moderators or Reddit: `[removed]`, or `removed_by_category` set."""
    texts = {str(data.get(key) or "").strip() for key in ("body", "selftext")}
    category = data.get("removed_by_category")
    if "[removed]" in texts or (category and category not in ("deleted", "author")):
        return "removed"
    if "[deleted]" in texts or data.get("author") in GONE or category in ("deleted", "author"):
        return "deleted"
    return None


def version_key(data: dict) -> str:
    """What makes an item new to the source: its fullname, plus `@deleted` once it is gone, or `@<edited>` (the
    epoch seconds of its last edit) once edited, so each edit is published once, a deletion once."""
    name = data["name"]
    if removal(data):
        return f"{name}@deleted"
    edited = data.get("edited")
    if isinstance(edited, int | float) and not isinstance(edited, bool) and edited and math.isfinite(edited):
        return f"{name}@{edited:.0f}"
    return f"{name}@edited" if edited is True else name


def author_id(data: dict) -> tuple[str, bool]:
    """The author id and whether it is the fallback: the account's fullname (`t2_…`), or, for items that carry
    none (older ones), `u/<username>` — stable (usernames never change) and never a fullname."""
    fullname = data.get("author_fullname")
    if isinstance(fullname, str) and fullname:
        return fullname, False
    author = data.get("author")
    return (f"u/{author}" if isinstance(author, str) and author else ""), True  # no author at all: the DLQ


def to_delete(child: dict) -> dict:
    """The deletion notice of a deleted or removed item for social.deletes, keyed like the post (its fullname)."""
    data = child["data"]
    return {"uid": data["name"], "reason": removal(data) or "deleted", "community": _community(data)}


def _community(data: dict) -> str:
    return data.get("subreddit_name_prefixed") or f"r/{data.get('subreddit', '')}"


def to_post(child: dict) -> dict:
    """A Listing child (t3 submission or t1 comment) as a SocialPost mapping (validated by the producer).

    Text is the title and body with markdown escapes undone; links are absolute http(s) URLs only (a crosspost's
    `url` is a relative `/r/…` path: not a link); over_18, spoiler and the rest of the listing fields have no
    place in a SocialPost and are dropped (README: "Reddit and Mastodon")."""
    data = child["data"]
    if child["kind"] == "t3":
        text = "\n\n".join(part for part in (data.get("title", ""), data.get("selftext", "")) if part)
        target = clean_link(data.get("url_overridden_by_dest") or data.get("url"))
        links = [] if data.get("is_self") or not target else [target]
        reply_parent = reply_root = None
    else:
        text = data.get("body", "")
        links = []
        reply_parent, reply_root = data.get("parent_id"), data.get("link_id")
    text = unescape_markdown(text)
    links += [u for u in links_in_text(text) if u not in links]
    created = data.get("created_utc")
    return {
        "uid": data.get("name"), "source": "reddit", "author_id": author_id(data)[0],
        "text": text, "langs": [],  # Reddit has no language field
        # Not a finite number (NaN in a broken response, a string): passed on as is, and rejected by the producer.
        "created_at": int(float(created) * 1000) if isinstance(created, int | float) and math.isfinite(created)
        else created,
        "hashtags": [], "mentions": list(dict.fromkeys(MENTION.findall(text))), "links": links,
        "reply_parent": reply_parent, "reply_root": reply_root, "community": _community(data),
    }


def map_child(child: dict) -> tuple[str, dict]:
    """("delete", notice) for an item that is gone, ("post", SocialPost mapping) otherwise."""
    if removal(child["data"]):
        return "delete", to_delete(child)
    return "post", to_post(child)


def open_source(args, settings, stop: StopFlag) -> tuple[RedditSource, CursorStore]:
    """`streampulse produce reddit`: the settings with the command line's overrides, resumed from its cursor."""
    overrides = {k: v for k, v in {"subreddits": args.subreddits, "user_agent": args.user_agent}.items() if v}
    reddit = settings.reddit.model_copy(update=overrides)
    kinds = {"submissions": ("new",), "comments": ("comments",)}.get(args.only, ("new", "comments"))
    store, cursor = CursorStore.for_run(settings, args, "reddit", *sorted(reddit.subreddits), *kinds)
    return RedditSource(reddit, kinds=kinds, cursor=cursor, stop=stop, polls=args.polls), store
