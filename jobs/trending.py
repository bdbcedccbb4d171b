"""Trending job: keywords per minute, sliding windows, z-score trends, exactly-once sinks.

    social.posts (Avro) ─► on time? ─► minute batches (JVM: JSON_ARRAYAGG per minute and shard) ─┐
                           └ late ──────────────────────────────────────────────────────────┤
        ┌────────────────────────────────────────────────────────────────────────────────────┘
        └► Count and score (Python, one stage): keywords of each post, counts per minute, sliding windows,
           EWMA z-scores, ranking, each trend's mood (sentiment, shared/enrich.py) ─► Postgres trends, Kafka
           trends.alerts (transactional), Redis; top and watched keywords and totals ─► Postgres; every keyword's
           minute counts ─► the lake

The topic is read once and every post crosses into Python once, inside its minute's batch: the JVM keeps
one list of posts per open minute (no per-keyword state), and Python counts a minute at a time
(shared/keyword_windows.py) and scores each sliding window (shared/trends.py) — DESIGN.md §3's rule that
per-post work runs batched, not a row at a time. bench/trending_throughput.py measures it.

    streampulse run trending -- [--bounded] [--topic social.posts] [--alerts-topic trends.alerts]
    streampulse backfill trending --from TIME --to TIME [--target-tables NAME]   (the lake, batch mode)
    flink run -py jobs/trending.py -- [same options]
"""

from __future__ import annotations

import json
import sys
import uuid

if __package__ in (None, ""):  # `flink run -py jobs/trending.py`: make the project importable
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from pyflink.common import Row, Types
from pyflink.datastream import OutputTag, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from runtime.backfill import add_posts_by_minute, target_tables
from runtime.backfill import period_of as backfill_period
from runtime.flink import add_outputs, interval, jdbc_options, kafka_sink, posts_source_values, stream_env
from runtime.job import job_main, run_script
from runtime.lake import lake_path
from runtime.minute_stage import QUARANTINE, MinuteStage
from runtime.trend_cache import TrendPublisher, redis_options
from shared.keyword_windows import (
    ALL_SOURCES,
    MinuteCounts,
    Progress,
    count_posts,
    sliding_window,
    top_keywords,
    watch_list,
)
from shared.names import ALERTS_TOPIC, POSTS_TOPIC
from shared.settings import Settings
from shared.trends import (
    Baseline,
    Mood,
    TrendDecision,
    TrendingSettings,
    WindowRow,
    advance,
    expired,
    mood_step,
    observe,
    rank,
)

SWEEP_EVERY_WINDOWS = 60  # how often (in sliding windows) the baselines past their TTL are dropped
TREND_ROW = Types.ROW_NAMED(
    ["window_start_ms", "window_end_ms", "keyword", "trend_rank", "posts", "authors", "baseline_mean",
     "baseline_std", "z", "sample_uids", "evidence", "evidence_start_ms", "evidence_posts", "evidence_expected",
     "p_value", "sentiment", "negative_share", "sentiment_posts", "usual_sentiment", "mood_change"],
    [Types.LONG(), Types.LONG(), Types.STRING(), Types.INT(), Types.LONG(), Types.LONG(),
     Types.DOUBLE(), Types.DOUBLE(), Types.DOUBLE(), Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(),
     Types.DOUBLE(), Types.DOUBLE(), Types.DOUBLE(), Types.DOUBLE(), Types.LONG(), Types.DOUBLE(), Types.DOUBLE()])
KEYWORD_ROW = Types.ROW_NAMED(["window_kind", "window_start_ms", "window_end_ms", "keyword", "posts", "authors", "z"],
                              [Types.STRING(), Types.LONG(), Types.LONG(), Types.STRING(), Types.LONG(),
                               Types.LONG(), Types.DOUBLE()])
TOTAL_ROW = Types.ROW_NAMED(["window_kind", "window_start_ms", "window_end_ms", "source", "posts"],
                            [Types.STRING(), Types.LONG(), Types.LONG(), Types.STRING(), Types.LONG()])
COUNT_ROW = Types.ROW_NAMED(["window_start_ms", "window_end_ms", "keyword", "posts", "authors"],
                            [Types.LONG(), Types.LONG(), Types.STRING(), Types.LONG(), Types.LONG()])
LATE_ROW = Types.ROW_NAMED(["window_start_ms", "source"], [Types.LONG(), Types.STRING()])

TRENDS = OutputTag("trends", TREND_ROW)
KEYWORDS = OutputTag("keyword-rows", KEYWORD_ROW)
TOTALS = OutputTag("window-totals", TOTAL_ROW)
LATE = OutputTag("late-posts", LATE_ROW)


