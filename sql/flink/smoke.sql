-- Smoke job: JSON events from a Kafka topic, counted and summed per key, upserted into Postgres.
-- Proves the Kafka connector, the JDBC connector + PostgreSQL driver and Python UDFs work together.
CREATE TABLE smoke_events (
    smoke_key STRING NOT NULL,
    amount    BIGINT NOT NULL
) WITH (
    ${kafka_source},
    'format' = 'json',
    'json.fail-on-missing-field' = 'true'
);

CREATE TABLE stack_smoke (
    smoke_key STRING NOT NULL,
    events    BIGINT NOT NULL,
    total     BIGINT NOT NULL,
    PRIMARY KEY (smoke_key) NOT ENFORCED
) WITH (
    'connector' = 'jdbc',
    'url' = '${jdbc_url}',
    'table-name' = 'stack_smoke',
    'username' = '${jdbc_user}',
    'password' = '${jdbc_password}'
);

INSERT INTO stack_smoke
SELECT normalise_key(smoke_key), COUNT(*), SUM(amount)
FROM smoke_events
GROUP BY normalise_key(smoke_key);
