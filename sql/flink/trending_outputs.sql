-- The trending job's outputs fed by its Python stages (jobs/trending.py registers ranked_trend_rows
-- and counted_late_posts before these statements run): trends to Postgres and the transactional alerts
-- topic, late posts per window to Postgres.

CREATE TEMPORARY VIEW ranked_trends AS
SELECT CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP(3)) AS window_start,
       CAST(TO_TIMESTAMP_LTZ(window_end_ms, 3) AS TIMESTAMP(3)) AS window_end,
       keyword, trend_rank, posts, authors, baseline_mean, baseline_std, z, sample_uids
FROM ranked_trend_rows;

CREATE TABLE trends_sink (
    window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL, keyword STRING NOT NULL,
    trend_rank INT NOT NULL, posts BIGINT NOT NULL, authors BIGINT NOT NULL, baseline_mean DOUBLE NOT NULL,
    baseline_std DOUBLE NOT NULL, z DOUBLE NOT NULL, sample_uids STRING NOT NULL,
    PRIMARY KEY (window_end, keyword) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'trends',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

-- Alerts through Flink's transactional Kafka sink: visible to read_committed readers only after the
-- checkpoint that covers them completes.
CREATE TABLE trend_alerts_sink (
    keyword STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL,
    trend_rank INT NOT NULL, posts BIGINT NOT NULL, authors BIGINT NOT NULL, baseline_mean DOUBLE NOT NULL,
    baseline_std DOUBLE NOT NULL, z DOUBLE NOT NULL, sample_uids STRING NOT NULL
) WITH (
    'connector' = 'kafka',
    'topic' = '${alerts_topic}',
    'properties.bootstrap.servers' = '${bootstrap}',
    'key.format' = 'raw',
    'key.fields' = 'keyword',
    'value.format' = 'json',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = '${transactional_id_prefix}',
    'properties.transaction.timeout.ms' = '600000'
);

-- The late posts per tumbling window of event time and source. COUNT(*) keeps the state to one counter
-- per window and source, so a re-sent late copy counts again.
CREATE TEMPORARY VIEW late_posts_per_window AS
SELECT CAST(TO_TIMESTAMP_LTZ(tumble_start_s * 1000, 3) AS TIMESTAMP(3)) AS window_start, source, COUNT(*) AS posts
FROM counted_late_posts
GROUP BY tumble_start_s, source;

CREATE TABLE late_posts_sink (
    window_start TIMESTAMP(3) NOT NULL, source STRING NOT NULL, posts BIGINT NOT NULL,
    PRIMARY KEY (window_start, source) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'late_posts',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

INSERT INTO late_posts_sink
SELECT window_start, source, posts FROM late_posts_per_window;
