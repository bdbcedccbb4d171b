"""Trending job: keywords per post, event-time windows, z-score trends, exactly-once sinks.

    social.posts (Avro) ─► post_keywords (pandas UDF) ─► TUMBLE / HOP window counts ─► Postgres
                                                         └► HOP overall + window total ─► score (keyed by keyword)
                                                              ─► rank (keyed by window) ─► Postgres trends,
                                                                 Kafka trends.alerts (transactional), Redis

Counting runs in the JVM (sql/flink/trending_counts.sql); Python runs only on aggregated rows:
the scoring function (one row per keyword and window, shared/trends.py) and the per-window ranking,
which also writes Redis idempotently (a window never replaces a newer one).

    streampulse run trending -- [--bounded] [--topic social.posts] [--alerts-topic trends.alerts]
    flink run -py jobs/trending.py -- [same options]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid

if __package__ in (None, ""):  # `flink run -py jobs/trending.py`: make the project importable
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, MapFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor
from pyflink.table import DataTypes
from pyflink.table.udf import udf

from shared.flink import add_sql, interval, jdbc_options, posts_source_values, stream_env
from shared.keywords import keywords_vectorised
from shared.settings import Settings, load_settings
from shared.trends import TrendDecision, TrendingSettings, WindowRow, observe, rank

log = logging.getLogger(__name__)

REDIS_CURRENT = "streampulse:trends:current"  # sorted set keyword → z of the latest window with trends
REDIS_KEYWORD = "streampulse:trend:"  # + keyword: hash of the keyword's latest trend
# Replace the current set only with a window at least as new as the one it holds, and each keyword's
# hash likewise, in one atomic step: replays after a failure rewrite the same content, never older.
REDIS_REPLACE = """
local window_end = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local held = tonumber(redis.call('HGET', KEYS[2], 'window_end') or '-1')
if window_end < held then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('HSET', KEYS[2], 'window_end', ARGV[1])
redis.call('EXPIRE', KEYS[2], ttl)
return 1
"""
REDIS_KEYWORD_UPSERT = """
local held = tonumber(redis.call('HGET', KEYS[1], 'window_end') or '-1')
if tonumber(ARGV[1]) < held then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

LATE_POST_ROW = Types.ROW_NAMED(["tumble_start_s", "source"], [Types.LONG(), Types.STRING()])
TREND_ROW = Types.ROW_NAMED(
    ["window_start_ms", "window_end_ms", "keyword", "trend_rank", "posts", "authors", "baseline_mean",
     "baseline_std", "z", "sample_uids"],
    [Types.LONG(), Types.LONG(), Types.STRING(), Types.INT(), Types.LONG(), Types.LONG(),
     Types.DOUBLE(), Types.DOUBLE(), Types.DOUBLE(), Types.STRING()])


@udf(result_type=DataTypes.ARRAY(DataTypes.STRING()), func_type="pandas")
def post_keywords(texts, hashtags, langs):
    return keywords_vectorised(texts, hashtags, langs)


class CountLatePost(MapFunction):
    """Counts each late post in the job's `latePosts` metric (Web UI, Prometheus) and passes it on. A
    DataStream function: PyFlink reports a Table UDF's own metrics only in process mode, and only late
    posts come here, so the Python cost is negligible."""

    def open(self, runtime_context: RuntimeContext):
        self.late_posts = runtime_context.get_metrics_group().counter("latePosts")

    def map(self, value):
        self.late_posts.inc()
        return value


