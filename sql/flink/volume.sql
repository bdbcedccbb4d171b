-- The volume job's SQL (runs after social_posts_source.sql and posts_by_minute.sql): the per-series minute
-- counts the Python stage hands over (jobs/volume.py registers volume_window_rows) to Postgres, and the
-- producers' rejects from the dead-letter topic. Series names: dimension 'source' → 'reddit'; 'lang' →
-- 'reddit/en' (the first of the post's languages, 'und' without one); 'community' → 'reddit/r/news'.
CREATE TABLE volume_windows_sink (
    dimension STRING NOT NULL, series STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL,
    window_end TIMESTAMP(3) NOT NULL, posts BIGINT NOT NULL,
    PRIMARY KEY (dimension, series, window_start) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'volume_windows${table_suffix}',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}',
    'sink.buffer-flush.max-rows' = '2000', 'sink.buffer-flush.interval' = '1 s'
);

-- The rows of 0 posts that the job's heartbeat sends for silent windows (jobs/volume.py) are not counts of posts.
INSERT INTO volume_windows_sink
SELECT dimension, series, CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP(3)),
       CAST(TO_TIMESTAMP_LTZ(window_end_ms, 3) AS TIMESTAMP(3)), posts
FROM volume_window_rows
WHERE posts > 0;

-- The dead-letter topic's envelopes ({reason, source, rejected_at, ...}, JSON), counted per minute of
-- rejection, source and reason into rejected_posts: the "late and rejected data" dashboard's other half.
CREATE TABLE rejected_events (
    reason        STRING,
    source        STRING,
    rejected_at   BIGINT,
    rejected_time AS TO_TIMESTAMP_LTZ(rejected_at, 3),
    WATERMARK FOR rejected_time AS rejected_time - ${watermark}
) WITH (
    ${dlq_source},
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
