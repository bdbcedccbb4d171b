-- The trending job now writes what the dashboards read, bounded per window (jobs/trending.py): each minute's
-- top keywords and the keywords that trended or came close ('tumble' rows, source '*'), and the sliding
-- windows in which they did ('hop' rows) with their z. Every keyword's minute counts go to the lake instead.
ALTER TABLE keyword_window_counts ADD COLUMN z double precision;
COMMENT ON COLUMN keyword_window_counts.z IS 'hop rows: the sliding window''s z against the keyword''s baseline';
