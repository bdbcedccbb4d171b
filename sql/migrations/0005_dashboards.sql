-- What the dashboards read (Superset connects as the read-only role, which sees every table and view
-- through the default privileges of 0001). Rejected posts per minute are written by the volume job from
-- the dead-letter topic; the views answer the dashboards' four questions.

-- Posts the producers sent to social.posts.dlq, per minute of rejection, source and reason.
CREATE TABLE rejected_posts (
    window_start  timestamp NOT NULL,
    window_end    timestamp NOT NULL,
    source        text      NOT NULL,
    reason        text      NOT NULL,
    posts         bigint    NOT NULL,
    PRIMARY KEY (window_start, source, reason)
);

-- "Trending now": the ranked trends of the latest window that has any.
CREATE VIEW trending_now AS
SELECT window_start, window_end, trend_rank, keyword, posts, authors, baseline_mean, baseline_std, z, sample_uids
FROM trends
WHERE window_end = (SELECT max(window_end) FROM trends);

-- "A keyword over time": its 1-minute counts over all sources, with the z of any trend whose sliding
-- window ended with that minute.
CREATE VIEW keyword_over_time AS
SELECT k.keyword, k.window_start, k.window_end, k.posts, k.authors, t.z AS trend_z, t.trend_rank,
       t.keyword IS NOT NULL AS trending
FROM keyword_window_counts AS k
LEFT JOIN trends AS t ON t.keyword = k.keyword AND t.window_end = k.window_end
WHERE k.window_kind = 'tumble' AND k.source = '*';

-- "Volume and anomalies per source": every series' minutes, with the anomaly of that minute if any.
-- Silent minutes have no volume row; their drop anomalies come from the anomalies side.
CREATE VIEW volume_and_anomalies AS
SELECT COALESCE(v.dimension, a.dimension) AS dimension, COALESCE(v.series, a.series) AS series,
       split_part(COALESCE(v.series, a.series), '/', 1) AS source,
       COALESCE(v.window_start, a.window_start) AS window_start, COALESCE(v.posts, 0) AS posts,
       a.direction, a.severity, a.z, a.baseline_mean
FROM volume_windows AS v
FULL JOIN volume_anomalies AS a ON a.dimension = v.dimension AND a.series = v.series
                                AND a.window_start = v.window_start;

-- "Late and rejected data": posts behind the watermark (per minute of event time) and posts rejected by
-- the producers (per minute of rejection), side by side.
CREATE VIEW late_and_rejected AS
SELECT window_start, source, 'late' AS kind, 'behind the watermark' AS reason, posts FROM late_posts
UNION ALL
SELECT window_start, source, 'rejected', reason, posts FROM rejected_posts;
