-- Records of social.posts a job's Python stage could not read as a SocialPost (runtime/minute_stage.py),
-- upserted into quarantined_records by (topic, partition, offset): whichever job saw the record, one row.
-- The job registers the view quarantined_rows (its QUARANTINE side output) before this runs.
CREATE TABLE quarantine_sink (
    topic STRING NOT NULL, kafka_partition INT NOT NULL, kafka_offset BIGINT NOT NULL, event_time TIMESTAMP(3),
    reason STRING NOT NULL, detail STRING NOT NULL, payload BYTES, payload_bytes INT NOT NULL, job STRING NOT NULL,
    PRIMARY KEY (topic, kafka_partition, kafka_offset) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'quarantined_records',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

INSERT INTO quarantine_sink
SELECT topic, kafka_partition, kafka_offset, CAST(TO_TIMESTAMP_LTZ(event_time_ms, 3) AS TIMESTAMP(3)), reason, detail,
       payload, payload_bytes, job
FROM quarantined_rows;
