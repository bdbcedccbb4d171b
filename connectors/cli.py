"""`streampulse produce SOURCE ...`: run one source through the producer runtime into Kafka.

Every source shares the same options (topics, metrics port, cursor handling, progress) and prints
the same closing summary: sent, rejected (per reason), errors, rate.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connectors.producer import (
    CursorStore,
    EventTimePacer,
    PostProducer,
    ProducerMetrics,
    SourceError,
    SourceItem,
    StopFlag,
    run_source,
)
from runtime.metrics import scrape_target
from shared.names import DELETES_TOPIC, DLQ_TOPIC, POSTS_TOPIC
from shared.post import SCHEMA_VERSIONS
from shared.settings import Settings

log = logging.getLogger("streampulse.produce")


def _bluesky_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jetstream", action="store_true", help="Jetstream v1 JSON instead of the firehose")
    parser.add_argument("--endpoint", help="ws(s):// base: the relay's /xrpc (default bluesky.firehose_url) or "
                                           "Jetstream's /subscribe (default bluesky.jetstream_url)")
    parser.add_argument("--idle-exit-s", type=float,
                        help="stop after this many seconds without a frame (default: run until stopped)")


def _reddit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subreddit", action="append", dest="subreddits", metavar="NAME",
                        help="repeatable; `all` for r/all (default: reddit.subreddits)")
    parser.add_argument("--only", choices=("submissions", "comments"), help="one kind only (default: both)")
    parser.add_argument("--user-agent", help="<platform>:<app id>:<version> (by /u/<username>) "
                                             "(default: reddit.user_agent)")
    parser.add_argument("--polls", type=int, help="stop after this many polls (default: run until stopped)")


def _mastodon_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance", help="https://host (default: mastodon.instance)")
    parser.add_argument("--stream", choices=("public", "local", "remote", "hashtag"), help="default: mastodon.stream")
    parser.add_argument("--tag", help="the hashtag, without #, for --stream hashtag")
    parser.add_argument("--reblogs", choices=("skip", "unwrap"), help="boosts: default mastodon.reblogs")
    parser.add_argument("--idle-exit-s", type=float,
                        help="stop after this many seconds without a status (default: run until stopped)")


@dataclass(frozen=True)
class LiveSource:
    """A source that runs until stopped and resumes from its cursor: `streampulse produce <name>`. Its module
    (imported when it runs) defines open_source(args, settings, stop) → (Source, CursorStore)."""

    name: str
    module: str
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None]


LIVE_SOURCES = (
    LiveSource("bluesky", "connectors.bluesky", "the Bluesky firehose (or Jetstream)",
               "Read app.bsky.feed.post creates and deletes from the full firehose (com.atproto.sync.subscribeRepos) "
               "or, with --jetstream, from Jetstream's JSON stream; resumes from the saved cursor.",
               _bluesky_arguments),
    LiveSource("reddit", "connectors.reddit", "new submissions and comments of subreddits",
               "Poll subreddits' new submissions and comments through Reddit's API (app-only OAuth with "
               "reddit.client_id/client_secret, the public JSON listings otherwise), resuming from the saved cursor.",
               _reddit_arguments),
    LiveSource("mastodon", "connectors.mastodon", "a Mastodon instance's streaming API",
               "Stream statuses from a Mastodon instance (server-sent events), backfilling every gap from the "
               "timeline API.", _mastodon_arguments),
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    produce = sub.add_parser("produce", help="publish posts from a source into Kafka",
                             description="Validate posts from a source and publish them to social.posts; "
                                         "rejects go to social.posts.dlq with their reason.")
    sources = produce.add_subparsers(dest="source", required=True, metavar="SOURCE")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--topic", default=POSTS_TOPIC, help=f"posts topic (default {POSTS_TOPIC})")
    common.add_argument("--dlq-topic", default=DLQ_TOPIC, help=f"dead-letter topic (default {DLQ_TOPIC})")
    common.add_argument("--deletes-topic", default=DELETES_TOPIC,
                        help=f"topic of deletion notices (default {DELETES_TOPIC})")
    common.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port (e.g. 9464)")
    common.add_argument("--cursor-name", help="cursor file name under <state>/cursors (default: derived from input)")
    common.add_argument("--no-resume", action="store_true", help="ignore a saved cursor and start from the beginning")
    common.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    common.add_argument("--encoding", choices=("confluent", "legacy"),
                        help="wire form: confluent (schema id from the registry, then Avro) or legacy (schemaless "
                             "Avro v1) (default: registry.producer_encoding)")
    common.add_argument("--schema-version", type=int, choices=SCHEMA_VERSIONS,
                        help="the SocialPost schema version to write, registered with the schema registry at start "
                             "(default: registry.producer_schema_version; legacy writes 1)")

    synthetic = sources.add_parser("synthetic", parents=[common], help="seeded synthetic posts with known bursts",
                                   description="Generate deterministic synthetic posts (Zipf vocabulary in several "
                                               "languages, daily rhythm, scheduled bursts) and publish them.")
    bound = synthetic.add_argument_group("size and timing")
    bound.add_argument("--count", type=int, help="number of posts (default: rate × duration)")
    bound.add_argument("--duration", type=float, help="seconds of event time (default 600 when --count is absent)")
    bound.add_argument("--rate", type=float, default=100.0, help="average posts per second of event time")
    bound.add_argument("--seed", type=int, default=42)
    bound.add_argument("--start", help="event time of the first post, ISO-8601 (default: so that the run ends now, "
                                       "or now with --speed 1)")
    bound.add_argument("--speed", type=float, default=0.0,
                       help="publish at N× real time by event time; 0 = as fast as possible (default)")
    shape = synthetic.add_argument_group("ground truth and faults")
    shape.add_argument("--burst", action="append", default=[], metavar="KEYWORD:START_S:LENGTH_S:INTENSITY[:RAMP_S]",
                       help="a scheduled burst of a keyword (repeatable), intensity = multiple of its baseline")
    shape.add_argument("--volume-event", action="append", default=[], metavar="SERIES:START_S:LENGTH_S:MULTIPLIER",
                       help="scale one series (lang:es, community:synthetic-b, source:reddit) for a while; "
                            "0 = outage (repeatable)")
    shape.add_argument("--sources", type=_weights, metavar="NAME=WEIGHT,...",
                       help="the sources the posts claim, e.g. bluesky=5,reddit=3,mastodon=2 (default: synthetic)")
    shape.add_argument("--malformed", type=float, default=0.0, help="fraction of malformed events (exact count)")
    shape.add_argument("--duplicate", type=float, default=0.0, help="fraction of re-sent posts (exact count)")
    shape.add_argument("--out-of-order", type=float, default=0.0, help="fraction of posts delayed within 20 s")
    shape.add_argument("--late", type=float, default=0.0, help="fraction of posts delayed past the watermark")
    shape.add_argument("--labels", type=Path, help="write the ground-truth label file (JSON) here")
    shape.add_argument("--output", type=Path, help="write valid posts to this .jsonl or .avro file instead of Kafka")
    synthetic.set_defaults(handler=_synthetic)

    replay = sources.add_parser("replay", parents=[common], help="replay JSONL or Avro files of SocialPost",
                                description="Publish SocialPost records from JSONL or Avro container files, as fast "
                                            "as possible or at N× real time by event time.")
    replay.add_argument("files", nargs="+", type=Path, help=".jsonl or .avro files, in order")
    replay.add_argument("--speed", type=float, default=0.0, help="N× real time by event time; 0 = as fast as possible")
    replay.set_defaults(handler=_replay)

    for spec in LIVE_SOURCES:
        live = sources.add_parser(spec.name, parents=[common], help=spec.help, description=spec.description)
        spec.arguments(live)
        live.set_defaults(handler=_live, live_source=spec)


def _synthetic(args, settings: Settings) -> int:
    from connectors import synthetic

    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    # With --count alone the run lasts until `count` posts exist, whatever the daily rhythm does to the rate.
    duration = args.duration if args.duration is not None else (None if args.count else 600.0)
    try:
        config = synthetic.SyntheticConfig(
            seed=args.seed, start_ms=0, duration_s=duration, count=args.count, rate=args.rate,
            bursts=[synthetic.Burst.parse(spec) for spec in args.burst],
            volume_events=[synthetic.VolumeEvent.parse(spec) for spec in args.volume_event], malformed=args.malformed,
            duplicate=args.duplicate, out_of_order=args.out_of_order, late=args.late,
            **({"sources": args.sources} if args.sources else {}))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.start:
        start_ms = _iso_millis(args.start, "--start")
    elif args.speed > 0:
        start_ms = now_ms
    else:  # as fast as possible: the whole run lies in the past, so no post is "from the future"
        span_s = duration if duration is not None else synthetic.count_horizon_s(config)
        start_ms = now_ms - int(span_s * 1000)
    config = dataclasses.replace(config, start_ms=start_ms)
    if args.labels:
        synthetic.write_labels(config, args.labels)
        log.info("labels written to %s", args.labels)
    if args.output:
        return _write_file(config, args.output)

    fingerprint = hashlib.sha256(json.dumps(synthetic.labels(config)["config"], sort_keys=True,
                                            default=str).encode()).hexdigest()[:12]
    cursor_store = CursorStore.for_source(settings, args.cursor_name or f"synthetic-{fingerprint}")
    skip = 0 if args.no_resume else int(cursor_store.load() or 0)
    if skip:
        log.info("resuming after event %d (cursor %s)", skip, cursor_store.path)

    def items():
        for index, event in enumerate(synthetic.generate(config), start=1):
            if index > skip:
                yield SourceItem(event.payload, cursor=index, uid_hint=event.uid)

    def event_time(item: SourceItem) -> int | None:
        return item.payload.get("created_at") if isinstance(item.payload, dict) else None

    total = synthetic.labels(config)["counts"]["events"] - skip
    return _publish(args, settings, "synthetic", items(), cursor_store, total, event_time)


def _replay(args, settings: Settings) -> int:
    from connectors import replay

    name = args.cursor_name or "replay-" + hashlib.sha256(
        "\0".join(str(p.resolve()) for p in args.files).encode()).hexdigest()[:12]
    cursor_store = CursorStore.for_source(settings, name)
    resume = None if args.no_resume else cursor_store.load()
    try:
        items = replay.read_items(args.files, resume_from=resume)
        first = next(items, None)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if resume:
        log.info("resuming after %s record %s (cursor %s)", resume["file"], resume["record"], cursor_store.path)

    def chained():
        if first is not None:
            yield first
            yield from items

    return _publish(args, settings, "replay", chained(), cursor_store, None, replay.event_time)


def _live(args, settings: Settings) -> int:
    """A registered live source (LIVE_SOURCES): built by its module's open_source, run until it stops."""
    spec = args.live_source
    stop = StopFlag()
    try:
        source, cursor_store = importlib.import_module(spec.module).open_source(args, settings, stop)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _publish(args, settings, spec.name, source.items(), cursor_store, None, None, stop=stop)
    finally:
        source.close()


