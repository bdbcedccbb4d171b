"""Prometheus: Debian's server scraping Flink's reporters and the producers."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from runtime.metrics import scrape_targets_dir
from stack.processes import ManagedProcess
from stack.services.base import StackError, SupervisedService


class Prometheus(SupervisedService):
    """Debian's prometheus server scraping Flink's reporters (static ports) and the producers, which
    announce their /metrics address as file_sd target files (`scrape_target`) while they run."""

    name = "prometheus"

    @property
    def address(self) -> str:
        return f"{self.settings.prometheus.host}:{self.settings.prometheus.port}"

    @property
    def targets_dir(self) -> Path:
        return scrape_targets_dir(self.settings)

    def missing_packages(self) -> list[str]:
        return [] if shutil.which("prometheus") else ["prometheus"]

    def config(self) -> dict:
        prom = self.settings.prometheus
        every = f"{prom.scrape_interval_s}s"
        return {
            "global": {"scrape_interval": every, "evaluation_interval": every},
            "scrape_configs": [
                {"job_name": "flink",
                 "static_configs": [{"targets": [f"localhost:{port}" for port in prom.flink_metrics_ports]}]},
                {"job_name": "producers",
                 "file_sd_configs": [{"files": [str(self.targets_dir / "*.json")], "refresh_interval": every}]},
            ],
        }

    def launch(self, proc: ManagedProcess) -> None:
        prom = self.settings.prometheus
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        config = self.home / "prometheus.yml"
        config.write_text("# Written by `streampulse stack up` from config/streampulse.yaml (prometheus.*).\n"
                          + yaml.safe_dump(self.config(), sort_keys=False))
        proc.start([shutil.which("prometheus"), f"--config.file={config}",
                    f"--storage.tsdb.path={self.home / 'data'}", f"--storage.tsdb.retention.time={prom.retention}",
                    f"--web.listen-address={prom.host}:{prom.port}", "--web.enable-lifecycle"])

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.settings.prometheus.url}/-/ready", timeout=3) as response:
            return response.status == 200

    def query_range(self, expr: str, start_s: float, end_s: float, step_s: float = 15) -> list[dict]:
        """A range query through the HTTP API: one item per series, each with metric and values."""
        return self._api("query_range", {"query": expr, "start": start_s, "end": end_s, "step": step_s})

    def _api(self, endpoint: str, params: dict) -> list[dict]:
        url = f"{self.settings.prometheus.url}/api/v1/{endpoint}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:  # a bad query: Prometheus says why in the body
            raise StackError(f"Prometheus {endpoint} {params}: HTTP {exc.code} {exc.read().decode()[:500]}") from None
        except OSError as exc:
            raise StackError(f"Prometheus at {self.address} is not reachable ({exc}); "
                             "start it with `streampulse stack up`") from None
        if body.get("status") != "success":
            raise StackError(f"Prometheus {endpoint} {params} failed: {body}")
        return body["data"]["result"]
