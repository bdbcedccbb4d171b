"""The Superset bundle's references hold together, the zip points at the configured PostgreSQL without a
password, and production mode refuses default or weak secrets."""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest
import yaml

from shared.settings import ENV_PREFIX, ConfigError, Settings
from stack.superset import BUNDLE, Superset, check_secrets

VIEWS = {"trending_now", "keyword_over_time", "volume_and_anomalies", "late_and_rejected", "trend_sentiment",
         "hot_conversations"}


@pytest.fixture(autouse=True)
def no_environment_overrides(monkeypatch):
    """The environment outranks constructor values in Settings: keep CI's ports and generated secrets out."""
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)


def load(folder: str) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((BUNDLE / folder).rglob("*.yaml"))]


def test_every_reference_in_the_bundle_resolves():
    (database,) = load("databases")
    datasets = {d["uuid"]: d for d in load("datasets")}
    charts = {c["uuid"]: c for c in load("charts")}
    assert {d["table_name"] for d in datasets.values()} == VIEWS
    assert all(d["database_uuid"] == database["uuid"] for d in datasets.values())
    for chart in charts.values():
        dataset = datasets[chart["dataset_uuid"]]
        columns = {c["column_name"] for c in dataset["columns"]}
        metrics = {m["metric_name"] for m in dataset["metrics"]}
        params = chart["params"]
        used = set(params.get("all_columns", [])) | set(params.get("groupby", [])) | {params.get("x_axis")} - {None}
        assert used <= columns, (chart["slice_name"], used - columns)
        wanted = set(params.get("metrics", [])) | {params.get("metric"), params.get("timeseries_limit_metric")}
        assert wanted - {None} <= metrics, (chart["slice_name"], wanted - metrics)
        assert json.loads(chart["query_context"])["queries"], chart["slice_name"]
    placed = []
    for dashboard in load("dashboards"):
        items = dashboard["position"].values()
        placed += [item["meta"]["uuid"] for item in items if isinstance(item, dict) and item["type"] == "CHART"]
    assert sorted(placed) == sorted(charts)  # every chart on exactly one dashboard


def test_the_zip_points_at_this_stacks_postgres_as_the_reader_without_a_password():
    settings = Settings(postgres={"host": "db.example", "port": 6543, "database": "sp", "reader_user": "ro"})
    with zipfile.ZipFile(io.BytesIO(Superset(settings).bundle())) as archive:
        names = archive.namelist()
        database = yaml.safe_load(archive.read("streampulse/databases/StreamPulse.yaml"))
    assert "streampulse/metadata.yaml" in names and len(names) == len(list(BUNDLE.rglob("*.yaml")))
    assert database["sqlalchemy_uri"] == "postgresql://ro:XXXXXXXXXX@db.example:6543/sp"


@pytest.mark.parametrize(("secret_key", "password", "problem"), [
    (None, "a-long-admin-password", "superset.secret_key is unset"),
    ("CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET", "a-long-admin-password", "superset.secret_key is a well-known default"),
    ("x" * 40, "admin", "superset.admin_password is a well-known default"),
    ("short-key", "a-long-admin-password", "superset.secret_key is shorter than 32 characters"),
])
def test_production_refuses_defaults_and_weak_secrets(secret_key, password, problem):
    settings = Settings(superset={"production": True, "secret_key": secret_key, "admin_password": password})
    with pytest.raises(ConfigError, match=problem):
        check_secrets(settings)


def test_production_accepts_strong_secrets_and_local_use_checks_nothing():
    check_secrets(Settings(superset={"production": True, "secret_key": "k" * 42, "admin_password": "p" * 16}))
    check_secrets(Settings(superset={"production": False}))
