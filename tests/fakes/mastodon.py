"""A local Mastodon that speaks the real formats: the instance endpoints (with and without the trailing
slash), the streaming API as server-sent events over chunked HTTP/1.1 (`:)` on connect, `:thump`
heartbeats, `event: <name>\\ndata: <payload>\\n\\n`), and the public timeline with min_id/since_id/max_id,
limit and a Link header. Bearer tokens are checked; 401s carry {"error": ...} as the server does.

Each streaming connection plays the next scripted session, a list of steps:
  ("update", status) · ("status.update", status) · ("delete", id) · ("publish", status) — a status that
  reaches only the timeline (posted while no stream listened) · ("drop",) — cut the connection without
  ending the chunked body · ("hold",) — keep the stream open with heartbeats until the server stops.

Statuses shaped like real ones (`status` and the builders below): mentions from other server software,
quote posts with their `quote-inline` fallback, polls, custom emoji, content warnings, replies, edits
(`edited_at` on the wire is a string; Mastodon.py makes it a datetime in REST pages, not in status.update
events), boosts.
"""

from __future__ import annotations

import json
import threading
import zlib
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TOKEN = "fake-user-token"
HOST = "fake.social"


def status(n: int, *, created: datetime | None = None, html: str | None = None, **extra) -> dict:
    created = created or datetime.now(UTC) - timedelta(minutes=30) + timedelta(seconds=n)
    return {
        "id": str(100_000 + 10 * n), "uri": f"https://remote.example/users/u{n % 9}/statuses/{n}",
        "url": f"https://remote.example/@u{n % 9}/{n}", "created_at": created.isoformat().replace("+00:00", "Z"),
        "edited_at": None, "content": html or f"<p>Status {n} about <a href=\"https://{HOST}/tags/fediverse\" "
                                             f"class=\"mention hashtag\" rel=\"tag\">#<span>fediverse</span></a></p>",
        "text": None, "language": "en", "visibility": "public", "sensitive": False, "spoiler_text": "",
        "account": {"id": str(n % 9), "username": f"u{n % 9}", "acct": f"u{n % 9}@remote.example",
                    "url": f"https://remote.example/@u{n % 9}", "display_name": f"U {n % 9}", "bot": False},
        "tags": [{"name": "fediverse", "url": f"https://{HOST}/tags/fediverse"}], "mentions": [],
        "media_attachments": [], "emojis": [], "reblog": None, "card": None, "poll": None,
        "in_reply_to_id": None, "in_reply_to_account_id": None, "replies_count": 0, "reblogs_count": 0,
        "favourites_count": 0, **extra}


def mention(username: str, domain: str, url: str | None = None) -> dict:
    """A Mention entity: the account's id on this server, its profile URL and its acct."""
    return {"id": str(zlib.crc32(f"{username}@{domain}".encode())), "username": username,
            "url": url or f"https://{domain}/@{username}", "acct": f"{username}@{domain}"}


# How mentions reach a Mastodon server from other server software: (content HTML, the status's mentions).
# Mastodon's own: `<span class="h-card"><a class="u-url mention">`; the others differ.
OTHER_SERVER_MENTIONS = {
    "misskey": ('<p><a href="https://misskey.io/@alice" class="u-url mention">@alice@misskey.io</a> nice</p>',
                [mention("alice", "misskey.io")]),
    "pleroma": ('<p><span class="h-card"><a class="u-url mention" data-user="AbC123" '
                'href="https://pleroma.example/users/bob" rel="ugc">@<span>bob</span></a></span> nice</p>',
                [mention("bob", "pleroma.example", "https://pleroma.example/users/bob")]),
    "gotosocial": ('<p><span class="h-card"><a href="https://gts.example/@carol" class="mention" rel="nofollow '
                   'noreferrer noopener" target="_blank">@<span>carol</span></a></span> nice</p>',
                   [mention("carol", "gts.example")]),
    "friendica": ('<p>@<a href="https://friendica.example/profile/dave">dave</a> nice</p>',
                  [mention("dave", "friendica.example", "https://friendica.example/profile/dave")]),
    "pixelfed": ('<p><a href="https://pixelfed.example/erin">@erin</a> nice</p>',
                 [mention("erin", "pixelfed.example", "https://pixelfed.example/users/erin")]),
}


def quote(n: int, quoted: dict, text: str = "My take on this") -> dict:
    """A quote post (Mastodon 4.4+): the quoted status in `quote`, and in the content a fallback paragraph
    `RE: <url>` of class quote-inline for clients that cannot show quotes."""
    url = quoted["url"]
    html = (f'<p class="quote-inline">RE: <a href="{url}" rel="nofollow noopener" target="_blank">'
            f'<span class="invisible">https://</span><span class="ellipsis">{url[8:30]}</span>'
            f'<span class="invisible">{url[30:]}</span></a></p><p>{text}</p>')
    return status(n, html=html, quote={"state": "accepted", "quoted_status": quoted}, quotes_count=0)


def misskey_quote(n: int, quoted_url: str, text: str = "Quoting") -> dict:
    """A quote from Misskey: the fallback in a span of class quote-inline inside the paragraph."""
    return status(n, html=f'<p>{text}<span class="quote-inline"><br><br>RE: <a href="{quoted_url}">{quoted_url}'
                          f'</a></span></p>')


