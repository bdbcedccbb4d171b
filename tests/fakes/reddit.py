"""A local Reddit that speaks the real formats: Listing JSON newest first with `limit`/`after` paging, the
X-Ratelimit-* headers (used and reset as integers, remaining as a float, as prawcore parses them), the
app-only token endpoint, bearer checks on the OAuth host, and scripted 429s and 5xx answers.

Items are revealed over time: the first look at a listing shows `initial_reveal` items, and each later
request without `after` makes `reveal_per_request` more visible, as if people kept posting between polls.

`submission`/`comment` are small synthetic items; `real_submission`/`real_comment` and the transformations
below (`deleted`, `removed`, `crosspost`, `edited`, `older`) give items shaped like real listing children,
and MARKDOWN_BODIES/LONG_USERNAMES the text around links and names that real bodies hold."""

from __future__ import annotations

import base64
import json
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TOKEN = "fake-app-only-token"


def submission(n: int, subreddit: str, created_utc: float) -> dict:
    return {"kind": "t3", "data": {
        "id": f"s{n}", "name": f"t3_s{n}", "title": f"Post {n} about #python & u/guido", "selftext": f"body {n}",
        "is_self": n % 3 != 0, "url": f"https://example.com/article/{n}", "subreddit": subreddit,
        "subreddit_name_prefixed": f"r/{subreddit}", "author": f"user{n % 17}", "author_fullname": f"t2_u{n % 17}",
        "created_utc": created_utc, "permalink": f"/r/{subreddit}/comments/s{n}/post_{n}/", "score": 1}}


def comment(n: int, subreddit: str, created_utc: float) -> dict:
    return {"kind": "t1", "data": {
        "id": f"c{n}", "name": f"t1_c{n}", "body": f"Comment {n}: see https://docs.python.org/3/ 👍",
        "link_id": f"t3_s{n // 2}", "parent_id": f"t3_s{n // 2}" if n % 2 else f"t1_c{n - 1}",
        "subreddit": subreddit, "author": f"user{n % 11}", "author_fullname": f"t2_u{n % 11}",
        "created_utc": created_utc, "score": 1}}


def _common(kind: str, item_id: str, subreddit: str, created_utc: float, author: str, **extra) -> dict:
    """The fields every real listing child carries (trimmed to those the connector could read)."""
    data = {
        "id": item_id, "name": f"{kind}_{item_id}", "subreddit": subreddit, "subreddit_id": "t5_2qh0y",
        "subreddit_name_prefixed": f"r/{subreddit}", "subreddit_type": "public", "author": author,
        "author_fullname": f"t2_{zlib.crc32(author.encode()):x}", "author_flair_text": None,
        "created": created_utc, "created_utc": created_utc, "edited": False, "score": 1, "ups": 1, "downs": 0,
        "gilded": 0, "stickied": False, "locked": False, "archived": False, "distinguished": None,
        "approved_at_utc": None, "banned_at_utc": None, "mod_reports": [], "user_reports": [],
        "permalink": f"/r/{subreddit}/comments/{item_id}/", "send_replies": True, "can_gild": False,
    }
    return {"kind": kind, "data": data | extra}


def real_submission(item_id: str, subreddit: str, created_utc: float, *, author: str = "spez", title: str = "A title",
                    selftext: str = "", url: str | None = None, **extra) -> dict:
    """A t3 as the listing sends it (raw_json=1): a self post unless `url` is given."""
    permalink = f"/r/{subreddit}/comments/{item_id}/a_title/"
    is_self = url is None
    return _common("t3", item_id, subreddit, created_utc, author, **{
        "title": title, "selftext": selftext, "selftext_html": None, "is_self": is_self,
        "url": f"https://www.reddit.com{permalink}" if is_self else url, "permalink": permalink,
        "domain": f"self.{subreddit}" if is_self else url.split("/")[2] if url.startswith("http") else "reddit.com",
        "over_18": False, "spoiler": False, "num_comments": 0, "link_flair_text": None, "thumbnail": "self",
        "is_video": False, "media": None, "removed_by_category": None, "upvote_ratio": 1.0, **extra})


