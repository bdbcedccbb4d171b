"""The Confluent wire format of social.posts, framing detection against the legacy form, schema resolution
between SocialPost versions 1 and 2 (both directions), and the registry client's errors. Pure functions: the
writer schemas come from a dict here; tests/integration/test_schema_registry.py uses the real registry."""

from __future__ import annotations

import dataclasses
import io
import json
import socket

import fastavro
import pytest

from runtime import schema_registry as registry_client
from shared import confluent_wire as wire
from shared import post as post_module
from shared.post import (
    FIELDS,
    InvalidPost,
    RejectReason,
    decode_post,
    encode,
    encode_framed,
    parse_post,
    read_record,
    schema_json,
    use_registry,
)
from tests.unit.test_post import NOW, raw

V1_ID, V2_ID = 7, 300_000  # an id above 2^16 checks all four header bytes


@pytest.fixture(autouse=True)
def fixed_registry():
    """decode_post's writer schemas from a fixed set (the registry's answer for unknown ids is None)."""
    asked = []

    def fetch(schema_id):
        asked.append(schema_id)
        return {V1_ID: schema_json(1), V2_ID: schema_json(2)}.get(schema_id)

    use_registry(fetch)
    yield asked
    use_registry()  # back to none


def a_post(**overrides):
    return parse_post(raw(**overrides), now=NOW)


def test_framing_is_magic_byte_zero_then_the_big_endian_id_then_the_avro_body():
    post = a_post()
    framed = encode_framed(post, V2_ID, 2)
    assert framed[0] == 0 and framed[1:5] == V2_ID.to_bytes(4, "big") == b"\x00\x04\x93\xe0"
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema_json(2)),
                               {**post.to_record(), "schema_version": 2, "lang_detected": None,
                                "created_at": post.created_at, "ingested_at": post.ingested_at})
    assert framed[5:] == body.getvalue()
    assert wire.is_framed(framed) and wire.schema_id_of(framed) == V2_ID
    assert wire.frame(1, b"abc") == b"\x00\x00\x00\x00\x01abc"


@pytest.mark.parametrize("version", [1, 2])
def test_a_framed_record_of_either_version_round_trips_into_the_v1_model(version, fixed_registry):
    post = a_post(hashtags=["Rust"], reply_parent="at://p")
    payload = encode_framed(post, {1: V1_ID, 2: V2_ID}[version], version)
    decoded = decode_post(payload, post.created_at, post.uid.encode())
    assert decoded == dataclasses.replace(post, schema_version=version)
    decode_post(payload)
    assert fixed_registry == [{1: V1_ID, 2: V2_ID}[version]], "each id is asked of the registry once per process"


def test_legacy_records_still_decode_and_the_first_byte_tells_the_forms_apart():
    post = a_post()
    legacy = encode(post)
    assert legacy[0] != 0 and not wire.is_framed(legacy)
    assert decode_post(legacy, post.created_at, post.uid.encode()) == post


@pytest.mark.parametrize("length", [1, 63, 64, 127, 128, 300, 512])
def test_a_legacy_record_never_starts_with_zero_its_uids_length_varint_is_never_zero(length):
    # The first field of SocialPost is the uid (a string): its first byte is the zig-zag varint of its length,
    # 2 × length for lengths below 64 and a byte with the continuation bit (0x80) set above: never 0.
    assert next(iter(FIELDS)) == "uid" and FIELDS["uid"] == "string"
    assert encode(a_post(uid="u" * length))[0] != 0
    # Only an empty uid would start with 0, and no valid post has one.
    empty = io.BytesIO()
    fastavro.schemaless_writer(empty, post_module._WIRE_SCHEMA, {**a_post().to_record(), "uid": ""})
    assert empty.getvalue()[0] == 0
    with pytest.raises(InvalidPost):
        parse_post(raw(uid=""), now=NOW)


def test_v2_resolves_to_v1_by_skipping_the_new_field_and_v1_to_v2_by_its_default():
    post = a_post()
    post.extra["lang_detected"] = True
    v2 = encode_framed(post, V2_ID, 2)
    v1 = encode_framed(post, V1_ID, 1)
    as_v1 = read_record(v2)
    assert list(as_v1) == list(FIELDS) and as_v1["schema_version"] == 2
    as_v2 = read_record(v1, post_module._Reader(wire.WriterSchemas(lambda i: schema_json(1)), reader_version=2))
    assert as_v2["lang_detected"] is None and as_v2["schema_version"] == 1
    own = read_record(v2, post_module._Reader(wire.WriterSchemas(lambda i: schema_json(2)), reader_version=2))
    assert own["lang_detected"] is True


