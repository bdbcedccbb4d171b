-- The raw data lake's table: every valid post from social.posts as Parquet, partitioned by source, date and
-- hour of event time (UTC). jobs/archive.py writes it (archive.sql); a backfill reads it (lake_minute_posts.sql).
-- Columns (the documented lake schema, README):
--   uid, author_id, text, langs, created_at (UTC, ms), ingested_at (UTC, ms), hashtags, mentions, links,
--   reply_parent, reply_root, community, schema_version; in the path: source=, dt=YYYY-MM-DD, hour=HH.
-- The post columns are the Avro schema's fields but the source, timestamps as UTC TIMESTAMP(3)
-- (lake_post_columns, runtime/flink.py contract_values). The sink.* options are the archive's; a read
-- ignores them.
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