def publish_to_redis(publisher: TrendPublisher, ranked: list[tuple[int, TrendDecision]],
                     moods: dict[str, Mood]) -> None:
    window_end = ranked[0][1].window_end_ms
    publisher.publish(window_end, [(d.keyword, round(d.z, 6)) for _, d in ranked], [
        (d.keyword, list(d.samples),
         {"window_start": d.window_start_ms, "window_end": d.window_end_ms, "rank": position, "posts": d.posts,
          "authors": d.authors, "baseline_mean": round(d.expected, 6), "baseline_std": round(d.std, 6),
          "z": round(d.z, 6), "evidence": d.evidence, "evidence_start": d.evidence_start_ms,
          "evidence_posts": d.evidence_posts, "evidence_expected": round(d.evidence_expected, 6),
          "p_value": d.p_value, **mood_fields(moods[d.keyword])})
        for position, d in ranked])


def mood_fields(mood: Mood) -> dict:
    """A trend's mood as Redis hash fields ("" where there is none: a hash field cannot be null)."""
    def text(value):
        return "" if value is None else round(value, 6)
    return {"sentiment": text(mood.sentiment), "negative_share": text(mood.negative_share),
            "sentiment_posts": mood.scored, "usual_sentiment": text(mood.usual), "mood_change": text(mood.change)}


