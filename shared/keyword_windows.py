"""Keyword counts per minute and the sliding windows built from them: the trending job's counting.

The job hands its Python stage one batch of on-time posts per minute (and shard) of event time,
gathered in the JVM (sql/flink/posts_by_minute.sql) and decoded (runtime/minute_stage.py). Here each batch
becomes a `MinuteCounts`: per keyword the distinct posts, the set of distinct authors, the smallest and
largest uid (a trend's sample posts) and the sentiment of its scored posts (sum, count, negatives), and the
posts per source. A sliding window of `overlap` minutes is
then the sum of its minutes' posts (a post lives in one minute only) and the union of their author sets:
exact, with no per-window state in the JVM.

What gets written where is chosen here too (`top_keywords`, `watch_list`), so that PostgreSQL receives
what the dashboards read, bounded per window, not one row per word of the vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from shared.enrich import NEGATIVE_AT_MOST, sentiment
from shared.keywords import extract_keywords
from shared.post import SocialPost
from shared.trends import TrendDecision, TrendingSettings

# VADER's compound score has four decimals: sums of scores are kept as whole units of 1e-4, exact and the same
# whatever order (and batches) the posts are counted in — a backfill writes the stream's numbers to the last bit.
SENTIMENT_UNITS = 10_000

ALL_SOURCES = "*"


@dataclass(slots=True)
class KeywordCount:
    posts: int
    authors: set[str]
    first_uid: str  # the smallest uid: with last_uid, the trend's sample posts
    last_uid: str
    scored: int = 0  # posts with a sentiment score (shared/enrich.py), their scores' sum, the negative ones
    sentiment_units: int = 0  # the sum in SENTIMENT_UNITS: exact, whatever order the posts are counted in
    negative: int = 0


@dataclass
class MinuteCounts:
    """One minute (tumbling window `index` = window_start // tumble) of on-time posts."""

    index: int
    keywords: dict[str, KeywordCount] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)  # distinct posts per source, ALL_SOURCES for all

    def merge(self, other: MinuteCounts) -> MinuteCounts:
        """Add another batch of the same minute (batches split the posts by uid, so none is in both)."""
        for keyword, theirs in other.keywords.items():
            mine = self.keywords.get(keyword)
            if mine is None:
                self.keywords[keyword] = theirs
            else:
                mine.posts += theirs.posts
                mine.authors |= theirs.authors
                mine.first_uid = min(mine.first_uid, theirs.first_uid)
                mine.last_uid = max(mine.last_uid, theirs.last_uid)
                mine.scored += theirs.scored
                mine.sentiment_units += theirs.sentiment_units
                mine.negative += theirs.negative
        for source, posts in other.totals.items():
            self.totals[source] = self.totals.get(source, 0) + posts
        return self


@dataclass
class Progress:
    """Where the trending job's Python stage stands, in minutes (tumbling-window indexes) and sliding-window
    end indexes. Kept in the job's state: defined here, in an importable module, because a class of a job run
    as `flink run -py jobs/x.py` lives in `__main__`, which the workers cannot unpickle."""

    first_window: int | None = None  # end index of the first sliding window the job saw (the cold-start rule)
    closed_minute: int | None = None  # every minute up to this one is counted: a later batch for it is late
    scored_until: int | None = None  # the last sliding window scored
    last_data_minute: int | None = None
    # keyword → (end of the last window it trended or came close in, last minute whose count was written)
    watched: dict[str, tuple[int, int]] = field(default_factory=dict)


