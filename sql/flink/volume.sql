-- The volume job's counting half, all in the JVM: posts per tumbling window (1 minute by default) for
-- every series: each source, each source's language (first of the post's languages, 'und' without
-- one) and each source's community (subreddit, Mastodon instance; Bluesky has none). Runs after
-- social_posts_source.sql; jobs/volume.py scores the rows (shared/volume.py).
-- Series names: dimension 'source' → 'reddit'; 'lang' → 'reddit/en'; 'community' → 'reddit/r/news'.
-- COUNT(DISTINCT uid): a post re-sent by a producer counts once.
CREATE TEMPORARY VIEW post_series AS
SELECT uid, created_at, 'source' AS dimension, source AS series FROM social_posts
UNION ALL
SELECT uid, created_at, 'lang', source || '/' || COALESCE(langs[1], 'und') FROM social_posts
UNION ALL
SELECT uid, created_at, 'community', source || '/' || community FROM social_posts WHERE community <> '';

CREATE TEMPORARY VIEW volume_per_window AS
SELECT window_start, window_end, window_time, dimension, series, COUNT(DISTINCT uid) AS posts
FROM TABLE(TUMBLE(TABLE post_series, DESCRIPTOR(created_at), ${tumble}))
GROUP BY window_start, window_end, window_time, dimension, series;

-- Input of the Python scoring stage: plain numbers cross to Python in every execution mode.
CREATE TEMPORARY VIEW scoring_input AS
SELECT dimension, series,
       CAST(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', window_start) AS BIGINT) * 1000 AS window_start_ms,
       posts
FROM volume_per_window;

CREATE TABLE volume_windows_sink (
    dimension STRING NOT NULL, series STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL,
    window_end TIMESTAMP(3) NOT NULL, posts BIGINT NOT NULL,
    PRIMARY KEY (dimension, series, window_start) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'volume_windows',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}',
    'sink.buffer-flush.max-rows' = '2000', 'sink.buffer-flush.interval' = '1 s'
);

INSERT INTO volume_windows_sink
SELECT dimension, series, window_start, window_end, posts FROM volume_per_window;

-- The dead-letter topic's envelopes ({reason, source, rejected_at, ...}, JSON), counted per minute of
-- rejection, source and reason into rejected_posts: the "late and rejected data" dashboard's other half.
CREATE TABLE rejected_events (
    reason        STRING,
    source        STRING,
    rejected_at   BIGINT,
    rejected_time AS TO_TIMESTAMP_LTZ(rejected_at, 3),
    WATERMARK FOR rejected_time AS rejected_time - ${watermark}
) WITH (
    'connector' = 'kafka',
    'topic' = '${dlq_topic}',
    'properties.bootstrap.servers' = '${bootstrap}',
    'properties.group.id' = '${group_id}',
    'scan.startup.mode' = '${startup_mode}',
    ${bounded_option}
    'format' = 'json',
    'json.ignore-parse-errors' = 'true',
    -- Rejects are rare: a partition without any must not hold the minutes back for ever.
    'scan.watermark.idle-timeout' = '5 s'
);

CREATE TABLE rejected_posts_sink (
    window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL, source STRING NOT NULL,
    reason STRING NOT NULL, posts BIGINT NOT NULL,
    PRIMARY KEY (window_start, source, reason) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'rejected_posts',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

CREATE TEMPORARY VIEW rejected_rows AS
SELECT COALESCE(source, 'unknown') AS source, COALESCE(reason, 'unknown') AS reason, rejected_time
FROM rejected_events
WHERE rejected_at IS NOT NULL;

INSERT INTO rejected_posts_sink
SELECT window_start, window_end, source, reason, COUNT(*)
FROM TABLE(TUMBLE(TABLE rejected_rows, DESCRIPTOR(rejected_time), ${tumble}))
GROUP BY window_start, window_end, source, reason;