class CountAndScore(MinuteStage):
    """The job's Python stage, on one key (runtime/minute_stage.py decodes, quarantines, merges the minute's
    batches and turns a batch for a closed minute into late posts). Each batch is counted on arrival; when
    the watermark closes its minute, the minute's counts go out (the lake, the totals) and every sliding
    window ending with it is scored, ranked and published, with the minute's top and watched keywords."""

    job = "trending"

    def __init__(self, settings: TrendingSettings, redis_options: dict | None, topic: str):
        super().__init__(topic, settings.tumble_s)
        self.settings, self.redis_options = settings, redis_options
        self.ignored = frozenset(settings.ignore_keywords)

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        pickled = Types.PICKLED_BYTE_ARRAY()
        self.minutes = runtime_context.get_map_state(MapStateDescriptor("minutes", Types.LONG(), pickled))
        self.baselines = runtime_context.get_map_state(MapStateDescriptor("baselines", Types.STRING(), pickled))
        self.progress_state = runtime_context.get_state(ValueStateDescriptor("progress", pickled))
        metrics = runtime_context.get_metrics_group()
        self.trends_emitted = metrics.counter("trendsEmitted")
        self.windows_scored = metrics.counter("windowsScored")
        self.baselines_expired = metrics.counter("baselinesExpired")
        # None in a backfill: Redis holds what is trending now, not in a past period
        self.redis = TrendPublisher(self.redis_options, self.settings.redis_ttl_s) if self.redis_options else None
        # Read-through copies of state this instance wrote or read; a restored instance starts empty and
        # reads the state, which stays the truth.
        self.minute_cache: dict[int, MinuteCounts] = {}
        self.baseline_cache: dict = {}
        self.progress: Progress | None = None  # loaded by a timer's first minute, saved by after_close

    # -- MinuteStage ------------------------------------------------------------------------------------------

    def count(self, index: int, posts) -> MinuteCounts:
        return count_posts(index, posts, self.settings.sentiment, self.ignored)

    def closes_with(self, index: int) -> range:
        # and the minutes after it that end a sliding window it is in: each window is scored as its last minute closes
        return range(index, index + self.settings.overlap)

    def merge(self, index: int, parts: list[MinuteCounts]) -> MinuteCounts:
        counts = MinuteCounts(index)
        for part in parts:
            counts.merge(part)
        return counts

    def late(self, window_start_ms: int, post):
        yield LATE, Row(window_start_ms, post.source)

    def close_minute(self, index: int, counts: MinuteCounts, ctx):
        """The minute's counts go out: every keyword to the lake, the totals to Postgres."""
        progress = self._progress()
        self.minutes.put(index, counts)
        self.minute_cache[index] = counts
        progress.last_data_minute = index
        if progress.first_window is None:
            progress.first_window = index + 1
        start, end = index * self.tumble_ms, (index + 1) * self.tumble_ms
        for keyword, count in counts.keywords.items():
            yield Row(start, end, keyword, count.posts, len(count.authors))
        for source, posts in counts.totals.items():
            yield TOTALS, Row("tumble", start, end, source, posts)

    def after_close(self, closed: int, ctx):
        """Score every sliding window that the closed minutes complete, and the minute's keyword rows."""
        progress = self._progress()
        overlap = self.settings.overlap
        held = self._held_minutes()
        if held:
            start = held[0] + 1 if progress.scored_until is None else max(held[0], progress.scored_until) + 1
            last = min(closed + 1, progress.last_data_minute + overlap)
            for end in range(start, last + 1):
                yield from self._score_window(end, progress)
                progress.scored_until = end
        yield from self._minute_rows(closed, progress)
        for minute in [m for m in held if m < closed + 2 - overlap]:  # no window needs it any more
            self.minutes.remove(minute)
            self.minute_cache.pop(minute, None)
        progress.watched = {k: w for k, w in progress.watched.items()
                            if w[0] + self.settings.watch_minutes > closed + 1}
        self.progress_state.update(progress)
        self.progress = None
        if progress.last_data_minute is not None and closed + 1 < progress.last_data_minute + overlap:
            # windows still to come that only older minutes fill (closes_with registered their timers too; after a
            # restore from a savepoint of an older version this one is the only one)
            ctx.timer_service().register_event_time_timer((closed + 2) * self.tumble_ms - 1)

    # -- minutes ----------------------------------------------------------------------------------------------

    def _progress(self) -> Progress:
        if self.progress is None:
            self.progress = self.progress_state.value() or Progress()
        return self.progress

    def _held_minutes(self) -> list[int]:
        return sorted(set(self.minute_cache) | set(self.minutes.keys()))

    def _minute(self, index: int) -> MinuteCounts | None:
        if index not in self.minute_cache:
            counts = self.minutes.get(index)
            if counts is None:
                return None
            self.minute_cache[index] = counts
        return self.minute_cache[index]

    def _minute_rows(self, index: int, progress: Progress):
        """The minute's top keywords and the watched ones present in it, to keyword_window_counts."""
        counts = self._minute(index)
        if counts is None:
            return
        watched = progress.watched
        # a watched keyword's row may already be out: written with the window that made it watched
        chosen = {k for k in top_keywords(counts, self.settings.top_keywords) if watched.get(k, (0, -1))[1] < index}
        for keyword, (last_end, written) in watched.items():
            if keyword in counts.keywords and written < index < last_end + self.settings.watch_minutes:
                chosen.add(keyword)
                watched[keyword] = (last_end, index)
        yield from self._tumble_rows(counts, sorted(chosen))

    def _tumble_rows(self, counts: MinuteCounts, keywords):
        start, end = counts.index * self.tumble_ms, (counts.index + 1) * self.tumble_ms
        for keyword in keywords:
            count = counts.keywords[keyword]
            yield KEYWORDS, Row("tumble", start, end, keyword, count.posts, len(count.authors), None)

    # -- sliding windows --------------------------------------------------------------------------------------

    def _sweep(self, end: int) -> None:
        """Drop the baselines of keywords absent for longer than state_ttl_s (shared.trends.expired): the state
        holds the vocabulary of the last day, not of every word ever seen. One pass over the map an hour."""
        gone = [keyword for keyword, stored in self.baselines.items() if expired(Baseline(*stored), end, self.settings)]
        for keyword in gone:
            self.baselines.remove(keyword)
        self.baselines_expired.inc(len(gone))

    def _score_window(self, end: int, progress: Progress):
        overlap, tumble = self.settings.overlap, self.tumble_ms
        minutes = [m for m in (self._minute(i) for i in range(end - overlap, end)) if m is not None]
        window, totals = sliding_window(minutes, self.settings.min_posts)
        if not totals:
            return
        start_ms, end_ms = (end - overlap) * tumble, end * tumble
        for source, posts in totals.items():
            yield TOTALS, Row("hop", start_ms, end_ms, source, posts)
        decisions, updated, moods = [], {}, {}
        window_posts, min_posts, settings = totals[ALL_SOURCES], self.settings.min_posts, self.settings
        cache, stored = self.baseline_cache, self.baselines
        newest = minutes[-1] if minutes and minutes[-1].index == end - 1 else None  # the minute tests' minute
        newest_keywords = newest.keywords if newest is not None else {}
        newest_total = newest.totals.get(ALL_SOURCES, 0) if newest is not None else 0
        for keyword, count in window.items():
            held = cache.get(keyword)
            baseline = Baseline(*held) if held is not None else _baseline(stored.get(keyword))
            in_minute = newest_keywords.get(keyword)
            row = WindowRow(keyword, end, start_ms, end_ms, count.posts, count.authors, window_posts, count.samples,
                            progress.first_window, in_minute.posts if in_minute else 0, newest_total,
                            len(in_minute.authors) if in_minute else 0)
            if count.posts < min_posts:  # can neither trend nor be watched: the baseline moves on, no score
                baseline = advance(baseline, row, settings)
            else:
                baseline, decision = observe(baseline, row, settings)
                decisions.append(decision)
                baseline, moods[keyword] = mood_step(baseline, end, count.scored, count.sentiment_sum,
                                                     count.negative, settings)
            updated[keyword] = tuple(baseline)  # plain tuples pickle several times faster
        self.baselines.put_all(updated)
        self.baseline_cache = updated  # the next window holds mostly the same keywords
        self.windows_scored.inc()
        if end % SWEEP_EVERY_WINDOWS == 0:
            self._sweep(end)

        ranked = rank(decisions, self.settings.top_n)
        if ranked:
            if self.redis is not None:
                publish_to_redis(self.redis, ranked, moods)
            self.trends_emitted.inc(len(ranked))
            for position, d in ranked:
                mood = moods[d.keyword]
                yield TRENDS, Row(d.window_start_ms, d.window_end_ms, d.keyword, position, d.posts, d.authors,
                                  d.expected, d.std, d.z, json.dumps(list(d.samples)), d.evidence,
                                  d.evidence_start_ms, d.evidence_posts, d.evidence_expected, d.p_value,
                                  mood.sentiment, mood.negative_share, mood.scored, mood.usual, mood.change)
        for d in watch_list(decisions, self.settings):
            yield KEYWORDS, Row("hop", start_ms, end_ms, d.keyword, d.posts, d.authors, d.z)
            _, written = progress.watched.get(d.keyword, (end, end - overlap - 1))
            # the keyword's minutes in this window not written yet: the rise before it was noticed
            for index in range(max(written + 1, end - overlap), end):
                counts = self._minute(index)
                if counts is not None and d.keyword in counts.keywords:
                    yield from self._tumble_rows(counts, [d.keyword])
            progress.watched[d.keyword] = (end, max(written, end - 1))


