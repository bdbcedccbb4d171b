"""Apache Kafka: one KRaft node, its logins, ACLs and topic retention."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from runtime import clients
from shared import jar_manifest
from shared.names import JOB_TOPICS, PRODUCER_TOPICS
from stack import jars
from stack.processes import ManagedProcess
from stack.services.base import StackError, SupervisedService


class Kafka(SupervisedService):
    """Apache Kafka 4.x, one KRaft node (broker + controller), jars from the Maven manifest."""

    name = "kafka"
    stop_timeout_s = 60.0  # a broker flushes and closes its logs

    @property
    def address(self) -> str:
        return self.settings.kafka.bootstrap

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

    def launch(self, proc: ManagedProcess) -> None:
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
        users = [k.credentials(role) for role in ("admin", "producer", "jobs", "api")]
        admin = clients.kafka_admin(self.settings, options=self.internal_options())
        try:
            sha512 = ScramMechanism.SCRAM_SHA_512
            admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, sha512, password)
                                                for user, password in users])
            admin.create_acls(kafka_acls(k.producer_user, k.jobs_user, k.api_user))
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


def kafka_acls(producer: str, jobs: str, api: str) -> list:
    """Least privilege on the broker: only the producers write the posts topics; the jobs read every topic and
    group and write their outputs (transactionally); neither can create or delete topics. The local stack's
    scratch topics (tests, benchmarks, the demo) are the producers' and the jobs' to write as well. The read API
    reads the jobs' outputs (and scratch topics), and may describe the rest and the groups to report lag; it
    writes nothing and joins no group (it assigns partitions itself)."""
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
    acls += [allow(api, op, topic, name) for name in OUTPUT_TOPICS for op in (ACLOperation.READ, ACLOperation.DESCRIBE)]
    acls += [allow(api, op, topic, prefix, prefixed) for prefix in SCRATCH_PREFIXES
             for op in (ACLOperation.READ, ACLOperation.DESCRIBE)]
    acls += [allow(api, ACLOperation.DESCRIBE, topic, name) for name in POSTS_TOPICS]
    acls += [allow(api, ACLOperation.DESCRIBE, ResourceType.GROUP, "*")]
    return acls
