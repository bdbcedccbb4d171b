"""The stack's Prometheus configuration and the file_sd targets that producers announce."""

from __future__ import annotations

import json

from runtime.metrics import scrape_target
from shared.settings import load_settings
from stack.services import Prometheus


def test_a_producer_is_a_scrape_target_exactly_while_it_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMPULSE_STACK__STATE_DIR", str(tmp_path))
    settings = load_settings(with_credentials=False)
    prometheus = Prometheus(settings)
    with scrape_target(settings, "producer-synthetic", 9464, {"source": "synthetic"}) as path:
        assert path.parent == prometheus.targets_dir
        assert json.loads(path.read_text()) == [{"targets": ["127.0.0.1:9464"], "labels": {"source": "synthetic"}}]
        assert [p.name for p in prometheus.targets_dir.iterdir()] == [path.name]  # no temporary file left
    assert not path.exists()


def test_prometheus_scrapes_flinks_reporter_ports_and_the_announced_producers(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMPULSE_STACK__STATE_DIR", str(tmp_path))
    monkeypatch.setenv("STREAMPULSE_PROMETHEUS__FLINK_METRICS_PORTS", "[29249, 29250]")
    monkeypatch.setenv("STREAMPULSE_PROMETHEUS__SCRAPE_INTERVAL_S", "7")
    config = Prometheus(load_settings(with_credentials=False)).config()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["flink"]["static_configs"] == [{"targets": ["localhost:29249", "localhost:29250"]}]
    assert jobs["producers"]["file_sd_configs"][0]["files"] == [str(tmp_path / "prometheus" / "targets" / "*.json")]
    assert config["global"]["scrape_interval"] == "7s"
