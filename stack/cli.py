"""`streampulse`: the one entry point for people. Logs and progress go to stderr, results to stdout."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from runtime.clients import ServiceUnavailable
from shared.settings import ENV_PREFIX, ConfigError, config_path, load_settings

log = logging.getLogger("streampulse")


def _stack(args, settings) -> int:
    from stack import manager

    if args.action == "up":
        settings = manager.up(settings)  # with the credentials it may just have generated
        return 0 if manager.status(settings) else 1
    if args.action == "down":
        manager.down(settings)
        return 0
    if args.action == "status":
        return 0 if manager.status(settings) else 3  # 3 = not running, as `systemctl status` / LSB say
    if args.action == "provision":
        manager.provision(settings)
        return 0
    if args.action == "migrate":
        applied = manager.migrate(settings)
        print("applied: " + (", ".join(applied) or "none pending"))
        return 0
    if args.action == "retention":
        actions = manager.maintain_partitions(settings)
        for action, partition in actions:
            print(f"{action} {partition}")
        print(manager.describe_partitions(actions, settings), file=sys.stderr)
        return 0
    if args.action == "logs":
        files = manager.log_files(settings)
        chosen = [args.service] if args.service else list(files)
        cmd = ["tail", f"-n{args.lines}", *(["-F"] if args.follow else []), *(str(files[s]) for s in chosen)]
        return subprocess.call(cmd)
    raise AssertionError(args.action)


def _api(args, settings) -> int:
    from api.server import serve

    return serve(settings, host=args.host, port=args.port, workers=args.workers, access_log=args.access_log)


def _superset(args, settings) -> int:
    from stack import manager
    from stack.services import new_secret
    from stack.superset import Superset

    if args.action == "up":
        if not settings.superset.production:  # local use: generated, never a default
            settings = manager.ensure_credentials(settings, {
                "STREAMPULSE_SUPERSET__SECRET_KEY": lambda: new_secret() + new_secret(),
                "STREAMPULSE_SUPERSET__ADMIN_PASSWORD": new_secret})
        Superset(settings).up()  # refuses weak or default secrets in production (check_secrets)
        return 0
    superset = Superset(settings)
    if args.action == "import":
        superset.import_bundle()
        return 0
    if args.action == "down":
        print("superset: stopped" if superset.stop() else "superset: was not running", file=sys.stderr)
        return 0
    if args.action == "status":
        pid = superset.process.pid()
        up = pid is not None and superset.ready()
        print(f"superset   {'up' if up else 'down':<8} {superset.url}" + (f"  pid {pid}" if pid else ""))
        return 0 if up else 3
    raise AssertionError(args.action)


def _jars(args, settings) -> int:
    from stack import jars

    for name, folder in jars.fetch_all(settings.stack.cache_path, args.groups or None).items():
        print(f"{name}: {folder} ({len(list(folder.rglob('*.jar')))} jars)")
    return 0


def _run(args, settings) -> int:
    import importlib

    module = importlib.import_module(f"jobs.{args.job}")
    return module.main(args.job_args) or 0


def _backfill(args, settings) -> int:
    import importlib

    job_args = ["--from", args.start, "--to", args.end, *(["--target-tables", args.target_tables]
                                                          if args.target_tables else []),
                *(["--lake", args.lake] if args.lake else [])]
    return importlib.import_module(f"jobs.{args.job}").main(job_args) or 0


def _demo(args, settings) -> int:
    from stack import demo

    return demo.run(settings)


JOBS = sorted(p.stem for p in (Path(__file__).parent.parent / "jobs").glob("[a-z]*.py"))
BACKFILL_JOBS = ("trending", "volume")  # the jobs with a backfill (runtime/backfill.py)


def _cluster(args, settings) -> int:
    from stack.cluster import Cluster

    cluster = Cluster(settings)
    if args.action == "up":
        cluster.up()
    elif args.action == "down":
        cluster.down()
    else:
        return 0 if cluster.status() else 3
    return 0


def _submit(args, settings) -> int:
    from stack.cluster import Cluster

    # submit's own options given after the job's name land in REMAINDER too: before a `--` (then nothing else may
    # be there), or anywhere when argparse dropped a `--` that directly followed the job's name.
    late = argparse.ArgumentParser(prog=f"streampulse submit {args.job}", add_help=False)
    late.add_argument("--from-savepoint")
    late.add_argument("--parallelism", "-p", type=_positive_int)
    job_args = list(args.job_args)
    if "--" in job_args:
        at = job_args.index("--")
        parsed, unknown = late.parse_known_args(job_args[:at])
        if unknown:
            raise SystemExit(f"streampulse submit: unknown option(s) before `--`: {' '.join(unknown)}")
        job_args = job_args[at + 1:]
    else:
        parsed, job_args = late.parse_known_args(job_args)
    args.from_savepoint = parsed.from_savepoint or args.from_savepoint
    args.parallelism = parsed.parallelism or args.parallelism
    print(Cluster(settings).submit(args.job, job_args, args.from_savepoint, parallelism=args.parallelism))
    return 0


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return int(text)


def _jobs(args, settings) -> int:
    from stack.cluster import Cluster

    for job in Cluster(settings).jobs():
        print(f"{job['jid']}  {job['state']:<10} {job['name']}")
    return 0


def _savepoint(args, settings) -> int:
    from stack.cluster import Cluster

    print(Cluster(settings).savepoint(args.job_id, cancel=args.cancel))
    return 0


def _lake(args, settings) -> int:
    from runtime import lake

    if args.watch:
        # A signal lets the run under way finish (a rewrite is never left half done); a second one interrupts.
        from runtime.stop import StopFlag

        stop = StopFlag("stopping after this compaction run").install()
        lake.compact_forever(settings, args.path, settings.deletions.compact_every_s, stop)
        return 130
    print(lake.compact_and_report(settings, args.path).line())
    return 0


def _cancel(args, settings) -> int:
    from stack.cluster import Cluster

    Cluster(settings).cancel(args.job_id)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from runtime.lake import lake_path

    parser = argparse.ArgumentParser(
        prog="streampulse",
        description="StreamPulse: real-time social trends on Apache Flink.",
        epilog=f"Settings come from config/streampulse.yaml (or --config / {ENV_PREFIX}CONFIG), "
        f"overridden by {ENV_PREFIX}<SECTION>__<KEY> environment variables.",
    )
    parser.add_argument("--config", type=Path, help="settings file (default: config/streampulse.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = sub.add_parser("stack", help="the local stack: Kafka, PostgreSQL, Redis, MinIO",
                           description="Start, check and stop the local stack (processes on loopback ports).")
    actions = stack.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("up", help="install what is missing, start every service, create topics/schema/bucket "
                                  "(idempotent, keeps data)")
    actions.add_parser("down", help="stop exactly the processes the stack started")
    actions.add_parser("status", help="each service's state; exit 0 when all are up, 3 otherwise")
    actions.add_parser("migrate", help="apply pending sql/migrations to PostgreSQL")
    actions.add_parser("provision", help="create topics, apply migrations and create the bucket on services that "
                                         "are already running (e.g. docker-compose's)")
    actions.add_parser("retention", help="create PostgreSQL's day partitions ahead, drop those (and quarantined "
                                         "records) past postgres.retention_days (idempotent; run it daily)")
    logs = actions.add_parser("logs", help="show service logs")
    logs.add_argument("service", nargs="?", choices=["postgres", "redis", "minio", "kafka"])
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.add_argument("-f", "--follow", action="store_true")
    stack.set_defaults(handler=_stack)

    jars = sub.add_parser("jars", help="JVM pieces from config/jars.yaml")
    jar_actions = jars.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = jar_actions.add_parser("fetch", help="resolve the manifest with Maven into the cache (idempotent)")
    fetch.add_argument("groups", nargs="*")
    jars.set_defaults(handler=_jars)

    run = sub.add_parser("run", help="run a job embedded on a local Flink mini-cluster",
                         description="Run jobs/<JOB>.py in this process's Flink mini-cluster.")
    run.add_argument("job", choices=JOBS)
    run.add_argument("job_args", nargs=argparse.REMAINDER, help="passed to the job (see `streampulse run JOB --help`)")
    run.set_defaults(handler=_run)

    from runtime.backfill import table_suffix, utc_time

    backfill = sub.add_parser(
        "backfill", help="recompute a job's results for a past period from the lake (Flink batch mode)",
        description="Run the job's own SQL and scoring over the lake's posts of [--from, --to) in Flink's batch "
                    "mode, upserting into its PostgreSQL tables (or side tables <table>_NAME). Never Kafka or "
                    "Redis. It starts cold at --from, as the stream did when it started. The job's other "
                    "options: `streampulse run JOB -- --from ... --to ... [options]`.")
    backfill.add_argument("job", choices=BACKFILL_JOBS)
    backfill.add_argument("--from", dest="start", required=True, metavar="TIME",
                          type=lambda v: utc_time(v) and v, help="the period's start, ISO-8601 (UTC unless offset)")
    backfill.add_argument("--to", dest="end", required=True, metavar="TIME", type=lambda v: utc_time(v) and v,
                          help="the period's end (exclusive)")
    backfill.add_argument("--target-tables", metavar="NAME", type=table_suffix,
                          help="write side tables <table>_NAME instead of the real ones")
    backfill.add_argument("--lake", type=lake_path, help="the lake (default: the archive's)")
    backfill.set_defaults(handler=_backfill)

    from connectors import cli as produce_cli

    produce_cli.add_parser(sub)

    cluster = sub.add_parser("cluster", help="a standalone Flink session cluster (JobManager + TaskManager)",
                             description="Start, check and stop a Flink session cluster from the PyFlink wheel's "
                             "scripts with flink-conf/config.yaml; Web UI on flink.rest_port.")
    cluster.add_argument("action", choices=["up", "down", "status"])
    cluster.set_defaults(handler=_cluster)
    submit = sub.add_parser("submit", help="submit a job to the cluster with `flink run -py`",
                            description="Run `flink run --detached -py jobs/JOB.py` against the cluster.")
    submit.add_argument("job", choices=JOBS)
    submit.add_argument("--from-savepoint", metavar="PATH", help="restore the job's state from this savepoint")
    submit.add_argument("--parallelism", "-p", type=_positive_int, metavar="N",
                        help="the job's parallelism for this run (default: flink.parallelism); with "
                        "--from-savepoint, rescales the saved state (up to flink.max_parallelism)")
    submit.add_argument("job_args", nargs=argparse.REMAINDER, help="passed to the job after `--`")
    submit.set_defaults(handler=_submit)
    jobs = sub.add_parser("jobs", help="the cluster's jobs, from its REST API")
    jobs.set_defaults(handler=_jobs)
    savepoint = sub.add_parser("savepoint", help="take a savepoint of a running job and print its path")
    savepoint.add_argument("job_id")
    savepoint.add_argument("--cancel", action="store_true", help="cancel the job once the savepoint is taken")
    savepoint.set_defaults(handler=_savepoint)
    cancel = sub.add_parser("cancel", help="cancel a running job")
    cancel.add_argument("job_id")
    cancel.set_defaults(handler=_cancel)

    superset = sub.add_parser(
        "superset", help="Apache Superset dashboards over the sink tables (own venv, SQLite metadata)",
        description="Install Superset into its own venv when needed, start it and import the Trends and Volume & "
        "Health dashboards (dashboards/superset/bundle). Admin password and secret key: "
        f"{ENV_PREFIX}SUPERSET__ADMIN_PASSWORD / {ENV_PREFIX}SUPERSET__SECRET_KEY, generated for local use; "
        "required with superset.production.")
    superset_actions = superset.add_subparsers(dest="action", required=True, metavar="ACTION")
    superset_actions.add_parser("up", help="install, prepare the metadata, start and import the dashboards")
    superset_actions.add_parser("import", help="import the bundle again into the running Superset")
    superset_actions.add_parser("status", help="exit 0 when Superset answers, 3 otherwise")
    superset_actions.add_parser("down", help="stop the Superset this command started")
    superset.set_defaults(handler=_superset)

    lake = sub.add_parser("lake", help="the raw data lake's maintenance",
                          description="Compaction removes the posts deleted at their source (the PostgreSQL "
                          "`deletions` log, written by the deletions job) from the lake's Parquet files.")
    lake_actions = lake.add_subparsers(dest="action", required=True, metavar="ACTION")
    compact = lake_actions.add_parser("compact", help="rewrite the lake's files without the deleted posts (once, "
                                                      "or every deletions.compact_every_s with --watch)")
    compact.add_argument("--path", type=lake_path, help="the lake: s3://bucket/prefix or file:///folder "
                         "(default: the archive job's, s3://<minio.bucket>/posts)")
    compact.add_argument("--watch", action="store_true",
                         help="run until interrupted, every deletions.compact_every_s seconds")
    lake.set_defaults(handler=_lake)

    api = sub.add_parser("api", help="serve the read API (trends, keyword history, anomalies, live alerts) over HTTP",
                         description="The read API: GET /v1/trends/current, /v1/trends, /v1/keywords/{keyword}/series, "
                                     "/v1/anomalies, /v1/health and the live stream /v1/stream/trends (server-sent "
                                     "events). Settings: the api section of config/streampulse.yaml.")
    api.add_argument("--host", help="address to listen on (default: api.host)")
    api.add_argument("--port", type=int, help="port (default: api.port)")
    api.add_argument("--workers", type=int, help="worker processes (default: api.workers)")
    api.add_argument("--access-log", action="store_true", help="log every request to stderr")
    api.set_defaults(handler=_api)
    demo = sub.add_parser("demo", help="replay the bundled sample through the trending job and print the trends")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python logs every connection at INFO
        # "Task ... ran for 0.2s (>0.1s threshold)": kafka-python timing its own I/O loop while the replay
        # encodes posts on the same interpreter; nothing a user can act on.
        logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
        logging.getLogger("apache_beam").setLevel(logging.WARNING)  # PyFlink's Beam import chatter
    if args.config:
        os.environ[f"{ENV_PREFIX}CONFIG"] = str(args.config.resolve())
    try:
        if not config_path().exists():
            raise ConfigError(f"settings file {config_path()} does not exist")
        settings = load_settings()
        return args.handler(args, settings)
    except (ConfigError, ServiceUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from connectors.producer import ProduceError
        from runtime.flink import JobFailed
        from shared.jar_manifest import JarFetchError
        from stack.services import StackError

        if isinstance(exc, StackError | JarFetchError | ProduceError | JobFailed):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
