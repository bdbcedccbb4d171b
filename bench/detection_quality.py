"""Detection quality of the trend detector on a labelled synthetic day: recall, precision, delay.

    python -m bench.detection_quality [--rate 6] [--seed 2026] [--hours 24] [--ramp 60] [--verbose]

The day (seeded, so every run is the same input): Zipf vocabulary with a daily rhythm; a busy hour
(3× all traffic, at noon) as a decoy; bursts from 2× to 20× of their keyword's baseline on common
words, rare words and hashtags, 20 minutes each with a linear ramp (60 s, the synthetic source's
default; --ramp to change it); plus brand-new hashtags that never appeared before.
The detector is the trending job's own scoring function (shared/trends.observe)
fed with the rows the job's SQL stage produces: per keyword and sliding window, posts, distinct
authors and the window's total posts, here recomputed in plain Python/numpy from the generated posts.

Scoring. A fired window is a (keyword, window) row with is_trend. Consecutive fired windows of one
keyword form an alert episode. An episode is true when its keyword has a labelled burst that overlaps
it (from burst start to burst end + one sliding window). Recall counts bursts with ≥ 1 true episode;
precision counts true episodes among all episodes; the delay of a detected burst is its first fired
window's end minus the burst's start (the job adds its watermark delay, 30 s by default, on top).
Aims (issue 4): recall ≥ 0.95 on bursts ≥ 3×, precision ≥ 0.9, median delay ≤ 2 minutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from connectors.synthetic import Burst, BusyPeriod, SyntheticConfig, generate, keyword_baselines, labels
from shared.keywords import extract_keywords
from shared.settings import load_settings
from shared.trends import TrendingSettings, WindowRow, observe

DAY_START_MS = 1_793_577_600_000  # 2026-11-02T00:00:00Z
INTENSITIES = (2, 3, 5, 10, 20)
BURST_S = 1200


def report(name: str, value: float, unit: str = "") -> None:
    print(f"{name}: {value:,.3f} {unit}".rstrip(), flush=True)


def plan_day(seed: int, rate: float, hours: float, ramp_s: float = 60.0) -> SyntheticConfig:
    """The labelled day: bursts spaced 40 minutes apart, each on a different keyword."""
    base = SyntheticConfig(seed=seed, start_ms=DAY_START_MS, duration_s=hours * 3600, rate=rate)
    baselines = keyword_baselines(base)

    def pick(low: float, high: float, tags: bool, n: int) -> list[str]:
        chosen = [k for k, per_min in sorted(baselines.items(), key=lambda kv: (-kv[1], kv[0]))
                  if low <= per_min < high and k.startswith("#") == tags
                  and (tags or extract_keywords(k, [], ["en"]) == [k])]
        return chosen[:n]

    # Baselines scale with the rate; at 6 posts/s: common words 5-12/min (the head of the vocabulary),
    # rare words 1-3/min, hashtags 3-40/min.
    f = rate / 6
    groups = [pick(5 * f, 12 * f, False, 5), pick(1 * f, 3 * f, False, 5), pick(3 * f, 40 * f, True, 5)]
    bursts, slot = [], 0
    slots = int(hours * 3600 // 2400) - 1
    for group in groups:
        for keyword, intensity in zip(group, INTENSITIES, strict=False):
            if slot >= slots:
                break
            bursts.append(Burst(keyword, 1800 + slot * 2400, BURST_S, intensity, ramp_s))
            slot += 1
    for i in range(3):  # brand-new hashtags: ~3, 6, 12 posts a minute where there were none
        if slot < slots:
            bursts.append(Burst(f"#newtag{i}", 1800 + slot * 2400, BURST_S, 2, ramp_s,
                                baseline_per_min=3.0 * 2 ** i))
            slot += 1
    busy = (BusyPeriod(start_s=min(14 * 3600, hours * 3600 / 2), length_s=3600, multiplier=3.0),)
    return SyntheticConfig(seed=seed, start_ms=DAY_START_MS, duration_s=hours * 3600, rate=rate, bursts=bursts,
                           busy=busy)


@dataclass
class Windows:
    """What the job's SQL stage hands to scoring, for every (keyword, sliding window) with posts."""

    keywords: list[str]
    keyword_id: np.ndarray
    window_end: np.ndarray  # window index = end minute since the epoch
    posts: np.ndarray
    authors: np.ndarray
    window_posts: dict[int, int]
    first_window: int


def count_windows(config: SyntheticConfig, trending: TrendingSettings) -> tuple[Windows, int]:
    if trending.hop_slide_s != 60 or trending.hop_size_s % 60:
        raise SystemExit("this benchmark recomputes minute-aligned sliding windows: hop_slide_s must be 60")
    span = trending.hop_size_s // 60
    ids: dict[str, int] = {}
    authors_of: dict[str, int] = {}
    minute, kw, author = [], [], []
    post_minutes = []
    n_posts = 0
    for event in generate(config):
        post = event.payload
        m = post["created_at"] // 60_000
        a = authors_of.setdefault(post["author_id"], len(authors_of))
        post_minutes.append(m)
        n_posts += 1
        for keyword in extract_keywords(post["text"], post["hashtags"], post["langs"]):
            minute.append(m)
            kw.append(ids.setdefault(keyword, len(ids)))
            author.append(a)
    minute_a, kw_a, author_a = (np.asarray(x, dtype=np.int64) for x in (minute, kw, author))
    # A post in minute m lies in the sliding windows ending at minutes m+1 .. m+span.
    ends = np.concatenate([minute_a + 1 + d for d in range(span)])
    kws = np.tile(kw_a, span)
    auth = np.tile(author_a, span)
    n_kw, n_auth = len(ids), max(len(authors_of), 1)
    cell = ends * n_kw + kws
    cells, posts = np.unique(cell, return_counts=True)
    distinct = np.unique(cell * n_auth + auth) // n_auth
    cells_a, authors = np.unique(distinct, return_counts=True)
    assert np.array_equal(cells, cells_a)
    pm = np.asarray(post_minutes, dtype=np.int64)
    window_posts: dict[int, int] = defaultdict(int)
    for d in range(span):
        for end, count in zip(*np.unique(pm + 1 + d, return_counts=True), strict=True):
            window_posts[int(end)] += int(count)
    keywords = [None] * n_kw
    for keyword, i in ids.items():
        keywords[i] = keyword
    return Windows(keywords, cells % n_kw, cells // n_kw, posts, authors, dict(window_posts),
                   int(pm.min()) + 1), n_posts


