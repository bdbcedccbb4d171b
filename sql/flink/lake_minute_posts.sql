-- A backfill's input (runtime/backfill.py): the lake's posts (lake_posts.sql) of the period
-- [${from_ts}, ${to_ts}) UTC, as the views on_time_posts and late_posts that posts_by_minute.sql batches —
-- what posts_lateness.sql makes of social.posts when a job streams. Only the period's partitions are listed
-- and read: the filter on dt and hour prunes the others before any file is opened.
--
-- A record's payload is the post as JSON (its key the uid), which the Python stage reads with the producers'
-- rules (runtime/minute_stage.py); it has no partition or offset. Nothing is late: a backfill runs in batch
-- mode over a finished period, where every minute is complete before it is counted.
CREATE TEMPORARY VIEW lake_period_posts AS
SELECT *, CAST(created_at AS TIMESTAMP_LTZ(3)) AS event_time
FROM posts_lake
WHERE CONCAT(dt, ' ', `hour`) BETWEEN '${from_hour}' AND '${to_hour}'
  AND created_at >= TIMESTAMP '${from_ts}' AND created_at < TIMESTAMP '${to_ts}';

CREATE TEMPORARY VIEW on_time_posts AS
SELECT event_time, ${epoch_s_of_created_at} / ${tumble_s} * ${tumble_s} AS minute_start_s,
       CAST(NULL AS INT) AS kafka_partition, CAST(NULL AS BIGINT) AS kafka_offset, CAST(uid AS BYTES) AS kafka_key,
       CAST(${lake_post_json} AS BYTES) AS payload
FROM lake_period_posts;

CREATE TEMPORARY VIEW late_posts AS
SELECT * FROM on_time_posts WHERE FALSE;
