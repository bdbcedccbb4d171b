-- The trending job's JVM half (runs after social_posts_source.sql): every on-time post goes, whole, into
-- a batch per minute of event time, and the batches and the late posts reach the job's one Python stage
-- as one stream (jobs/trending.py). No per-keyword state here: the keywords are counted in Python, a
-- minute at a time (shared/keyword_windows.py), so the JVM keeps one list of posts per open minute.

-- Seconds since the epoch as BIGINT (TIMESTAMPDIFF alone returns INT, which overflows in 2038): whole days,
-- then the seconds into the day.
CREATE TEMPORARY VIEW posts_with_lateness AS
SELECT *,
       (CAST(TIMESTAMPDIFF(DAY, TIMESTAMP '1970-01-01 00:00:00', created_ts) AS BIGINT) * 86400
        + TIMESTAMPDIFF(SECOND, TIMESTAMPADD(DAY, TIMESTAMPDIFF(DAY, TIMESTAMP '1970-01-01 00:00:00', created_ts),
                                             TIMESTAMP '1970-01-01 00:00:00'), created_ts))
           / ${tumble_s} * ${tumble_s} AS tumble_start_s,
       CAST(TIMESTAMPDIFF(DAY, TIMESTAMP '1970-01-01 00:00:00', watermark_ts) AS BIGINT) * 86400
        + TIMESTAMPDIFF(SECOND, TIMESTAMPADD(DAY, TIMESTAMPDIFF(DAY, TIMESTAMP '1970-01-01 00:00:00', watermark_ts),
                                             TIMESTAMP '1970-01-01 00:00:00'), watermark_ts) AS watermark_s
FROM (SELECT *, CAST(created_at AS TIMESTAMP(3)) AS created_ts,
             CAST(CURRENT_WATERMARK(created_at) AS TIMESTAMP(3)) AS watermark_ts
      FROM social_posts);

-- Lateness is decided once, here, against each post's minute: late when that minute's end is not after
-- the watermark the post met. Late posts go into no window, so the windows and the late counts always add
-- up to the input; a late post that slips through after a restore (watermarks start again from nothing)
-- is recognised by the Python stage, which knows the minutes it has closed.
CREATE TEMPORARY VIEW on_time_posts AS
SELECT uid, source, author_id, `text`, langs, hashtags, created_at, tumble_start_s
FROM posts_with_lateness
WHERE watermark_s IS NULL OR tumble_start_s + ${tumble_s} > watermark_s;

-- One row per minute and shard: the minute's posts as a JSON array of [uid, author_id, source, text,
-- hashtags, langs]. JSON_ARRAYAGG keeps them in a list state (RocksDB appends, no read per post); shards by
-- uid bound a batch's size and keep a re-sent copy in its original's batch.
CREATE TEMPORARY VIEW trending_input AS
SELECT 'minute' AS kind, window_start_s * 1000 AS window_start_ms, shard, posts, CAST(NULL AS STRING) AS source
FROM (
    -- every post of a window has the same tumble_start_s: MAX picks it
    SELECT MAX(tumble_start_s) AS window_start_s, MOD(HASH_CODE(uid), ${batch_shards}) AS shard,
           JSON_ARRAYAGG(JSON_ARRAY(uid, author_id, source, `text`, hashtags, langs NULL ON NULL)) AS posts
    FROM TABLE(TUMBLE(TABLE on_time_posts, DESCRIPTOR(created_at), ${tumble}))
    GROUP BY window_start, window_end, MOD(HASH_CODE(uid), ${batch_shards})
)
UNION ALL
SELECT 'late', CAST(tumble_start_s AS BIGINT) * 1000, CAST(NULL AS INT), CAST(NULL AS STRING), source
FROM posts_with_lateness
WHERE watermark_s IS NOT NULL AND tumble_start_s + ${tumble_s} <= watermark_s;