def count_posts(index: int, posts: Iterable[SocialPost], with_sentiment: bool = True,
                ignore: frozenset[str] = frozenset()) -> MinuteCounts:
    """Count one batch of posts; a re-sent copy (same uid) counts once, and a post once per keyword but those in
    `ignore`, with its sentiment score when it has one (shared/enrich.py: English posts) and `with_sentiment`."""
    keywords: dict[str, KeywordCount] = {}
    totals: dict[str, int] = {}
    seen: set[str] = set()
    for post in posts:
        uid, author = post.uid, post.author_id
        if uid in seen:
            continue
        seen.add(uid)
        totals[post.source] = totals.get(post.source, 0) + 1
        score = sentiment(post.text, post.langs) if with_sentiment else None
        negative = 1 if score is not None and score <= NEGATIVE_AT_MOST else 0
        for keyword in extract_keywords(post.text, post.hashtags, post.langs):
            if keyword in ignore:
                continue
            count = keywords.get(keyword)
            if count is None:
                count = keywords[keyword] = KeywordCount(1, {author}, uid, uid)
            else:
                count.posts += 1
                count.authors.add(author)
                if uid < count.first_uid:
                    count.first_uid = uid
                elif uid > count.last_uid:
                    count.last_uid = uid
            if score is not None:
                count.scored += 1
                count.sentiment_units += round(score * SENTIMENT_UNITS)
                count.negative += negative
    if seen:
        totals[ALL_SOURCES] = len(seen)
    return MinuteCounts(index, keywords, totals)


class WindowCount(NamedTuple):
    posts: int
    authors: int  # 0 below `min_posts` posts: no rule reads it there (see sliding_window)
    samples: tuple[str, ...]  # the smallest and the largest uid, once each; () below `min_posts`
    scored: int = 0  # posts with a sentiment score, their sum, the negative ones (0 below `min_posts`)
    sentiment_units: int = 0  # the sum in SENTIMENT_UNITS
    negative: int = 0

    @property
    def sentiment_sum(self) -> float:
        return self.sentiment_units / SENTIMENT_UNITS


def sliding_window(minutes: Sequence[MinuteCounts],
                   min_posts: int = 1) -> tuple[dict[str, WindowCount], dict[str, int]]:
    """The window made of these minutes: per keyword its posts, distinct authors and samples; the posts per
    source (ALL_SOURCES included).

    Distinct authors and samples are only worked out for keywords with at least `min_posts` posts: a trend
    and a watched keyword need that many, and the union of author sets is most of the cost of a window."""
    totals: dict[str, int] = {}
    for minute in minutes:
        for source, posts in minute.totals.items():
            totals[source] = totals.get(source, 0) + posts
    posts: dict[str, int] = {}
    for minute in minutes:
        for keyword, count in minute.keywords.items():
            posts[keyword] = posts.get(keyword, 0) + count.posts
    window = {}
    for keyword, total in posts.items():
        if total < min_posts:
            window[keyword] = WindowCount(total, 0, ())
            continue
        counts = [c for m in minutes if (c := m.keywords.get(keyword)) is not None]
        authors = counts[0].authors if len(counts) == 1 else set().union(*(c.authors for c in counts))
        window[keyword] = WindowCount(total, len(authors), _samples(min(c.first_uid for c in counts),
                                                                    max(c.last_uid for c in counts)),
                                      sum(c.scored for c in counts), sum(c.sentiment_units for c in counts),
                                      sum(c.negative for c in counts))
    return window, totals


def _samples(first: str, last: str) -> tuple[str, ...]:
    return (first,) if first == last else (first, last)


def top_keywords(minute: MinuteCounts, n: int) -> list[str]:
    """The minute's n keywords with the most posts (ties: alphabetical), for "the top keywords of each minute"."""
    ranked = sorted(minute.keywords.items(), key=lambda item: (-item[1].posts, item[0]))
    return [keyword for keyword, _ in ranked[:n]]


def watch_list(decisions: Iterable[TrendDecision], settings: TrendingSettings) -> list[TrendDecision]:
    """The window's keywords that trended or came close (past the warm-up, z ≥ watch_z with min_posts posts), the
    watch_max strongest by z, then posts, then keyword: what the dashboards show beside the trends."""
    close = [d for d in decisions
             if d.is_trend or (d.warm and d.z >= settings.watch_z and d.posts >= settings.min_posts)]
    return sorted(close, key=lambda d: (-d.z, -d.posts, d.keyword))[:settings.watch_max]
