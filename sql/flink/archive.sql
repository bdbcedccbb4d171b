-- The raw data lake: every valid post from social.posts as Parquet, partitioned by source, date and
-- hour of event time (UTC), through Flink's filesystem sink. Parquet is a bulk format: a part file
-- rolls on every checkpoint and becomes visible only when that checkpoint completes, so a replay after
-- a failure never leaves a duplicate or a half-written file behind. A partition gets its _SUCCESS
-- marker once the watermark has passed the partition's hour by `${commit_delay}`.
-- Runs after lake_posts.sql (the table) and posts_by_minute.sql; jobs/archive.py registers decoded_posts (the
-- valid posts its Python stage decoded, on time or late).

-- A post re-sent by a producer (a restart after a crash re-sends what it had not recorded as done) is
-- archived once: the first copy per uid is kept, the uid remembered for `${dedupe_ttl}` (state TTL).
CREATE TEMPORARY VIEW first_copies AS
SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY uid ORDER BY arrived) AS copy
    FROM (SELECT *, PROCTIME() AS arrived FROM decoded_posts)
) WHERE copy = 1;

INSERT INTO posts_lake
SELECT uid, author_id, `text`, langs, CAST(TO_TIMESTAMP_LTZ(created_at_ms, 3) AS TIMESTAMP(3)),
       CAST(TO_TIMESTAMP_LTZ(ingested_at_ms, 3) AS TIMESTAMP(3)), hashtags, mentions, links, reply_parent,
       reply_root, community, schema_version, source, DATE_FORMAT(TO_TIMESTAMP_LTZ(created_at_ms, 3), 'yyyy-MM-dd'),
       DATE_FORMAT(TO_TIMESTAMP_LTZ(created_at_ms, 3), 'HH')
FROM first_copies;