def _publish(args, settings, source, items, cursor_store, total, event_time, stop: StopFlag | None = None) -> int:
    from tqdm import tqdm

    metrics = ProducerMetrics()
    announce = contextlib.nullcontext()
    if args.metrics_port:
        metrics.serve(args.metrics_port)
        announce = scrape_target(settings, f"producer-{source}", args.metrics_port, {"source": source})
    producer = PostProducer(settings, source, topic=args.topic, dlq_topic=args.dlq_topic,
                            deletes_topic=args.deletes_topic, metrics=metrics, encoding=args.encoding,
                            schema_version=args.schema_version)
    stop = (stop or StopFlag()).install()
    speed = getattr(args, "speed", 0.0)  # live sources have no pace of their own
    pacer = EventTimePacer(speed) if speed > 0 else None
    progress = tqdm(total=total, unit="post", file=sys.stderr, disable=args.no_progress, mininterval=0.5,
                    desc=f"produce {source}")
    try:
        with announce:  # the stack's Prometheus scrapes this producer while it runs
            summary = run_source(producer, items, cursor_store=cursor_store, pacer=pacer, event_time=event_time,
                                 progress=progress, stop=stop)
    finally:
        progress.close()
        producer.close()
        stop.restore()
    print(f"{source}: {summary.line()}", file=sys.stderr)
    if stop.stopping:
        print(f"stopped by signal; cursor saved in {cursor_store.path}", file=sys.stderr)
    return 0  # records Kafka kept refusing end the run with ProduceError (an error and a non-zero exit)


def _write_file(config, path: Path) -> int:
    from connectors import replay, synthetic
    from shared.post import parse_post

    def posts():
        for event in synthetic.generate(config):
            if event.expected_reject or event.is_duplicate:
                continue  # files hold each valid post once; faults are injected on the way into Kafka
            yield parse_post(event.payload, now=event.payload["created_at"], ingested_at=event.payload["created_at"])

    writer = replay.write_avro if path.suffix == ".avro" else replay.write_jsonl
    count = writer(posts(), path)
    print(f"wrote {count:,} posts to {path}", file=sys.stderr)
    return 0


def _weights(value: str) -> dict[str, float]:
    """NAME=WEIGHT,... → {name: weight}; argparse reports the ValueError's message."""
    try:
        pairs = [item.split("=", 1) for item in value.split(",")]
        return {name.strip(): float(weight) for name, weight in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected NAME=WEIGHT,... such as bluesky=5,reddit=3") from None


def _iso_millis(value: str, option: str) -> int:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"error: {option} {value!r} is not an ISO-8601 time such as 2026-11-01T12:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
