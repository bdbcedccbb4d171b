-- The conversations job's sink (jobs/conversations.py registers the changelog view conversation_rows): one row per
-- session of a thread, upserted by (root_uid, session_start); a session that a late reply merged into another, or
-- whose start a late reply moved earlier, arrives as a delete of its old key.
CREATE TABLE conversations_sink (
    root_uid STRING NOT NULL, session_start TIMESTAMP(3) NOT NULL, session_end TIMESTAMP(3) NOT NULL,
    posts BIGINT NOT NULL, authors BIGINT NOT NULL, sources STRING NOT NULL, top_keywords STRING NOT NULL,
    root_in_session BOOLEAN NOT NULL, is_open BOOLEAN NOT NULL,
    PRIMARY KEY (root_uid, session_start) NOT ENFORCED
) WITH (
    'connector' = 'jdbc', 'url' = '${jdbc_url}', 'table-name' = 'conversations',
    'username' = '${jdbc_user}', 'password' = '${jdbc_password}'
);

INSERT INTO conversations_sink
SELECT root_uid, CAST(TO_TIMESTAMP_LTZ(session_start_ms, 3) AS TIMESTAMP(3)),
       CAST(TO_TIMESTAMP_LTZ(session_end_ms, 3) AS TIMESTAMP(3)), posts, authors, sources, top_keywords,
       root_in_session, is_open
FROM conversation_rows;
