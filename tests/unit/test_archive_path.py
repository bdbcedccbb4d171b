"""Where the archive job writes by default: MinIO when the stack's keys are known, else a local folder."""

from __future__ import annotations

from runtime.lake import default_path
from shared.settings import load_settings


def test_the_lake_is_on_minio_with_keys_and_in_the_state_folder_without(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMPULSE_STACK__STATE_DIR", str(tmp_path))
    monkeypatch.delenv("STREAMPULSE_MINIO__ACCESS_KEY", raising=False)
    monkeypatch.delenv("STREAMPULSE_MINIO__SECRET_KEY", raising=False)
    assert default_path(load_settings(with_credentials=False)) == (tmp_path / "lake" / "posts").as_uri()
    monkeypatch.setenv("STREAMPULSE_MINIO__ACCESS_KEY", "sp-key")
    monkeypatch.setenv("STREAMPULSE_MINIO__SECRET_KEY", "sp-secret")
    monkeypatch.setenv("STREAMPULSE_MINIO__BUCKET", "my-lake")
    assert default_path(load_settings(with_credentials=False)) == "s3://my-lake/posts"
