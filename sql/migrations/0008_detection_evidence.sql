-- Issue 18: every alert says what evidence made it (shared/trends.py, shared/volume.py), and an outage is an
-- episode with a start and an end.

-- A trend fired on its 5-minute window, on its newest minute, or on the sequential test's run of minutes:
-- `evidence` says which, over which span (`evidence_start` to window_end), what was observed and expected
-- there, and p. Rows written before this migration have evidence 'window' and no p.
ALTER TABLE trends
    ADD COLUMN evidence          text             NOT NULL DEFAULT 'window'
        CHECK (evidence IN ('window', 'minute', 'sequential')),
    ADD COLUMN evidence_start    timestamp,
    ADD COLUMN evidence_posts    bigint,
    ADD COLUMN evidence_expected double precision,
    ADD COLUMN p_value           double precision;

-- Volume anomalies: a window of an outage (a series empty, or almost, where posts were expected) is its own
-- direction, and every anomaly carries the tail probability of its count under the series' model.
ALTER TABLE volume_anomalies DROP CONSTRAINT volume_anomalies_direction_check;
ALTER TABLE volume_anomalies ADD CONSTRAINT volume_anomalies_direction_check
    CHECK (direction IN ('spike', 'drop', 'outage'));
ALTER TABLE volume_anomalies ADD COLUMN p_value double precision;

-- One row per outage of a series, updated while it lasts (ongoing) and when it ends (last_window_end is the
-- end of its last empty window). Expected vs observed posts over the outage, and the evidence's p.
CREATE TABLE volume_outages (
    dimension        text             NOT NULL CHECK (dimension IN ('source', 'lang', 'community')),
    series           text             NOT NULL,
    outage_start     timestamp        NOT NULL,
    last_window_end  timestamp        NOT NULL,
    expected_posts   double precision NOT NULL,
    observed_posts   bigint           NOT NULL,
    p_value          double precision NOT NULL,
    severity         text             NOT NULL CHECK (severity IN ('warning', 'critical')),
    ongoing          boolean          NOT NULL,
    PRIMARY KEY (dimension, series, outage_start)
);
CREATE INDEX volume_outages_latest ON volume_outages (outage_start DESC);
