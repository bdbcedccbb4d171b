-- The volume job's anomaly outputs, fed by its Python scoring stage (jobs/volume.py registers
-- volume_anomaly_rows before these statements run): Postgres and the transactional anomalies topic.

CREATE TEMPORARY VIEW volume_anomalies_view AS
SELECT dimension, series,
       CAST(TO_TIMESTAMP_LTZ(window_start_ms, 3) AS TIMESTAMP(3)) AS window_start,
       CAST(TO_TIMESTAMP_LTZ(window_end_ms, 3) AS TIMESTAMP(3)) AS window_end,
       posts, baseline_mean, baseline_std, z, direction, severity, p_value
FROM volume_anomaly_rows;

CREATE TABLE volume_anomalies_sink (
    dimension STRING NOT NULL, series STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL,
    window_end TIMESTAMP(3) NOT NULL, posts BIGINT NOT NULL, baseline_mean DOUBLE NOT NULL,
    baseline_std DOUBLE NOT NULL, z DOUBLE NOT NULL, direction STRING NOT NULL, severity STRING NOT NULL,
    p_value DOUBLE NOT NULL,
    PRIMARY KEY (dimension, series, window_start) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'volume_anomalies${table_suffix}',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

-- Through Flink's transactional Kafka sink: visible to read_committed readers only after the
-- checkpoint that covers them completes.
CREATE TABLE volume_anomalies_topic (
    dimension STRING NOT NULL, series STRING NOT NULL, window_start TIMESTAMP(3) NOT NULL,
    window_end TIMESTAMP(3) NOT NULL, posts BIGINT NOT NULL, baseline_mean DOUBLE NOT NULL,
    baseline_std DOUBLE NOT NULL, z DOUBLE NOT NULL, direction STRING NOT NULL, severity STRING NOT NULL,
    p_value DOUBLE NOT NULL
) WITH (
    ${anomalies_sink},
    'key.format' = 'raw',
    'key.fields' = 'series',
    'value.format' = 'json'
);

-- One row per outage, upserted while it lasts and when it ends (ongoing = false).
CREATE TABLE volume_outages_sink (
    dimension STRING NOT NULL, series STRING NOT NULL, outage_start TIMESTAMP(3) NOT NULL,
    last_window_end TIMESTAMP(3) NOT NULL, expected_posts DOUBLE NOT NULL, observed_posts BIGINT NOT NULL,
    p_value DOUBLE NOT NULL, severity STRING NOT NULL, ongoing BOOLEAN NOT NULL,
    PRIMARY KEY (dimension, series, outage_start) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'volume_outages${table_suffix}',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

INSERT INTO volume_anomalies_sink SELECT * FROM volume_anomalies_view;

INSERT INTO volume_outages_sink
SELECT dimension, series, CAST(TO_TIMESTAMP_LTZ(outage_start_ms, 3) AS TIMESTAMP(3)),
       CAST(TO_TIMESTAMP_LTZ(last_window_end_ms, 3) AS TIMESTAMP(3)), expected_posts, observed_posts, p_value,
       severity, ongoing
FROM volume_outage_rows;

INSERT INTO volume_anomalies_topic SELECT * FROM volume_anomalies_view;
