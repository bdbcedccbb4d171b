-- The read API (api/) pages through trends and volume anomalies oldest first, by keyset: an index in exactly
-- that order serves a page by reading just that page, whatever the planner's statistics say (after a bulk load
-- or a replay they are stale, and a day's rows would be read and sorted for every page).
CREATE INDEX trends_by_window ON trends (window_end, trend_rank, keyword);
CREATE INDEX volume_anomalies_by_window ON volume_anomalies (window_start, dimension, series);
