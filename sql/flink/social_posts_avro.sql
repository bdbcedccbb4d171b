-- The social.posts record as any Avro reader sees it: the SocialPost Avro record (shared/social_post.avsc)
-- through Flink's `avro` format, which derives its reader schema from these columns (NOT NULL columns are
-- plain Avro types, nullable ones unions with null first, TIMESTAMP_LTZ(3) a long with logicalType
-- timestamp-millis). A contract test reads back what the Python producer wrote, field for field
-- (tests/integration/test_post_contract.py); the pure-SQL benchmark ceiling reads posts this way too.
-- The jobs do not: one undecodable record fails this format for good (it cannot skip a record), so they
-- read the raw bytes (social_posts_source.sql) and decode in Python.
-- kafka_source: the topic, the jobs' login, where to start and stop (runtime/flink.py kafka_source).
-- The columns are the Avro schema's fields, in its order (post_columns, runtime/flink.py contract_values).
CREATE TABLE ${table_name} (
    ${post_columns},
    kafka_partition INT METADATA FROM 'partition' VIRTUAL,
    kafka_offset    BIGINT METADATA FROM 'offset' VIRTUAL,
    WATERMARK FOR created_at AS created_at - ${watermark}
) WITH (
    ${kafka_source},
    'format' = 'avro',
    -- Non-legacy mapping: TIMESTAMP_LTZ(3) <-> timestamp-millis (the legacy one cannot derive LTZ at all).
    'avro.timestamp_mapping.legacy' = 'false'
);
