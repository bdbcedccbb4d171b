"""The read API's parameter rules (api/params.py, api/live.py): keywords spelled as the jobs count them, bounded
time ranges, cursors and Last-Event-IDs that only this API's own values pass, and each live event once."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone

import pytest

from api.live import LiveEvent, decode_position, encode_position, sse, wire_for
from api.params import decode_cursor, encode_cursor, keyword, page_size, time_range
from api.problems import Problem
from shared.keywords import MAX_KEYWORD_CHARS, extract_keywords, normalise_keyword
from shared.settings import ApiSettings, ConfigError, load_settings


@pytest.mark.parametrize("typed, counted", [
    ("#Aurora", "#aurora"), ("aurora", "aurora"), ("  Café ", "café"), ("ＴＡＧ", "tag"), ("##Tag", "#tag"),
    ("Rock’n’Roll", "rock'n'roll"), ("STRASSE", "strasse"), ("#Straße", "#strasse"), ("covid-19", "covid-19")])
def test_a_typed_keyword_is_spelled_as_the_jobs_count_it(typed, counted):
    assert normalise_keyword(typed) == counted
    # ... which is what the trending job extracts from a post holding it.
    post_text, tags = (typed, []) if not counted.startswith("#") else ("", [typed.lstrip("#")])
    assert counted in extract_keywords(post_text, tags, ["en"])


@pytest.mark.parametrize("typed", ["", "   ", "#", "#  ", "x" * (MAX_KEYWORD_CHARS + 1)])
def test_an_empty_or_overlong_keyword_is_a_400_naming_the_parameter(typed):
    with pytest.raises(Problem) as info:
        keyword(typed)
    assert info.value.status == 400 and info.value.parameter == "keyword"


def test_time_ranges_default_to_a_day_are_converted_to_utc_and_are_bounded():
    api = ApiSettings()
    start, end = time_range(api, None, None)
    assert end - start == timedelta(hours=24) and abs(datetime.now(UTC).replace(tzinfo=None) - end).total_seconds() < 60
    paris = timezone(timedelta(hours=1))
    start, end = time_range(api, datetime(2026, 11, 1, 13, 0, tzinfo=paris), datetime(2026, 11, 1, 14, 0))
    assert (start, end) == (datetime(2026, 11, 1, 12, 0), datetime(2026, 11, 1, 14, 0))
    for bad in [(datetime(2026, 11, 2), datetime(2026, 11, 1)), (datetime(2026, 11, 1), datetime(2026, 11, 1)),
                (datetime(2026, 1, 1), datetime(2026, 3, 1))]:
        with pytest.raises(Problem) as info:
            time_range(api, *bad)
        assert info.value.status == 400 and info.value.parameter == "from"
    assert page_size(api, None) == api.default_page_size and page_size(api, api.max_page_size) == api.max_page_size
    for bad in (0, -1, api.max_page_size + 1):
        with pytest.raises(Problem):
            page_size(api, bad)


def test_a_cursor_round_trips_and_anything_else_is_refused():
    key = [datetime(2026, 11, 1, 12, 5), 3, "#aurora"]
    assert decode_cursor(encode_cursor(key), (datetime, int, str)) == key
    assert decode_cursor(None, (datetime, int, str)) is None
    for bad in ("", "abc", encode_cursor([1, 2]), encode_cursor(["2026-11-01T12:05:00", "3", "x"]),
                encode_cursor(["not a time", 3, "x"]), encode_cursor(["2026-11-01T12:05:00", True, "x"])):
        with pytest.raises(Problem) as info:
            decode_cursor(bad, (datetime, int, str))
        assert info.value.parameter == "cursor"


def test_positions_round_trip_and_a_foreign_id_is_refused():
    topics = ("trends.alerts", "volume.anomalies")
    position = {("trends.alerts", 0): 17, ("volume.anomalies", 0): 3, ("volume.anomalies", 1): 0}
    text = encode_position(position)
    assert text == "trends.alerts:0:17,volume.anomalies:0:3,volume.anomalies:1:0"
    assert decode_position(text, topics) == position
    for bad in ("", "other.topic:0:1", "trends.alerts:0", "trends.alerts:x:1", "trends.alerts:0:-1",
                "trends.alerts:0:1," * 400):
        with pytest.raises(ValueError):
            decode_position(bad, topics)


def event(offset: int, partition: int, after: dict) -> LiveEvent:
    frozen = tuple(sorted(after.items()))
    event_id = encode_position(dict(frozen))
    data = json.dumps({"n": offset})
    return LiveEvent("a", partition, offset, "trend", data, frozen, event_id, sse("trend", event_id, data))


def ids(chunk: bytes) -> list[str]:
    return [line[4:] for line in chunk.decode().splitlines() if line.startswith("id: ")]


def test_a_client_gets_each_event_once_and_an_id_that_resumes_exactly_where_it_is():
    # The reader's order: a/0 offsets 0 and 1, then a/1 offset 0; the client resumed at a/0:1, a/1:0.
    stream = [event(0, 0, {("a", 0): 1, ("a", 1): 0}), event(1, 0, {("a", 0): 2, ("a", 1): 0}),
              event(0, 1, {("a", 0): 2, ("a", 1): 1})]
    position = {("a", 0): 1, ("a", 1): 0}
    chunk = wire_for(position, stream)
    assert ids(chunk) == ["a:0:2,a:1:0", "a:0:2,a:1:1"] and position == {("a", 0): 2, ("a", 1): 1}
    assert chunk == stream[1].wire + stream[2].wire  # caught up: the encoding shared by every such client
    assert wire_for(position, stream) == b""  # nothing twice
    # A client ahead of the reader in one partition (it resumed on another process) gets ids of its own.
    ahead = {("a", 0): 0, ("a", 1): 5}
    assert ids(wire_for(ahead, stream)) == ["a:0:1,a:1:5", "a:0:2,a:1:5"]


def test_an_event_is_one_sse_message_whatever_its_value_holds():
    assert sse("trend", "a:0:1", '{"k": 1}') == b'event: trend\nid: a:0:1\ndata: {"k": 1}\n\n'
    assert sse("anomaly", "a:0:2", "one\ntwo") == b"event: anomaly\nid: a:0:2\ndata: one\ndata: two\n\n"


def test_api_settings_are_checked_like_the_rest(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("STREAMPULSE_")]:
        monkeypatch.delenv(key)
    path = tmp_path / "streampulse.yaml"
    path.write_text(f"stack:\n  state_dir: {tmp_path}\napi:\n  max_page_size: 50\n  default_page_size: 100\n")
    with pytest.raises(ConfigError, match=r"api\.default_page_size \(100\) must be at most api\.max_page_size"):
        load_settings(path)
    monkeypatch.setenv("STREAMPULSE_API__PORT", "99999")
    with pytest.raises(ConfigError, match=r"api\.port"):
        load_settings(path)
