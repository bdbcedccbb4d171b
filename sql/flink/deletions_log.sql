-- After jobs/deletions.py registered deletion_notices (the valid notices, each already out of Redis) and
-- quarantined_rows: the log, one row per uid (received_at is PostgreSQL's to set).
CREATE TABLE deletions_log (
    uid STRING NOT NULL, source STRING NOT NULL, deleted_at TIMESTAMP(3) NOT NULL, reason STRING, local_id STRING,
    PRIMARY KEY (uid) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'deletions',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

INSERT INTO deletions_log
SELECT uid, source, CAST(TO_TIMESTAMP_LTZ(deleted_at_ms, 3) AS TIMESTAMP(3)), reason, local_id
FROM deletion_notices;
