"""docker-compose.yml: valid against the Compose specification's JSON schema, and consistent with the
project (secrets only from .env, STREAMPULSE_* keys that the settings accept, files that exist)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from shared.settings import PROJECT_ROOT, load_settings

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
# The schema as published with compose-go (the library behind `docker compose`), fetched through the Go
# module proxy into Go's module cache: outside git, and no Docker needed.
COMPOSE_GO = "github.com/compose-spec/compose-go/v2@v2.16.2"
REQUIRED_VAR = re.compile(r"\$\{(\w+):\?")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose_schema(tmp_path_factory) -> dict:
    try:
        result = subprocess.run(["go", "mod", "download", "-json", COMPOSE_GO], capture_output=True, text=True,
                                timeout=300, cwd=tmp_path_factory.mktemp("go"), env=os.environ | {"GOFLAGS": ""})
    except FileNotFoundError:
        pytest.fail("`go` is not installed: the Compose schema comes through the Go module proxy "
                    "(.ci/run installs golang-go; or apt-get install golang-go)")
    assert result.returncode == 0, f"go mod download {COMPOSE_GO} failed:\n{result.stdout}{result.stderr}"
    return json.loads((Path(json.loads(result.stdout)["Dir"]) / "schema" / "compose-spec.json").read_text())


def test_compose_file_is_valid_against_the_compose_specification(compose, compose_schema):
    validator = jsonschema.validators.validator_for(compose_schema)(compose_schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
    # The validator must actually bite: a wrong type for a known key is refused.
    broken = compose | {"services": compose["services"] | {"redis": {"image": "redis", "ports": "6379"}}}
    assert list(validator.iter_errors(broken))


def test_every_secret_is_required_from_env_and_listed_without_a_value_in_env_example(compose):
    text = COMPOSE_FILE.read_text()
    required = set(REQUIRED_VAR.findall(text))
    assert {"POSTGRES_ADMIN_PASSWORD", "REDIS_PASSWORD", "MINIO_SECRET_KEY", "SUPERSET_SECRET_KEY"} <= required
    example = dict(line.split("=", 1) for line in (PROJECT_ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert required <= set(example), f"missing from .env.example: {required - set(example)}"
    assert all(example[name] == "" for name in required), "no secret value belongs in .env.example"
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()
    # No literal password anywhere: every *PASSWORD / *SECRET* / *ACCESS_KEY value is a ${...:?...} reference.
    for name, value in re.findall(r"^\s*(\w*(?:PASSWORD|SECRET\w*|ACCESS_KEY)):\s*(.+)$", text, re.MULTILINE):
        assert REQUIRED_VAR.match(value.strip()), f"{name} is not taken from .env: {value}"


def test_streampulse_variables_are_settings_the_project_accepts(compose, monkeypatch, tmp_path):
    env = compose["x-streampulse-env"]
    for key in [k for k in os.environ if k.startswith("STREAMPULSE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("STREAMPULSE_"):
            monkeypatch.setenv(key, "s3cret-test-value" if REQUIRED_VAR.match(str(value)) else str(value))
    monkeypatch.setenv("STREAMPULSE_STACK__STATE_DIR", str(tmp_path))
    settings = load_settings(with_credentials=False)
    assert settings.kafka.bootstrap == "kafka:9092"
    assert settings.postgres.dsn("writer").startswith("host=postgres port=5432")
    assert settings.flink.checkpoint_dir.startswith(f"s3://{settings.minio.bucket}/")


def test_services_reference_files_images_and_each_other_consistently(compose):
    services = compose["services"]
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
        build = service.get("build")
        if build:
            assert (PROJECT_ROOT / build["context"] / build["dockerfile"]).is_file(), name
    assert os.access(PROJECT_ROOT / "docker" / "flink-cluster.sh", os.X_OK)
    # Prometheus scrapes services that exist, on the ports flink-conf and the producer use.
    prometheus = yaml.safe_load((PROJECT_ROOT / "docker" / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for c in job.get("static_configs", []) for t in c["targets"]]
    targets += [n for job in prometheus["scrape_configs"] for c in job.get("dns_sd_configs", []) for n in c["names"]]
    assert {t.split(":")[0] for t in targets} <= set(services)
    flink_conf = yaml.safe_load((PROJECT_ROOT / "flink-conf" / "config.yaml").read_text())
    assert flink_conf["metrics"]["reporter"]["prom"]["port"] == "9249-9250"
    assert "9400" in services["producer-synthetic"]["command"]
    # The topics the provisioning creates are the ones the jobs read and write.
    assert {"social.posts", "social.posts.dlq", "trends.alerts"} <= set(load_settings(with_credentials=False)
                                                                        .kafka.topics)


def test_grafana_dashboard_queries_prometheus_for_metrics_the_project_exports():
    from connectors.producer import ProducerMetrics

    dashboard = json.loads((PROJECT_ROOT / "docker" / "grafana" / "dashboards" / "streampulse.json").read_text())
    datasource = yaml.safe_load((PROJECT_ROOT / "docker" / "grafana" / "datasources.yml").read_text())
    uids = {d["uid"] for d in datasource["datasources"]}
    metrics = list(ProducerMetrics().registry.collect())
    producer_series = {metric.name + suffix for metric in metrics for suffix in ("", "_total", "_bucket", "_sum",
                                                                                  "_count")}
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert len(set(titles)) == len(titles) and len({p["id"] for p in dashboard["panels"]}) == len(titles)
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\b(?:streampulse|flink)_\w+", target["expr"]))
            assert names, f"{panel['title']}: {target['expr']} reads no StreamPulse or Flink metric"
            unknown = {n for n in names if n.startswith("streampulse_") and n not in producer_series}
            assert not unknown, f"{panel['title']}: the producers export no {unknown}"
    # What the issue asks the dashboard to show.
    wanted = ("produced", "read by the Flink jobs", "lag", "Checkpoint duration", "Checkpoint size", "Trends emitted")
    for word in wanted:
        assert any(word in title for title in titles), f"no panel about {word!r}: {titles}"


def test_jobs_run_at_parallelism_two_on_two_taskmanagers_each_scraped(compose):
    services = compose["services"]
    assert services["taskmanager"]["deploy"]["replicas"] == 2
    env = services["submit-trending"]["environment"]
    assert env["STREAMPULSE_FLINK__PARALLELISM"] == "2"
    assert yaml.safe_load((PROJECT_ROOT / "flink-conf" / "config.yaml").read_text())["taskmanager"][
        "load-balance"]["mode"] == "slots"  # one subtask per TaskManager, not both in the first one's slots
    scrape = yaml.safe_load((PROJECT_ROOT / "docker" / "prometheus.yml").read_text())["scrape_configs"]
    assert {"names": ["taskmanager"], "type": "A", "port": 9249} in [
        sd for job in scrape for sd in job.get("dns_sd_configs", [])]


def test_the_schema_registry_runs_the_manifests_server_and_provisioning_waits_for_it(compose):
    from shared.jar_manifest import load_manifest

    services = compose["services"]
    registry = services["registry"]
    env = registry["environment"]
    # SQL storage in an H2 file on the registry's own volume (the local stack uses its PostgreSQL).
    assert env["APICURIO_STORAGE_KIND"] == "sql" and env["APICURIO_STORAGE_SQL_KIND"] == "h2"
    data = next(v for v in registry["volumes"] if v.startswith("registry-data:")).split(":")[1]
    assert env["APICURIO_DATASOURCE_URL"].startswith(f"jdbc:h2:file:{data}/")
    assert services["provision"]["depends_on"]["registry"]["condition"] == "service_healthy"
    assert registry["ports"] == [f"127.0.0.1:8085:{env['QUARKUS_HTTP_PORT']}"]
    assert f"localhost:{env['QUARKUS_MANAGEMENT_PORT']}/health/ready" in " ".join(registry["healthcheck"]["test"])
    # The image unpacks the very artifact the local stack runs (config/jars.yaml), on Java 21.
    dockerfile = (PROJECT_ROOT / registry["build"]["dockerfile"]).read_text()
    (artifact,) = load_manifest()["apicurio-registry"].artifacts
    assert f"ARG APICURIO_ARTIFACT={artifact}\n" in dockerfile and "temurin-21" in dockerfile
    assert f"chown registry {data}" in dockerfile
    # The StreamPulse processes reach it by its service name and container port.
    shared_env = compose["x-streampulse-env"]
    assert (shared_env["STREAMPULSE_REGISTRY__HOST"], shared_env["STREAMPULSE_REGISTRY__PORT"]) == (
        "registry", env["QUARKUS_HTTP_PORT"])
