-- social.posts split into the records on time for their minute and the late ones (runs after
-- social_posts_source.sql; posts_by_minute.sql batches them). A backfill defines the same two views over
-- the lake instead (lake_minute_posts.sql).
--
-- Lateness is decided once, here, per record: late when its minute ended `watermark_s` or more before the
-- newest record read so far from its own partition. The newest time per partition is kept in state (an OVER
-- aggregate), so the rule holds across a restore exactly as before it — unlike CURRENT_WATERMARK, which
-- starts again from nothing, while the window operator below restores its watermark and would silently drop
-- a record older than it. A record on time here is never behind that operator's watermark (the minimum over
-- partitions of the same newest times, less watermark_s), so nothing is dropped: late records go their own
-- way, into no minute, and the minutes and the late counts always add up to the input. The rule depends only
-- on each partition's order, never on how fast partitions are read.
-- epoch_s_of_<column>: seconds since the epoch as BIGINT (runtime/flink.py epoch_seconds).
CREATE TEMPORARY VIEW posts_with_lateness AS
SELECT *,
       ${epoch_s_of_event_ts} / ${tumble_s} * ${tumble_s} AS minute_start_s,
       ${epoch_s_of_newest_ts} AS newest_s
FROM (SELECT *, CAST(event_time AS TIMESTAMP(3)) AS event_ts,
             CAST(MAX(event_time) OVER (PARTITION BY kafka_partition ORDER BY arrived
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS TIMESTAMP(3)) AS newest_ts
      FROM (SELECT *, PROCTIME() AS arrived FROM social_posts));

CREATE TEMPORARY VIEW on_time_posts AS
SELECT event_time, minute_start_s, kafka_partition, kafka_offset, kafka_key, payload
FROM posts_with_lateness
WHERE minute_start_s + ${tumble_s} > newest_s - ${watermark_s};

CREATE TEMPORARY VIEW late_posts AS
SELECT event_time, minute_start_s, kafka_partition, kafka_offset, kafka_key, payload
FROM posts_with_lateness
WHERE minute_start_s + ${tumble_s} <= newest_s - ${watermark_s};
