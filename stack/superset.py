"""Apache Superset over the sink tables, on this machine.

    streampulse superset up       install when needed, prepare the metadata, start, import the dashboards
    streampulse superset import   import dashboards/superset/bundle again into the running Superset
    streampulse superset status | down

Superset lives in its own virtual environment (<state>/superset-venv, from config/superset-requirements.txt
with config/superset-constraints.txt): it pins its own Flask, SQLAlchemy, pandas and pyarrow, which must
not meet the Flink venv's. Its metadata is SQLite in superset.home (default <state>/superset); it reads
PostgreSQL as the read-only role. `up` runs `superset db upgrade`, creates the admin user (or resets its
password to the configured one), runs `superset init` once per metadata database, serves with gunicorn on
superset.host:port, and imports the bundle through the REST API: the database, datasets on the six views
of sql/migrations/0005_dashboards.sql and 0013_enrichment.sql, eight charts and the Trends and Volume & Health
dashboards.

Secrets: superset.secret_key and superset.admin_password (STREAMPULSE_SUPERSET__SECRET_KEY,
STREAMPULSE_SUPERSET__ADMIN_PASSWORD). For local use `up` generates both into <state>/credentials.env when
unset; with superset.production true it refuses to start unless both are set and neither is a known default.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import requests
import yaml

from shared.settings import ENV_PREFIX, PROJECT_ROOT, ConfigError, Settings
from stack.processes import ManagedProcess, owned, service_environment, stop_pids, tail, wait_until
from stack.services import StackError

DASHBOARDS = PROJECT_ROOT / "dashboards" / "superset"
BUNDLE = DASHBOARDS / "bundle"
SET_ADMIN = DASHBOARDS / "set_admin.py"  # run by Superset's own Python
REQUIREMENTS = PROJECT_ROOT / "config" / "superset-requirements.txt"
CONSTRAINTS = PROJECT_ROOT / "config" / "superset-constraints.txt"
DATABASE_FILE = "databases/StreamPulse.yaml"
# Values that ship in Superset's docs, images and examples: never acceptable in production.
KNOWN_DEFAULTS = {"", "admin", "password", "general", "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET", "thisISaSECRET_1234",
                  "\x02\x01thisismyscretkey\x01\x02\\e\\y\\y\\h", "superset", "secret"}
MIN_SECRET_KEY = 32


def check_secrets(settings: Settings) -> None:
    """In production, the secret key and admin password must be set, and not to a known default."""
    superset = settings.superset
    if not superset.production:
        return
    problems = []
    for key, value, minimum in (("secret_key", superset.secret_key, MIN_SECRET_KEY),
                                ("admin_password", superset.admin_password, 12)):
        text = value.get_secret_value() if value else ""
        env = f"{ENV_PREFIX}SUPERSET__{key.upper()}"
        if text in KNOWN_DEFAULTS:
            problems.append(f"superset.{key} is {'unset' if not text else 'a well-known default'}: set {env}")
        elif len(text) < minimum:
            problems.append(f"superset.{key} is shorter than {minimum} characters: set a longer {env}")
    if problems:
        raise ConfigError("superset.production is true, so Superset will not start with these secrets:\n  "
                          + "\n  ".join(problems) + "\n(e.g. `openssl rand -base64 42` for the secret key)")


class Superset:
    def __init__(self, settings: Settings):
        self.settings = settings
        config = settings.superset
        state = settings.stack.state_path
        home = config.home.expanduser() if config.home else state / "superset"
        self.home = home if home.is_absolute() else PROJECT_ROOT / home
        self.venv = state / "superset-venv"
        self.process = ManagedProcess(f"superset-{config.port}", state / "run", self.home / "superset.log")
        self.url = config.url

    # installation -------------------------------------------------------------------------------------

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def installed(self) -> bool:
        stamp = self.venv / ".installed"
        wanted = REQUIREMENTS.read_text() + CONSTRAINTS.read_text()
        return (self.bin / "superset").exists() and stamp.exists() and stamp.read_text() == wanted

    def install(self, out=sys.stderr) -> None:
        """Create the venv and install the pinned Superset (about a minute with pip's cache, 900 MB)."""
        if self.installed():
            return
        print(f"[superset] installing into {self.venv} (pip, {REQUIREMENTS.name}); this takes a few minutes "
              "the first time", file=out, flush=True)
        if not (self.bin / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        pip = [str(self.bin / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar",
               "off"]
        result = subprocess.run([*pip, "-q", "-r", str(REQUIREMENTS), "-c", str(CONSTRAINTS)],
                                stdout=out, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise StackError(f"installing Superset into {self.venv} failed:\n{result.stderr[-3000:]}")
        (self.venv / ".installed").write_text(REQUIREMENTS.read_text() + CONSTRAINTS.read_text())

    # running ------------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        config = self.settings.superset
        if config.secret_key is None:
            raise ConfigError(f"superset.secret_key is not set: export {ENV_PREFIX}SUPERSET__SECRET_KEY "
                              "(`streampulse superset up` generates one for local use)")
        return {
            "SUPERSET_CONFIG_PATH": str(DASHBOARDS / "superset_config.py"),
            "SUPERSET_SECRET_KEY": config.secret_key.get_secret_value(),
            "SUPERSET_METADATA_URI": f"sqlite:///{self.home / 'superset.db'}",
            "FLASK_APP": "superset",
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def cli(self, *args: str) -> str:
        """`superset ARGS` in Superset's venv."""
        result = subprocess.run([str(self.bin / "superset"), *args], env=service_environment(self.env()),
                                capture_output=True, text=True, cwd=self.home)
        if result.returncode != 0:
            raise StackError(f"`superset {' '.join(args)}` failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
        return result.stdout + result.stderr

    def set_admin(self) -> str:
        """Create the admin user, or reset its password, through Flask-AppBuilder's security manager in
        Superset's venv, the password on standard input: `superset fab create-admin --password` would put it
        on a command line, where `ps` shows it to every user of the machine."""
        config = self.settings.superset
        result = subprocess.run(
            [str(self.bin / "python"), str(SET_ADMIN), config.admin_user], input=config.admin_password
            .get_secret_value(), env=service_environment(self.env()), capture_output=True, text=True, cwd=self.home)
        if result.returncode != 0:
            raise StackError(f"setting Superset's admin user {config.admin_user} failed:\n{result.stderr[-3000:]}")
        return result.stdout.strip()

    def prepare(self, out=sys.stderr) -> None:
        """Metadata schema, the admin user with the configured password, roles and permissions."""
        config = self.settings.superset
        self.home.mkdir(parents=True, exist_ok=True)
        print(f"[superset] metadata in {self.home / 'superset.db'}: upgrading", file=out, flush=True)
        self.cli("db", "upgrade")
        print(f"[superset] admin user {config.admin_user}: {self.set_admin()}", file=out, flush=True)
        initialised = self.home / ".initialised"
        if not initialised.exists():
            print("[superset] creating roles and permissions (superset init)", file=out, flush=True)
            self.cli("init")
            initialised.touch()

    def start(self) -> int:
        config = self.settings.superset
        return self.process.start([
            str(self.bin / "gunicorn"), "--workers", str(config.workers), "--worker-class", "gthread", "--threads",
            "4", "--timeout", "120", "--bind", f"{config.host}:{config.port}", "--limit-request-line", "0",
            "--limit-request-field_size", "0", "superset.app:create_app()"], env=self.env(), cwd=self.home)

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=5).text == "OK"
        except requests.RequestException:
            return False

    def wait_ready(self) -> None:
        try:
            wait_until(lambda: self.ready() or self.process.pid() is None, self.settings.stack.start_timeout_s,
                       interval=1, what=f"Superset at {self.url}/health")
        except TimeoutError as exc:
            raise StackError(f"{exc}\nLast lines of {self.process.log_file}:\n{tail(self.process.log_file)}") from None
        if not self.ready():
            raise StackError(f"Superset exited while starting; last lines of {self.process.log_file}:\n"
                             f"{tail(self.process.log_file)}")

    def stop(self) -> bool:
        """The Superset `up` started, on whatever port the settings name now."""
        stopped = self.process.stop()
        others = owned(self.process.run_dir, "superset-")
        stop_pids(list(others))
        return stopped or bool(others)

    # the REST API -------------------------------------------------------------------------------------

    def session(self) -> requests.Session:
        """A logged-in API session as the admin (JWT bearer and CSRF token)."""
        config = self.settings.superset
        session = requests.Session()
        response = session.post(f"{self.url}/api/v1/security/login", timeout=30, json={
            "username": config.admin_user, "password": config.admin_password.get_secret_value(),
            "provider": "db", "refresh": False})
        if response.status_code != 200:
            raise StackError(f"logging in to Superset at {self.url} as {config.admin_user} failed: "
                             f"HTTP {response.status_code} {response.text[:300]}")
        session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        csrf = session.get(f"{self.url}/api/v1/security/csrf_token/", timeout=30)
        csrf.raise_for_status()
        session.headers.update({"X-CSRFToken": csrf.json()["result"], "Referer": self.url})
        return session

    def bundle(self) -> bytes:
        """dashboards/superset/bundle as the zip Superset imports, its database pointed at this stack's
        PostgreSQL as the read-only role (the password travels separately)."""
        pg = self.settings.postgres
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(BUNDLE.rglob("*.yaml")):
                name = path.relative_to(BUNDLE).as_posix()
                text = path.read_text()
                if name == DATABASE_FILE:
                    database = yaml.safe_load(text)
                    database["sqlalchemy_uri"] = (f"postgresql://{pg.reader_user}:XXXXXXXXXX@{pg.host}:{pg.port}/"
                                                  f"{pg.database}")
                    text = yaml.safe_dump(database, sort_keys=False)
                archive.writestr(f"streampulse/{name}", text)
        return buffer.getvalue()

    def import_bundle(self, out=sys.stderr) -> list[dict]:
        """Import (overwrite) the bundle, then save each chart's query against this Superset's dataset
        ids, so that GET /api/v1/chart/<id>/data/ and reports work. Returns the imported charts."""
        session = self.session()
        password = self.settings.postgres.reader_password
        if password is None:
            raise ConfigError(f"postgres.reader_password is not set: run `streampulse stack up` first or export "
                              f"{ENV_PREFIX}POSTGRES__READER_PASSWORD")
        response = session.post(
            f"{self.url}/api/v1/dashboard/import/", timeout=300,
            files={"formData": ("streampulse.zip", self.bundle(), "application/zip")},
            data={"overwrite": "true",
                  "passwords": json.dumps({f"databases/{Path(DATABASE_FILE).name}": password.get_secret_value()})})
        if response.status_code != 200:
            raise StackError(f"importing {BUNDLE} into Superset failed: HTTP {response.status_code} "
                             f"{response.text[:3000]}")
        charts = []
        for path in sorted((BUNDLE / "charts").glob("*.yaml")):
            config = yaml.safe_load(path.read_text())
            chart = self.find_chart(session, config["slice_name"])
            query_context = json.loads(config["query_context"])
            query_context["datasource"] = {"id": chart["datasource_id"], "type": chart["datasource_type"]}
            query_context["form_data"]["datasource"] = f"{chart['datasource_id']}__{chart['datasource_type']}"
            saved = session.put(f"{self.url}/api/v1/chart/{chart['id']}", timeout=60, json={
                "query_context": json.dumps(query_context), "query_context_generation": True})
            if saved.status_code != 200:
                raise StackError(f"saving the query of chart {config['slice_name']!r} failed: "
                                 f"HTTP {saved.status_code} {saved.text[:1000]}")
            charts.append(chart)
        print(f"[superset] imported {len(charts)} charts and the dashboards "
              f"{', '.join(self.dashboard_urls())}", file=out, flush=True)
        return charts

    def find_chart(self, session: requests.Session, name: str) -> dict:
        query = ("(columns:!(id,slice_name,datasource_id,datasource_type),"
                 f"filters:!((col:slice_name,opr:eq,value:'{name}')))")
        response = session.get(f"{self.url}/api/v1/chart/", params={"q": query}, timeout=60)
        response.raise_for_status()
        found = response.json()["result"]
        if len(found) != 1:
            raise StackError(f"expected one chart named {name!r} in Superset, found {len(found)}")
        return found[0]

    def dashboard_urls(self) -> list[str]:
        slugs = [yaml.safe_load(p.read_text())["slug"] for p in sorted((BUNDLE / "dashboards").glob("*.yaml"))]
        return [f"{self.url}/superset/dashboard/{slug}/" for slug in slugs]

    # the command ----------------------------------------------------------------------------------------

    def up(self, out=sys.stderr) -> None:
        check_secrets(self.settings)
        self.install(out)
        if self.process.pid() is None:
            self.prepare(out)
            print(f"[superset] starting on {self.url}", file=out, flush=True)
            self.start()
        self.wait_ready()
        self.import_bundle(out)
        print(f"[superset] ready: {self.url} (user {self.settings.superset.admin_user}, password in "
              f"{self.settings.credentials_file} unless set in the environment)", file=out, flush=True)
