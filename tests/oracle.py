"""A batch oracle for the trending job: its window counts and trends recomputed from the raw posts in plain
Python, sharing no code with the job's windowing (the keyword rules and the trend maths are the project's
own definitions, shared on purpose: they say what a keyword and a trend are)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from shared.keywords import extract_keywords
from shared.trends import TrendingSettings, WindowRow, observe, rank


@dataclass
class Windows:
    """Sliding windows by start (ms): per (start, source, keyword) the uids and authors; per start all uids."""

    uids: dict
    authors: dict
    posts: dict


def sliding_windows(posts: list[dict], size_ms: int, slide_ms: int) -> Windows:
    uids, authors, window_posts = defaultdict(set), defaultdict(set), defaultdict(set)
    for post in posts:
        keywords = extract_keywords(post["text"], post["hashtags"], post["langs"])
        first = (post["created_at"] - size_ms) // slide_ms * slide_ms + slide_ms
        for start in range(first, post["created_at"] + 1, slide_ms):
            window_posts[start].add(post["uid"])
            for keyword in keywords:
                for source in ("*", post["source"]):
                    uids[start, source, keyword].add(post["uid"])
                    authors[start, source, keyword].add(post["author_id"])
    return Windows(uids, authors, window_posts)


def recompute(posts: list[dict], size_ms: int, slide_ms: int) -> dict:
    """(window_start, source, keyword) -> (posts, authors)."""
    windows = sliding_windows(posts, size_ms, slide_ms)
    return {key: (len(windows.uids[key]), len(windows.authors[key])) for key in windows.uids}


def expected_trends(posts: list[dict], settings: TrendingSettings, up_to_end_ms: int) -> list[tuple]:
    """(window_end_ms, keyword, rank, posts, authors, z, sample_uids JSON) of every window ending by
    `up_to_end_ms`, as the job's scoring and ranking stages see its sliding windows, in window order."""
    size, slide = settings.hop_size_s * 1000, settings.hop_slide_s * 1000
    windows = sliding_windows(posts, size, slide)
    rows = sorted((start, keyword) for start, source, keyword in windows.uids if source == "*")
    stream_first_index = (rows[0][0] + size) // slide if rows else 0  # the first window the job saw
    states, decisions = {}, defaultdict(list)
    for start, keyword in rows:
        uids = windows.uids[start, "*", keyword]
        row = WindowRow(keyword, (start + size) // slide, start, start + size, len(uids),
                        len(windows.authors[start, "*", keyword]), len(windows.posts[start]),
                        tuple(dict.fromkeys((min(uids), max(uids)))), stream_first_index=stream_first_index)
        states[keyword], decision = observe(states.get(keyword), row, settings)
        if decision.is_trend and start + size <= up_to_end_ms:
            decisions[start + size].append(decision)
    return sorted((end, d.keyword, position, d.posts, d.authors, round(d.z, 6), json.dumps(list(d.samples)))
                  for end, ranked in decisions.items() for position, d in rank(ranked, settings.top_n))
