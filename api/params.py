"""A request's parameters checked before any store is asked: time ranges bounded, keywords spelled as the jobs
count them, cursors only as this API gave them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import orjson

from api.problems import Problem
from shared.keywords import normalise_keyword
from shared.settings import ApiSettings


def utc_naive(moment: datetime) -> datetime:
    """The sink tables hold UTC as `timestamp` (no zone): an aware time is converted, a naive one is UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def time_range(api: ApiSettings, start: datetime | None, end: datetime | None,
               default_hours: float | None = None) -> tuple[datetime, datetime]:
    """[from, to) in UTC: `to` defaults to now, `from` to `default_hours` (`default_range_hours`) before `to`."""
    end = utc_naive(end) if end else datetime.now(UTC).replace(tzinfo=None)
    start = utc_naive(start) if start else end - timedelta(hours=default_hours or api.default_range_hours)
    if start >= end:
        raise Problem(400, f"from ({start.isoformat()}) must be before to ({end.isoformat()})", parameter="from")
    if end - start > timedelta(days=api.max_range_days):
        days = (end - start).total_seconds() / 86400
        raise Problem(400, f"from..to spans {days:.1f} days; at most {api.max_range_days} days (api.max_range_days) "
                           "in one request", parameter="from")
    return start, end


def keyword(value: str) -> str:
    try:
        return normalise_keyword(value)
    except ValueError as exc:
        raise Problem(400, f"keyword {value[:80]!r}: {exc}", parameter="keyword") from exc


def page_size(api: ApiSettings, limit: int | None) -> int:
    if limit is None:
        return api.default_page_size
    if not 1 <= limit <= api.max_page_size:
        raise Problem(400, f"limit must be from 1 to {api.max_page_size} (api.max_page_size), got {limit}",
                      parameter="limit")
    return limit


def encode_cursor(values: list) -> str:
    """The last row's sort key, opaque to the client (times as ISO text)."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(orjson.dumps(plain)).decode().rstrip("=")


def decode_cursor(text: str | None, kinds: tuple[type, ...]) -> list | None:
    """The sort key a cursor carries, each value of the kind expected (datetime, int, str), or a 400."""
    if text is None:
        return None
    try:
        values = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong length")
        decoded = []
        for value, kind in zip(values, kinds, strict=True):
            if kind is datetime:
                decoded.append(datetime.fromisoformat(value))
            elif not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"{value!r} is not {kind.__name__}")
            else:
                decoded.append(value)
        return decoded
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise Problem(400, "cursor: not a cursor this endpoint gave (pass next_cursor from the previous page "
                           "unchanged)", parameter="cursor") from exc
