-- Deletions honoured (issue 17). A post deleted at its source must disappear from what StreamPulse keeps.
--
-- deletions is the log of deletion notices (social.deletes), written by the deletions job (jobs/deletions.py),
-- one row per uid. PostgreSQL applies it to itself: the moment a notice lands, its uid leaves every trend's
-- sample_uids, and a trend written later (a late window) never takes a deleted uid in. The lake is rewritten
-- from this log by the compaction (runtime/lake.py): a deletion logged before a compaction of the lake started
-- is gone from that lake once the compaction finished (lake_compactions).
CREATE TABLE deletions (
    uid            text      PRIMARY KEY,
    source         text      NOT NULL,
    deleted_at     timestamp NOT NULL,            -- when the producer learned of it (UTC)
    reason         text,                          -- reddit: deleted or removed; else null
    local_id       text,                          -- mastodon: the status id on the instance that streamed it
    received_at    timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')  -- when the log took it in
);
CREATE INDEX deletions_received ON deletions (received_at);

-- sample_uids is a JSON array of uids as text; this index finds the trends that hold a given uid.
CREATE INDEX trends_sample_uids ON trends USING gin ((sample_uids::jsonb));

-- A JSON array of uids without those in the deletion log (the same text when none is).
CREATE FUNCTION streampulse_without_deleted(uids text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(uids::jsonb) AS u(uid)
                                 JOIN deletions d ON d.uid = u.uid) THEN uids
           ELSE (SELECT coalesce(jsonb_agg(u.uid ORDER BY u.n), '[]'::jsonb)::text
                 FROM jsonb_array_elements_text(uids::jsonb) WITH ORDINALITY AS u(uid, n)
                 WHERE NOT EXISTS (SELECT 1 FROM deletions d WHERE d.uid = u.uid)) END
$$;

-- A deletion logged: its uid leaves the trends that sampled it.
CREATE FUNCTION streampulse_scrub_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE trends SET sample_uids = streampulse_without_deleted(sample_uids)
    WHERE sample_uids::jsonb ? NEW.uid;
    RETURN NULL;
END
$$;
CREATE TRIGGER deletions_scrub_trends AFTER INSERT OR UPDATE OF uid ON deletions
    FOR EACH ROW EXECUTE FUNCTION streampulse_scrub_deleted();

-- A trend written (or rewritten by a replay) after the deletion: it keeps no deleted uid.
CREATE FUNCTION streampulse_trend_without_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.sample_uids := streampulse_without_deleted(NEW.sample_uids);
    RETURN NEW;
END
$$;
CREATE TRIGGER trends_without_deleted BEFORE INSERT OR UPDATE OF sample_uids ON trends
    FOR EACH ROW EXECUTE FUNCTION streampulse_trend_without_deleted();

-- One row per compaction of the lake (jobs' Parquet under a path): what it read and removed. The next run
-- starts from the last finished one: files older than it need only the deletions logged since.
CREATE TABLE lake_compactions (
    path            text      NOT NULL,
    started_at      timestamp NOT NULL,
    finished_at     timestamp NOT NULL,
    files_read      integer   NOT NULL,
    files_rewritten integer   NOT NULL,
    posts_removed   bigint    NOT NULL,
    PRIMARY KEY (path, started_at)
);
