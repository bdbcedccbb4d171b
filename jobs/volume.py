"""Volume job: posts per minute for every source, language and community, and their anomalies.

    social.posts ─► minute batches (JVM) ─► count per series (Python, one stage) ─► Postgres volume_windows
                                              └► score (keyed by series: seasonal negative binomial, outage
                                                 CUSUM; timers score silent minutes) ─► Postgres volume_anomalies,
                                                 volume_outages, Kafka volume.anomalies
    social.posts.dlq (JSON) ─► TUMBLE count per source and reason ─► Postgres rejected_posts

The topic is read as the trending job reads it (sql/flink/posts_by_minute.sql, runtime/minute_stage.py):
each minute's records reach one Python stage in a few batches, which decodes them (quarantining what is not
a valid post), counts the distinct posts of every series and hands each series' minute on; the maths is
in shared/volume.py. A series that goes silent sends no rows at all, so each series keeps an event-time
timer for its next window: when the watermark passes that window and no row came, the window is scored as
0 posts, for as long as the baseline still expects posts. A row that arrives after silent minutes
its timers have not scored yet (one watermark closing several minutes) scores them first, so the result
does not depend on how the watermark advanced.

When every producer stops, nothing moves the watermark and no timer fires: the outage the job exists to
notice would be invisible. So the counting stage keeps a processing-time heartbeat: when the watermark has
stood still for `silence_after_s` while the stream was live (within `live_lag_s` of the wall clock when it
stopped), event time is taken to go on with the wall clock: the open minutes are closed as they end by the
clock, and every series seen in the last day gets a row of 0 posts for each of them, which the scoring stage
scores like any other row. A replay of old posts is never live, so a bounded run does not depend on the clock.

    streampulse run volume -- [--bounded] [--topic social.posts] [--anomalies-topic volume.anomalies]
                              [--dlq-topic social.posts.dlq]
    streampulse backfill volume --from TIME --to TIME [--target-tables NAME]   (the lake, batch mode)
    flink run -py jobs/volume.py -- [same options]
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import replace

if __package__ in (None, ""):  # `flink run -py jobs/volume.py`: make the project importable
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext, TimeDomain
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from runtime.backfill import add_posts_by_minute, target_tables
from runtime.backfill import period_of as backfill_period
from runtime.flink import (
    add_outputs,
    interval,
    jdbc_options,
    kafka_sink,
    kafka_source,
    posts_source_values,
    stream_env,
    time_to_live,
)
from runtime.job import job_main, run_script
from runtime.minute_stage import QUARANTINE, MinuteStage
from shared.names import ANOMALIES_TOPIC, DLQ_TOPIC, POSTS_TOPIC
from shared.post import SocialPost
from shared.settings import Settings
from shared.volume import Outage, VolumeDecision, VolumeSettings, forgotten, observe, series_of, still_expected

END_OF_INPUT = 2**63 - 1  # the watermark a bounded source sends last: no later window is real

ANOMALY_ROW = Types.ROW_NAMED(
    ["dimension", "series", "window_start_ms", "window_end_ms", "posts", "baseline_mean", "baseline_std", "z",
     "direction", "severity", "p_value"],
    [Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(), Types.LONG(), Types.DOUBLE(), Types.DOUBLE(),
     Types.DOUBLE(), Types.STRING(), Types.STRING(), Types.DOUBLE()])
OUTAGE_ROW = Types.ROW_NAMED(
    ["dimension", "series", "outage_start_ms", "last_window_end_ms", "expected_posts", "observed_posts", "p_value",
     "severity", "ongoing"],
    [Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(), Types.DOUBLE(), Types.LONG(), Types.DOUBLE(),
     Types.STRING(), Types.BOOLEAN()])
OUTAGES = OutputTag("outages", OUTAGE_ROW)


SERIES_ROW = Types.ROW_NAMED(["dimension", "series", "window_start_ms", "window_end_ms", "posts"],
                             [Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(), Types.LONG()])


class CountSeries(MinuteStage):
    """Distinct posts per series and minute (shared/volume.py series_of), out when the minute closes; and the
    heartbeat that closes minutes by the wall clock when a live stream stops (see the module docstring)."""

    job = "volume"

    def __init__(self, topic: str, settings: VolumeSettings, heartbeat: bool = True):
        super().__init__(topic, settings.tumble_s)
        self.settings, self.heartbeat = settings, heartbeat  # no heartbeat in a backfill: a past period has no clock

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        pickled = Types.PICKLED_BYTE_ARRAY()
        # (watermark, wall-clock ms when the heartbeat first saw it): how long the watermark has stood still
        self.still = runtime_context.get_state(ValueStateDescriptor("watermark-since", pickled))
        # series → the last minute it had posts: who gets a row of 0 posts for a minute closed by the clock
        self.known = runtime_context.get_state(ValueStateDescriptor("series-seen", pickled))
        # minute closed by the clock → its counts so far: the minute's posts the JVM still held (its window had
        # not ended by the watermark when the stream stopped) arrive when posts come back, and are counted then
        self.recounts = runtime_context.get_map_state(MapStateDescriptor("clock-closed-minutes", Types.LONG(), pickled))
        self.closed_by_clock = runtime_context.get_metrics_group().counter("minutesClosedByClock")
        self.silent_from: int | None = None  # the first minute the heartbeat closed, for after_close

    def process_element(self, value, ctx):
        yield from super().process_element(value, ctx)
        if self.heartbeat:
            ctx.timer_service().register_processing_time_timer(
                self._next_beat(ctx.timer_service().current_processing_time()))

    def on_timer(self, timestamp: int, ctx):
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            yield from self._heartbeat(timestamp, ctx)
        else:
            yield from super().on_timer(timestamp, ctx)

    def _heartbeat(self, now_ms: int, ctx):
        watermark = ctx.timer_service().current_watermark()
        still = self.still.value()
        if still is None or still[0] != watermark:
            still = (watermark, now_ms)
            self.still.update(still)
        stood_ms, lag_ms = now_ms - still[1], (self.settings.live_lag_s + self.settings.watermark_s) * 1000
        if watermark < END_OF_INPUT and stood_ms >= self.settings.silence_after_s * 1000 \
                and 0 <= still[1] - watermark <= lag_ms:
            # Event time goes on with the wall clock since the watermark stopped: close what has ended since.
            closed = self.closed_state.value()
            through = (watermark + stood_ms + 1) // self.tumble_ms - 1
            if closed is None or through > closed:
                self.silent_from = closed + 1 if closed is not None else through
                self.closed_by_clock.inc(through - self.silent_from + 1)
                yield from self.close_until(through, ctx)
        ctx.timer_service().register_processing_time_timer(self._next_beat(now_ms))

    def _next_beat(self, now_ms: int) -> int:
        # One timer per window of wall time (a timer at an instant already registered is registered once).
        return (now_ms // self.tumble_ms + 1) * self.tumble_ms + self.tumble_ms // 2

    def count(self, index: int, posts: list[SocialPost]) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for post in posts:  # one per uid already (runtime/minute_stage.py)
            for series in series_of(post):
                counts[series] = counts.get(series, 0) + 1
        return counts

    def merge(self, index: int, parts: list[dict]) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for part in parts:  # batches hold different posts (shards are sets of partitions, copies share one)
            for series, posts in part.items():
                counts[series] = counts.get(series, 0) + posts
        return counts

    def close_minute(self, index: int, counts: dict[tuple[str, str], int], ctx):
        known = self.known.value() or {}
        for series in counts:
            known[series] = index
        horizon = index - 86_400 // self.settings.tumble_s  # a day of windows
        self.known.update({series: last for series, last in known.items() if last > horizon})
        if self.silent_from is not None:  # closed by the clock: a batch still to come adds to these counts
            self.recounts.put(index, dict(counts))
        start = index * self.tumble_ms
        for (dimension, series), posts in sorted(counts.items()):
            yield Row(dimension, series, start, start + self.tumble_ms, posts)

    def after_close(self, closed: int, ctx):
        """After minutes closed by the clock: a row of 0 posts for every known series in each silent minute."""
        silent_from, self.silent_from = self.silent_from, None
        if silent_from is None:
            return
        for index in list(self.recounts.keys()):
            if index < closed - 86_400 // self.settings.tumble_s:  # a day later nothing held can still come
                self.recounts.remove(index)
        known = self.known.value() or {}
        for index in range(silent_from, closed + 1):
            if not self.recounts.contains(index):
                self.recounts.put(index, {})
            start = index * self.tumble_ms
            for dimension, series in sorted(s for s, last in known.items() if last < index):
                yield Row(dimension, series, start, start + self.tumble_ms, 0)

    def closed_batch(self, index: int, posts, ctx):
        """A batch for a minute the clock closed: the posts the JVM held when the stream stopped. Their counts go
        out again, whole (volume_windows is an upsert); the scoring stage has scored the minute already."""
        counts = self.recounts.get(index)
        if counts is None:
            yield from super().closed_batch(index, posts, ctx)
            return
        for series, n in self.count(index, posts).items():
            counts[series] = counts.get(series, 0) + n
        self.recounts.put(index, counts)
        start = index * self.tumble_ms
        for (dimension, series), n in sorted(counts.items()):
            yield Row(dimension, series, start, start + self.tumble_ms, n)


class ScoreSeries(KeyedProcessFunction):
    """Per series: the baseline state, the score of each window, and a timer for the next window."""

    def __init__(self, settings: VolumeSettings, silence_until_ms: int | None = None):
        self.settings = settings
        self.window_ms = settings.tumble_s * 1000
        # A backfill (batch mode) fires every timer at the end of its input, under the end-of-input watermark:
        # silent windows ending by this instant are scored then, as the stream's watermark would have scored them.
        self.silence_until_ms = silence_until_ms

    def open(self, runtime_context: RuntimeContext):
        baseline = ValueStateDescriptor("baseline", Types.PICKLED_BYTE_ARRAY())
        baseline.enable_time_to_live(time_to_live(self.settings.series_ttl_s))
        self.baseline = runtime_context.get_state(baseline)
        self.anomalies = runtime_context.get_metrics_group().counter("volumeAnomalies")

    def process_element(self, value, ctx):
        index = value.window_start_ms // self.window_ms
        state = self.baseline.value()
        if state is not None and index <= state.last_index:
            return  # already scored (a timer took it for silent): never score a window twice
        # Silent minutes before this one that no timer has scored yet: one watermark can close several
        # minutes at once (a backlog after a restart, a fast replay), and then the window operator sends
        # this row before the timers of the silent minutes fire. Score them first, as the timers would.
        while state is not None and state.last_index + 1 < index and still_expected(state, self.settings):
            yield from self._score(state.last_index + 1, 0, ctx)
            state = self.baseline.value()
        yield from self._score(index, value.posts, ctx)

    def on_timer(self, timestamp, ctx):
        # The watermark passed the end of window `index`; had it held posts, its row would have come first.
        index = (timestamp + 1) // self.window_ms - 1
        state = self.baseline.value()
        if state is None or state.last_index >= index:
            return
        if ctx.timer_service().current_watermark() < END_OF_INPUT:
            yield from self._score(index, 0, ctx)
        elif self.silence_until_ms is not None:
            # A backfill's end of input: every silent window up to silence_until_ms now, in one go — a timer
            # registered while the end of input fires the others is lost in batch mode.
            while state is not None and still_expected(state, self.settings) \
                    and (state.last_index + 2) * self.window_ms - 1 <= self.silence_until_ms:
                yield from self._score(state.last_index + 1, 0, ctx)
                state = self.baseline.value()

    def _score(self, index: int, posts: int, ctx):
        state, decision = observe(self.baseline.value(), index, posts, self.settings)
        outage = decision.outage
        if forgotten(outage, index, self.settings):
            # Gone for longer than series_ttl_s: forget the series (its outage ends here) instead of scoring its
            # silence every minute for ever. Posts that come back start a new baseline.
            self.baseline.clear()
            decision = replace(decision, outage=outage._replace(ongoing=False))
        else:
            self.baseline.update(state)
            if still_expected(state, self.settings):
                ctx.timer_service().register_event_time_timer((index + 2) * self.window_ms - 1)
        key = ctx.get_current_key()
        if decision.is_anomaly:
            self.anomalies.inc()
            yield self._row(decision, key)
        if decision.outage is not None:
            yield OUTAGES, self._outage_row(decision.outage, key)

    def _row(self, decision: VolumeDecision, key: str) -> Row:
        dimension, series = key.split("|", 1)  # the key_by below: dimension|series
        start = decision.window_index * self.window_ms
        return Row(dimension, series, start, start + self.window_ms, decision.posts, decision.expected,
                   decision.std, decision.z, decision.direction, decision.severity, decision.p_value)

    def _outage_row(self, outage: Outage, key: str) -> Row:
        dimension, series = key.split("|", 1)
        return Row(dimension, series, outage.start_index * self.window_ms, (outage.last_index + 1) * self.window_ms,
                   outage.expected_posts, outage.observed_posts, outage.p_value, outage.severity, outage.ongoing)


# What a backfill leaves out (runtime/backfill.py): what happens now (the dead-letter topic's rejects included).
LIVE_ONLY = frozenset({"rejected_posts_sink", "volume_anomalies_topic", "quarantine_sink"})
TABLES = ("volume_windows", "volume_anomalies", "volume_outages")


def build(settings: Settings, args) -> object:
    topic, anomalies_topic, dlq_topic = args.topic, args.anomalies_topic, args.dlq_topic
    bounded, group_id = args.bounded, args.group_id
    volume = settings.volume
    period = backfill_period(args)
    env, t_env = stream_env(settings, "streampulse-volume" + ("-backfill" if period else ""),
                            extra={"table.local-time-zone": "UTC"}, batch=period is not None)
    values = {
        **posts_source_values(settings, topic=topic, group_id=group_id, bounded=bounded,
                              watermark_s=volume.watermark_s),
        "tumble": interval(volume.tumble_s), "tumble_s": volume.tumble_s,
        "batch_shards": settings.flink.minute_batch_shards, **jdbc_options(settings),
        # never read by a backfill (LIVE_ONLY), but batch mode refuses even to plan a view over an unbounded table
        "dlq_source": kafka_source(settings, topic=dlq_topic, group_id=group_id, bounded=bounded or period is not None),
        "anomalies_sink": kafka_sink(settings, topic=anomalies_topic,
                                     transactional_id_prefix=f"streampulse-volume-{uuid.uuid4().hex[:8]}"),
        "table_suffix": target_tables(settings, args, TABLES),
    }
    statement_set = t_env.create_statement_set()
    add_posts_by_minute(t_env, statement_set, settings, args, values)
    # The only Table → DataStream hand-off for the posts: the topic is read once, by this one pipeline.
    counted = (t_env.to_data_stream(t_env.from_path("posts_by_minute"))
               .key_by(lambda r: 0, key_type=Types.INT())
               .process(CountSeries(topic, volume, heartbeat=period is None), output_type=SERIES_ROW)
               .uid("count-series").name("Count posts per series and minute"))
    # A backfill scores silent windows up to where the watermark of a stream that had read the period's posts
    # (the last at --to minus 1 ms at the latest) would be.
    silence_until = None if period is None else period.end_ms - 1 - volume.watermark_s * 1000
    anomalies = (counted.key_by(lambda r: f"{r.dimension}|{r.series}", key_type=Types.STRING())
                 .process(ScoreSeries(volume, silence_until), output_type=ANOMALY_ROW)
                 .uid("score-series").name("Score volume series (seasonal NB, outages, silent minutes)"))
    views = {"volume_window_rows": counted, "volume_anomaly_rows": anomalies,
             "volume_outage_rows": anomalies.get_side_output(OUTAGES),
             "quarantined_rows": counted.get_side_output(QUARANTINE)}
    add_outputs(t_env, statement_set, views, ("volume", "volume_outputs", "quarantine_sink"),
                skip_inserts_into=LIVE_ONLY if period is not None else frozenset(), **values)
    return env


def arguments(parser) -> None:
    parser.add_argument("--anomalies-topic", default=ANOMALIES_TOPIC)
    parser.add_argument("--dlq-topic", default=DLQ_TOPIC, help="counted per minute into rejected_posts")


main = job_main("volume", __doc__, build, topic=POSTS_TOPIC, arguments=arguments, backfill=True)

if __name__ == "__main__":
    run_script(main)
