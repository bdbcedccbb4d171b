"""Names the parts of StreamPulse share, declared once: Kafka topics, Redis keys, PostgreSQL tables, the
producers' metrics. Producers, jobs, the stack, tests and benchmarks import them from here; the SQL files and
the dashboards spell the tables out (their tests read them back against the database)."""

from __future__ import annotations

# Kafka topics: what the producers write ...
POSTS_TOPIC = "social.posts"  # SocialPost Avro records keyed by uid (shared/social_post.avsc)
DLQ_TOPIC = "social.posts.dlq"  # what a producer rejected, with the reason (README: "Producing posts")
DELETES_TOPIC = "social.deletes"  # deletion notices keyed by uid (shared/post.py DeletionNotice)
# ... and what the jobs write, transactionally.
ALERTS_TOPIC = "trends.alerts"
ANOMALIES_TOPIC = "volume.anomalies"
PRODUCER_TOPICS = (POSTS_TOPIC, DLQ_TOPIC, DELETES_TOPIC)
JOB_TOPICS = (ALERTS_TOPIC, ANOMALIES_TOPIC)

# Redis: "what is trending right now" (runtime/trend_cache.py).
REDIS_CURRENT = "streampulse:trends:current"  # sorted set keyword → z (+ ":meta": the window it holds)
REDIS_KEYWORD = "streampulse:trend:"  # + keyword: hash of the keyword's latest trend
REDIS_DELETED = "streampulse:deleted"  # sorted set uid → when its deletion notice arrived (ms)

# PostgreSQL: the jobs' time-series tables, partitioned by day (sql/migrations/0010_partitions_by_day.sql; 0013).
TIME_SERIES_TABLES = ("keyword_window_counts", "window_posts", "trends", "late_posts", "rejected_posts",
                      "volume_windows", "volume_anomalies", "volume_outages", "conversations")
