-- The volume job's anomaly outputs, fed by its Python scoring stage (jobs/volume.py registers
-- volume_anomaly_rows before these statements run): Postgres and the transactional anomalies topic.

CREATE TEMPORARY VIEW volume_anomalies_view AS
SELECT dimension, series,
       CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP(3)) AS window_start,
       CAST(TO_TIMESTAMP_LTZ(window_end_ms, 3) AS TIMESTAMP(3)) AS window_end,
       posts, baseline_mean, baseline_std, z, direction, severity
FROM volume_anomaly_rows;

CREATE TABLE volume_anomalies_sink (
    dimension STRING NOT NULL, series STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL,
    window_end TIMESTAMP(3) NOT NULL, posts BIGINT NOT NULL, baseline_mean DOUBLE NOT NULL,
    baseline_std DOUBLE NOT NULL, z DOUBLE NOT NULL, direction STRING NOT NULL, severity STRING NOT NULL,
    PRIMARY KEY (dimension, series, window_start) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'volume_anomalies',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

-- Through Flink's transactional Kafka sink: visible to read_committed readers only after the
-- checkpoint that covers them completes.
CREATE TABLE volume_anomalies_topic (
    dimension STRING NOT NULL, series STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL,
    window_end TIMESTAMP(3) NOT NULL, posts BIGINT NOT NULL, baseline_mean DOUBLE NOT NULL,
    baseline_std DOUBLE NOT NULL, z DOUBLE NOT NULL, direction STRING NOT NULL, severity STRING NOT NULL
) WITH (
    'connector' = 'kafka',
    'topic' = '${anomalies_topic}',
    'properties.bootstrap.servers' = '${bootstrap}',
    ${kafka_security}
    'key.format' = 'raw',
    'key.fields' = 'series',
    'value.format' = 'json',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = '${transactional_id_prefix}',
    'properties.transaction.timeout.ms' = '600000'
);

INSERT INTO volume_anomalies_sink SELECT * FROM volume_anomalies_view;

INSERT INTO volume_anomalies_topic SELECT * FROM volume_anomalies_view;
