"""social.deletes records as the deletions job reads them (shared/post.py decode_deletion)."""

from __future__ import annotations

import json

import pytest

from shared.post import DeletionNotice, InvalidPost, decode_deletion
from shared.settings import ConfigError, load_settings


def test_a_producers_notice_reads_back_whole():
    payload = json.dumps({"source": "mastodon", "deleted_at": 1_793_534_400_123, "uid": "https://m.example/api/v1/"
                          "statuses/42", "local_id": "42", "community": "m.example"}).encode()
    assert decode_deletion(payload, b"https://m.example/api/v1/statuses/42") == DeletionNotice(
        uid="https://m.example/api/v1/statuses/42", source="mastodon", deleted_at=1_793_534_400_123, local_id="42")
    assert decode_deletion(b'{"uid": "t3_x", "source": "reddit", "deleted_at": "2026-11-01T12:00:00Z", '
                           b'"reason": "removed"}').reason == "removed"


@pytest.mark.parametrize(("payload", "key", "reason"), [
    (b"{not json", None, "invalid_json"),
    (b"\xff\xfe", None, "invalid_utf8"),
    (b"[1, 2]", None, "not_an_object"),
    (b'{"source": "bluesky", "deleted_at": 1}', None, "missing_field"),
    (b'{"uid": 7, "source": "bluesky", "deleted_at": 1}', None, "invalid_field"),
    (b'{"uid": "at://a/b/c", "source": "bluesky", "deleted_at": "yesterday"}', None, "invalid_field"),
    (b'{"uid": "at://a/b/c", "source": "bluesky", "deleted_at": 1}', b"at://other", "key_mismatch"),
    (b"", None, "invalid_json"),
])
def test_a_record_that_is_not_a_notice_says_why(payload, key, reason):
    with pytest.raises(InvalidPost) as caught:
        decode_deletion(payload, key)
    assert caught.value.reason.value == reason


def test_compaction_must_fit_twice_in_the_bound(monkeypatch):
    monkeypatch.setenv("STREAMPULSE_DELETIONS__COMPACT_EVERY_S", "50000")
    with pytest.raises(ConfigError, match=r"deletions.compact_every_s \(50000\) must be at most half"):
        load_settings(with_credentials=False)
