-- The deletions job (jobs/deletions.py): social.deletes in, read as raw records (a notice that is not one is
-- quarantined by the Python stage, never a reason to stop), and the deletion log in PostgreSQL out. The log is
-- upserted by uid, so a replay after a failure rewrites rows; its triggers take the uid out of the trends
-- (sql/migrations/0011_deletions.sql).
CREATE TABLE deletion_records (
    kafka_key       BYTES,
    payload         BYTES,
    record_time     TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
    kafka_partition INT METADATA FROM 'partition' VIRTUAL,
    kafka_offset    BIGINT METADATA FROM 'offset' VIRTUAL,
    -- No windows here: the watermark only makes the record time the stream record's timestamp (the job's
    -- quarantined rows carry it).
    WATERMARK FOR record_time AS record_time
) WITH (
    ${kafka_source},
    'key.format' = 'raw',
    'key.fields' = 'kafka_key',
    'value.format' = 'raw',
    'value.fields-include' = 'EXCEPT_KEY'
);

CREATE TEMPORARY VIEW deletion_inputs AS
SELECT kafka_key, payload, kafka_partition, kafka_offset, record_time FROM deletion_records;
