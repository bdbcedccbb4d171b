"""Settings: YAML plus environment overrides; a wrong value names the key, the expected form and the env var."""

from __future__ import annotations

import os

import pytest

from shared.settings import ConfigError, load_settings


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("STREAMPULSE_")]:
        monkeypatch.delenv(key)
    path = tmp_path / "streampulse.yaml"
    path.write_text("stack:\n  state_dir: %s\nkafka:\n  port: 19092\n" % (tmp_path / "state"))
    return path


def test_yaml_values_and_environment_overrides(config_file, monkeypatch):
    assert load_settings(config_file).kafka.port == 19092
    monkeypatch.setenv("STREAMPULSE_KAFKA__PORT", "29092")
    monkeypatch.setenv("STREAMPULSE_FLINK__PARALLELISM", "2")
    settings = load_settings(config_file)
    assert settings.kafka.port == 29092 and settings.kafka.bootstrap == "127.0.0.1:29092"
    assert settings.flink.parallelism == 2


def test_a_bad_port_names_key_expected_form_and_env_var(config_file, monkeypatch):
    monkeypatch.setenv("STREAMPULSE_KAFKA__PORT", "99999")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file)
    message = str(info.value)
    assert "kafka.port: expected a TCP port number from 1 to 65535, got '99999'" in message
    assert "STREAMPULSE_KAFKA__PORT" in message


def test_unknown_keys_and_bad_forms_in_yaml_are_refused(config_file):
    config_file.write_text("kafka:\n  prot: 1\nkafka_typo: {}\nminio:\n  bucket: Not_A_Bucket\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file)
    message = str(info.value)
    assert "kafka.prot" in message and "kafka_typo" in message
    assert "minio.bucket: expected an S3 bucket name" in message


def test_invalid_yaml_and_missing_secret_are_explained(config_file, tmp_path):
    config_file.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(config_file)
    config_file.write_text(f"stack:\n  state_dir: {tmp_path / 'empty'}\n")
    settings = load_settings(config_file)
    with pytest.raises(ConfigError, match=r"postgres\.writer_password is not set: run `streampulse stack up`"):
        settings.postgres.dsn("writer")


def test_trending_constants_are_checked_like_the_rest(config_file, monkeypatch):
    monkeypatch.setenv("STREAMPULSE_TRENDING__ALPHA", "1.5")
    expected = r"trending\.alpha: expected the EWMA weight of a new window, between 0 and 1"
    with pytest.raises(ConfigError, match=expected):
        load_settings(config_file)


def test_checkpoint_dir_takes_a_uri_and_defaults_to_the_state_folder(config_file, monkeypatch):
    from runtime.flink import job_config

    settings = load_settings(config_file, with_credentials=False)
    assert job_config(settings, "t")["execution.checkpointing.dir"].endswith("/state/flink/checkpoints")
    monkeypatch.setenv("STREAMPULSE_FLINK__CHECKPOINT_DIR", "s3://streampulse-lake/checkpoints")
    settings = load_settings(config_file, with_credentials=False)
    assert job_config(settings, "t")["execution.checkpointing.dir"] == "s3://streampulse-lake/checkpoints"
    monkeypatch.setenv("STREAMPULSE_FLINK__CHECKPOINT_DIR", "/tmp/checkpoints")
    with pytest.raises(ConfigError, match=r"flink\.checkpoint_dir: expected a URI such as s3://bucket/path"):
        load_settings(config_file)


def test_jobs_rescale_under_fixed_key_groups_with_uids_and_aligned_partitions(config_file, monkeypatch):
    """What a savepoint needs to restore at another parallelism, and the posts' watermark alignment."""
    from runtime.flink import job_config, posts_source_values

    monkeypatch.setenv("STREAMPULSE_KAFKA__JOBS_PASSWORD", "unit-test-only")

    settings = load_settings(config_file, with_credentials=False)
    config = job_config(settings, "t")
    assert config["pipeline.max-parallelism"] == "128"
    assert config["table.exec.uid.generation"] == "ALWAYS"  # SQL operators' ids do not depend on chaining
    source = posts_source_values(settings, topic="social.posts", group_id="g", bounded=False, watermark_s=30)
    assert "'scan.watermark.alignment.group' = 'social.posts'" in source["kafka_source"]
    assert "'scan.watermark.alignment.max-drift' = '120 s'" in source["kafka_source"]
    bounded = posts_source_values(settings, topic="social.posts", group_id="g", bounded=True, watermark_s=30)
    assert "alignment" not in bounded["kafka_source"]  # FLINK-39728: a finished split fails the alignment check
    monkeypatch.setenv("STREAMPULSE_FLINK__WATERMARK_ALIGNMENT_DRIFT_S", "0")
    source = posts_source_values(load_settings(config_file, with_credentials=False), topic="social.posts",
                                 group_id="g", bounded=False, watermark_s=30)
    assert "alignment" not in source["kafka_source"]
    monkeypatch.setenv("STREAMPULSE_FLINK__MAX_PARALLELISM", "0")
    with pytest.raises(ConfigError, match=r"flink\.max_parallelism: expected a whole number from 1 to 32768"):
        load_settings(config_file, with_credentials=False)