def test_an_unknown_id_or_a_broken_frame_is_an_invalid_post_with_its_reason():
    post = a_post()
    with pytest.raises(InvalidPost) as info:
        decode_post(encode_framed(post, 999, 1))
    assert info.value.reason is RejectReason.UNKNOWN_SCHEMA and "schema id 999" in info.value.detail
    for broken, fragment in [(b"\x00\x00\x00", "too short"), (encode_framed(post, V1_ID, 1)[:-2], "schema id 7"),
                             (encode_framed(post, V2_ID, 2) + b"\x01", "bytes after the record"),
                             (b"\x00\x00\x00\x00\x07" + b"\xff" * 20, "schema id 7")]:
        with pytest.raises(InvalidPost) as info:
            decode_post(broken)
        assert info.value.reason is RejectReason.UNDECODABLE and fragment in info.value.detail, info.value.detail


def test_schema_version_1_and_2_are_valid_others_are_not():
    assert a_post(schema_version=2).schema_version == 2
    for version in (0, 3, "2", True):
        with pytest.raises(InvalidPost, match="schema_version"):
            a_post(schema_version=version)


def test_version_2_only_adds_optional_fields_at_the_end():
    v1, v2 = schema_json(1), schema_json(2)
    assert v2["fields"][: len(v1["fields"])] == [f | {"doc": g["doc"]} for f, g in
                                                 zip(v1["fields"], v2["fields"], strict=False)]
    added = v2["fields"][len(v1["fields"]):]
    assert added and all(f["type"][0] == "null" and f["default"] is None for f in added)
    assert (v1["name"], v1["namespace"]) == (v2["name"], v2["namespace"])


def test_the_v2_writer_fills_lang_detected_from_the_post():
    post = a_post()
    assert post_module.writer_record(post, 2)["lang_detected"] is None
    post.extra["lang_detected"] = False
    assert post_module.writer_record(post, 2)["lang_detected"] is False
    assert "lang_detected" not in post_module.writer_record(post, 1)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_registry_that_is_down_is_named_with_its_url_and_the_fix():
    url = f"http://127.0.0.1:{unused_port()}"
    with registry_client.SchemaRegistry(url, timeout_s=2) as client, \
            pytest.raises(registry_client.RegistryUnavailable) as info:
        client.register("s-value", schema_json(1))
    assert url in str(info.value) and "streampulse stack up" in str(info.value)


def test_a_refusal_carries_the_registrys_message_and_the_subject():
    refused = registry_client.SchemaRefused("social.posts-value", 409,
                                            "Incompatible artifact: social.posts-value [AVRO]", "http://r")
    assert "social.posts-value" in str(refused) and "Incompatible artifact" in str(refused)
    assert refused.reason.startswith("Incompatible")


def test_writer_schemas_ask_once_per_id_and_remember_unknown_ids():
    asked = []
    schemas = wire.WriterSchemas(lambda i: asked.append(i) or (None if i == 2 else {"id": i}))
    assert [schemas.get(1), schemas.get(1), schemas.get(2), schemas.get(2)] == [{"id": 1}, {"id": 1}, None, None]
    assert asked == [1, 2]


def test_the_schema_files_are_valid_avro_and_json():
    for version in post_module.SCHEMA_VERSIONS:
        fastavro.parse_schema(schema_json(version))
        json.dumps(schema_json(version))


def test_the_registry_runs_on_the_newest_java_21_or_later_and_says_what_to_install_without_one(tmp_path):
    from stack.services import StackError
    from stack.services.registry import find_java

    def jdk(name: str, version: str):
        (tmp_path / name / "bin").mkdir(parents=True)
        (tmp_path / name / "bin" / "java").touch()
        (tmp_path / name / "release").write_text(f'JAVA_VERSION="{version}"\n')

    jdk("java-17-openjdk-amd64", "17.0.13")
    with pytest.raises(StackError, match=r"needs Java 21 or newer.*Java 17.*openjdk-21-jre-headless"):
        find_java(root=tmp_path)
    jdk("temurin-21-jdk-amd64", "21.0.5")
    jdk("temurin-25-jdk-amd64", "25.0.1")
    assert find_java(root=tmp_path) == tmp_path / "temurin-25-jdk-amd64" / "bin" / "java"
    assert find_java(str(tmp_path / "temurin-21-jdk-amd64")) == tmp_path / "temurin-21-jdk-amd64" / "bin" / "java"
    with pytest.raises(StackError, match=r"registry\.java_home"):
        find_java(str(tmp_path / "java-17-openjdk-amd64"))
