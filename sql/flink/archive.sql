-- The raw data lake: every valid post from social.posts as Parquet, partitioned by source, date and
-- hour of event time (UTC), through Flink's filesystem sink. Parquet is a bulk format: a part file
-- rolls on every checkpoint and becomes visible only when that checkpoint completes, so a replay after
-- a failure never leaves a duplicate or a half-written file behind. A partition gets its _SUCCESS
-- marker once the watermark has passed the partition's hour by `${commit_delay}`.
-- Runs after social_posts_source.sql and posts_by_minute.sql; jobs/archive.py registers decoded_posts (the
-- valid posts its Python stage decoded, on time or late). Columns (the documented lake schema, README):
--   uid, author_id, text, langs, created_at (UTC, ms), ingested_at (UTC, ms), hashtags, mentions, links,
--   reply_parent, reply_root, community, schema_version; in the path: source=, dt=YYYY-MM-DD, hour=HH.
-- The post columns are the Avro schema's fields but the source, timestamps as UTC TIMESTAMP(3)
-- (lake_post_columns, runtime/flink.py contract_values).
CREATE TABLE posts_lake (
    ${lake_post_columns},
    source         STRING NOT NULL,
    dt             STRING NOT NULL,
    `hour`         STRING NOT NULL
) PARTITIONED BY (source, dt, `hour`) WITH (
    'connector' = 'filesystem',
    'path' = '${path}',
    'format' = 'parquet',
    -- int64 timestamp-millis (UTC) instead of Parquet's legacy INT96: what pyarrow and duckdb expect.
    'parquet.write.int64.timestamp' = 'true',
    'parquet.timestamp.time.unit' = 'millis',
    'parquet.utc-timezone' = 'true',
    'parquet.compression' = 'SNAPPY',
    'sink.rolling-policy.file-size' = '128MB',
    'sink.partition-commit.trigger' = 'partition-time',
    'partition.time-extractor.timestamp-pattern' = '$$dt $$hour:00:00',
    'sink.partition-commit.delay' = '${commit_delay}',
    'sink.partition-commit.watermark-time-zone' = 'UTC',
    'sink.partition-commit.policy.kind' = 'success-file'
);

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
