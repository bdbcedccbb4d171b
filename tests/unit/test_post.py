"""The SocialPost model: validation rules, and the Avro wire form against the schema file."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import UTC, datetime

import fastavro
import pytest

from shared.post import (
    MAX_TEXT_CHARS,
    SCHEMA,
    SCHEMA_PATH,
    InvalidPost,
    RejectReason,
    SocialPost,
    decode,
    decode_post,
    encode,
    parse_post,
)

NOW = int(datetime(2026, 11, 24, 12, 0, tzinfo=UTC).timestamp() * 1000)


def raw(**overrides) -> dict:
    post = {"uid": "at://did:plc:abc/app.bsky.feed.post/1", "source": "bluesky", "author_id": "did:plc:abc",
            "text": "hello", "created_at": "2026-11-24T11:59:00.250Z", "langs": ["en"]}
    post.update(overrides)
    return {k: v for k, v in post.items() if v is not ...}


def rejected(payload, **kw) -> InvalidPost:
    with pytest.raises(InvalidPost) as info:
        parse_post(payload, now=NOW, **kw)
    return info.value


@pytest.mark.parametrize("text", [
    "emoji 🎉🔥 and a family 👩‍👩‍👧 and flags 🇧🇷",
    "مرحبا بالعالم — right to left",
    "שלום עולם",
    "東京で桜が咲いた",
    "한국어 텍스트",
    "mixed: English, العربية, 中文, русский",
])
def test_unicode_text_round_trips_through_avro(text):
    post = parse_post(raw(text=text, hashtags=["#桜", "Köln"]), now=NOW)
    assert post.text == text and post.hashtags == ("桜", "Köln")
    assert decode(encode(post)) == post


def test_iso_and_millis_timestamps_agree():
    iso = parse_post(raw(created_at="2026-11-24T11:59:00.250Z"), now=NOW)
    millis = parse_post(raw(created_at=NOW - 59_750), now=NOW)
    assert iso.created_at == millis.created_at == NOW - 59_750


def test_ingested_at_defaults_to_now_and_is_kept_when_given():
    assert parse_post(raw(), now=NOW).ingested_at == NOW
    assert parse_post(raw(ingested_at=NOW - 5), now=NOW).ingested_at == NOW - 5
    assert parse_post(raw(), now=NOW, ingested_at=7).ingested_at == 7


def test_text_at_the_limit_is_accepted_and_100kb_is_rejected():
    assert len(parse_post(raw(text="a" * MAX_TEXT_CHARS), now=NOW).text) == MAX_TEXT_CHARS
    error = rejected(raw(text="é" * 50_000))  # 100 KB of UTF-8
    assert error.reason is RejectReason.TEXT_TOO_LONG and "50000 characters" in error.detail


def test_invalid_utf8_bytes_are_rejected_with_the_offset():
    payload = json.dumps(raw(text="ok")).encode().replace(b"ok", b"o\xff")
    error = rejected(payload)
    assert error.reason is RejectReason.INVALID_UTF8 and "byte" in error.detail


def test_lone_surrogate_from_json_escape_is_rejected():
    payload = json.dumps(raw(text="x")).replace('"x"', '"\\ud800"')
    assert rejected(payload).reason is RejectReason.INVALID_UTF8


@pytest.mark.parametrize("created_at", ["1970-01-01T00:00:00Z", 0, "2027-11-24T12:00:00Z"])
def test_timestamps_outside_the_sanity_window_are_rejected(created_at):
    error = rejected(raw(created_at=created_at))
    assert error.reason is RejectReason.TIMESTAMP_OUT_OF_RANGE


def test_a_post_from_the_future_is_clamped_to_its_ingestion_and_far_ahead_rejected():
    # A client clock ahead of ours must not carry the stream's event time (the watermark) into the future.
    post = parse_post(raw(created_at=NOW + 9 * 60_000), now=NOW)
    assert (post.created_at, post.ingested_at, post.extra["clamped_ms"]) == (NOW, NOW, 9 * 60_000)
    assert "clamped_ms" not in parse_post(raw(created_at=NOW - 1), now=NOW).extra
    assert rejected(raw(created_at=NOW + 11 * 60_000)).reason is RejectReason.TIMESTAMP_OUT_OF_RANGE


def test_values_that_become_keys_or_keywords_are_cleaned_and_bounded():
    post = parse_post(raw(langs=["EN", "pt_BR", "x" * 3000, "en", "5", "zh-Hant-TW", "e n"],
                          hashtags=["#Rust", "ok\x00tag", "#" + "t" * 65, "  ", "rust", "Rust"],
                          community="mastodon.social\x07"), now=NOW)
    assert post.langs == ("en", "pt-br", "zh-hant-tw")  # BCP 47's shape, lower-cased, once each
    assert post.hashtags == ("Rust", "oktag", "rust")  # controls out, longer than 64 dropped, repeats once
    assert post.community == "mastodon.social"
    many = [f"x{chr(97 + i)}" for i in range(20)]  # 20 distinct, well-formed codes
    assert parse_post(raw(langs=many), now=NOW).langs == tuple(many[:8])
    assert rejected(raw(community="c" * 257)).reason is RejectReason.INVALID_FIELD
    assert "control character" in str(rejected(raw(uid="at://x\x00y")))
    assert "control character" in str(rejected(raw(author_id="did:plc:a\nb")))


def reason_of(call, *args) -> RejectReason:
    with pytest.raises(InvalidPost) as info:
        call(*args)
    return info.value.reason


def test_the_jobs_decode_only_the_avro_record_and_check_its_event_time_and_key():
    post = parse_post(raw(), now=NOW)
    payload = encode(post)
    assert decode_post(payload, post.created_at, post.uid.encode()) == post
    for junk in (b"", None, b"\x01\xff\xfe garbage", payload[:-3], payload + b"\x00"):
        assert reason_of(decode_post, junk, post.created_at) is RejectReason.UNDECODABLE
    assert reason_of(decode_post, payload, post.created_at + 1) is RejectReason.TIMESTAMP_MISMATCH
    assert reason_of(decode_post, payload, post.created_at, b"another uid") is RejectReason.KEY_MISMATCH
    hostile = dataclasses.replace(post, langs=("x" * 3000,), hashtags=("a" * 8000,))
    assert decode_post(encode(hostile), post.created_at).langs == ()  # cleaned like any post
    future = dataclasses.replace(post, created_at=post.ingested_at + 1)
    assert reason_of(decode_post, encode(future)) is RejectReason.TIMESTAMP_OUT_OF_RANGE


@pytest.mark.parametrize(("payload", "reason", "fragment"), [
    (b'{"uid": "x", "source": ', RejectReason.INVALID_JSON, "line 1"),
    (b"[1, 2]", RejectReason.NOT_AN_OBJECT, "list"),
    (raw(uid=...), RejectReason.MISSING_FIELD, "uid is required"),
    (raw(uid=""), RejectReason.MISSING_FIELD, "uid is empty"),
    (raw(author_id=42), RejectReason.INVALID_FIELD, "author_id must be a string"),
    (raw(source="myspace"), RejectReason.INVALID_FIELD, "myspace"),
    (raw(created_at=...), RejectReason.MISSING_FIELD, "created_at is required"),
    (raw(created_at="yesterday"), RejectReason.INVALID_FIELD, "ISO-8601"),
    (raw(created_at="2026-11-24T11:00:00"), RejectReason.INVALID_FIELD, "time zone"),
    (raw(created_at=True), RejectReason.INVALID_FIELD, "boolean"),
    (raw(langs="en"), RejectReason.INVALID_FIELD, "langs must be a list"),
    (raw(hashtags=["ok", 3]), RejectReason.INVALID_FIELD, "hashtags"),
    (raw(text="a\x00b"), RejectReason.INVALID_FIELD, "NUL"),
    (raw(schema_version=3), RejectReason.INVALID_FIELD, "schema_version"),
])
def test_malformed_posts_name_their_reason(payload, reason, fragment):
    error = rejected(payload)
    assert error.reason is reason
    assert fragment in str(error)


def test_empty_text_is_a_valid_post():
    # An image-only Bluesky post has empty text; it still counts for volume.
    assert parse_post(raw(text=""), now=NOW).text == ""


def test_wire_form_equals_fastavro_with_the_schema_file_and_reads_back():
    post = parse_post(raw(reply_parent="at://p", reply_root="at://r", community="", mentions=["did:plc:m"],
                          links=["https://example.org"]), now=NOW)
    expected = io.BytesIO()
    fastavro.schemaless_writer(expected, SCHEMA, post.to_record())
    assert encode(post) == expected.getvalue()
    record = fastavro.schemaless_reader(io.BytesIO(encode(post)), SCHEMA)
    assert record["created_at"] == datetime(2026, 11, 24, 11, 59, 0, 250000, tzinfo=UTC)
    assert decode(encode(post)) == post


def test_schema_fields_match_the_model():
    schema_fields = [f["name"] for f in json.loads(SCHEMA_PATH.read_text())["fields"]]
    model_fields = [f for f in SocialPost.__dataclass_fields__ if f != "extra"]
    assert sorted(schema_fields) == sorted(model_fields)
    assert list(parse_post(raw(), now=NOW).to_record()) == schema_fields
