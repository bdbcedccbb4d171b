"""The SocialPost shape is written once, in shared/social_post.avsc: the Python model, the Flink DDL columns, the
archive's row type and every source's mapping follow it."""

from __future__ import annotations

import dataclasses
import re

from connectors import mastodon, reddit
from shared.post import FIELDS, SocialPost, flink_columns
from tests.fakes.mastodon import status
from tests.fakes.reddit import real_comment, real_submission


def test_the_model_and_the_flink_columns_are_the_avro_schemas_fields_in_its_order():
    post = SocialPost(uid="u", source="bluesky", author_id="a", text="t", created_at=1, ingested_at=2)
    assert list(post.to_record()) == list(FIELDS)
    assert {f.name for f in dataclasses.fields(SocialPost)} - {"extra"} == set(FIELDS)
    assert re.findall(r"`(\w+)`", flink_columns()) == list(FIELDS)
    assert re.findall(r"`(\w+)`", flink_columns(exclude=("source",))) == [f for f in FIELDS if f != "source"]


def test_the_archive_row_is_the_avro_schemas_fields_with_timestamps_in_millis():
    from jobs.archive import POST_ROW, post_row

    names = POST_ROW.get_field_names()
    assert [n.removesuffix("_ms") for n in names] == list(FIELDS)
    assert {n for n in names if n.endswith("_ms")} == {"created_at_ms", "ingested_at_ms"}
    post = SocialPost(uid="u", source="reddit", author_id="a", text="t", created_at=1, ingested_at=2, langs=("en",))
    assert list(post_row(post)) == ["u", "reddit", "a", "t", ["en"], 1, 2, [], [], [], None, None, "", 1]


def test_every_source_maps_to_the_schemas_fields_the_producer_does_not_fill():
    filled_by_the_producer = {"ingested_at", "schema_version"}
    mapped = [reddit.to_post(real_submission("s1", "python", 1.7e9)),
              reddit.to_post(real_comment("c1", "python", 1.7e9, link="t3_s1")),
              mastodon.to_post(status(1), "mastodon.example")]
    for mapping in mapped:
        assert set(mapping) == set(FIELDS) - filled_by_the_producer, sorted(set(mapping) ^ set(FIELDS))
