-- The posts by minute of event time, for a job's Python stage (jobs/trending.py, volume.py, archive.py and
-- conversations.py read the view `posts_by_minute`). Runs after the views on_time_posts and late_posts:
-- posts_lateness.sql over social.posts when a job streams, lake_minute_posts.sql over the lake when it
-- backfills — the same batches either way. Every record crosses into Python once, whole and undecoded,
-- inside its minute's batch: the JVM keeps one list of records per open minute and shard (JSON_ARRAYAGG:
-- RocksDB appends, no read per record, no state per keyword or series).
-- A record in a batch: [partition, offset, event time (ISO-8601, UTC), key (base64), payload (base64)].

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
FROM late_posts;
