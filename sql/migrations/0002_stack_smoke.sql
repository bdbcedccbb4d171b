-- Written by the smoke job (jobs/smoke.py): Kafka → Flink → JDBC upsert. Its only purpose is to
-- prove that the jar manifest, the connectors and the roles work together end to end.
CREATE TABLE stack_smoke (
    smoke_key   text        PRIMARY KEY,
    events      bigint      NOT NULL,
    total       bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