def real_comment(item_id: str, subreddit: str, created_utc: float, *, link: str, parent: str | None = None,
                 author: str = "spez", body: str = "a comment", **extra) -> dict:
    return _common("t1", item_id, subreddit, created_utc, author, **{
        "body": body, "body_html": None, "link_id": link, "parent_id": parent or link, "is_submitter": False,
        "controversiality": 0, "depth": 0, "collapsed": False, "collapsed_reason": None, **extra})


def deleted(child: dict) -> dict:
    """The same item after its author deleted it: text and author `[deleted]`, no author_fullname."""
    data = {k: v for k, v in child["data"].items() if k != "author_fullname"} | {"author": "[deleted]"}
    data["body" if child["kind"] == "t1" else "selftext"] = "[deleted]"
    if child["kind"] == "t3":
        data["removed_by_category"] = "deleted"
    return {"kind": child["kind"], "data": data}


def removed(child: dict) -> dict:
    """The same item after a moderator removed it: `[removed]` text (a comment's author shown as `[deleted]`)."""
    data = dict(child["data"])
    if child["kind"] == "t1":
        data |= {"body": "[removed]", "author": "[deleted]"}
        data.pop("author_fullname", None)
    else:
        data |= {"selftext": "[removed]", "removed_by_category": "moderator"}
    return {"kind": child["kind"], "data": data}


def crosspost(item_id: str, subreddit: str, created_utc: float, parent: dict, *, author: str = "spez",
              **extra) -> dict:
    """A crosspost of `parent` (a t3 child): its `url` is the parent's relative permalink when the parent is a
    self post, and the parent travels whole in crosspost_parent_list."""
    target = parent["data"]["permalink"] if parent["data"]["is_self"] else parent["data"]["url"]
    child = real_submission(item_id, subreddit, created_utc, author=author, title=parent["data"]["title"], url=target,
                            crosspost_parent=parent["data"]["name"], crosspost_parent_list=[parent["data"]],
                            num_crossposts=0, **extra)
    if not parent["data"]["is_self"]:
        child["data"]["url_overridden_by_dest"] = target
    return child


def edited(child: dict, text: str, at: float) -> dict:
    """The same item after an edit at `at` (epoch seconds, as `edited` is)."""
    return {"kind": child["kind"],
            "data": child["data"] | {"body" if child["kind"] == "t1" else "selftext": text, "edited": at}}


def older(child: dict) -> dict:
    """The same item as older listings send it: no author_fullname."""
    return {"kind": child["kind"], "data": {k: v for k, v in child["data"].items() if k != "author_fullname"}}


# Text around URLs as people write it in markdown (and as it reaches the API with raw_json=1).
MARKDOWN_BODIES = [
    ("Apply at https://www.reddit.com/jobs.", ["https://www.reddit.com/jobs"]),
    ('They pasted <a href="https://example.org/page">this</a> raw', ["https://example.org/page"]),
    ("Source: https://github.com/reddit/keeping\\_reddit\\_fun (read it!)",
     ["https://github.com/reddit/keeping_reddit_fun"]),
    ("[the docs](https://docs.python.org/3/library/re.html), **https://peps.python.org/pep-0008/**!",
     ["https://docs.python.org/3/library/re.html", "https://peps.python.org/pep-0008/"]),
    ("See https://en.wikipedia.org/wiki/Python_(programming_language); also (https://pypi.org/).",
     ["https://en.wikipedia.org/wiki/Python_(programming_language)", "https://pypi.org/"]),
    ("> quoted https://example.com/a?b=1&c=2, then “https://example.com/q”",
     ["https://example.com/a?b=1&c=2", "https://example.com/q"]),
    ("No scheme: www.example.com or /r/python/wiki, ftp://files.example.com", []),
]
LONG_USERNAMES = ["a_poem_for_your_sprog", "Shitty_Watercolour", "GallowBoob", "im_not_a_long_name_at_all_22"]


