"""Typed settings: YAML in config/ plus environment overrides (STREAMPULSE_<SECTION>__<KEY>).

A wrong value fails at load time with the dotted key, the expected form and the value given,
so that nothing starts half-configured.
"""

from __future__ import annotations

import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.conversations import ConversationSettings
from shared.names import ALERTS_TOPIC, ANOMALIES_TOPIC
from shared.trends import TrendingSettings
from shared.volume import VolumeSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "streampulse.yaml"
ENV_PREFIX = "STREAMPULSE_"

Port = Annotated[int, Field(ge=1, le=65535, description="a TCP port number from 1 to 65535")]
Host = Annotated[str, Field(min_length=1, description="a host name or IP address")]


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StackSettings(_Section):
    state_dir: Path = Field(Path(".state"), description="a folder path (relative to the project root)")
    cache_dir: Path = Field(Path("~/.cache/streampulse"), description="a folder path outside git")
    start_timeout_s: Annotated[float, Field(gt=0, description="seconds, a positive number")] = 120

    @property
    def state_path(self) -> Path:
        path = self.state_dir.expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def cache_path(self) -> Path:
        return self.cache_dir.expanduser().resolve()


KafkaRole = Literal["admin", "producer", "jobs", "api"]
SCRAM = "SCRAM-SHA-512"


class KafkaSettings(_Section):
    host: Host = "127.0.0.1"
    port: Port = 19092  # clients: SASL/SCRAM
    controller_port: Port = 19093
    internal_port: Port = 19094  # the broker's own listener (SASL/PLAIN), for itself and the stack's provisioning
    heap: Annotated[str, Field(pattern=r"^\d+[mg]$", description="a JVM heap size such as 512m or 1g")] = "768m"
    default_partitions: Annotated[int, Field(ge=1, description="a whole number ≥ 1")] = 2
    topics: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    # How long each topic keeps a record (Kafka's retention.ms); a topic not listed keeps the broker's default.
    # The dead-letter topic keeps raw payloads, deleted posts among them: its retention bounds how long one
    # survives there.
    retention_hours: dict[str, Annotated[float, Field(gt=0, description="hours, a positive number")]] = Field(
        default_factory=dict)
    # SASL/SCRAM principals (ACLs in stack/services.py): the producers alone may write social.posts; the jobs
    # read every topic and write their outputs; the admin manages topics and ACLs. Passwords are generated.
    admin_user: str = "streampulse-admin"
    admin_password: SecretStr | None = None
    producer_user: str = "streampulse-producer"
    producer_password: SecretStr | None = None
    jobs_user: str = "streampulse-jobs"
    jobs_password: SecretStr | None = None
    # The read API (`streampulse api`): reads the jobs' output topics, looks up consumer lag; writes nothing.
    api_user: str = "streampulse-api"
    api_password: SecretStr | None = None
    # The broker's own login on its internal and controller listeners (SASL/PLAIN: KRaft cannot use SCRAM
    # there, SCRAM credentials live in the metadata the controller serves), and the stack's, to create the
    # SCRAM users and the ACLs before anyone else can log in.
    broker_password: SecretStr | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def credentials(self, role: KafkaRole) -> tuple[str, str]:
        return getattr(self, f"{role}_user"), _require_secret(getattr(self, f"{role}_password"),
                                                              f"kafka.{role}_password")

    def client_options(self, role: KafkaRole) -> dict[str, str]:
        """kafka-python's arguments for a SCRAM login as `role`."""
        user, password = self.credentials(role)
        if self.host in ("127.0.0.1", "localhost", "::1"):  # nothing to overhear: kafka-python warns on each login
            logging.getLogger("kafka.net.sasl.scram").setLevel(logging.ERROR)
        return {"bootstrap_servers": self.bootstrap, "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": SCRAM, "sasl_plain_username": user, "sasl_plain_password": password}

    def jaas(self, role: KafkaRole, *, shaded: bool = True) -> str:
        """The JAAS line of a Java client logging in as `role`: by default for Flink's SQL Kafka connector,
        whose Kafka classes are shaded (a login module under the plain package name is not found there)."""
        user, password = self.credentials(role)
        package = "org.apache.flink.kafka.shaded.org.apache.kafka" if shaded else "org.apache.kafka"
        return (f'{package}.common.security.scram.ScramLoginModule required username="{user}" '
                f'password="{password}";')