def poll(n: int) -> dict:
    return status(n, html="<p>Tabs or spaces?</p>", poll={
        "id": str(3000 + n), "expires_at": "2026-12-01T10:00:00.000Z", "expired": False, "multiple": False,
        "votes_count": 7, "voters_count": 7, "options": [{"title": "Tabs", "votes_count": 3},
                                                          {"title": "Spaces", "votes_count": 4}], "emojis": []})


def custom_emoji(n: int) -> dict:
    """Custom emoji: `:shortcode:` in the content and the spoiler, listed in `emojis`."""
    emojis = [{"shortcode": code, "url": f"https://{HOST}/emoji/{code}.png", "static_url": f"https://{HOST}/emoji/"
               f"{code}.png", "visible_in_picker": True} for code in ("trans_heart", "blobcat_happy")]
    return status(n, html="<p>Happy pride :trans_heart: :trans_heart:everyone:blobcat_happy:</p>",
                  spoiler_text=":blobcat_happy: feelings", sensitive=True, emojis=emojis)


def content_warning(n: int, warning: str = "food, long") -> dict:
    return status(n, html="<p>Today I cooked soup</p>", spoiler_text=warning, sensitive=True)


def reply(n: int, parent: dict) -> dict:
    """A reply to `parent` (a status this server knows): its local id and its account's."""
    return status(n, html=f"<p>Reply {n}</p>", in_reply_to_id=parent["id"],
                  in_reply_to_account_id=parent["account"]["id"])


def edit(original: dict, html: str, at: datetime) -> dict:
    """The status after an edit at `at`: new content, edited_at set (the wire form is always the ISO string)."""
    return original | {"content": html, "edited_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z")}


def boost(n: int, original: dict, *, created: datetime | None = None) -> dict:
    """A boost (reblog) of `original`: a status of its own (id, uri .../activity) wrapping it."""
    wrapper = status(n, created=created, html="", reblog=original, tags=[], language=None)
    return wrapper | {"uri": f"https://{HOST}/users/booster/statuses/{wrapper['id']}/activity",
                      "url": f"https://{HOST}/users/booster/statuses/{wrapper['id']}"}


class FakeMastodon:
    def __init__(self, sessions: list[list[tuple]], token: str = TOKEN):
        self.sessions, self.token = sessions, token
        self.timeline: dict[int, dict] = {}  # id → status, everything "posted" so far
        self.connections = 0
        self.timeline_requests: list[dict] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def _post(self, status: dict) -> None:
        with self.lock:
            self.timeline[int(status["id"])] = status

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, status: int, body, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {fake.token}":
                    return True
                self._json(401, {"error": "The access token is invalid"})
                return False

            def do_GET(self):
                url = urlparse(self.path)
                path = url.path.rstrip("/")
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                if path == "/api/v1/instance":
                    return self._json(200, {"uri": HOST, "title": "Fake", "version": "4.3.0",
                                            "urls": {"streaming_api": f"ws://{self.headers['Host']}"}})
                if path == "/api/v2/instance":
                    return self._json(200, {"domain": HOST, "title": "Fake", "version": "4.3.0",
                                            "configuration": {"urls": {"streaming": f"ws://{self.headers['Host']}"}}})
                if path == "/api/v1/streaming/health":
                    return self._json(200, "OK")
                if path.startswith("/api/v1/streaming/"):
                    if self._authorised():
                        self._stream()
                    return None
                if path == "/api/v1/timelines/public":
                    return self._timeline(params)
                return self._json(404, {"error": "Record not found"})

            def _timeline(self, params: dict) -> None:
                fake.timeline_requests.append(params)
                limit = min(40, int(params.get("limit", 20)))
                with fake.lock:
                    ids = sorted(fake.timeline)
                if "min_id" in params:  # the page right after min_id, walking forward
                    page = [i for i in ids if i > int(params["min_id"])][:limit]
                else:
                    newer = [i for i in ids if i > int(params.get("since_id", 0))
                             and i < int(params.get("max_id", 1 << 62))]
                    page = newer[-limit:]
                page = page[::-1]  # newest first, as Mastodon answers
                base = f"http://{self.headers['Host']}/api/v1/timelines/public?limit={limit}"
                links = []
                if page:
                    links = [f'<{base}&max_id={page[-1]}>; rel="next"', f'<{base}&min_id={page[0]}>; rel="prev"']
                with fake.lock:
                    body = [fake.timeline[i] for i in page]
                self._json(200, body, {"Link": ", ".join(links)} if links else None)

            def _chunk(self, text: str) -> None:
                data = text.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _stream(self) -> None:
                with fake.lock:
                    session = fake.sessions[fake.connections] if fake.connections < len(fake.sessions) else [("hold",)]
                    fake.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._chunk(":)\n")
                for step in session:
                    kind = step[0]
                    if kind in ("update", "status.update"):
                        fake._post(step[1])
                        self._chunk(f"event: {kind}\ndata: {json.dumps(step[1])}\n\n")
                    elif kind == "delete":
                        self._chunk(f"event: delete\ndata: {step[1]}\n\n")
                    elif kind == "publish":
                        fake._post(step[1])
                    elif kind == "heartbeat":
                        self._chunk(":thump\n")
                    elif kind == "drop":  # no terminating chunk: the client sees the body end early
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    elif kind == "hold":
                        while not fake.stopping.wait(0.2):
                            self._chunk(":thump\n")
                        break
                self._chunk("")  # the terminating zero-length chunk: a clean end of stream
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.stopping.set()  # held streams end with a clean last chunk
        self.server.shutdown()
        self.server.server_close()
