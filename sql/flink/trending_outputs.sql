-- The trending job's outputs, fed by its Python stage (jobs/trending.py registers the views
-- trend_rows, keyword_rows, window_total_rows, keyword_count_rows and counted_late_posts before these
-- statements run). PostgreSQL receives what the dashboards read, bounded per window: the trends, each
-- minute's top keywords and the keywords that trended or came close, the totals, the late posts. Every
-- keyword's count of every minute goes to the lake (Parquet), committed on checkpoints.

CREATE TEMPORARY VIEW ranked_trends AS
SELECT CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP(3)) AS window_start,
       CAST(TO_TIMESTAMP_LTZ(window_end_ms, 3) AS TIMESTAMP(3)) AS window_end,
       keyword, trend_rank, posts, authors, baseline_mean, baseline_std, z, sample_uids, evidence,
       CAST(TO_TIMESTAMP_LTZ(evidence_start_ms, 3) AS TIMESTAMP(3)) AS evidence_start, evidence_posts,
       evidence_expected, p_value, sentiment, negative_share, sentiment_posts, usual_sentiment, mood_change
FROM trend_rows;

CREATE TABLE trends_sink (
    window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL, keyword STRING NOT NULL,
    trend_rank INT NOT NULL, posts BIGINT NOT NULL, authors BIGINT NOT NULL, baseline_mean DOUBLE NOT NULL,
    baseline_std DOUBLE NOT NULL, z DOUBLE NOT NULL, sample_uids STRING NOT NULL, evidence STRING NOT NULL,
    evidence_start TIMESTAMP(3) NOT NULL, evidence_posts BIGINT NOT NULL, evidence_expected DOUBLE NOT NULL,
    p_value DOUBLE NOT NULL, sentiment DOUBLE, negative_share DOUBLE, sentiment_posts BIGINT NOT NULL,
    usual_sentiment DOUBLE, mood_change DOUBLE,
    PRIMARY KEY (window_end, keyword) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'trends${table_suffix}',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

-- Alerts through Flink's transactional Kafka sink: visible to read_committed readers only after the
-- checkpoint that covers them completes.
CREATE TABLE trend_alerts_sink (
    keyword STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL,
    trend_rank INT NOT NULL, posts BIGINT NOT NULL, authors BIGINT NOT NULL, baseline_mean DOUBLE NOT NULL,
    baseline_std DOUBLE NOT NULL, z DOUBLE NOT NULL, sample_uids STRING NOT NULL, evidence STRING NOT NULL,
    evidence_start TIMESTAMP(3) NOT NULL, evidence_posts BIGINT NOT NULL, evidence_expected DOUBLE NOT NULL,
    p_value DOUBLE NOT NULL, sentiment DOUBLE, negative_share DOUBLE, sentiment_posts BIGINT NOT NULL,
    usual_sentiment DOUBLE, mood_change DOUBLE
) WITH (
    ${alerts_sink},
    'key.format' = 'raw',
    'key.fields' = 'keyword',
    'value.format' = 'json'
);

-- 'tumble' rows: a minute's top keywords and the watched ones; 'hop' rows: the sliding windows in which a
-- keyword trended or came close, with their z (shared/keyword_windows.py).
CREATE TABLE keyword_window_counts_sink (
    window_kind STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL,
    source STRING NOT NULL, keyword STRING NOT NULL, posts BIGINT NOT NULL, authors BIGINT NOT NULL, z DOUBLE,
    PRIMARY KEY (window_kind, window_start, source, keyword) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'keyword_window_counts${table_suffix}',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

CREATE TABLE window_posts_sink (
    window_kind STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL,
    source STRING NOT NULL, posts BIGINT NOT NULL,
    PRIMARY KEY (window_kind, window_start, source) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'window_posts${table_suffix}',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

-- The late posts per tumbling window of event time and source. COUNT(*) keeps the state to one counter
-- per window and source, so a re-sent late copy counts again.
CREATE TABLE late_posts_sink (
    window_start TIMESTAMP(3) NOT NULL, source STRING NOT NULL, posts BIGINT NOT NULL,
    PRIMARY KEY (window_start, source) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'late_posts${table_suffix}',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

-- Every keyword's posts and distinct authors per minute (all sources), in the lake beside the raw posts:
-- Parquet, partitioned by date and hour of the minute (UTC); a part file becomes visible when the
-- checkpoint that covers it completes.
CREATE TABLE keyword_counts_lake (
    window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL, keyword STRING NOT NULL,
    posts BIGINT NOT NULL, authors BIGINT NOT NULL, dt STRING NOT NULL, `hour` STRING NOT NULL
) PARTITIONED BY (dt, `hour`) WITH (
    'connector' = 'filesystem',
    'path' = '${counts_path}',
    'format' = 'parquet',
    'parquet.write.int64.timestamp' = 'true',
    'parquet.timestamp.time.unit' = 'millis',
    'parquet.utc-timezone' = 'true',
    'parquet.compression' = 'SNAPPY'
);

INSERT INTO trends_sink SELECT * FROM ranked_trends;

INSERT INTO trend_alerts_sink
SELECT keyword, window_start, window_end, trend_rank, posts, authors, baseline_mean, baseline_std, z, sample_uids,
       evidence, evidence_start, evidence_posts, evidence_expected, p_value, sentiment, negative_share,
       sentiment_posts, usual_sentiment, mood_change
FROM ranked_trends;

INSERT INTO keyword_window_counts_sink
SELECT window_kind, CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP(3)),
       CAST(TO_TIMESTAMP_LTZ(window_end_ms, 3) AS TIMESTAMP(3)), '*', keyword, posts, authors, z
FROM keyword_rows;

INSERT INTO window_posts_sink
SELECT window_kind, CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP(3)),
       CAST(TO_TIMESTAMP_LTZ(window_end_ms, 3) AS TIMESTAMP(3)), source, posts
FROM window_total_rows;

INSERT INTO late_posts_sink
SELECT CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP(3)), source, COUNT(*)
FROM counted_late_posts
GROUP BY window_start_ms, source;

INSERT INTO keyword_counts_lake
SELECT CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP(3)), CAST(TO_TIMESTAMP_LTZ(window_end_ms, 3) AS TIMESTAMP(3)),
       keyword, posts, authors, DATE_FORMAT(TO_TIMESTAMP_LTZ(window_start_ms, 3), 'yyyy-MM-dd'),
       DATE_FORMAT(TO_TIMESTAMP_LTZ(window_start_ms, 3), 'HH')
FROM keyword_count_rows;
