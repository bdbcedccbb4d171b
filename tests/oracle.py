"""A batch oracle for the trending and volume jobs: window counts, trends and volume anomalies recomputed
from the raw posts in plain Python, sharing no code with the jobs' windowing (the keyword rules and the
trend and anomaly maths are the project's own definitions, shared on purpose: they say what a keyword, a
trend and an anomaly are)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from shared.conversations import ConversationSettings
from shared.enrich import NEGATIVE_AT_MOST, sentiment
from shared.keyword_windows import watch_list
from shared.keywords import extract_keywords
from shared.trends import Mood, TrendingSettings, WindowRow, mood_step, observe, rank
from shared.volume import VolumeSettings, still_expected
from shared.volume import observe as observe_volume


@dataclass
class Windows:
    """Sliding windows by start (ms): per (start, source, keyword) the uids and authors; per start all uids."""

    uids: dict
    authors: dict
    posts: dict


def sliding_windows(posts: list[dict], size_ms: int, slide_ms: int, ignore: frozenset[str] = frozenset()) -> Windows:
    """`ignore`: keywords not counted (TrendingSettings.ignore_keywords)."""
    uids, authors, window_posts = defaultdict(set), defaultdict(set), defaultdict(set)
    for post in posts:
        keywords = [k for k in extract_keywords(post["text"], post["hashtags"], post["langs"]) if k not in ignore]
        first = (post["created_at"] - size_ms) // slide_ms * slide_ms + slide_ms
        for start in range(first, post["created_at"] + 1, slide_ms):
            window_posts[start].add(post["uid"])
            for keyword in keywords:
                for source in ("*", post["source"]):
                    uids[start, source, keyword].add(post["uid"])
                    authors[start, source, keyword].add(post["author_id"])
    return Windows(uids, authors, window_posts)


def recompute(posts: list[dict], size_ms: int, slide_ms: int, ignore: frozenset[str] = frozenset()) -> dict:
    """(window_start, source, keyword) -> (posts, authors)."""
    windows = sliding_windows(posts, size_ms, slide_ms, ignore)
    return {key: (len(windows.uids[key]), len(windows.authors[key])) for key in windows.uids}


def window_decisions(posts: list[dict], settings: TrendingSettings) -> dict[int, list]:
    """window_end_ms -> the decision for every keyword of that sliding window, scored in window order as the
    job's scoring stage sees its windows."""
    return scored_windows(posts, settings)[0]


def scored_windows(posts: list[dict], settings: TrendingSettings) -> tuple[dict[int, list], dict[tuple, Mood]]:
    """window_decisions, and (window_end_ms, keyword) -> the window's mood for every keyword with min_posts posts:
    the sentiment of its posts recomputed here from each post's score (shared/enrich.py defines a post's score),
    and the keyword's usual mood (shared/trends.py mood_step defines it)."""
    scores = {}
    for post in posts:
        scores.setdefault(post["uid"], sentiment(post["text"], post["langs"]) if settings.sentiment else None)
    moods = {}
    size, slide = settings.hop_size_s * 1000, settings.hop_slide_s * 1000
    ignore = frozenset(settings.ignore_keywords)
    windows = sliding_windows(posts, size, slide, ignore)
    minutes = sliding_windows(posts, slide, slide, ignore)  # the newest minute of each window, for the minute tests
    rows = sorted((start, keyword) for start, source, keyword in windows.uids if source == "*")
    stream_first_index = (rows[0][0] + size) // slide if rows else 0  # the first window the job saw
    states, decisions = {}, defaultdict(list)
    for start, keyword in rows:
        uids = windows.uids[start, "*", keyword]
        newest = start + size - slide
        row = WindowRow(keyword, (start + size) // slide, start, start + size, len(uids),
                        len(windows.authors[start, "*", keyword]), len(windows.posts[start]),
                        tuple(dict.fromkeys((min(uids), max(uids)))), stream_first_index,
                        len(minutes.uids.get((newest, "*", keyword), ())), len(minutes.posts.get(newest, ())),
                        len(minutes.authors.get((newest, "*", keyword), ())))
        states[keyword], decision = observe(states.get(keyword), row, settings)
        decisions[start + size].append(decision)
        if len(uids) >= settings.min_posts:
            scored = [scores[uid] for uid in uids if scores[uid] is not None]
            states[keyword], moods[start + size, keyword] = mood_step(
                states[keyword], row.window_index, len(scored), sum(scored),
                sum(1 for score in scored if score <= NEGATIVE_AT_MOST), settings)
    return decisions, moods


def expected_trend_moods(posts: list[dict], settings: TrendingSettings, up_to_end_ms: int) -> dict[tuple, Mood]:
    """(window_end_ms, keyword) -> Mood of every trend of a window ending by `up_to_end_ms`."""
    decisions, moods = scored_windows(posts, settings)
    return {(end, d.keyword): moods[end, d.keyword] for end, scored in decisions.items() if end <= up_to_end_ms
            for _, d in rank(scored, settings.top_n)}


def expected_trends(posts: list[dict], settings: TrendingSettings, up_to_end_ms: int) -> list[tuple]:
    """(window_end_ms, keyword, rank, posts, authors, z, sample_uids JSON, evidence, evidence posts) of every
    window ending by `up_to_end_ms`."""
    return sorted((end, d.keyword, position, d.posts, d.authors, round(d.z, 6), json.dumps(list(d.samples)),
                   d.evidence, d.evidence_posts)
                  for end, scored in window_decisions(posts, settings).items() if end <= up_to_end_ms
                  for position, d in rank(scored, settings.top_n))