class PostgresSettings(_Section):
    host: Host = "127.0.0.1"
    port: Port = 15432
    database: str = "streampulse"
    admin_user: str = "streampulse_admin"
    admin_password: SecretStr | None = None
    writer_user: str = "streampulse_writer"
    writer_password: SecretStr | None = None
    reader_user: str = "streampulse_reader"
    reader_password: SecretStr | None = None
    # The jobs' time-series tables are partitioned by day (sql/migrations/0010_partitions_by_day.sql): `stack up`
    # and `stack retention` create the partitions this many days ahead and drop those older than retention_days.
    retention_days: Annotated[int, Field(ge=1, description="days, a whole number ≥ 1")] = 30
    partitions_ahead_days: Annotated[int, Field(ge=0, description="days, a whole number ≥ 0")] = 7

    def dsn(self, role: Literal["admin", "writer", "reader"], database: str | None = None) -> str:
        user = getattr(self, f"{role}_user")
        password = _require_secret(getattr(self, f"{role}_password"), f"postgres.{role}_password")
        return (
            f"host={self.host} port={self.port} dbname={database or self.database} "
            f"user={user} password={password} connect_timeout=5"
        )

    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"


class RedisSettings(_Section):
    host: Host = "127.0.0.1"
    port: Port = 16379
    password: SecretStr | None = None
    # The read API's own Redis user: it may read StreamPulse's keys and nothing else (an ACL in redis.conf).
    api_user: str = "streampulse-api"
    api_password: SecretStr | None = None


