-- The trending job's counting half, all in the JVM (DESIGN.md §3): keywords per post from the
-- vectorised Python UDF post_keywords, then window TVF aggregations per keyword, overall
-- (source '*') and per source, written as upserts to PostgreSQL. Runs after social_posts_source.sql.
-- A post counts once per keyword: the UDF deduplicates within a post, COUNT(DISTINCT uid)
-- across re-sent copies of the same post.

-- Lateness is decided once, at the source, against each post's tumbling window: late when that
-- window's end is not after the watermark the post met (seconds since the epoch; the session time
-- zone is UTC). Late posts go to late_posts (then late_posts_per_window) and into no window at all, so the window
-- counts and the late counts always add up to the input. Deciding it here, not in the window
-- operators, matters: the Python UDF holds watermarks back until its bundle is done, so downstream
-- a post can look on time that was late at the source.
CREATE TEMPORARY VIEW posts_with_lateness AS
SELECT *,
       TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', CAST(created_at AS TIMESTAMP(3)))
           / ${tumble_s} * ${tumble_s} AS tumble_start_s,
       TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', CAST(CURRENT_WATERMARK(created_at) AS TIMESTAMP(3)))
           AS watermark_s
FROM social_posts;

CREATE TEMPORARY VIEW on_time_posts AS
SELECT uid, source, author_id, `text`, langs, hashtags, created_at
FROM posts_with_lateness
WHERE watermark_s IS NULL OR tumble_start_s + ${tumble_s} > watermark_s;

CREATE TEMPORARY VIEW post_keywords AS
SELECT p.uid, p.source, p.author_id, p.created_at, k.keyword
FROM on_time_posts AS p
CROSS JOIN UNNEST(post_keywords(p.`text`, p.hashtags, p.langs)) AS k (keyword);

CREATE TEMPORARY VIEW keyword_tumble AS
SELECT window_start, window_end, window_time, COALESCE(source, '*') AS source, keyword,
       COUNT(DISTINCT uid) AS posts, COUNT(DISTINCT author_id) AS authors,
       MIN(uid) AS first_uid, MAX(uid) AS last_uid
FROM TABLE(TUMBLE(TABLE post_keywords, DESCRIPTOR(created_at), ${tumble}))
GROUP BY window_start, window_end, window_time, GROUPING SETS ((source, keyword), (keyword));

CREATE TEMPORARY VIEW keyword_hop AS
SELECT window_start, window_end, window_time, COALESCE(source, '*') AS source, keyword,
       COUNT(DISTINCT uid) AS posts, COUNT(DISTINCT author_id) AS authors,
       MIN(uid) AS first_uid, MAX(uid) AS last_uid
FROM TABLE(HOP(TABLE post_keywords, DESCRIPTOR(created_at), ${hop_slide},
               ${hop_size}))
GROUP BY window_start, window_end, window_time, GROUPING SETS ((source, keyword), (keyword));

CREATE TEMPORARY VIEW posts_tumble AS
SELECT window_start, window_end, window_time, COALESCE(source, '*') AS source, COUNT(DISTINCT uid) AS posts
FROM TABLE(TUMBLE(TABLE on_time_posts, DESCRIPTOR(created_at), ${tumble}))
GROUP BY window_start, window_end, window_time, GROUPING SETS ((source), ());

CREATE TEMPORARY VIEW posts_hop AS
SELECT window_start, window_end, window_time, COALESCE(source, '*') AS source, COUNT(DISTINCT uid) AS posts
FROM TABLE(HOP(TABLE on_time_posts, DESCRIPTOR(created_at), ${hop_slide},
               ${hop_size}))
GROUP BY window_start, window_end, window_time, GROUPING SETS ((source), ());

-- The late posts, one row each: jobs/trending.py counts them in the latePosts metric on their way to
-- late_posts_per_window (trending_outputs.sql).
CREATE TEMPORARY VIEW late_posts AS
SELECT CAST(tumble_start_s AS BIGINT) AS tumble_start_s, source
FROM posts_with_lateness
WHERE watermark_s IS NOT NULL AND tumble_start_s + ${tumble_s} <= watermark_s;

-- Input of the Python scoring stage: each keyword's sliding window (all sources) with the
-- window's total posts, the denominator of the keyword's share (a window join), and the end of the
-- first window the job ever saw: the stream's history, for the cold-start rule in shared/trends.py.
-- The OVER aggregate runs in event-time order and keeps that minimum in checkpointed state, so a
-- restarted job sees the same value.
CREATE TEMPORARY VIEW keyword_window_totals AS
SELECT k.keyword, k.window_start, k.window_end, k.window_time, k.posts, k.authors, k.first_uid, k.last_uid,
       t.posts AS window_posts
FROM (SELECT * FROM keyword_hop WHERE source = '*') AS k
JOIN (SELECT * FROM posts_hop WHERE source = '*') AS t
  ON k.window_start = t.window_start AND k.window_end = t.window_end;
CREATE TEMPORARY VIEW scoring_input AS
SELECT keyword,
       -- epoch millis: plain numbers cross to the Python functions in every execution mode
       CAST(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', window_start) AS BIGINT) * 1000 AS window_start_ms,
       CAST(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', window_end) AS BIGINT) * 1000 AS window_end_ms,
       posts, authors, first_uid, last_uid, window_posts,
       CAST(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00',
            MIN(window_end) OVER (ORDER BY window_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
            AS BIGINT) * 1000 AS stream_first_end_ms
FROM keyword_window_totals;
CREATE TABLE keyword_window_counts_sink (
    window_kind STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL,
    source STRING NOT NULL, keyword STRING NOT NULL, posts BIGINT NOT NULL, authors BIGINT NOT NULL,
    PRIMARY KEY (window_kind, window_start, source, keyword) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'keyword_window_counts',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}',
    'sink.buffer-flush.max-rows' = '2000', 'sink.buffer-flush.interval' = '1 s'
);

CREATE TABLE window_posts_sink (
    window_kind STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL, window_end TIMESTAMP(3) NOT NULL,
    source STRING NOT NULL, posts BIGINT NOT NULL,
    PRIMARY KEY (window_kind, window_start, source) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'window_posts',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

INSERT INTO keyword_window_counts_sink
SELECT 'tumble', window_start, window_end, source, keyword, posts, authors FROM keyword_tumble;

INSERT INTO keyword_window_counts_sink
SELECT 'hop', window_start, window_end, source, keyword, posts, authors FROM keyword_hop;

INSERT INTO window_posts_sink
SELECT 'tumble', window_start, window_end, source, posts FROM posts_tumble
UNION ALL
SELECT 'hop', window_start, window_end, source, posts FROM posts_hop;
