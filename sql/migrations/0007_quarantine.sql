-- Records of social.posts that a job could not read as a SocialPost (undecodable bytes, a record that breaks
-- the post rules, a created_at that is not the record's timestamp): skipped by the jobs, which go on, and
-- kept here with where they were and why (runtime/minute_stage.py). One row per record, whichever job saw it
-- first or last; the payload is cut to 64 KiB (payload_bytes is its full size).
CREATE TABLE quarantined_records (
    topic            text      NOT NULL,
    kafka_partition  integer   NOT NULL,
    kafka_offset     bigint    NOT NULL,
    event_time       timestamp,             -- the record's event time (UTC): its created_at header, or its timestamp
    reason           text      NOT NULL,
    detail           text      NOT NULL,
    payload          bytea,
    payload_bytes    integer   NOT NULL,
    job              text      NOT NULL,
    quarantined_at   timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);
CREATE INDEX quarantined_records_latest ON quarantined_records (quarantined_at DESC);
