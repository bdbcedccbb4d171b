-- The pure-SQL ceiling of the trending job's counting (bench/trending_throughput.py): the same source
-- and the same windows, keywords per post approximated in SQL (lower-cased words and hashtags, no
-- stop words), posts and authors per keyword, overall and per source, into a blackhole. No Python and
-- no external sink. ${posts_agg} / ${authors_agg}: COUNT(DISTINCT uid) / COUNT(DISTINCT author_id) for
-- exact counts, or COUNT(*) for the cheapest windows SQL has. Runs after social_posts_source.sql.

CREATE TEMPORARY VIEW sql_post_words AS
SELECT p.uid, p.source, p.author_id, p.created_at, w.word
FROM social_posts AS p
CROSS JOIN UNNEST(SPLIT(LOWER(REGEXP_REPLACE(p.`text`, '[^\p{L}\p{N}#]+', ' ')), ' ')) AS w (word);

CREATE TEMPORARY TABLE window_count_sink (
    window_kind STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), source STRING, keyword STRING,
    posts BIGINT, authors BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO window_count_sink
SELECT 'tumble', window_start, window_end, COALESCE(source, '*'), word, ${posts_agg}, ${authors_agg}
FROM TABLE(TUMBLE(TABLE sql_post_words, DESCRIPTOR(created_at), ${tumble}))
WHERE word <> ''
GROUP BY window_start, window_end, GROUPING SETS ((source, word), (word));

INSERT INTO window_count_sink
SELECT 'hop', window_start, window_end, COALESCE(source, '*'), word, ${posts_agg}, ${authors_agg}
FROM TABLE(HOP(TABLE sql_post_words, DESCRIPTOR(created_at), ${hop_slide}, ${hop_size}))
WHERE word <> ''
GROUP BY window_start, window_end, GROUPING SETS ((source, word), (word));
