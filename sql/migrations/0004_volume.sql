-- Written by the volume job (jobs/volume.py). Times are UTC `timestamp`s; natural keys as primary keys,
-- written as upserts, so a replay after a failure rewrites rows instead of adding them.
-- A series is a source ('reddit'), a source's language ('reddit/en') or a source's community
-- ('reddit/r/news'); `dimension` says which.

-- Posts per series and tumbling window (windows without posts have no row).
CREATE TABLE volume_windows (
    dimension     text      NOT NULL CHECK (dimension IN ('source', 'lang', 'community')),
    series        text      NOT NULL,
    window_start  timestamp NOT NULL,
    window_end    timestamp NOT NULL,
    posts         bigint    NOT NULL,
    PRIMARY KEY (dimension, series, window_start)
);
-- "volume per source over time" and "the latest window of every series"
CREATE INDEX volume_windows_latest ON volume_windows (window_start DESC, dimension);

-- Windows whose count left the series' baseline: a spike or a drop (0 posts when the series went silent).
CREATE TABLE volume_anomalies (
    dimension      text             NOT NULL CHECK (dimension IN ('source', 'lang', 'community')),
    series         text             NOT NULL,
    window_start   timestamp        NOT NULL,
    window_end     timestamp        NOT NULL,
    posts          bigint           NOT NULL,
    baseline_mean  double precision NOT NULL,
    baseline_std   double precision NOT NULL,
    z              double precision NOT NULL,
    direction      text             NOT NULL CHECK (direction IN ('spike', 'drop')),
    severity       text             NOT NULL CHECK (severity IN ('warning', 'critical')),
    PRIMARY KEY (dimension, series, window_start)
);
CREATE INDEX volume_anomalies_latest ON volume_anomalies (window_start DESC);