def detect(windows: Windows, trending: TrendingSettings) -> dict[str, list[int]]:
    """Run the job's scoring function per keyword in window order; the fired window ends per keyword."""
    order = np.lexsort((windows.window_end, windows.keyword_id))
    fired: dict[str, list[int]] = defaultdict(list)
    state, current = None, -1
    for i in order:
        k = int(windows.keyword_id[i])
        if k != current:
            state, current = None, k
        end = int(windows.window_end[i])
        row = WindowRow(windows.keywords[k], end, (end - trending.hop_size_s // 60) * 60_000, end * 60_000,
                        int(windows.posts[i]), int(windows.authors[i]), windows.window_posts[end],
                        stream_first_index=windows.first_window)
        state, decision = observe(state, row, trending)
        if decision.is_trend:
            fired[row.keyword].append(end)
    return fired


def episodes(fired: dict[str, list[int]]) -> list[tuple[str, int, int]]:
    out = []
    for keyword, ends in fired.items():
        start = prev = ends[0]
        for end in ends[1:]:
            if end - prev > 1:
                out.append((keyword, start, prev))
                start = end
            prev = end
        out.append((keyword, start, prev))
    return out


def score(fired: dict[str, list[int]], bursts: list[dict], trending: TrendingSettings) -> dict:
    hop_min = trending.hop_size_s // 60
    eps = episodes(fired)

    def overlaps(ep, b) -> bool:
        return ep[0] == b["keyword"] and ep[1] > b["start_ms"] // 60_000 and ep[2] <= b["end_ms"] // 60_000 + hop_min

    true_eps = [ep for ep in eps if any(overlaps(ep, b) for b in bursts)]
    results = []
    for b in bursts:
        hits = [end for end in fired.get(b["keyword"], [])
                if b["start_ms"] // 60_000 < end <= b["end_ms"] // 60_000 + hop_min]
        delay = (min(hits) * 60_000 - b["start_ms"]) / 60_000 if hits else None
        results.append((b, delay))
    return {"episodes": eps, "true_episodes": true_eps, "bursts": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=6.0, help="mean posts per second (default 6)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--ramp", type=float, default=60.0, help="seconds for a burst to reach full intensity")
    parser.add_argument("--verbose", action="store_true", help="list every burst and every false episode")
    args = parser.parse_args(argv)
    trending = load_settings(with_credentials=False).trending
    print(f"# python -m bench.detection_quality --rate {args.rate} --seed {args.seed} --hours {args.hours} "
          f"--ramp {args.ramp:g}")
    print(f"# detector: {trending.model_dump()}")
    config = plan_day(args.seed, args.rate, args.hours, args.ramp)
    truth = labels(config)["bursts"]
    started = time.perf_counter()
    windows, n_posts = count_windows(config, trending)
    counted = time.perf_counter()
    fired = detect(windows, trending)
    scored = time.perf_counter()
    result = score(fired, truth, trending)
    print(f"# input: {n_posts:,} posts, {len(windows.keywords):,} keywords, {len(windows.posts):,} keyword windows, "
          f"{len(truth)} labelled bursts, busy hour ×3 at {config.busy[0].start_s / 3600:.0f}:00")
    report("count_windows_seconds", counted - started, "s")
    report("scoring_rows_per_second", len(windows.posts) / (scored - counted), "rows/s")

    def recall(selected) -> float:
        return sum(d is not None for _, d in selected) / max(1, len(selected))

    bursts = result["bursts"]
    strong = [(b, d) for b, d in bursts if b["intensity"] >= 3]
    report("recall_all_bursts", recall(bursts))
    report("recall_bursts_3x_and_more", recall(strong))
    for intensity in sorted({b["intensity"] for b, _ in bursts}):
        report(f"recall_{intensity:g}x", recall([(b, d) for b, d in bursts if b["intensity"] == intensity]))
    eps, true_eps = result["episodes"], result["true_episodes"]
    report("alert_episodes", len(eps))
    report("precision_episodes", len(true_eps) / max(1, len(eps)))
    windows_fired = sum(len(v) for v in fired.values())
    true_windows = sum(e - s + 1 for _, s, e in true_eps)
    report("precision_windows", true_windows / max(1, windows_fired))
    delays = [d for _, d in bursts if d is not None]
    report("median_delay_minutes", statistics.median(delays) if delays else float("nan"), "min")
    report("max_delay_minutes", max(delays) if delays else float("nan"), "min")
    if args.verbose:
        for b, d in bursts:
            print(f"  burst {b['keyword']:>16} {b['intensity']:>4g}× base {b['baseline_per_min']:6.2f}/min "
                  f"→ {'missed' if d is None else f'{d:.0f} min'}")
        for ep in eps:
            if ep not in true_eps:
                day_min = ep[1] - DAY_START_MS // 60_000
                print(f"  false episode {ep[0]} from {day_min // 60:02d}:{day_min % 60:02d} "
                      f"({ep[2] - ep[1] + 1} windows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