class ScoreKeyword(KeyedProcessFunction):
    """Per keyword: the baseline state and the score of each sliding window (shared/trends.observe)."""

    def __init__(self, settings: TrendingSettings):
        self.settings = settings

    def open(self, runtime_context: RuntimeContext):
        self.baseline = runtime_context.get_state(ValueStateDescriptor("baseline", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, value, ctx):
        slide_ms = self.settings.hop_slide_s * 1000
        row = WindowRow(value.keyword, value.window_end_ms // slide_ms, value.window_start_ms, value.window_end_ms,
                        value.posts, value.authors, value.window_posts,
                        tuple(dict.fromkeys((value.first_uid, value.last_uid))),
                        stream_first_index=value.stream_first_end_ms // slide_ms)
        state, decision = observe(self.baseline.value(), row, self.settings)
        self.baseline.update(state)
        if decision.is_trend:
            yield decision


class RankWindow(KeyedProcessFunction):
    """Per window: collect its trends until the watermark passes the window's end, rank, publish."""

    def __init__(self, settings: TrendingSettings, redis_options: dict):
        self.settings, self.redis_options = settings, redis_options

    def open(self, runtime_context: RuntimeContext):
        import redis

        self.pending = runtime_context.get_list_state(ListStateDescriptor("trends", Types.PICKLED_BYTE_ARRAY()))
        self.trends_emitted = runtime_context.get_metrics_group().counter("trendsEmitted")
        self.redis = redis.Redis(**self.redis_options)
        self.replace_current = self.redis.register_script(REDIS_REPLACE)
        self.upsert_keyword = self.redis.register_script(REDIS_KEYWORD_UPSERT)

    def process_element(self, decision: TrendDecision, ctx):
        self.pending.add(decision)
        ctx.timer_service().register_event_time_timer(decision.window_end_ms - 1)

    def on_timer(self, timestamp, ctx):
        ranked = rank(list(self.pending.get()), self.settings.top_n)
        self.pending.clear()
        if not ranked:
            return
        self._publish_redis(ranked)
        self.trends_emitted.inc(len(ranked))
        for position, d in ranked:
            yield Row(d.window_start_ms, d.window_end_ms, d.keyword, position, d.posts, d.authors,
                   d.expected, d.std, d.z, json.dumps(list(d.samples)))

    def _publish_redis(self, ranked: list[tuple[int, TrendDecision]]) -> None:
        window_end = ranked[0][1].window_end_ms
        ttl = self.settings.redis_ttl_s
        members = [item for _, d in ranked for item in (round(d.z, 6), d.keyword)]
        self.replace_current(keys=[REDIS_CURRENT, REDIS_CURRENT + ":meta"], args=[window_end, ttl, *members])
        for position, d in ranked:
            fields = {"window_start": d.window_start_ms, "window_end": d.window_end_ms, "rank": position,
                      "posts": d.posts, "authors": d.authors, "baseline_mean": round(d.expected, 6),
                      "baseline_std": round(d.std, 6), "z": round(d.z, 6), "sample_uids": json.dumps(list(d.samples))}
            self.upsert_keyword(keys=[REDIS_KEYWORD + d.keyword],
                                args=[window_end, ttl, *[x for kv in fields.items() for x in kv]])


def redis_options(settings: Settings) -> dict:
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    return {"host": settings.redis.host, "port": settings.redis.port, "password": password,
            "socket_timeout": 10, "decode_responses": True}


def build(settings: Settings, *, topic: str, alerts_topic: str, bounded: bool, group_id: str):
    trending = settings.trending
    env, t_env = stream_env(settings, "streampulse-trending", extra={"table.local-time-zone": "UTC"})
    t_env.create_temporary_system_function("post_keywords", post_keywords)
    values = {
        **posts_source_values(settings, topic=topic, group_id=group_id, bounded=bounded,
                              watermark_s=trending.watermark_s),
        "tumble": interval(trending.tumble_s),
        "tumble_s": trending.tumble_s,
        "hop_size": interval(trending.hop_size_s), "hop_slide": interval(trending.hop_slide_s),
        "alerts_topic": alerts_topic,
        "transactional_id_prefix": f"streampulse-trending-{uuid.uuid4().hex[:8]}", **jdbc_options(settings),
    }
    statement_set = t_env.create_statement_set()
    add_sql(t_env, statement_set, "social_posts_source", **values)
    add_sql(t_env, statement_set, "trending_counts", **values)

    scored = (t_env.to_data_stream(t_env.from_path("scoring_input"))
              .key_by(lambda r: r.keyword, key_type=Types.STRING())
              .process(ScoreKeyword(trending), output_type=Types.PICKLED_BYTE_ARRAY())
              .uid("score-keywords").name("Score keywords (EWMA z-score)"))
    ranked = (scored.key_by(lambda d: d.window_end_ms, key_type=Types.LONG())
              .process(RankWindow(trending, redis_options(settings)), output_type=TREND_ROW)
              .uid("rank-window").name("Rank trends per window, publish to Redis"))
    t_env.create_temporary_view("ranked_trend_rows", t_env.from_data_stream(ranked))
    late = (t_env.to_data_stream(t_env.from_path("late_posts"))
            .map(CountLatePost(), output_type=LATE_POST_ROW)
            .uid("count-late-posts").name("Count late posts (latePosts metric)"))
    t_env.create_temporary_view("counted_late_posts", t_env.from_data_stream(late))
    add_sql(t_env, statement_set, "trending_outputs", **values)
    statement_set.add_insert_sql("INSERT INTO trends_sink SELECT * FROM ranked_trends")
    statement_set.add_insert_sql(
        "INSERT INTO trend_alerts_sink SELECT keyword, window_start, window_end, trend_rank, posts, authors, "
        "baseline_mean, baseline_std, z, sample_uids FROM ranked_trends")
    statement_set.attach_as_datastream()
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streampulse run trending", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topic", default="social.posts")
    parser.add_argument("--alerts-topic", default="trends.alerts")
    parser.add_argument("--group-id", default="streampulse-trending")
    parser.add_argument("--bounded", action="store_true",
                        help="read the topic from the start to its current end, then finish (tests, demo)")
    args = parser.parse_args([a for a in (argv if argv is not None else sys.argv[1:]) if a != "--"])
    settings = load_settings()
    env = build(settings, topic=args.topic, alerts_topic=args.alerts_topic, bounded=args.bounded,
                group_id=args.group_id)
    log.info("trending job: %s → Postgres, Redis, %s", args.topic, args.alerts_topic)
    env.execute("streampulse-trending")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(main())
