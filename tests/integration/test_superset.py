"""Superset end to end: bounded runs of the trending, volume and conversations jobs fill PostgreSQL;
`streampulse superset up` installs Superset into its own venv when needed and imports the bundle into a fresh
metadata database;
every chart's data comes back through Superset's API with rows; and the Trends and Volume & Health
dashboards, opened in headless Chromium (Debian's), render every chart and none in an error state. The
screenshots are saved under test-artifacts/."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runtime import clients
from shared.settings import PROJECT_ROOT, load_settings
from stack.processes import owned
from stack.services import apt_install
from stack.superset import BUNDLE, Superset
from tests.integration.conftest import cli
from tests.integration.sinks import produce
from tests.integration.test_least_privilege import on_loopback, secrets_of, sockets_of
from tests.integration.test_trending_job import SAMPLE

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
# As root on a machine without outbound access: no sandbox, and none of Chromium's background calls home.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def filled_postgres(settings, kafka_topic, dlq_topic):
    """The sample, a late copy of its first post and two malformed posts through bounded runs of the
    trending, volume and conversations jobs (posts on the single-partition dlq_topic, dead letters on
    kafka_topic)."""
    from kafka.admin import NewTopic

    from connectors import synthetic
    from connectors.producer import PostProducer

    posts = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    # Half an hour more after the sample, with one community at 6× for four minutes: the sample alone has no
    # volume anomaly, and the test must not depend on rows other tests left behind.
    after = synthetic.SyntheticConfig(seed=11, start_ms=max(p["created_at"] for p in posts) // 60_000 * 60_000 + 60_000,
                                      duration_s=1800, rate=1.2,
                                      volume_events=[synthetic.VolumeEvent("community:synthetic-a", 900, 240, 6)])
    posts += [event.payload for event in synthetic.generate(after)]
    produce(settings, dlq_topic, kafka_topic, posts)  # one partition: the late copy comes after the watermark
    produce(settings, dlq_topic, kafka_topic, [posts[0] | {"uid": posts[0]["uid"] + "-late-copy"}])
    rejects = PostProducer(settings, "replay", topic=dlq_topic, dlq_topic=kafka_topic)
    for raw in (b"{not json", b'{"uid": "x"}'):
        rejects.submit(raw)
    rejects.close()
    assert rejects.summary.rejected_total == 2
    outputs = f"{dlq_topic}.outputs"  # trend alerts and volume anomalies
    admin = clients.kafka_admin(settings)
    admin.create_topics([NewTopic(outputs, 1, 1)])
    try:
        runs = [subprocess.Popen([sys.executable, "-m", "stack.cli", "run", job, "--", "--bounded", "--topic",
                                  dlq_topic, *extra, "--group-id", f"test-{job}-{dlq_topic}"],
                                 cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for job, extra in (("trending", ["--alerts-topic", outputs]),
                                   ("volume", ["--anomalies-topic", outputs, "--dlq-topic", kafka_topic]),
                                   ("conversations", []))]
        for run in runs:
            _, stderr = run.communicate(timeout=900)
            assert run.returncode == 0, stderr[-3000:]
    finally:
        admin.delete_topics([outputs])
        admin.close()


@pytest.fixture
def superset(settings, tmp_path, monkeypatch, filled_postgres):
    """`streampulse superset up` on a free port with a fresh metadata database; down afterwards."""
    monkeypatch.setenv("STREAMPULSE_SUPERSET__PORT", str(free_port()))
    monkeypatch.setenv("STREAMPULSE_SUPERSET__HOME", str(tmp_path / "superset"))
    try:
        cli("superset", "up")
        yield Superset(load_settings())
    finally:
        # `down` stops the Superset `up` started even when the settings no longer name its port.
        monkeypatch.delenv("STREAMPULSE_SUPERSET__PORT")
        cli("superset", "down")
    assert owned(settings.stack.state_path / "run", "superset-") == {}


def test_the_dashboards_import_into_a_fresh_superset_and_render_every_chart(superset):
    # Superset's processes listen on loopback and hold its own secret key, not PostgreSQL's or MinIO's secrets;
    # its database is not open to SQL Lab.
    processes = owned(superset.settings.stack.state_path / "run", "superset-")
    held = sockets_of(processes)
    assert held and all(on_loopback(address) for address in held), held
    secrets = secrets_of(superset.settings)
    for pid in processes:
        environment = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        assert {key for key, value in secrets.items() if value in environment} <= {
            "STREAMPULSE_SUPERSET__SECRET_KEY"}, pid
    session = superset.session()
    databases = session.get(f"{superset.url}/api/v1/database/", timeout=60,
                            params={"q": "(columns:!(database_name,expose_in_sqllab))"}).json()["result"]
    assert databases == [{"database_name": "StreamPulse", "expose_in_sqllab": False}]
    charts = {c["slice_name"]: c for c in session.get(
        f"{superset.url}/api/v1/chart/", params={"q": "(columns:!(id,slice_name),page_size:100)"}, timeout=60
    ).json()["result"]}
    assert set(charts) == {yaml.safe_load(p.read_text())["slice_name"] for p in (BUNDLE / "charts").glob("*.yaml")}

    # Each chart's saved query, run by Superset against PostgreSQL as the read-only role, returns rows.
    for name, chart in charts.items():
        response = session.get(f"{superset.url}/api/v1/chart/{chart['id']}/data/", timeout=120)
        assert response.status_code == 200, f"{name}: HTTP {response.status_code} {response.text[:1000]}"
        result = response.json()["result"][0]
        assert result["rowcount"] > 0 and result["data"], f"{name}: no rows"

    # Both dashboards in a real browser: every chart rendered, none in an error state.
    if not shutil.which("chromium"):
        apt_install("chromium")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    config = superset.settings.superset
    dashboards = {yaml.safe_load(p.read_text())["slug"]: yaml.safe_load(p.read_text())["position"]
                  for p in (BUNDLE / "dashboards").glob("*.yaml")}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(f"{superset.url}/login/")
            page.fill("#username", config.admin_user)
            page.fill("#password", config.admin_password.get_secret_value())
            page.click("[type=submit]")
            page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
            for slug, position in dashboards.items():
                expected = sum(1 for item in position.values() if isinstance(item, dict) and item["type"] == "CHART")
                page.goto(f"{superset.url}/superset/dashboard/{slug}/")
                # Done: every chart holder has either rendered (.chart-container) or failed ([role=alert]).
                page.wait_for_function(
                    "n => { const holders = document.querySelectorAll('.dashboard-component-chart-holder');"
                    " return holders.length === n && [...holders].every(h => !h.querySelector('.loading') &&"
                    " (h.querySelector('.chart-container') || h.querySelector('[role=alert]'))); }",
                    arg=expected, timeout=120_000)
                page.screenshot(path=str(ARTIFACTS / f"superset-{slug}.png"), full_page=True)
                errors = page.eval_on_selector_all(".dashboard-component-chart-holder [role=alert]",
                                                   "nodes => nodes.map(n => n.textContent)")
                assert not errors, f"dashboard {slug}: charts in an error state: {errors}"
                assert page.locator(".dashboard-component-chart-holder .chart-container").count() == expected
                # Numbers are rounded to what a reader needs: no table cell shows z as 7.010297040045568.
                cells = page.eval_on_selector_all(".dashboard-component-chart-holder td",
                                                  "nodes => nodes.map(n => n.textContent.trim())")
                assert cells, f"dashboard {slug}: no table cells rendered"
                unrounded = [c for c in cells if re.fullmatch(r"-?[\d,]*\.\d{3,}", c)]
                assert not unrounded, f"dashboard {slug}: unrounded numbers {unrounded[:5]}"
        finally:
            browser.close()