def expected_keyword_rows(posts: list[dict], settings: TrendingSettings) -> dict:
    """What keyword_window_counts receives from a run over all of `posts` (to the end of the input):
    (window_kind, window_start_ms, keyword) -> (posts, authors, z rounded to 6 places or None).

    'hop': the sliding windows in which a keyword trended or came close (shared/keyword_windows.watch_list);
    'tumble': a keyword's minute when it is among the minute's `top_keywords` by posts (ties alphabetical), or
    when the keyword trended or came close in a window ending at minute e with e − overlap ≤ minute < e +
    watch_minutes (the window's own minutes, then the following ones)."""
    tumble, slide = settings.tumble_s * 1000, settings.hop_slide_s * 1000
    rows, watched = {}, defaultdict(list)
    for end, scored in window_decisions(posts, settings).items():
        for d in watch_list(scored, settings):
            rows["hop", d.window_start_ms, d.keyword] = (d.posts, d.authors, round(d.z, 6))
            watched[d.keyword].append(end // slide)
    minutes = {(start, keyword): counts for (start, source, keyword), counts
               in recompute(posts, tumble, tumble, frozenset(settings.ignore_keywords)).items() if source == "*"}
    by_minute = defaultdict(list)
    for (start, keyword), (count, _) in minutes.items():
        by_minute[start].append((-count, keyword))
    top = {(start, keyword) for start, ranked in by_minute.items()
           for _, keyword in sorted(ranked)[:settings.top_keywords]}
    for (start, keyword), (count, authors) in minutes.items():
        minute = start // tumble
        if (start, keyword) in top or any(e - settings.overlap <= minute < e + settings.watch_minutes
                                          for e in watched.get(keyword, ())):
            rows["tumble", start, keyword] = (count, authors, None)
    return rows


def volume_counts(posts: list[dict], tumble_ms: int) -> dict:
    """(dimension, series, window_start_ms) -> distinct posts, for the volume job's three kinds of series:
    the source, the source's first language ('und' without one) and the source's community."""
    uids = defaultdict(set)
    for post in posts:
        start = post["created_at"] // tumble_ms * tumble_ms
        source, lang = post["source"], post["langs"][0] if post["langs"] else "und"
        series = [("source", source), ("lang", f"{source}/{lang}")]
        if post["community"]:
            series.append(("community", f"{source}/{post['community']}"))
        for dimension, name in series:
            uids[dimension, name, start].add(post["uid"])
    return {key: len(members) for key, members in uids.items()}


def expected_anomalies(posts: list[dict], settings: VolumeSettings, up_to_end_ms: int) -> list[tuple]:
    """(dimension, series, window_start_ms, posts, direction, severity, z) of every anomalous window ending by
    `up_to_end_ms`. Each series is scored minute by minute from its first post; a minute without posts is
    scored as 0 when it directly follows a scored minute whose baseline still expects posts (the job's
    event-time timer), and skipped otherwise."""
    tumble = settings.tumble_s * 1000
    minutes = defaultdict(dict)
    for (dimension, series, start), count in volume_counts(posts, tumble).items():
        minutes[dimension, series][start // tumble] = count
    last_index = up_to_end_ms // tumble - 1
    anomalies = []
    for (dimension, series), counts in minutes.items():
        state = None
        for index in range(min(counts), last_index + 1):
            if index in counts:
                count = counts[index]
            elif state.last_index == index - 1 and still_expected(state, settings):
                count = 0
            else:
                continue
            state, decision = observe_volume(state, index, count, settings)
            if decision.is_anomaly:
                anomalies.append((dimension, series, index * tumble, count, decision.direction, decision.severity,
                                  round(decision.z, 6)))
    return sorted(anomalies)


def expected_conversations(posts: list[dict], settings: ConversationSettings) -> dict[tuple, tuple]:
    """(root_uid, session_start_ms) -> (session_end_ms, posts, authors, sources, top keywords, root in session) of
    every session with at least min_posts posts: each thread's posts (by reply_root, or the post's own uid) sorted
    by time and split wherever two consecutive posts are more than gap_s apart."""
    threads = defaultdict(dict)
    for post in posts:
        threads[post.get("reply_root") or post["uid"]].setdefault(post["uid"], post)
    rows = {}
    for root, members in threads.items():
        ordered = sorted(members.values(), key=lambda p: (p["created_at"], p["uid"]))
        sessions = [[ordered[0]]]
        for post in ordered[1:]:
            if post["created_at"] - sessions[-1][-1]["created_at"] <= settings.gap_s * 1000:
                sessions[-1].append(post)
            else:
                sessions.append([post])
        for session in sessions:
            if len(session) < settings.min_posts:
                continue
            keywords = defaultdict(int)
            for post in session:
                for keyword in set(extract_keywords(post["text"], post["hashtags"], post["langs"])):
                    keywords[keyword] += 1
            top = [[k, n] for k, n in sorted(keywords.items(), key=lambda kn: (-kn[1], kn[0]))[:settings.top_keywords]]
            rows[root, session[0]["created_at"]] = (
                session[-1]["created_at"], len(session), len({p["author_id"] for p in session}),
                ",".join(sorted({p["source"] for p in session})), top, any(p["uid"] == root for p in session))
    return rows
