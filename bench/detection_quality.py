"""Detection quality of the trend detector on a labelled stream built to look like real data.

    python -m bench.detection_quality [--seed 7 ...] [--hours 3] [--rate 30] [--verbose]

The input (bench/trend_set.py, seeded, separate from the test fixtures): a Zipf vocabulary with a daily
rhythm, drifting interest and overdispersed minute counts; decoys (a busy half hour, one account spamming a
rare word); 24 labelled bursts from 2× to 20× on keywords of every frequency (1 to 100+ posts a minute),
ramping up over 1–3 minutes, and 3 brand-new hashtags. The detectors see what the trending job's Python stage
sees: per keyword and sliding window (5 minutes, sliding by 1) its posts, distinct authors and the window's
posts, and the newest minute's posts and the minute's total — recomputed here with numpy from the occurrences.

Detectors, on the same data in the same run:
- `streampulse`: the job's own scoring function (shared/trends.observe) with config/streampulse.yaml's settings;
- `sliding_only`: the same with the minute test and the sequential test off (the detector before issue 18);
- `poisson_minute`: the exact Poisson tail of each minute's count against the same baseline (p ≤ max_p_value);
- `median_mad`: each minute's count against the rolling median and MAD of the keyword's previous 60 minutes
  (count > median + 6·1.4826·MAD, at least 4 above it).
All four share the gates a trend needs (warm-up, min_posts posts and min_authors authors in the 5-minute window).

Scoring. Consecutive fired windows of a keyword are one alert episode; it is true when a labelled burst of that
keyword overlaps it (from burst start to burst end + one sliding window). Recall counts bursts with ≥ 1 true
episode; precision counts true episodes among all. A detected burst's delay is its first fired window's end
minus the burst's start (the job adds its watermark, 30 s by default). Aims (issue 18): recall ≥ 0.95 on bursts
≥ 3× including words at 1–5 posts/minute, precision ≥ 0.95 by episode, median delay ≤ 2 minutes, on seeds the
settings were not tuned on (tuned on seed 7).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from bench.trend_set import TrendSet, generate
from shared.settings import load_settings
from shared.stats import poisson_tail
from shared.trends import TrendingSettings, WindowRow, observe

TUNED_ON = 7


def report(name: str, value: float, unit: str = "") -> None:
    print(f"{name}: {value:,.3f} {unit}".rstrip(), flush=True)


@dataclass
class Windows:
    """What the job's Python stage scores, for every (keyword, sliding window) with posts, in keyword then
    window order; window index = the window's end minute since the epoch."""

    keywords: list[str]
    keyword_id: np.ndarray
    window_end: np.ndarray
    posts: np.ndarray
    authors: np.ndarray
    minute_posts: np.ndarray  # the keyword's posts in the window's newest minute
    minute_authors: np.ndarray  # and its distinct authors there
    window_posts: dict[int, int]
    minute_total: dict[int, int]  # window end → posts in its newest minute
    first_window: int