class MinioSettings(_Section):
    host: Host = "127.0.0.1"
    port: Port = 19000
    console_port: Port = 19001
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                                 description="an S3 bucket name (3-63 lower-case letters, digits, . or -)")] = (
        "streampulse-lake"
    )
    module_version: str = "latest"
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    # Lifecycle rules of the bucket: objects under each prefix expire this many days after they were written
    # (MinIO's scanner deletes them). Flink's checkpoints are not listed: Flink keeps its own few.
    retention_days: dict[str, Annotated[int, Field(ge=1, description="days, a whole number ≥ 1")]] = Field(
        default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


class PrometheusSettings(_Section):
    host: Host = "127.0.0.1"
    port: Port = 19090
    scrape_interval_s: Annotated[int, Field(ge=1, le=300, description="whole seconds from 1 to 300")] = 5
    retention: Annotated[str, Field(pattern=r"^\d+[hdw]$", description="a duration such as 12h, 7d or 2w")] = "7d"
    # Flink's reporter ports (flink-conf/config.yaml: metrics.reporter.prom.port 9249-9250).
    flink_metrics_ports: list[Port] = Field(default_factory=lambda: [9249, 9250])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class RegistrySettings(_Section):
    """The Confluent-compatible schema registry (Apicurio Registry 3, stack/services/registry.py) that social.posts'
    writers register their Avro schema with, and the jobs read writer schemas from by id."""

    host: Host = "127.0.0.1"
    port: Port = 18085  # the REST APIs: Confluent-compatible at /apis/ccompat/v7, Apicurio's own at /apis/registry/v3
    management_port: Port = 19085  # health (/health/ready) and metrics
    # What clients call; empty = http://<host>:<port>. Set it when clients reach the registry by another name.
    url: Annotated[str, Field(pattern=r"^$|^https?://\S+$", description="an http(s) URL or empty")] = ""
    subject: Annotated[str, Field(min_length=1, description="a subject name")] = "social.posts-value"
    # The compatibility rule `stack up` sets on the subject: BACKWARD = a new schema must read every older record.
    compatibility: Literal["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
                           "FULL_TRANSITIVE", "NONE"] = "BACKWARD"
    # What the producers write: `confluent` (magic byte 0, the 4-byte schema id, the Avro binary; the schema
    # registered at start) or `legacy` (schemaless Avro, schema_version 1 only). The jobs read both.
    producer_encoding: Literal["confluent", "legacy"] = "confluent"
    # The SocialPost schema version the producers write (shared/social_post*.avsc); `produce --schema-version`.
    producer_schema_version: Annotated[int, Field(ge=1, le=2, description="1 or 2")] = 2
    timeout_s: Annotated[float, Field(gt=0, description="seconds, a positive number")] = 10.0
    # The registry's storage: a database and login of its own on the stack's PostgreSQL.
    database: str = "streampulse_registry"
    db_user: str = "streampulse_registry"
    db_password: SecretStr | None = None
    heap: Annotated[str, Field(pattern=r"^\d+[mg]$", description="a JVM heap size such as 512m or 1g")] = "384m"
    # A Java 21+ installation (Apicurio Registry 3.3 needs it); empty = the newest one under /usr/lib/jvm.
    java_home: str = ""

    @property
    def base_url(self) -> str:
        return (self.url or f"http://{self.host}:{self.port}").rstrip("/")


class SupersetSettings(_Section):
    host: Host = "127.0.0.1"
    port: Port = 18088
    # Superset's metadata (SQLite) and logs; default <state>/superset. Its venv stays in <state>/superset-venv.
    home: Path | None = Field(None, description="a folder path (relative to the project root)")
    admin_user: Annotated[str, Field(min_length=1, description="a user name")] = "admin"
    admin_password: SecretStr | None = None
    secret_key: SecretStr | None = None
    # Production: the secret key and admin password must come from the environment, never be generated
    # or a known default.
    production: bool = False
    workers: Annotated[int, Field(ge=1, le=32, description="gunicorn worker processes, 1 to 32")] = 2

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class BlueskySettings(_Section):
    # The relay's XRPC base (the client appends /com.atproto.sync.subscribeRepos) and Jetstream's v1 endpoint.
    firehose_url: Annotated[str, Field(pattern=r"^wss?://\S+$", description="a ws:// or wss:// URL")] = (
        "wss://bsky.network/xrpc")
    jetstream_url: Annotated[str, Field(pattern=r"^wss?://\S+$", description="a ws:// or wss:// URL")] = (
        "wss://jetstream2.us-east.bsky.network/subscribe")
    reconnect_backoff_s: Annotated[float, Field(gt=0, description="seconds, a positive number")] = 1.0
    max_backoff_s: Annotated[float, Field(gt=0, description="seconds, a positive number")] = 64.0
    jetstream_rewind_s: Annotated[float, Field(ge=0, description="seconds, a number ≥ 0")] = 5.0


class RedditSettings(_Section):
    # Official API with an app-only OAuth token when client_id and client_secret are set; the public
    # JSON listings (10 requests/min) otherwise.
    base_url: Annotated[str, Field(pattern=r"^https?://\S+$", description="an http(s) URL")] = "https://www.reddit.com"
    oauth_url: Annotated[str, Field(pattern=r"^https?://\S+$", description="an http(s) URL")] = "https://oauth.reddit.com"
    # Reddit's required form; default and generic user agents are throttled and lying is banned.
    user_agent: Annotated[str, Field(pattern=r"^$|^\S+:\S+:\S+ \(by /u/[\w-]+\)$",
                                     description="<platform>:<app id>:<version> (by /u/<username>)")] = ""
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    subreddits: list[str] = Field(default_factory=lambda: ["all"])
    poll_interval_s: Annotated[float, Field(gt=0, description="seconds, a positive number")] = 10.0
    # Deletions of items seen before: each poll also asks /api/info for this many batches of 100 recently seen
    # items (newest first, in turn), so a deleted or removed item is noticed after it left the listing's first
    # pages. 0 turns this off; every batch is one request of the rate limit.
    recheck_batches_per_poll: Annotated[int, Field(ge=0, le=10, description="a whole number from 0 to 10")] = 1


class MastodonSettings(_Section):
    instance: Annotated[str, Field(pattern=r"^https?://\S+$", description="an http(s) URL")] = "https://mastodon.social"
    # Mastodon 4.2+ streams only to a user token, public timelines included.
    access_token: SecretStr | None = None
    stream: Literal["public", "local", "remote", "hashtag"] = "public"
    tag: str = ""  # for stream: hashtag
    reblogs: Literal["skip", "unwrap"] = "skip"
    reconnect_backoff_s: Annotated[float, Field(gt=0, description="seconds, a positive number")] = 1.0


class FlinkSettings(_Section):
    parallelism: Annotated[int, Field(ge=1, description="a whole number ≥ 1")] = 1
    # The number of key groups: the most a job can ever be rescaled to from its savepoints. Fixed for a job's
    # life (a savepoint restores only under the same value); 128 is what Flink derives for parallelism ≤ 85, so
    # savepoints taken before it was set restore too.
    max_parallelism: Annotated[int, Field(ge=1, le=32768, description="a whole number from 1 to 32768")] = 128
    # Watermark alignment across the posts' partitions: a partition whose watermark runs this far ahead of the
    # slowest one is paused until the others catch up, so a fast partition cannot fill the window state with
    # minutes the others have not reached. 0 turns it off.
    watermark_alignment_drift_s: Annotated[int, Field(ge=0, description="seconds, a whole number ≥ 0")] = 120
    checkpoint_interval_s: Annotated[float, Field(gt=0, description="seconds, a positive number")] = 10
    python_execution_mode: Literal["thread", "process"] = "thread"
    # RocksDB keeps state off the heap and checkpoints incrementally; hashmap (the heap) is several
    # times faster for the windows' COUNT(DISTINCT) state while it fits in memory.
    state_backend: Literal["rocksdb", "hashmap"] = "rocksdb"
    # The jobs read social.posts by minute (sql/flink/posts_by_minute.sql): each minute's records reach the
    # Python stage in this many batches (by partition), which bounds one batch's size.
    minute_batch_shards: Annotated[int, Field(ge=1, le=1024, description="a whole number from 1 to 1024")] = 4
    rest_host: Host = "localhost"  # the cluster's Web UI and REST API (the read API's /v1/health asks it)
    rest_port: Annotated[int, Field(ge=1, le=65535, description="a TCP port number")] = 8081
    taskmanagers: Annotated[int, Field(ge=1, le=8, description="a whole number from 1 to 8")] = 1  # cluster up
    # Where checkpoints go; empty = <state_dir>/flink/checkpoints. A cluster whose processes do not
    # share a disk (docker-compose) needs a shared store such as s3://<bucket>/checkpoints.
    checkpoint_dir: Annotated[str, Field(pattern=r"^((file|s3|s3a|s3p)://\S+)?$",
                                         description="a URI such as s3://bucket/path or file:///path")] = ""


class DeletionsSettings(_Section):
    """How long a post deleted at its source may survive (README: "Deleted posts")."""

    # The lake keeps a deleted post at most this long after its notice reached the log (a compaction every
    # compact_every_s, which must leave time for one run to finish within the bound).
    lake_within_s: Annotated[int, Field(ge=60, description="seconds, a whole number ≥ 60")] = 86_400
    compact_every_s: Annotated[int, Field(ge=10, description="seconds, a whole number ≥ 10")] = 21_600
    # Redis remembers a deleted uid this long, so that a trend published after the notice leaves it out.
    redis_keep_s: Annotated[int, Field(ge=60, description="seconds, a whole number ≥ 60")] = 86_400

    @model_validator(mode="after")
    def _compaction_within_bound(self):
        if self.compact_every_s * 2 > self.lake_within_s:
            raise ValueError(f"deletions.compact_every_s ({self.compact_every_s}) must be at most half of "
                             f"deletions.lake_within_s ({self.lake_within_s}): a deletion that arrives just after "
                             "a run waits for the next one, which must finish within the bound")
        return self


class ApiSettings(_Section):
    """The read API (`streampulse api`, api/): what it listens on and the bounds it puts on a request."""

    host: Host = "127.0.0.1"
    port: Port = 18080
    workers: Annotated[int, Field(ge=1, le=64, description="a whole number from 1 to 64")] = 1
    # "Trending now" is read from Redis at most this often; requests in between share the answer.
    current_cache_s: Annotated[float, Field(ge=0, le=60, description="seconds from 0 to 60")] = 1.0
    max_range_days: Annotated[int, Field(ge=1, description="days, a whole number ≥ 1")] = 31
    default_range_hours: Annotated[int, Field(ge=1, description="hours, a whole number ≥ 1")] = 24
    max_page_size: Annotated[int, Field(ge=1, le=10_000, description="a whole number from 1 to 10000")] = 1000
    default_page_size: Annotated[int, Field(ge=1, description="a whole number ≥ 1")] = 100
    # Answers about closed windows never change: this many are kept in memory per process.
    closed_cache_entries: Annotated[int, Field(ge=0, description="a whole number ≥ 0")] = 4096
    # The live stream (GET /v1/stream/trends): the topics it follows and the events kept in memory, so that a
    # client that reconnects within them is served without a Kafka read of its own.
    alerts_topic: str = ALERTS_TOPIC
    anomalies_topic: str = ANOMALIES_TOPIC
    stream_buffer_events: Annotated[int, Field(ge=0, description="a whole number ≥ 0")] = 10_000
    # The consumer groups whose lag /v1/health reports (the jobs' default --group-id).
    lag_groups: list[str] = Field(default_factory=lambda: [f"streampulse-{job}" for job in
                                                           ("trending", "volume", "conversations", "archive",
                                                            "deletions")])

    @model_validator(mode="after")
    def _default_page_within_cap(self):
        if self.default_page_size > self.max_page_size:
            raise ValueError(f"api.default_page_size ({self.default_page_size}) must be at most "
                             f"api.max_page_size ({self.max_page_size})")
        return self


class Settings(BaseSettings):
    """Everything StreamPulse reads from config/ and the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    stack: StackSettings = Field(default_factory=StackSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    minio: MinioSettings = Field(default_factory=MinioSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    superset: SupersetSettings = Field(default_factory=SupersetSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    bluesky: BlueskySettings = Field(default_factory=BlueskySettings)
    reddit: RedditSettings = Field(default_factory=RedditSettings)
    mastodon: MastodonSettings = Field(default_factory=MastodonSettings)
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
    trending: TrendingSettings = Field(default_factory=TrendingSettings)
    volume: VolumeSettings = Field(default_factory=VolumeSettings)
    conversations: ConversationSettings = Field(default_factory=ConversationSettings)
    deletions: DeletionsSettings = Field(default_factory=DeletionsSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments > environment > YAML file (passed as init kwargs by load_settings).
        return env_settings, init_settings

    @cached_property
    def credentials_file(self) -> Path:
        return self.stack.state_path / "credentials.env"


def _require_secret(value: SecretStr | None, key: str) -> str:
    if value is None or not value.get_secret_value():
        raise ConfigError(
            f"{key} is not set: run `streampulse stack up` (it generates credentials into the state "
            f"folder) or export {ENV_PREFIX}{key.upper().replace('.', '__')}"
        )
    return value.get_secret_value()


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (the credentials file's format); blank lines and # comments skipped."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def config_path() -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}CONFIG", DEFAULT_CONFIG)).expanduser()


def load_settings(path: Path | None = None, *, with_credentials: bool = True) -> Settings:
    """Load the YAML file, apply environment overrides and (by default) the generated credentials.

    Credentials from <state_dir>/credentials.env are put into os.environ when not already set, so
    that every child process (Flink workers, producers, tests) inherits them.
    """
    path = path or config_path()
    try:
        raw: dict[str, Any] = yaml.safe_load(path.read_text()) or {} if path.exists() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (stack, kafka, ...), got {type(raw).__name__}")
    settings = _validate(raw, path)
    if with_credentials:
        added = {k: v for k, v in read_env_file(settings.credentials_file).items() if k not in os.environ}
        if added:
            os.environ.update(added)
            settings = _validate(raw, path)
    return settings


def _validate(raw: dict[str, Any], path: Path) -> Settings:
    try:
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


def _describe(exc: ValidationError, path: Path) -> str:
    lines = [f"invalid configuration ({path} and {ENV_PREFIX}* environment overrides):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        env_name = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
        expected = _expected_form(err["loc"]) or err["msg"]
        got = err.get("input")
        given = "" if err["type"] == "missing" else f", got {got!r}"
        lines.append(f"  {key}: expected {expected}{given} ({err['msg']}; env override: {env_name})")
    return "\n".join(lines)


def _expected_form(loc: tuple) -> str | None:
    """The field's description, found by walking the model along the error's location."""
    model: Any = Settings
    field = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return field.description if field is not None else None
        field = fields[part]
        model = field.annotation
    return field.description if field is not None else None
