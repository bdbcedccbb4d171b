"""Links as the connectors publish them: absolute http(s) URLs only, read out of text the way a reader would.

One rule for every source that finds links in text or markup (connectors/reddit.py, connectors/mastodon.py):
- `absolute_link(url)`: the URL when it is an absolute http(s) URL with a host and no white space, else None
  (a crosspost's `/r/…/comments/…`, `mailto:`, a bare `https://`).
- `clean_link(url)`: a URL field or href the same way, trailing punctuation cut (below).
- `links_in_text(text)`: the URLs a text holds, without what surrounds them in prose and markup: trailing
  punctuation (`…/jobs.`), a closing quote or an HTML attribute's end (`href="…"`), markdown emphasis
  (`**…**`), an unbalanced closing parenthesis (`[label](https://…)`); a parenthesis the URL opened itself
  is kept (`…/Python_(programming_language)`). Markdown escapes (`keeping\\_reddit`) are the caller's to
  undo (`unescape_markdown`) before, as they are part of the text too.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_URL = re.compile(r"https?://[^\s<>\"`\[\]{}|\\^]+", re.IGNORECASE)
# What ends a sentence or closes markup around a URL rather than belongs to it.
_TRAILING = ".,;:!?'\"*_~…”’»›。、，！？；：」』）》】"
_MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash before ASCII punctuation


def absolute_link(url: object) -> str | None:
    """`url` if it is an absolute http(s) URL with a host and no white space, else None."""
    if not isinstance(url, str) or not url or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def _trim(url: str) -> str:
    while url:
        if url[-1] in _TRAILING or (url[-1] == ")" and url.count(")") > url.count("(")):
            url = url[:-1]
        elif url.lower().endswith(("&quot;", "&apos;")):  # an HTML-escaped quote (a body read without raw_json)
            url = url[:-6]
        elif url.lower().endswith(("&gt;", "&lt;")):
            url = url[:-4]
        else:
            return url
    return url


def clean_link(url: object) -> str | None:
    """A URL from a field or an href as a link: absolute http(s), without trailing punctuation, else None."""
    return absolute_link(_trim(url.strip())) if isinstance(url, str) else None


def links_in_text(text: str) -> list[str]:
    """The absolute http(s) URLs in `text`, each once, in order of appearance."""
    found = (clean_link(match) for match in _URL.findall(text or ""))
    return list(dict.fromkeys(url for url in found if url))


def unescape_markdown(text: str) -> str:
    """Markdown's backslash escapes undone (`keeping\\_reddit` → `keeping_reddit`, `\\\\` → `\\`)."""
    return _MARKDOWN_ESCAPE.sub(r"\1", text) if "\\" in text else text
