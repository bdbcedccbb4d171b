-- Written by the trending job (jobs/trending.py). All times are UTC, stored as `timestamp`
-- (the job runs with table.local-time-zone = UTC). Every table has its natural key as primary key
-- and the job writes upserts, so a replay after a failure rewrites rows instead of adding them.

-- Posts and distinct authors per keyword and window; source '*' is all sources together.
CREATE TABLE keyword_window_counts (
    window_kind   text      NOT NULL CHECK (window_kind IN ('tumble', 'hop')),
    window_start  timestamp NOT NULL,
    window_end    timestamp NOT NULL,
    source        text      NOT NULL,
    keyword       text      NOT NULL,
    posts         bigint    NOT NULL,
    authors       bigint    NOT NULL,
    PRIMARY KEY (window_kind, window_start, source, keyword)
);
-- "a keyword over time" and "the top keywords of the latest window"
CREATE INDEX keyword_window_counts_keyword ON keyword_window_counts (keyword, window_kind, window_start);
CREATE INDEX keyword_window_counts_latest ON keyword_window_counts (window_kind, window_end DESC, posts DESC);

-- Posts per window and source ('*' = all), the denominator of a keyword's share.
CREATE TABLE window_posts (
    window_kind   text      NOT NULL CHECK (window_kind IN ('tumble', 'hop')),
    window_start  timestamp NOT NULL,
    window_end    timestamp NOT NULL,
    source        text      NOT NULL,
    posts         bigint    NOT NULL,
    PRIMARY KEY (window_kind, window_start, source)
);

-- One row per keyword that trended in a scored window, with the evidence behind the alert.
CREATE TABLE trends (
    window_start   timestamp        NOT NULL,
    window_end     timestamp        NOT NULL,
    keyword        text             NOT NULL,
    trend_rank     integer          NOT NULL,
    posts          bigint           NOT NULL,
    authors        bigint           NOT NULL,
    baseline_mean  double precision NOT NULL,
    baseline_std   double precision NOT NULL,
    z              double precision NOT NULL,
    sample_uids    text             NOT NULL,  -- JSON array of a few post uids
    PRIMARY KEY (window_end, keyword)
);
CREATE INDEX trends_latest ON trends (window_end DESC, trend_rank);
CREATE INDEX trends_keyword ON trends (keyword, window_end);

-- Posts that arrived after the watermark had passed their 1-minute window: counted, never dropped silently.
CREATE TABLE late_posts (
    window_start  timestamp NOT NULL,
    source        text      NOT NULL,
    posts         bigint    NOT NULL,
    PRIMARY KEY (window_start, source)
);
