"""Building Flink environments for StreamPulse jobs: the jars, the Python interpreter, checkpointing
and logging set the same way for every job, whether run embedded (`streampulse run JOB`) or
submitted to a cluster.
"""

from __future__ import annotations

import logging
import os
import re
import string
import sys
import sysconfig
from pathlib import Path

import yaml

from shared.settings import PROJECT_ROOT, Settings

SQL_DIR = PROJECT_ROOT / "sql" / "flink"
FLINK_CONF = PROJECT_ROOT / "flink-conf" / "config.yaml"

log = logging.getLogger(__name__)


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """Nested YAML keys as Flink's dotted ones: {"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, name + ".")
        else:
            flat[name] = value
    return flat


def prepare_process_environment(settings: Settings) -> None:
    """Env vars the PyFlink gateway JVM reads at start: keep its logs out of site-packages and
    give it a plugins folder with the S3 filesystem next to the wheel's metric reporters."""
    import pyflink

    from shared import jar_manifest as jars

    state = settings.stack.state_path / "flink"
    log_dir = state / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FLINK_LOG_DIR", str(log_dir))
    plugins = state / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    links = {"metrics-prometheus": Path(pyflink.__file__).parent / "plugins" / "metrics-prometheus"}
    s3_jars = jars.jars_of("flink-plugin-s3", settings.stack.cache_path)
    links["s3-fs-hadoop"] = s3_jars[0].parent
    for name, target in links.items():
        link = plugins / name
        if link.is_symlink() and link.resolve() != target.resolve():
            link.unlink()
        if not link.exists():
            link.symlink_to(target, target_is_directory=True)
    os.environ.setdefault("FLINK_PLUGINS_DIR", str(plugins))
    # An embedded job would otherwise start PyFlink's "loopback" worker pool: an unauthenticated gRPC server on
    # every interface ([::]:0) that starts Python workers on request. In process mode the JVM starts them itself.
    os.environ.setdefault("_python_worker_execution_mode", "process")
    # Without FLINK_HOME, PyFlink's gateway launcher looks for it and on the way resets FLINK_PLUGINS_DIR
    # to the wheel's own plugins folder (pyflink/find_flink_home.py), which has no S3 filesystem.
    os.environ.setdefault("FLINK_HOME", str(Path(pyflink.__file__).parent))
    # The gateway's logging: all to its log file, errors only on the terminal (flink-conf/log4j-cli.properties).
    os.environ.setdefault("LOG4J_PROPERTIES", str(PROJECT_ROOT / "flink-conf" / "log4j-cli.properties"))


def job_config(settings: Settings, job_name: str) -> dict[str, str]:
    """The Flink configuration every StreamPulse job starts from."""
    from shared import jar_manifest as jars

    site_packages = sysconfig.get_paths()["purelib"]
    flink = settings.flink
    config = {
        "pipeline.name": job_name,
        "pipeline.jars": ";".join(p.as_uri() for p in jars.jars_of("flink-job", settings.stack.cache_path)),
        "parallelism.default": str(flink.parallelism),
        "pipeline.max-parallelism": str(flink.max_parallelism),
        # Every SQL operator gets a uid from its plan node ("<id>_<transformation>"), so a savepoint restores at
        # another parallelism. Without one its id is a hash of the graph around it, chaining included: at
        # parallelism 1 the filesystem sink's committer (always 1) chains to its writer and the ids change.
        "table.exec.uid.generation": "ALWAYS",
        # Python workers must use this venv, not whatever `python` is first on PATH.
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.execution-mode": flink.python_execution_mode,
        "python.pythonpath": f"{PROJECT_ROOT}{os.pathsep}{site_packages}",
        "execution.checkpointing.interval": f"{int(flink.checkpoint_interval_s * 1000)} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        # The embedded mini-cluster's REST API (it can run any jar), blob server and shuffle listen on this
        # machine only; a cluster sets its own (stack/cluster.py, docker/flink-cluster.sh).
        "rest.address": "localhost",
        "rest.bind-address": "localhost",
        "jobmanager.bind-host": "localhost",
        "taskmanager.bind-host": "localhost",
        "taskmanager.host": "localhost",
        "state.backend.type": flink.state_backend,
        # One-phase aggregation: the two-phase split ships whole COUNT(DISTINCT) sets from the local to
        # the global window operator, which re-serialises them into RocksDB on every merge (measured
        # 4× slower end to end on 20,000 posts; bench/trending_throughput.py).
        "table.optimizer.agg-phase-strategy": "ONE_PHASE",
        "execution.checkpointing.dir": flink.checkpoint_dir or (settings.stack.state_path / "flink"
                                                                / "checkpoints").as_uri(),
        # No source idleness for the posts: under backpressure or right after a restart one partition can go
        # unread for seconds while another races ahead, and an idle partition no longer holds the watermark,
        # so its posts would arrive late and be dropped from their windows (seen in tests/integration/
        # test_faults.py with a 5 s timeout). Every posts partition carries traffic (keys are uids); a source
        # that may truly be quiet sets 'scan.watermark.idle-timeout' itself (the dead-letter topic).
        # The cluster's restart strategy: a job recovers the same way embedded and submitted.
        **{key: str(value) for key, value in flatten(
            {"restart-strategy": yaml.safe_load(FLINK_CONF.read_text())["restart-strategy"]}).items()},
    }
    if settings.minio.access_key and settings.minio.secret_key:
        config |= {
            "s3.endpoint": f"http://{settings.minio.endpoint}",
            "s3.path.style.access": "true",
            "s3.access-key": settings.minio.access_key.get_secret_value(),
            "s3.secret-key": settings.minio.secret_key.get_secret_value(),
        }
    return config


