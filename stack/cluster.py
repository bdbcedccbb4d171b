"""A standalone Flink session cluster on this machine, and jobs submitted to it with `flink run`.

    streampulse cluster up|down|status
    streampulse submit JOB [--from-savepoint PATH] [--parallelism N] [-- job options]
    streampulse jobs
    streampulse savepoint JOB_ID [--cancel]
    streampulse cancel JOB_ID

One JobManager and one TaskManager (more with flink.taskmanagers), each TaskManager restarted by a
supervising loop when it exits, started from the PyFlink wheel's own scripts (the same Flink
the embedded jobs run on), with flink-conf/config.yaml plus what belongs to this machine: the
checkpoint and savepoint folders under the state folder (or flink.checkpoint_dir), the venv's Python
for the workers, MinIO's keys for s3://. Web UI and REST API on http://localhost:<flink.rest_port>.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from runtime.flink import FLINK_CONF, flatten
from shared.settings import ENV_PREFIX, PROJECT_ROOT, Settings
from stack.processes import ManagedProcess, children, owned, tail, wait_until
from stack.services import StackError

# A TaskManager exits on a fatal error — among them an exception while a failing task closes its operators,
# which the JDBC sink throws when PostgreSQL is down (JdbcOutputFormat.close rethrows the failed flush) —
# and in a standalone cluster nothing starts it again: the jobs would wait for slots for ever. Like
# Kubernetes, or `restart: unless-stopped` in docker-compose.yml, this loop restarts it; SIGTERM (cluster
# down) stops the TaskManager and the loop. Its resource id is its role ($0), and <role>-restart-<n> for
# the n-th restart, so the JobManager never takes the new process for the lost one coming back; and it
# restarts 10 s later, like a restart backoff, so that its JVM's start does not compete for the CPU with
# the failover onto the remaining TaskManagers. Measured with bench/recovery.py (volume, 5,000 posts/s,
# 2 cores), kill -9 to RUNNING: same id at once 19.4 s, new id at once 16.5 s, new id after 10 s 13.5 s.
SUPERVISE = (
    'trap \'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0\' TERM INT; id="$0"; restarts=0; '
    'while true; do "$@" -D "taskmanager.resource-id=$id" & child=$!; wait "$child"; status=$?; '
    'restarts=$((restarts + 1)); id="$0-restart-$restarts"; '
    'echo "$(date -Is) supervisor: $0 exited with status $status, starting it again as $id in 10 s"; '
    'sleep 10 & child=$!; wait "$child"; done'
)
RESTART_SUFFIX = "-restart-"


def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).parent


class Cluster:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = settings.stack.state_path / "flink" / "cluster"
        self.conf_dir = self.home / "conf"
        self.log_dir = self.home / "log"
        # The first TaskManager keeps its plain name; more (flink.taskmanagers) are taskmanager-2, -3, ...
        self.roles = ["jobmanager", "taskmanager"] + [f"taskmanager-{n}" for n in
                                                       range(2, settings.flink.taskmanagers + 1)]
        self.processes = {role: ManagedProcess(f"flink-{role}", settings.stack.state_path / "run",
                                               self.log_dir / f"{role}.out") for role in self.roles}

    @property
    def rest_url(self) -> str:
        return f"http://{self.settings.flink.rest_host}:{self.settings.flink.rest_port}"

    def config(self) -> dict[str, object]:
        """flink-conf/config.yaml with this machine's values on top, as flat keys."""
        state = self.settings.stack.state_path / "flink"
        flink = self.settings.flink
        ports = self.settings.prometheus.flink_metrics_ports  # the stack's Prometheus scrapes these
        config = flatten(yaml.safe_load(FLINK_CONF.read_text()))
        config |= {
            "rest.port": flink.rest_port,
            "rest.address": "localhost",
            "rest.bind-address": "localhost",
            "jobmanager.rpc.address": "localhost",
            "jobmanager.bind-host": "localhost",
            "taskmanager.bind-host": "localhost",
            "execution.checkpointing.dir": flink.checkpoint_dir or (state / "checkpoints").as_uri(),
            "execution.checkpointing.savepoint-dir": (state / "savepoints").as_uri(),
            "state.backend.type": flink.state_backend,
            "python.executable": sys.executable,
            "python.client.executable": sys.executable,
            "metrics.reporter.prom.port": "-".join(str(p) for p in sorted({min(ports), max(ports)})),
        }
        minio = self.settings.minio
        if minio.access_key and minio.secret_key:
            config |= {"s3.endpoint": f"http://{minio.endpoint}", "s3.access-key": minio.access_key.get_secret_value(),
                       "s3.secret-key": minio.secret_key.get_secret_value()}
        return config

    def write_conf(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for source in (flink_home() / "conf").iterdir():  # log4j and friends, as the wheel ships them
            if source.name != "config.yaml":
                shutil.copy(source, self.conf_dir / source.name)
        path = self.conf_dir / "config.yaml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds MinIO's keys
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(self.config(), out, sort_keys=True)

    def lib_dir(self) -> Path:
        """The wheel's lib/ plus opt/flink-python: a cluster runs Python operators only with it on its
        classpath (the wheel keeps it in opt/ for the embedded mini-cluster's own use)."""
        lib = self.home / "lib"
        lib.mkdir(parents=True, exist_ok=True)
        wanted = {jar.name: jar for jar in [*(flink_home() / "lib").glob("*.jar"),
                                            *(flink_home() / "opt").glob("flink-python-*.jar")]}
        for link in lib.iterdir():
            if link.name not in wanted or link.resolve() != wanted[link.name].resolve():
                link.unlink()
        for name, jar in wanted.items():
            if not (lib / name).exists():
                (lib / name).symlink_to(jar)
        return lib

    def env(self) -> dict[str, str]:
        from runtime.flink import prepare_process_environment

        prepare_process_environment(self.settings)  # FLINK_PLUGINS_DIR with the S3 filesystem and reporters
        return {"FLINK_CONF_DIR": str(self.conf_dir), "FLINK_LOG_DIR": str(self.log_dir),
                "FLINK_LIB_DIR": str(self.lib_dir()), "FLINK_PLUGINS_DIR": os.environ["FLINK_PLUGINS_DIR"]}

    def up(self, out=sys.stderr) -> None:
        self.write_conf()
        for role in self.roles:
            script = role.split("-")[0]
            argv = [str(flink_home() / "bin" / f"{script}.sh"), "start-foreground"]
            if script == "taskmanager":
                # The supervisor sets its resource id from its role: /taskmanagers in the REST API names it.
                argv = ["bash", "-c", SUPERVISE, role, *argv]
            pid = self.processes[role].start(argv, env=self.env())
            print(f"flink {role}: pid {pid}", file=out)
        try:
            wanted = len(self.roles) - 1
            wait_until(lambda: self.overview().get("taskmanagers", 0) >= wanted, self.settings.stack.start_timeout_s,
                       what=f"the Flink cluster at {self.rest_url} with {wanted} TaskManager(s)")
        except TimeoutError as exc:
            logs = "\n".join(f"--- {p.log_file}\n{tail(p.log_file)}" for p in self.processes.values())
            raise StackError(f"{exc}\n{logs}") from None
        print(f"flink: Web UI and REST API at {self.rest_url}", file=out)

    def recorded_roles(self) -> list[str]:
        """The roles `up` started, from their pid files and from the process table, whatever flink.taskmanagers
        says now; TaskManagers first, the JobManager last."""
        run_dir = self.settings.stack.state_path / "run"
        names = {p.stem for p in run_dir.glob("flink-*.pid")} | set(owned(run_dir, "flink-").values())
        roles = {name.removeprefix("flink-") for name in names}
        return sorted(roles - {"jobmanager"}, reverse=True) + (["jobmanager"] if "jobmanager" in roles else [])

    def _process(self, role: str) -> ManagedProcess:
        return self.processes.get(role) or ManagedProcess(f"flink-{role}", self.settings.stack.state_path / "run",
                                                          self.log_dir / f"{role}.out")

    def down(self, out=sys.stderr) -> None:
        for role in self.recorded_roles():
            if self._process(role).stop():
                print(f"flink {role}: stopped", file=out)

    def status(self, out=sys.stdout) -> bool:
        ok = True
        for role in sorted(set(self.roles) | set(self.recorded_roles()), key=lambda r: (r != "jobmanager", r)):
            pid = self._process(role).pid()
            ok &= pid is not None or role not in self.roles
            print(f"flink-{role:<12} {'up' if pid else 'down':<8} pid {pid}" if pid else
                  f"flink-{role:<12} down", file=out)
        strays = {pid: name for pid, name in owned(self.settings.stack.state_path / "run", "flink-").items()
                  if self._process(name.removeprefix("flink-")).pid() is None}
        for pid, name in sorted(strays.items()):
            print(f"stray: pid {pid} ({name}) outlived its supervisor; `streampulse cluster down` stops it", file=out)
        if ok:
            overview = self.overview()
            print(f"flink REST {self.rest_url}: {overview.get('taskmanagers')} TaskManager(s), "
                  f"{overview.get('slots-available')} free slot(s), {overview.get('jobs-running')} running job(s)",
                  file=out)
        return ok

    def worker_pid(self, resource_id: str) -> int | None:
        """The pid of a TaskManager's JVM (its supervising loop's child) by its resource id, which names
        its role (taskmanager-2-restart-1 is taskmanager-2 restarted once); None while it is down."""
        supervisor = self.processes[resource_id.split(RESTART_SUFFIX)[0]].pid()
        return children(supervisor)[0] if supervisor and children(supervisor) else None

    # REST API ---------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.rest_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise StackError(f"{method} {self.rest_url}{path}: HTTP {exc.code} {exc.read().decode()[:500]}") from None
        except OSError as exc:
            raise StackError(f"the Flink cluster at {self.rest_url} is not reachable ({exc}); "
                             "start it with `streampulse cluster up`") from None
        return json.loads(text) if text.strip() else {}

    def running_job(self, job_id: str) -> dict | None:
        """The job's details if it and every one of its tasks are RUNNING, else None."""
        job = self.request("GET", f"/jobs/{job_id}")
        return job if job["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in job["vertices"]) else None

    def overview(self) -> dict:
        return self.request("GET", "/overview")

    def jobs(self) -> list[dict]:
        return self.request("GET", "/jobs/overview")["jobs"]

    def submit(self, job: str, job_args: list[str], from_savepoint: str | None = None,
               parallelism: int | None = None) -> str:
        """`flink run --detached -py jobs/<job>.py`; returns the new job's id. `parallelism` overrides
        flink.parallelism for this run (the job's program sets parallelism.default from its settings, which
        would win over `flink run -p`)."""
        script = PROJECT_ROOT / "jobs" / f"{job}.py"
        if not script.exists():
            raise StackError(f"no job {job!r}: expected {script}")
        argv = [str(flink_home() / "bin" / "flink"), "run", "--detached", "--jobmanager",
                f"localhost:{self.settings.flink.rest_port}", "--python", str(script)]
        if from_savepoint:
            argv[2:2] = ["--fromSavepoint", from_savepoint]
        argv += [a for a in job_args if a != "--"]
        env = {**os.environ, **self.env()}
        if parallelism is not None:
            env[f"{ENV_PREFIX}FLINK__PARALLELISM"] = str(parallelism)
        result = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"flink run failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
        for line in result.stdout.splitlines():
            if "JobID" in line:
                return line.split()[-1]
        raise StackError(f"flink run printed no JobID:\n{result.stdout[-2000:]}")

    def savepoint(self, job_id: str, cancel: bool = False) -> str:
        """Trigger a savepoint (and cancel the job with it), wait for it, return its location."""
        trigger = self.request("POST", f"/jobs/{job_id}/savepoints", {"cancel-job": cancel})["request-id"]

        def done():
            result = self.request("GET", f"/jobs/{job_id}/savepoints/{trigger}")
            return result if result["status"]["id"] == "COMPLETED" else None

        operation = wait_until(done, 300, interval=0.5, what=f"the savepoint of job {job_id}").get("operation", {})
        if "failure-cause" in operation:
            cause = operation["failure-cause"].get("stack-trace", "")
            raise StackError(f"the savepoint of job {job_id} failed:\n{cause[:2000]}")
        return operation["location"]

    def cancel(self, job_id: str) -> None:
        self.request("PATCH", f"/jobs/{job_id}?mode=cancel")