def _baseline(stored: tuple | None) -> Baseline | None:
    return None if stored is None else Baseline(*stored)


def default_counts_path(settings: Settings) -> str:
    """Every keyword's minute counts: beside the raw posts in the lake, or under the state folder without MinIO."""
    if settings.minio.access_key and settings.minio.secret_key:
        return f"s3://{settings.minio.bucket}/keyword_counts"
    return (settings.stack.state_path / "lake" / "keyword_counts").as_uri()



# What a backfill leaves out (runtime/backfill.py): what happens now, and the lake's append-only counts.
LIVE_ONLY = frozenset({"trend_alerts_sink", "keyword_counts_lake", "quarantine_sink"})
TABLES = ("trends", "keyword_window_counts", "window_posts", "late_posts")


def build(settings: Settings, args) -> object:
    topic, alerts_topic, bounded, group_id = args.topic, args.alerts_topic, args.bounded, args.group_id
    counts_path = args.counts_path
    trending = settings.trending
    backfill = backfill_period(args) is not None
    env, t_env = stream_env(settings, "streampulse-trending" + ("-backfill" if backfill else ""),
                            extra={"table.local-time-zone": "UTC"}, batch=backfill)
    values = {
        **posts_source_values(settings, topic=topic, group_id=group_id, bounded=bounded,
                              watermark_s=trending.watermark_s),
        "tumble": interval(trending.tumble_s), "tumble_s": trending.tumble_s,
        "batch_shards": settings.flink.minute_batch_shards,
        "counts_path": counts_path or default_counts_path(settings), **jdbc_options(settings),
        "alerts_sink": kafka_sink(settings, topic=alerts_topic,
                                  transactional_id_prefix=f"streampulse-trending-{uuid.uuid4().hex[:8]}"),
        "table_suffix": target_tables(settings, args, TABLES),
    }
    statement_set = t_env.create_statement_set()
    add_posts_by_minute(t_env, statement_set, settings, args, values)

    # The only Table → DataStream hand-off: the topic is read once, by this one pipeline.
    stage = CountAndScore(trending, None if backfill else redis_options(settings), topic)
    scored = (t_env.to_data_stream(t_env.from_path("posts_by_minute"))
              .key_by(lambda r: 0, key_type=Types.INT())
              .process(stage, output_type=COUNT_ROW)
              .uid("count-and-score").name("Count keywords per minute, score sliding windows, publish to Redis"))
    views = {"keyword_count_rows": scored, "trend_rows": scored.get_side_output(TRENDS),
             "keyword_rows": scored.get_side_output(KEYWORDS), "window_total_rows": scored.get_side_output(TOTALS),
             "counted_late_posts": scored.get_side_output(LATE), "quarantined_rows": scored.get_side_output(QUARANTINE)}
    add_outputs(t_env, statement_set, views, ("trending_outputs", "quarantine_sink"),
                skip_inserts_into=LIVE_ONLY if backfill else frozenset(), **values)
    return env


def arguments(parser) -> None:
    parser.add_argument("--alerts-topic", default=ALERTS_TOPIC)
    parser.add_argument("--counts-path", type=lake_path, help="where every keyword's minute counts go: "
                        "s3://bucket/prefix or file:///folder (default: s3://<minio.bucket>/keyword_counts, or "
                        "<state>/lake/keyword_counts)")


main = job_main("trending", __doc__, build, topic=POSTS_TOPIC, arguments=arguments, backfill=True)

if __name__ == "__main__":
    run_script(main)
