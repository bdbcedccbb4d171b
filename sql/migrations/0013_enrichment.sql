-- Enrichment and conversations (issue 20).

-- The mood around each trend (jobs/trending.py, shared/enrich.py): over the window's posts that carry the keyword
-- and have a sentiment score (English ones; VADER's compound in [-1, 1]), the mean score and the share of negative
-- ones; `usual_sentiment` is the keyword's usual mood (an EWMA of its windows' means, as of the windows that left
-- the scoring window), `mood_change` the difference. NULL where no post of the window was scored, or (usual and
-- change) where the keyword has no mood history yet.
ALTER TABLE trends
    ADD COLUMN sentiment        double precision CHECK (sentiment BETWEEN -1 AND 1),
    ADD COLUMN negative_share   double precision CHECK (negative_share BETWEEN 0 AND 1),
    ADD COLUMN sentiment_posts  bigint NOT NULL DEFAULT 0 CHECK (sentiment_posts >= 0),
    ADD COLUMN usual_sentiment  double precision,
    ADD COLUMN mood_change      double precision;

-- Conversations (jobs/conversations.py): event-time session windows of the posts of one thread (keyed by the
-- thread's root uid: a post's reply_root, or its own uid), closed after `conversations.gap_s` without a post.
-- A session is written when it closes (is_open false), and while it is open once a minute that it grew; a late
-- reply that extends or joins sessions rewrites the row (a session it merged into another is deleted).
CREATE TABLE conversations (
    root_uid       text      NOT NULL,
    session_start  timestamp NOT NULL,  -- the first post's event time (UTC)
    session_end    timestamp NOT NULL,  -- the last post's
    posts          bigint    NOT NULL CHECK (posts > 0),
    authors        bigint    NOT NULL CHECK (authors > 0),
    sources        text      NOT NULL,  -- the distinct sources, comma-separated, sorted
    top_keywords   text      NOT NULL,  -- JSON: [[keyword, posts], ...], the most frequent first
    root_in_session boolean  NOT NULL,  -- the root post itself is one of the session's posts
    is_open        boolean   NOT NULL,
    PRIMARY KEY (root_uid, session_start),
    CHECK (session_end >= session_start)
) PARTITION BY RANGE (session_start);
CREATE TABLE conversations_default PARTITION OF conversations DEFAULT;
CREATE INDEX conversations_recent ON conversations (session_end DESC, posts DESC);

-- "Hot conversations now": the threads active in the hour before the newest post any conversation holds (the
-- stream's now, also right for a replay of old posts), the busiest first.
CREATE VIEW hot_conversations AS
SELECT root_uid, session_start, session_end, posts, authors, sources, top_keywords, is_open,
       round(extract(epoch FROM session_end - session_start) / 60.0, 1) AS minutes
FROM conversations
WHERE session_end >= (SELECT max(session_end) FROM conversations) - interval '1 hour'
ORDER BY posts DESC, authors DESC, session_end DESC, root_uid;

-- "The mood of the trending keywords": every trend's window with its sentiment, for the dashboards' chart.
CREATE VIEW trend_sentiment AS
SELECT window_end, keyword, trend_rank, posts, sentiment, negative_share, sentiment_posts, usual_sentiment,
       mood_change
FROM trends
WHERE sentiment IS NOT NULL;