def count_windows(data: TrendSet, span: int) -> Windows:
    n_kw, n_auth = len(data.names), int(data.occ_author.max()) + 1
    ends = np.concatenate([data.occ_minute + 1 + d for d in range(span)])
    kws = np.tile(data.occ_keyword, span)
    cell = ends * n_kw + kws
    cells, posts = np.unique(cell, return_counts=True)
    distinct = np.unique(cell * n_auth + np.tile(data.occ_author, span)) // n_auth
    _, authors = np.unique(distinct, return_counts=True)
    minute_cells, minute_counts = np.unique((data.occ_minute + 1) * n_kw + data.occ_keyword, return_counts=True)
    minute_posts = np.zeros(cells.size, dtype=np.int64)
    where = np.searchsorted(cells, minute_cells)
    minute_posts[where] = minute_counts
    minute_distinct = np.unique(((data.occ_minute + 1) * n_kw + data.occ_keyword) * n_auth + data.occ_author) // n_auth
    _, minute_author_counts = np.unique(minute_distinct, return_counts=True)
    minute_authors = np.zeros(cells.size, dtype=np.int64)
    minute_authors[where] = minute_author_counts
    order = np.lexsort((cells // n_kw, cells % n_kw))
    per_minute = {data.start_minute + m: int(p) for m, p in enumerate(data.posts_per_minute)}
    window_posts = {end: sum(per_minute.get(end - 1 - d, 0) for d in range(span))
                    for end in range(data.start_minute + 1, data.start_minute + data.minutes + span + 1)}
    minute_total = {end: per_minute.get(end - 1, 0) for end in window_posts}
    return Windows(data.names, (cells % n_kw)[order], (cells // n_kw)[order], posts[order], authors[order],
                   minute_posts[order], minute_authors[order], window_posts, minute_total, data.start_minute + 1)


def rows(windows: Windows, span: int):
    """(keyword id, WindowRow) in keyword then window order."""
    for i in range(windows.posts.size):
        end = int(windows.window_end[i])
        k = int(windows.keyword_id[i])
        yield k, WindowRow(windows.keywords[k], end, (end - span) * 60_000, end * 60_000, int(windows.posts[i]),
                           int(windows.authors[i]), windows.window_posts[end], (), windows.first_window,
                           int(windows.minute_posts[i]), windows.minute_total[end], int(windows.minute_authors[i]))


def detect(windows: Windows, trending: TrendingSettings, span: int) -> tuple[dict, dict]:
    """Run the job's scoring function per keyword in window order: fired window ends per keyword, and the
    evidence of each fired window."""
    fired, evidence = defaultdict(list), {}
    state, current = None, -1
    for k, row in rows(windows, span):
        if k != current:
            state, current = None, k
        state, decision = observe(state, row, trending)
        if decision.is_trend:
            fired[row.keyword].append(row.window_index)
            evidence[row.keyword, row.window_index] = decision.evidence
    return fired, evidence


def detect_minute_reference(windows: Windows, trending: TrendingSettings, span: int) -> tuple[dict, dict]:
    """Two references on the newest minute of each window: the exact Poisson tail against the job's baseline,
    and a rolling median + MAD of the keyword's previous 60 minute counts. Same gates as a trend."""
    poisson, mad = defaultdict(list), defaultdict(list)
    state, current, history = None, -1, {}
    for k, row in rows(windows, span):
        if k != current:
            state, current, history = None, k, {}
        history[row.window_index] = row.minute_posts
        state, decision = observe(state, row, trending)
        gated = decision.warm and row.posts >= trending.min_posts and row.authors >= trending.min_authors
        if not gated:
            continue
        expected = max(decision.expected * row.minute_total / max(row.window_posts, 1), 1e-9)
        if poisson_tail(row.minute_posts, expected) <= trending.max_p_value:
            poisson[row.keyword].append(row.window_index)
        past = [history.get(row.window_index - d, 0) for d in range(1, 61)]
        median = float(np.median(past))
        spread = 1.4826 * float(np.median(np.abs(np.asarray(past) - median)))
        if row.minute_posts > median + max(6 * spread, 4):
            mad[row.keyword].append(row.window_index)
    return poisson, mad


def episodes(fired: dict[str, list[int]]) -> list[tuple[str, int, int]]:
    out = []
    for keyword, ends in fired.items():
        ends = sorted(ends)
        start = prev = ends[0]
        for end in ends[1:]:
            if end - prev > 1:
                out.append((keyword, start, prev))
                start = end
            prev = end
        out.append((keyword, start, prev))
    return out


def score(fired: dict[str, list[int]], bursts: list[dict], span: int) -> dict:
    eps = episodes(fired)

    def overlaps(ep, b) -> bool:
        return ep[0] == b["keyword"] and ep[2] > b["start_ms"] // 60_000 and ep[1] <= b["end_ms"] // 60_000 + span

    true_eps = [ep for ep in eps if any(overlaps(ep, b) for b in bursts)]
    results = []
    for b in bursts:
        hits = [end for end in fired.get(b["keyword"], [])
                if b["start_ms"] // 60_000 < end <= b["end_ms"] // 60_000 + span]
        results.append((b, (min(hits) * 60_000 - b["start_ms"]) / 60_000 if hits else None))
    return {"episodes": eps, "true_episodes": true_eps, "bursts": results}


def print_scores(name: str, result: dict, verbose: bool, names_start: int, evidence: dict | None = None) -> None:
    def recall(selected) -> float:
        return sum(d is not None for _, d in selected) / max(1, len(selected))

    bursts = result["bursts"]
    strong = [(b, d) for b, d in bursts if b["intensity"] >= 3 and not b["new"]]
    rare = [(b, d) for b, d in strong if b["baseline_per_min"] < 5]
    report(f"{name}.recall_all_bursts", recall(bursts))
    report(f"{name}.recall_bursts_3x_and_more", recall(strong))
    report(f"{name}.recall_bursts_3x_and_more_at_1_to_5_per_minute", recall(rare))
    report(f"{name}.recall_2x", recall([(b, d) for b, d in bursts if b["intensity"] == 2]))
    report(f"{name}.recall_new_hashtags", recall([(b, d) for b, d in bursts if b["new"]]))
    eps, true_eps = result["episodes"], result["true_episodes"]
    report(f"{name}.alert_episodes", len(eps))
    report(f"{name}.precision_episodes", len(true_eps) / max(1, len(eps)))
    delays = [d for _, d in bursts if d is not None]
    report(f"{name}.median_delay_minutes", statistics.median(delays) if delays else float("nan"), "min")
    report(f"{name}.max_delay_minutes", max(delays) if delays else float("nan"), "min")
    if verbose:
        for b, d in sorted(bursts, key=lambda bd: (bd[0]["new"], bd[0]["intensity"], bd[0]["baseline_per_min"])):
            what = "new" if b["new"] else f"{b['intensity']:g}×"
            print(f"  {name} burst {b['keyword']:>10} {what:>4} base {b['baseline_per_min']:7.2f}/min "
                  f"ramp {b['ramp_s']:3.0f} s → {'missed' if d is None else f'{d:.1f} min'}")
        for ep in eps:
            if ep not in true_eps:
                kinds = sorted({evidence.get((ep[0], end), "?") for end in range(ep[1], ep[2] + 1)}) if evidence else []
                print(f"  {name} false episode {ep[0]} at minute {ep[1] - names_start} ({ep[2] - ep[1] + 1} windows"
                      f"{', ' + '/'.join(kinds) if kinds else ''})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, nargs="+", default=[TUNED_ON, 11, 23],
                        help=f"one run per seed (settings tuned on {TUNED_ON})")
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=30.0, help="mean posts per second (default 30)")
    parser.add_argument("--verbose", action="store_true", help="list every burst and every false episode")
    args = parser.parse_args(argv)
    trending = load_settings(with_credentials=False).trending
    span = trending.overlap
    if trending.hop_slide_s != 60:
        raise SystemExit("this benchmark recomputes minute-aligned sliding windows: hop_slide_s must be 60")
    before = trending.model_copy(update={"minute_test": False, "sequential_test": False})
    print(f"# python -m bench.detection_quality --seed {' '.join(map(str, args.seed))} --hours {args.hours:g} "
          f"--rate {args.rate:g}")
    print(f"# detector: {trending.model_dump()}")
    for seed in args.seed:
        started = time.perf_counter()
        data = generate(seed, args.hours, args.rate)
        truth = data.labels()
        windows = count_windows(data, span)
        counted = time.perf_counter()
        print(f"# seed {seed}{' (tuned on)' if seed == TUNED_ON else ''}: {int(data.posts_per_minute.sum()):,} posts, "
              f"{len(data.names):,} keywords, {windows.posts.size:,} keyword windows, {len(truth)} labelled bursts")
        fired, evidence = detect(windows, trending, span)
        scored = time.perf_counter()
        report(f"seed{seed}.generate_and_count_seconds", counted - started, "s")
        report(f"seed{seed}.scoring_rows_per_second", windows.posts.size / (scored - counted), "rows/s")
        for kind, n in sorted(Counter(evidence.values()).items()):
            report(f"seed{seed}.streampulse.fired_windows_by_{kind}", n)
        print_scores(f"seed{seed}.streampulse", score(fired, truth, span), args.verbose, data.start_minute, evidence)
        print_scores(f"seed{seed}.sliding_only", score(detect(windows, before, span)[0], truth, span), False,
                     data.start_minute)
        poisson, mad = detect_minute_reference(windows, trending, span)
        print_scores(f"seed{seed}.poisson_minute", score(poisson, truth, span), False, data.start_minute)
        print_scores(f"seed{seed}.median_mad", score(mad, truth, span), False, data.start_minute)
    return 0


if __name__ == "__main__":
    sys.exit(main())
