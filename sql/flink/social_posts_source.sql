-- social.posts as the jobs read it: the raw record, never decoded in the JVM. Flink's `avro` format fails
-- a job for good on one undecodable record and cannot skip it (FLINK-20091 and FLINK-27440 were never
-- merged), and anyone who can write the topic can write anything. So the jobs decode and validate the
-- SocialPost Avro record in Python (shared/post.py decode_post), where a bad record is quarantined with its
-- partition, offset and reason and the job goes on.
--
-- Event time is the post's created_at (clamped by the producers to its ingestion), which the producers put in
-- the record's `created_at` header (epoch millis), capped at the record's own timestamp — the time it was
-- sent, which the broker keeps within a minute of its clock — so that no record can carry the watermark into
-- the future. A record without a readable header is not a post from a producer: its event time is the epoch, so
-- it is late at once (and quarantined) and never moves a watermark. The watermark is generated here, per
-- partition, before any decoding; decode_post requires created_at to equal the event time. (The record
-- timestamp itself stays the send time: Kafka's time retention counts from it, and a replay of old posts
-- must not be deleted on arrival.)
-- kafka_source: the topic, the jobs' login, where to start and stop (runtime/flink.py kafka_source).
CREATE TABLE ${table_name} (
    kafka_key       BYTES,
    payload         BYTES,
    record_time     TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
    headers         MAP<STRING, BYTES> METADATA VIRTUAL,
    kafka_partition INT METADATA FROM 'partition' VIRTUAL,
    kafka_offset    BIGINT METADATA FROM 'offset' VIRTUAL,
    event_time AS COALESCE(LEAST(TO_TIMESTAMP_LTZ(TRY_CAST(CAST(headers['created_at'] AS STRING) AS BIGINT), 3),
                                 record_time), TO_TIMESTAMP_LTZ(0, 3)),
    WATERMARK FOR event_time AS event_time - ${watermark}
) WITH (
    ${kafka_source},
    'key.format' = 'raw',
    'key.fields' = 'kafka_key',
    'value.format' = 'raw',
    'value.fields-include' = 'EXCEPT_KEY'
);