def time_to_live(seconds: int):
    """Flink state TTL for keyed state that must not grow with every key ever seen: an entry expires `seconds`
    of processing time after it was last written, is never read once expired, and RocksDB's compaction filter
    drops it (full snapshots leave it out too).

    Built in a Python worker's open(), where a cluster's TaskManager gives no JVM gateway: PyFlink's *default*
    background cleanup makes a py4j Duration for RocksDB's periodic compaction and fails there (FileNotFoundError
    launching a gateway). So the defaults are off and the compaction filter is named explicitly; the periodic
    compaction time is required to be set but only the query interval reaches Java (fn_execution/embedded/
    java_utils.py), so a plain Python value stands in for it."""
    from pyflink.common.time import Time
    from pyflink.datastream.state import StateTtlConfig

    return (StateTtlConfig.new_builder(Time.seconds(seconds))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .disable_cleanup_in_background()
            .cleanup_full_snapshot()
            .cleanup_in_rocksdb_compact_filter(1000, Time.seconds(30 * 86_400))
            .build())


def initialize_file_systems(config: dict[str, str]) -> None:
    """Load the filesystem plugins (s3:// on MinIO) with the job's s3.* keys into the JVM that runs the
    job. A cluster's processes do this at start; the embedded mini-cluster lives in PyFlink's gateway
    JVM, which never does, so without this an embedded job cannot read or write s3:// at all. Under
    `flink run` it repeats what the CLI did, with the same plugins."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    j_config = jvm.org.apache.flink.configuration.Configuration()
    for key, value in config.items():
        j_config.setString(key, value)
    plugins = jvm.org.apache.flink.core.plugin.PluginUtils.createPluginManagerFromRootFolder(j_config)
    jvm.org.apache.flink.core.fs.FileSystem.initialize(j_config, plugins)


def table_env(settings: Settings, job_name: str, *, streaming: bool = True, extra: dict[str, str] | None = None):
    from pyflink.table import EnvironmentSettings, TableEnvironment

    prepare_process_environment(settings)
    mode = EnvironmentSettings.in_streaming_mode() if streaming else EnvironmentSettings.in_batch_mode()
    t_env = TableEnvironment.create(mode)
    conf = t_env.get_config()
    config = job_config(settings, job_name) | (extra or {})
    for key, value in config.items():
        conf.set(key, value)
    initialize_file_systems(config)
    return t_env


def contract_values() -> dict[str, str]:
    """Placeholders every SQL file may use, derived from the contracts: the SocialPost columns as Kafka's Avro
    records carry them (`post_columns`) and as the lake stores them (`lake_post_columns`: UTC timestamps, the
    source in the partition path); a lake row as the post's JSON document (`lake_post_json`: timestamps in
    ISO-8601 UTC, which shared/post.py parse_post reads); seconds since the epoch of the timestamp columns the
    minute batches need (`epoch_s_of_<column>`)."""
    from shared.post import FIELDS, flink_columns, is_timestamp

    json_fields = ", ".join(f"'{name}' VALUE CAST(`{name}` AS TIMESTAMP_LTZ(3))" if is_timestamp(avro_type)
                            else f"'{name}' VALUE `{name}`" for name, avro_type in FIELDS.items())
    return {"post_columns": flink_columns(), "lake_post_columns": flink_columns("TIMESTAMP(3)", exclude=("source",)),
            "lake_post_json": f"JSON_OBJECT({json_fields})",
            **{f"epoch_s_of_{column}": epoch_seconds(column) for column in ("event_ts", "newest_ts", "created_at")}}


def epoch_seconds(column: str) -> str:
    """SQL: seconds since the epoch of a TIMESTAMP column (UTC) as BIGINT. TIMESTAMPDIFF(SECOND, ...) alone is
    an INT, which overflows in 2038: whole days, then the seconds into the day."""
    epoch = "TIMESTAMP '1970-01-01 00:00:00'"
    return (f"(CAST(TIMESTAMPDIFF(DAY, {epoch}, {column}) AS BIGINT) * 86400 + TIMESTAMPDIFF(SECOND, "
            f"TIMESTAMPADD(DAY, TIMESTAMPDIFF(DAY, {epoch}, {column}), {epoch}), {column}))")


def sql_statements(name: str, **values: object) -> list[str]:
    """sql/flink/<name>.sql with ${placeholders} filled, split into statements at `;` line ends."""
    values = contract_values() | {"table_suffix": ""} | values  # table_suffix: runtime/backfill.py
    text = string.Template((SQL_DIR / f"{name}.sql").read_text()).substitute({k: str(v) for k, v in values.items()})
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [stmt.strip() for stmt in re.split(r";\s*$", text, flags=re.MULTILINE) if stmt.strip()]


def add_sql(t_env, statement_set, name: str, *, skip_inserts_into: frozenset[str] = frozenset(),
            **values: object) -> None:
    """Run sql/flink/<name>.sql: DDL and views now, INSERTs into the job's statement set (one job), but those into
    a table named in `skip_inserts_into` (a backfill leaves out what only a live job writes)."""
    for statement in sql_statements(name, **values):
        if statement.upper().startswith("INSERT"):
            target = re.match(r"INSERT\s+INTO\s+`?(\w+)", statement, re.IGNORECASE)
            if not (target and target.group(1) in skip_inserts_into):
                statement_set.add_insert_sql(statement)
        else:
            t_env.execute_sql(statement)


def add_outputs(t_env, statement_set, views: dict, sql_files: tuple[str, ...], *,
                skip_inserts_into: frozenset[str] = frozenset(), **values: object) -> None:
    """The end of every job's build: its Python streams registered as views (`views`: name → DataStream), the SQL
    files that write them to their sinks added to the job's one statement set, and the set attached to the
    DataStream graph, so that env.execute runs it all as one job, as `flink run` expects."""
    for name, stream in views.items():
        t_env.create_temporary_view(name, t_env.from_data_stream(stream))
    for name in sql_files:
        add_sql(t_env, statement_set, name, skip_inserts_into=skip_inserts_into, **values)
    statement_set.attach_as_datastream()


def _options(options: dict[str, str]) -> str:
    return ",\n    ".join(f"'{key}' = '{value}'" for key, value in options.items())


def _kafka(settings: Settings, topic: str) -> dict[str, str]:
    """A Kafka table's topic, broker and login: the jobs' SCRAM user (stack/services/kafka.py ACLs)."""
    return {"connector": "kafka", "topic": topic, "properties.bootstrap.servers": settings.kafka.bootstrap,
            "properties.security.protocol": "SASL_PLAINTEXT", "properties.sasl.mechanism": "SCRAM-SHA-512",
            "properties.sasl.jaas.config": settings.kafka.jaas("jobs")}


def kafka_source(settings: Settings, *, topic: str, group_id: str, bounded: bool,
                 watermark_per_event: bool = False, aligned: bool = False) -> str:
    """The WITH options of a Kafka table a job reads (a `${..._source}` placeholder in sql/flink/*.sql): read
    committed, from the group's offsets (the earliest for a new group), or, bounded, from the start to the
    topic's current end. `aligned`: unbounded, its partitions' watermarks stay within
    flink.watermark_alignment_drift_s of each other (split-level watermark alignment: the Kafka source pauses a
    split that runs ahead)."""
    options = _kafka(settings, topic) | {"properties.group.id": group_id,
                                         "properties.isolation.level": "read_committed"}
    drift_s = settings.flink.watermark_alignment_drift_s
    # Not on a bounded read: when a partition reaches its stopping offset while an alignment check pauses or
    # resumes it, the Kafka source 5.0.0 fails the job ("No current assignment for partition", FLINK-39728, fixed
    # after that release). A bounded read is a replay of a finite input, where the state a fast partition piles
    # up is bounded by the input anyway.
    if aligned and drift_s and not bounded:
        options |= {"scan.watermark.alignment.group": topic,
                    "scan.watermark.alignment.max-drift": f"{drift_s} s",
                    "scan.watermark.alignment.update-interval": "1 s"}
    if bounded:
        options |= {"scan.startup.mode": "earliest-offset", "scan.bounded.mode": "latest-offset"}
        if watermark_per_event:
            options["scan.watermark.emit.strategy"] = "on-event"
    else:
        options |= {"scan.startup.mode": "group-offsets", "properties.auto.offset.reset": "earliest"}
    return _options(options)


def kafka_sink(settings: Settings, *, topic: str, transactional_id_prefix: str) -> str:
    """The WITH options of a Kafka table a job writes (a `${..._sink}` placeholder): exactly once, through
    transactions that commit with the checkpoints."""
    return _options(_kafka(settings, topic) | {
        "sink.delivery-guarantee": "exactly-once", "sink.transactional-id-prefix": transactional_id_prefix,
        "properties.transaction.timeout.ms": "600000"})


def posts_source_values(settings: Settings, *, topic: str, group_id: str, bounded: bool,
                        watermark_s: int) -> dict[str, str]:
    """The placeholders of sql/flink/social_posts_source.sql (the `social_posts` table) for one job."""
    return {
        "table_name": "social_posts",
        # What is late depends on each partition's order alone (sql/flink/posts_by_minute.sql). A bounded run
        # (tests, demo) often reads its whole input before the first periodic watermark tick; a watermark per
        # event makes minutes close while the input is read, as they do live, instead of all at once on the
        # end-of-input watermark (whose timers' output PyFlink was seen to lose, 2 runs in 12).
        "kafka_source": kafka_source(settings, topic=topic, group_id=group_id, bounded=bounded,
                                     watermark_per_event=True, aligned=True),
        "watermark": interval(watermark_s), "watermark_s": watermark_s,
    }


def jdbc_options(settings: Settings, role: str = "writer") -> dict[str, str]:
    pg = settings.postgres
    return {
        "jdbc_url": pg.jdbc_url(),
        "jdbc_user": getattr(pg, f"{role}_user"),
        "jdbc_password": getattr(pg, f"{role}_password").get_secret_value(),
    }


def stream_env(settings: Settings, job_name: str, *, extra: dict[str, str] | None = None, batch: bool = False):
    """A DataStream environment and a Table environment over it, for jobs that mix the two APIs. `batch`: Flink's
    BATCH execution (a backfill over a finished period): bounded inputs only, each keyed operator's input sorted
    by key, event-time timers fired when a key's input ends, no checkpoints."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import EnvironmentSettings, StreamTableEnvironment

    prepare_process_environment(settings)
    config = Configuration()
    values = job_config(settings, job_name) | (extra or {})
    if batch:
        values = {k: v for k, v in values.items() if not k.startswith("execution.checkpointing.interval")}
        values["execution.runtime-mode"] = "BATCH"
    for key, value in values.items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    mode = EnvironmentSettings.new_instance()
    mode = mode.in_batch_mode() if batch else mode.in_streaming_mode()
    t_env = StreamTableEnvironment.create(env, mode.with_configuration(config).build())
    initialize_file_systems(values)
    return env, t_env


def interval(seconds: int) -> str:
    """A Flink SQL interval literal of any length (INTERVAL 'n' SECOND only takes two digits)."""
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{secs:02d}' DAY TO SECOND"


class JobFailed(RuntimeError):
    """A job run in the foreground ended FAILED; the message is its root cause."""


def execute(env, job_name: str, *, progress_s: float = 30.0) -> None:
    """Run the job. Under `flink run` as the client expects (attached, or detached: submitted and returned).
    Embedded (`streampulse run`, `python jobs/<job>.py`), on this process's mini-cluster, watched: the terminal
    sees the job's state changes, each failure's root cause and a progress line (runtime/job_watch.py), and a
    job that ends FAILED raises JobFailed with its root cause."""
    from py4j.protocol import Py4JJavaError

    from runtime.job_watch import JobWatch, root_cause

    if env._j_stream_execution_environment.getClass().getSimpleName() != "LocalStreamEnvironment":
        env.execute(job_name)
        return
    client = env.execute_async(job_name)
    j_client = client._j_job_client
    watch = None
    try:  # the mini-cluster's REST endpoint (random port): the JobClient of a local run keeps it private
        field = j_client.getClass().getDeclaredField("miniCluster")
        field.setAccessible(True)
        rest_url = field.get(j_client).getRestAddress().get().toString()
        watch = JobWatch(rest_url, str(client.get_job_id()), job_name, progress_s=progress_s)
        watch.start()
        log.info("%s: REST API at %s (what the Flink Web UI reads)", job_name, rest_url)
    except Py4JJavaError as exc:
        log.warning("%s runs unwatched: no REST endpoint (%s)", job_name, exc.java_exception)
    try:
        client.get_job_execution_result().result()
        if watch is not None and watch.state != "FINISHED":  # a bounded run: the mini-cluster may be gone
            watch.state = "FINISHED"
            watch.say("FINISHED")
    except Py4JJavaError as exc:
        raise JobFailed(f"{job_name} FAILED: {root_cause(_stack_of(exc.java_exception))}") from None
    finally:
        if watch is not None:
            watch.stop()


def _stack_of(java_exception) -> str:
    """A Java exception and its causes, innermost last, as a stack trace lists them."""
    lines, cause = [java_exception.toString()], java_exception.getCause()
    while cause is not None:
        lines.append(f"Caused by: {cause.toString()}")
        cause = cause.getCause()
    return "\n".join(lines)
