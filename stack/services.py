"""The services of the local stack, each installed when missing, started as an ordinary
process on a loopback port, checked for readiness and stopped by pid.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path

import yaml

from runtime import clients
from runtime.metrics import scrape_targets_dir
from shared import jar_manifest
from shared.names import JOB_TOPICS, PRODUCER_TOPICS
from shared.settings import Settings
from stack import jars
from stack.processes import ManagedProcess, pid_alive, service_environment, tail, wait_until


class StackError(RuntimeError):
    pass


def apt_install(*packages: str) -> None:
    """Install Debian packages (as root); otherwise say exactly what to run."""
    if os.geteuid() != 0:
        raise StackError(f"missing {', '.join(packages)}: run `sudo apt-get install -y {' '.join(packages)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=True, env=env,
                   stdout=subprocess.DEVNULL)


class Service(ABC):
    name: str

    def __init__(self, settings: Settings):
        self.settings = settings
        self.state = settings.stack.state_path
        self.home = self.state / self.name
        self.log_file = self.state / "logs" / f"{self.name}.log"

    @property
    @abstractmethod
    def address(self) -> str: ...

    def missing_packages(self) -> list[str]:
        """The Debian packages this service needs and does not have: `stack up` installs every service's
        in one apt-get run before the other installs, which then run side by side."""
        return []

    def install(self) -> None:
        """Make the rest of what it runs available: jars, a build (idempotent; runs beside the others').
        Nothing by default: most services are their Debian package."""
        return None

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> bool: ...

    @abstractmethod
    def pid(self) -> int | None: ...

    @abstractmethod
    def ready(self) -> bool: ...

    def wait_ready(self) -> None:
        try:
            wait_until(self.ready, self.settings.stack.start_timeout_s, what=f"{self.name} at {self.address}")
        except TimeoutError as exc:
            alive = "running" if self.pid() else "not running"
            raise StackError(
                f"{self.name} at {self.address} did not become ready ({exc}); the process is {alive}.\n"
                f"Last lines of {self.log_file}:\n{tail(self.log_file)}"
            ) from None

    def status(self) -> tuple[bool, str]:
        pid = self.pid()
        if pid is None:
            return False, f"down     {self.address}"
        try:
            ok = self.ready()
        except Exception as exc:
            ok, reason = False, str(exc)
        else:
            reason = ""
        return ok, (f"up       {self.address}  pid {pid}" if ok else f"starting {self.address}  pid {pid} {reason}")


class Kafka(Service):
    """Apache Kafka 4.x, one KRaft node (broker + controller), jars from the Maven manifest."""

    name = "kafka"

    @property
    def address(self) -> str:
        return self.settings.kafka.bootstrap

    def _process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.state / "run", self.log_file)

    def missing_packages(self) -> list[str]:
        return [] if shutil.which("java") else ["openjdk-17-jre-headless"]

    def install(self) -> None:
        jars.fetch_all(self.settings.stack.cache_path, ["kafka-broker"])

    def _classpath(self) -> str:
        return str(jar_manifest.jars_of("kafka-broker", self.settings.stack.cache_path)[0].parent / "*")

    def internal_options(self) -> dict:
        """kafka-python's login on the broker's internal listener as the broker itself (a super user): what
        provisioning uses before the SCRAM users exist."""
        k = self.settings.kafka
        # The internal listener is bound to the stack's host only; kafka-python warns on every PLAIN login.
        logging.getLogger("kafka.net.sasl.plain").setLevel(logging.ERROR)
        return {"bootstrap_servers": f"{k.host}:{k.internal_port}", "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN", "sasl_plain_username": BROKER_USER,
                "sasl_plain_password": self._broker_password()}

    def _broker_password(self) -> str:
        secret = self.settings.kafka.broker_password
        if secret is None or not secret.get_secret_value():
            raise StackError("kafka.broker_password is not set: `streampulse stack up` generates it into "
                             f"{self.settings.credentials_file}")
        return secret.get_secret_value()

    def _write_config(self) -> Path:
        k = self.settings.kafka
        password = self._broker_password()
        plain = (f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{BROKER_USER}" '
                 f'password="{password}" user_{BROKER_USER}="{password}";')
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{k.host}:{k.controller_port}",
            "controller.listener.names": "CONTROLLER",
            # Every listener authenticates: clients with SCRAM (only the generated users exist), the broker with
            # itself over PLAIN on the internal and controller listeners.
            "listeners": f"CLIENT://{k.host}:{k.port},INTERNAL://{k.host}:{k.internal_port},"
                         f"CONTROLLER://{k.host}:{k.controller_port}",
            "advertised.listeners": f"CLIENT://{k.host}:{k.port},INTERNAL://{k.host}:{k.internal_port}",
            "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "INTERNAL",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.client.sasl.enabled.mechanisms": SCRAM,
            "listener.name.client.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.internal.plain.sasl.jaas.config": plain,
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain,
            # ACLs decide the rest (secure()): nothing is allowed that no ACL allows.
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{BROKER_USER};User:{k.admin_user}",
            "log.dirs": str(self.home / "data"),
            "num.partitions": str(k.default_partitions),
            "auto.create.topics.enable": "false",
            # The jobs cap a post's event time at its record's timestamp (sql/flink/social_posts_source.sql): the
            # broker refuses one more than a minute ahead of its clock, so no writer can carry the watermark into
            # the future.
            "log.message.timestamp.after.max.ms": "60000",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Flink's transactional Kafka sink asks for a 1 h transaction timeout by default.
            "transaction.max.timeout.ms": "3600000",
        }
        path = self.home / "server.properties"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the broker's password
        with os.fdopen(fd, "w") as config:
            config.write("".join(f"{key}={value}\n" for key, value in props.items()))
        log4j = self.home / "log4j2.properties"
        log4j.write_text(
            "rootLogger.level = INFO\nrootLogger.appenderRef.out.ref = OUT\n"
            "appender.out.type = Console\nappender.out.name = OUT\nappender.out.layout.type = PatternLayout\n"
            "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
        )
        return path

    def start(self) -> None:
        proc = self._process()
        if proc.pid() is not None:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        cluster_id_file = self.home / "cluster.id"
        java = ["java", "-cp", self._classpath()]
        if not cluster_id_file.exists():
            cluster_id = subprocess.run([*java, "kafka.tools.StorageTool", "random-uuid"], check=True,
                                        capture_output=True, text=True).stdout.strip()
            cluster_id_file.write_text(cluster_id)
        result = subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id_file.read_text().strip(), "-c",
             str(config), "--ignore-formatted"], capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage in {self.home / 'data'} failed:\n"
                             f"{result.stdout}{result.stderr}")
        heap = self.settings.kafka.heap
        proc.start([
            "java", f"-Xmx{heap}", "-Xms128m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.state / 'logs'}", "-cp", self._classpath(), "kafka.Kafka", str(config),
        ])

    def stop(self) -> bool:
        return self._process().stop(timeout=60)

    def pid(self) -> int | None:
        return self._process().pid()

    def ready(self) -> bool:
        # kafka-python logs each refused connection at ERROR; while polling a booting broker that is noise.
        kafka_log = logging.getLogger("kafka")
        level = kafka_log.level
        kafka_log.setLevel(logging.CRITICAL)
        try:
            admin = clients.kafka_admin(self.settings, bootstrap_timeout_s=2, options=self.internal_options())
            try:
                return bool(admin.describe_cluster().get("brokers"))
            finally:
                admin.close()
        finally:
            kafka_log.setLevel(level)

    def secure(self) -> None:
        """The SCRAM users (their passwords set again on every run: idempotent) and what each may do."""
        from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

        k = self.settings.kafka
        users = [k.credentials(role) for role in ("admin", "producer", "jobs")]
        admin = clients.kafka_admin(self.settings, options=self.internal_options())
        try:
            sha512 = ScramMechanism.SCRAM_SHA_512
            admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, sha512, password)
                                                for user, password in users])
            admin.create_acls(kafka_acls(k.producer_user, k.jobs_user))
        finally:
            admin.close()

    def create_topics(self) -> list[str]:
        """Create the configured topics that do not exist yet, and set every configured topic's retention
        (also on topics made before, so that changing retention_hours takes effect at the next `up`)."""
        from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

        kafka = self.settings.kafka
        admin = clients.kafka_admin(self.settings, options=self.internal_options())
        try:
            existing = set(admin.list_topics())
            wanted = [NewTopic(name, partitions, 1, topic_configs=retention_configs(kafka.retention_hours.get(name)))
                      for name, partitions in kafka.topics.items() if name not in existing]
            if wanted:
                admin.create_topics(wanted)
            kept = [ConfigResource(ConfigResourceType.TOPIC, name, configs=retention_configs(hours))
                    for name, hours in kafka.retention_hours.items() if name in existing]
            if kept:
                admin.alter_configs(kept, incremental=True)
            return [t.name for t in wanted]
        finally:
            admin.close()


def retention_configs(hours: float | None) -> dict[str, str]:
    """Kafka topic configs for a retention of `hours`: retention.ms, and segment.ms at a 24th of it (at least an
    hour), because only a closed segment is deleted: a record outlives its retention by at most one segment."""
    if hours is None:
        return {}
    retention_ms = int(hours * 3_600_000)
    return {"retention.ms": str(retention_ms), "segment.ms": str(max(3_600_000, retention_ms // 24))}


BROKER_USER = "broker"
SCRAM = "SCRAM-SHA-512"
POSTS_TOPICS = PRODUCER_TOPICS
OUTPUT_TOPICS = JOB_TOPICS
SCRATCH_PREFIXES = ("test.", "bench.", "demo.", "peers.")  # topics the tests, benchmarks and demo make and drop


def kafka_acls(producer: str, jobs: str) -> list:
    """Least privilege on the broker: only the producers write the posts topics; the jobs read every topic and
    group and write their outputs (transactionally); neither can create or delete topics. The local stack's
    scratch topics (tests, benchmarks, the demo) are the producers' and the jobs' to write as well."""
    from kafka.admin import ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern, ResourceType

    def allow(user: str, operation, kind, name: str, pattern=ACLResourcePatternType.LITERAL) -> ACL:
        return ACL(f"User:{user}", "*", operation, ACLPermissionType.ALLOW, ResourcePattern(kind, name, pattern))

    topic, prefixed = ResourceType.TOPIC, ACLResourcePatternType.PREFIXED
    cluster = ResourceType.CLUSTER
    acls = [allow(user, ACLOperation.IDEMPOTENT_WRITE, cluster, "kafka-cluster") for user in (producer, jobs)]
    for name in POSTS_TOPICS:
        acls += [allow(producer, op, topic, name) for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE)]
    for name in OUTPUT_TOPICS:
        acls += [allow(jobs, op, topic, name) for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE)]
    for prefix in SCRATCH_PREFIXES:
        acls += [allow(user, op, topic, prefix, prefixed) for user in (producer, jobs)
                 for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE)]
    acls += [allow(jobs, op, topic, "*") for op in (ACLOperation.READ, ACLOperation.DESCRIBE)]
    acls += [allow(jobs, op, ResourceType.GROUP, "*") for op in (ACLOperation.READ, ACLOperation.DESCRIBE)]
    acls += [allow(jobs, op, ResourceType.TRANSACTIONAL_ID, "*") for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE)]
    return acls


class Postgres(Service):
    """A private PostgreSQL cluster (initdb/pg_ctl) under the state folder, run as an unprivileged user."""

    name = "postgres"

    @property
    def address(self) -> str:
        return f"{self.settings.postgres.host}:{self.settings.postgres.port}"

    @property
    def data(self) -> Path:
        return self.home / "data"

    def _bin(self, tool: str) -> str | None:
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), key=lambda p: int(p.split("/")[4]))
        return found[-1] if found else shutil.which(tool)

    def missing_packages(self) -> list[str]:
        return ["postgresql"] if self._bin("pg_ctl") is None or self._bin("initdb") is None else []

    def _as_owner(self, argv: list[str]) -> list[str]:
        """PostgreSQL refuses to run as root: as root, run it as the `postgres` account."""
        if os.geteuid() != 0:
            return argv
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise StackError("running as root needs the `postgres` account: apt-get install -y postgresql") from None
        return ["runuser", "-u", "postgres", "--", *argv]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for p in [path, *path.rglob("*")]:
                os.chown(p, entry.pw_uid, entry.pw_gid)

    def _check_traversable(self) -> None:
        if os.geteuid() != 0:
            return
        for parent in [self.home, *self.home.parents]:
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise StackError(
                    f"PostgreSQL runs as the `postgres` account, which cannot enter {parent}: "
                    f"`chmod o+x {parent}` or set stack.state_dir to a folder it can reach")

    def start(self) -> None:
        if self.pid() is not None:
            return
        pg = self.settings.postgres
        self.home.mkdir(parents=True, exist_ok=True)
        self._check_traversable()
        if not (self.data / "PG_VERSION").exists():
            pwfile = self.home / "initdb.pw"
            pwfile.write_text(pg.admin_password.get_secret_value() + "\n")
            (self.home / "run").mkdir(exist_ok=True)
            self._chown(self.home)
            result = subprocess.run(self._as_owner([
                self._bin("initdb"), "-D", str(self.data), "-U", pg.admin_user, f"--pwfile={pwfile}",
                "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]), capture_output=True, text=True)
            pwfile.unlink()
            if result.returncode != 0:
                raise StackError(f"initdb in {self.data} failed:\n{result.stdout}{result.stderr}")
        (self.data / "conf.d").mkdir(exist_ok=True)
        conf = self.data / "postgresql.conf"
        include = "include_dir = 'conf.d'"
        if include not in conf.read_text():
            conf.write_text(conf.read_text() + f"\n{include}\n")
        (self.data / "conf.d" / "streampulse.conf").write_text(
            f"listen_addresses = '{pg.host}'\nport = {pg.port}\n"
            f"unix_socket_directories = '{self.home / 'run'}'\n"
            "max_connections = 100\nshared_buffers = 128MB\nlog_min_messages = warning\n"
        )
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._chown(self.home)
        if os.geteuid() == 0 and not self.log_file.exists():
            self.log_file.touch()
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        # pg_ctl forks the postmaster and returns; -w waits until it accepts connections.
        result = subprocess.run(self._as_owner([
            self._bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", "90", "start"]),
            capture_output=True, text=True, env=service_environment())
        if result.returncode != 0:
            raise StackError(f"PostgreSQL at {self.address} did not start:\n{result.stdout}{result.stderr}\n"
                             f"Last lines of {self.log_file}:\n{tail(self.log_file)}")

    def stop(self) -> bool:
        if self.pid() is None:
            return False
        subprocess.run(self._as_owner([self._bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                       capture_output=True, text=True, check=True)
        return True

    def pid(self) -> int | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def ready(self) -> bool:
        with clients.postgres(self.settings, "admin", database="postgres") as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)


class Redis(Service):
    name = "redis"

    @property
    def address(self) -> str:
        return f"{self.settings.redis.host}:{self.settings.redis.port}"

    def _process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.state / "run", self.log_file)

    def missing_packages(self) -> list[str]:
        return [] if shutil.which("redis-server") else ["redis-server"]

    def start(self) -> None:
        proc = self._process()
        if proc.pid() is not None:
            return
        rs = self.settings.redis
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "redis.conf"
        config.write_text(
            f"bind {rs.host}\nport {rs.port}\nprotected-mode yes\ndaemonize no\n"
            f"dir {self.home}\nappendonly yes\nsave \"\"\nloglevel notice\n"
            f"requirepass {rs.password.get_secret_value()}\n"
        )
        config.chmod(0o600)
        proc.start([shutil.which("redis-server"), str(config)])

    def stop(self) -> bool:
        return self._process().stop()

    def pid(self) -> int | None:
        return self._process().pid()

    def ready(self) -> bool:
        return clients.redis(self.settings).ping()


class Minio(Service):
    """MinIO built from its Go module with `go install`, cached per module version."""

    name = "minio"
    MODULE = "github.com/minio/minio"

    @property
    def address(self) -> str:
        return self.settings.minio.endpoint

    @property
    def binary(self) -> Path:
        return self.settings.stack.cache_path / "bin" / f"minio-{self.settings.minio.module_version}" / "minio"

    def _process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.state / "run", self.log_file)

    def install(self) -> None:
        if self.binary.exists():
            return
        if shutil.which("go") is None:
            raise StackError("MinIO is built with Go, which is not on PATH: install Go 1.24+ (apt-get install golang)")
        version = self.settings.minio.module_version
        print(f"[minio] building {self.MODULE}@{version} with go install (first time only, a few minutes; "
              f"cached in {self.binary.parent})", file=sys.stderr, flush=True)
        result = subprocess.run(["go", "install", f"{self.MODULE}@{version}"], capture_output=True, text=True,
                                env={**os.environ, "GOBIN": str(self.binary.parent), "CGO_ENABLED": "0"})
        if result.returncode != 0:
            raise StackError(f"go install {self.MODULE}@{version} failed:\n{tail_text(result.stderr)}")

    def start(self) -> None:
        proc = self._process()
        if proc.pid() is not None:
            return
        ms = self.settings.minio
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        proc.start(
            [str(self.binary), "server", str(self.home / "data"), "--address", f"{ms.host}:{ms.port}",
             "--console-address", f"{ms.host}:{ms.console_port}", "--quiet"],
            env={"MINIO_ROOT_USER": ms.access_key.get_secret_value(),
                 "MINIO_ROOT_PASSWORD": ms.secret_key.get_secret_value(),
                 "MINIO_UPDATE": "off", "MINIO_BROWSER_REDIRECT": "off"},
        )

    def stop(self) -> bool:
        return self._process().stop()

    def pid(self) -> int | None:
        return self._process().pid()

    def ready(self) -> bool:
        url = f"http://{self.settings.minio.endpoint}/minio/health/ready"
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200

    def create_bucket(self) -> bool:
        """Create the lake's bucket if missing (True when it was) and set its lifecycle rules from
        minio.retention_days, every time: a changed retention takes effect at the next `up`."""
        from minio.commonconfig import ENABLED, Filter
        from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule

        client = clients.minio(self.settings)
        ms = self.settings.minio
        made = not client.bucket_exists(ms.bucket)
        if made:
            client.make_bucket(ms.bucket)
        rules = [Rule(ENABLED, rule_filter=Filter(prefix=prefix), rule_id=f"expire {prefix}",
                      expiration=Expiration(days=days)) for prefix, days in sorted(ms.retention_days.items())]
        if rules:
            client.set_bucket_lifecycle(ms.bucket, LifecycleConfig(rules))
        else:
            client.delete_bucket_lifecycle(ms.bucket)
        return made


class Prometheus(Service):
    """Debian's prometheus server scraping Flink's reporters (static ports) and the producers, which
    announce their /metrics address as file_sd target files (`scrape_target`) while they run."""

    name = "prometheus"

    @property
    def address(self) -> str:
        return f"{self.settings.prometheus.host}:{self.settings.prometheus.port}"

    @property
    def targets_dir(self) -> Path:
        return scrape_targets_dir(self.settings)

    def _process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.state / "run", self.log_file)

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

    def start(self) -> None:
        proc = self._process()
        if proc.pid() is not None:
            return
        prom = self.settings.prometheus
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        config = self.home / "prometheus.yml"
        config.write_text("# Written by `streampulse stack up` from config/streampulse.yaml (prometheus.*).\n"
                          + yaml.safe_dump(self.config(), sort_keys=False))
        proc.start([shutil.which("prometheus"), f"--config.file={config}",
                    f"--storage.tsdb.path={self.home / 'data'}", f"--storage.tsdb.retention.time={prom.retention}",
                    f"--web.listen-address={prom.host}:{prom.port}", "--web.enable-lifecycle"])

    def stop(self) -> bool:
        return self._process().stop()

    def pid(self) -> int | None:
        return self._process().pid()

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


def tail_text(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def new_secret() -> str:
    return secrets.token_urlsafe(24)