@dataclass
class FakeReddit:
    listings: dict[str, list[dict]]  # path (/r/x/new) → items, oldest first
    reveal_per_request: int = 150
    initial_reveal: int = 60  # what the listing shows at the first look
    # listing request number → an HTTP status (429, 503), or "garbage": a 200 whose body is an HTML page
    fail: dict[int, int | str] = field(default_factory=dict)
    client_id: str = "fake-client"
    client_secret: str = "fake-secret"
    requests: list[dict] = field(default_factory=list)
    info_requests: list[dict] = field(default_factory=list)  # /api/info's parameters, in order
    revealed: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                expected = base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()
                if urlparse(self.path).path != "/api/v1/access_token" or \
                        self.headers.get("Authorization") != f"Basic {expected}":
                    return self._json(401, {"message": "Unauthorized", "error": 401})
                if form.get("grant_type") != ["client_credentials"]:
                    return self._json(200, {"error": "unsupported_grant_type"})
                self._json(200, {"access_token": TOKEN, "token_type": "bearer", "expires_in": 86400, "scope": "*"})

            def do_GET(self):
                url = urlparse(self.path)
                path = url.path.removesuffix(".json")
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    if path == "/api/info":  # the current version of each named item (not counted in `fail`)
                        fake.info_requests.append(params)
                        wanted = params.get("id", "").split(",")
                        found = {c["data"]["name"]: c for items in fake.listings.values() for c in items}
                        page = [found[name] for name in wanted if name in found]
                        return self._json(200, {"kind": "Listing", "data": {
                            "after": None, "before": None, "dist": len(page), "children": page}})
                    number = len(fake.requests) + 1
                    fake.requests.append({"path": url.path, "params": params,
                                          "user_agent": self.headers.get("User-Agent"),
                                          "authorization": self.headers.get("Authorization")})
                    if not url.path.endswith(".json") and self.headers.get("Authorization") != f"bearer {TOKEN}":
                        return self._json(401, {"message": "Unauthorized", "error": 401})
                    if path not in fake.listings:
                        return self._json(404, {"message": "Not Found", "error": 404})
                    limits = {"X-Ratelimit-Used": str(number), "X-Ratelimit-Remaining": f"{600.0 - number:.1f}",
                              "X-Ratelimit-Reset": "420"}
                    if fake.fail.get(number) == "garbage":
                        page = b"<html><body>upstream connect error</body></html>"
                        self.send_response(200)
                        self.send_header("Content-Type", "text/html")
                        self.send_header("Content-Length", str(len(page)))
                        self.end_headers()
                        self.wfile.write(page)
                        return None
                    if number in fake.fail:
                        status = fake.fail[number]
                        extra = {"Retry-After": "1"} if status == 429 else {}
                        return self._json(status, {"message": "scripted", "error": status}, limits | extra)
                    items = fake.listings[path]
                    if "after" not in params:  # a fresh look at the listing: more people have posted
                        shown = fake.revealed.get(path)
                        shown = fake.initial_reveal if shown is None else shown + fake.reveal_per_request
                        fake.revealed[path] = min(len(items), shown)
                    visible = items[:fake.revealed.get(path, 0)][::-1]  # newest first
                    start = 0
                    if "after" in params:
                        names = [c["data"]["name"] for c in visible]
                        start = names.index(params["after"]) + 1 if params["after"] in names else len(visible)
                    limit = min(100, int(params.get("limit", 25)))
                    page = visible[start:start + limit]
                    after = page[-1]["data"]["name"] if start + limit < len(visible) and page else None
                    before = page[0]["data"]["name"] if page else None
                return self._json(200, {"kind": "Listing", "data": {
                    "after": after, "before": before, "dist": len(page), "modhash": "", "geo_filter": "",
                    "children": page}}, limits)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
