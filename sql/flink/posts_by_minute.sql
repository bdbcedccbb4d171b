-- social.posts by minute of event time, for a job's Python stage (runs after social_posts_source.sql;
-- jobs/trending.py and jobs/volume.py read the view `posts_by_minute`). Every record crosses into Python
-- once, whole and undecoded, inside its minute's batch: the JVM keeps one list of records per open minute
-- and shard (JSON_ARRAYAGG: RocksDB appends, no read per record, no state per keyword or series).
-- A record in a batch: [partition, offset, event time (ISO-8601, UTC), key (base64), payload (base64)].

-- Lateness is decided once, here, per record: late when its minute ended `watermark_s` or more before the
-- newest record read so far from its own partition. The newest time per partition is kept in state (an OVER
-- aggregate), so the rule holds across a restore exactly as before it — unlike CURRENT_WATERMARK, which
-- starts again from nothing, while the window operator below restores its watermark and would silently drop
-- a record older than it. A record on time here is never behind that operator's watermark (the minimum over
-- partitions of the same newest times, less watermark_s), so nothing is dropped: late records go their own
-- way, into no minute, and the minutes and the late counts always add up to the input. The rule depends only
-- on each partition's order, never on how fast partitions are read.
-- Seconds since the epoch as BIGINT (TIMESTAMPDIFF(SECOND, ...) alone is an INT, which overflows in 2038):
-- whole days, then the seconds into the day.
CREATE TEMPORARY VIEW posts_with_lateness AS
SELECT *,
       (CAST(TIMESTAMPDIFF(DAY, TIMESTAMP '1970-01-01 00:00:00', event_ts) AS BIGINT) * 86400
        + TIMESTAMPDIFF(SECOND, TIMESTAMPADD(DAY, TIMESTAMPDIFF(DAY, TIMESTAMP '1970-01-01 00:00:00', event_ts),
                                             TIMESTAMP '1970-01-01 00:00:00'), event_ts))
           / ${tumble_s} * ${tumble_s} AS minute_start_s,
       CAST(TIMESTAMPDIFF(DAY, TIMESTAMP '1970-01-01 00:00:00', newest_ts) AS BIGINT) * 86400
        + TIMESTAMPDIFF(SECOND, TIMESTAMPADD(DAY, TIMESTAMPDIFF(DAY, TIMESTAMP '1970-01-01 00:00:00', newest_ts),
                                             TIMESTAMP '1970-01-01 00:00:00'), newest_ts) AS newest_s
FROM (SELECT *, CAST(event_time AS TIMESTAMP(3)) AS event_ts,
             CAST(MAX(event_time) OVER (PARTITION BY kafka_partition ORDER BY arrived
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS TIMESTAMP(3)) AS newest_ts
      FROM (SELECT *, PROCTIME() AS arrived FROM social_posts));

CREATE TEMPORARY VIEW on_time_posts AS
SELECT event_time, minute_start_s, kafka_partition, kafka_offset, kafka_key, payload
FROM posts_with_lateness
WHERE minute_start_s + ${tumble_s} > newest_s - ${watermark_s};

-- One row per minute and shard (a shard is a set of partitions: a re-sent copy of a post, keyed by its uid
-- like the original, is in the original's batch), and one row per late record.
CREATE TEMPORARY VIEW posts_by_minute AS
SELECT 'minute' AS kind, window_start_s * 1000 AS window_start_ms, shard, records
FROM (
    -- every record of a window has the same minute_start_s: MAX picks it. JSON_ARRAYAGG keeps a list state
    -- (appends); LISTAGG would rewrite one growing string per record.
    SELECT MAX(minute_start_s) AS window_start_s, MOD(kafka_partition, ${batch_shards}) AS shard,
           JSON_ARRAYAGG(JSON_ARRAY(kafka_partition, kafka_offset, event_time, kafka_key, payload NULL ON NULL)) AS records
    FROM TABLE(TUMBLE(TABLE on_time_posts, DESCRIPTOR(event_time), ${tumble}))
    GROUP BY window_start, window_end, MOD(kafka_partition, ${batch_shards})
)
UNION ALL
SELECT 'late', minute_start_s * 1000, CAST(NULL AS INT),
       JSON_ARRAY(JSON_ARRAY(kafka_partition, kafka_offset, event_time, kafka_key, payload NULL ON NULL))
FROM posts_with_lateness
WHERE minute_start_s + ${tumble_s} <= newest_s - ${watermark_s};
