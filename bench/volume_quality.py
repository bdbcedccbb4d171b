"""Detection quality of the volume detector on labelled, realistic count series, against reference detectors.

    python -m bench.volume_quality [--seed 7 11 23] [--days 14] [--window-s 60] [--verbose]

Input: bench/volume_series.py (seeded; negative-binomial counts with daily and weekly rhythms, drift, spikes,
partial drops, outages of a source or of everything, level shifts). Every detector sees the same series, in
the same run:

- volume: the job's detector, shared/volume.observe with the settings of config/streampulse.yaml; as in the
  job, a silent window is scored only while `still_expected` (the job's timer), otherwise skipped;
- ewma_z: the detector the job had before (EWMA mean/variance, z = (x − m)/sqrt(max(v, m) + 1), |z| ≥ 4,
  critical from 8, drops need 5 expected, anomalies kept out of the baseline for 15 windows), copied here;
- median_mad: |x − median| / max(1.4826·MAD, 1) ≥ 5 over the previous 60 windows, critical from 10;
- poisson: the Poisson tail of x around the mean of the previous 60 windows, p ≤ 1e-6 (critical 1e-12).

Scoring. Consecutive flagged windows of a series are one alert episode; it is true when it overlaps a label
that affects that series (a label of the series, of its source, of everything, or a sub-series' spike that
lands in it), from the label's first window to its last + MARGIN windows. Recall counts labels with at least
one true episode. Outage delay: per outage and source, the first drop/outage flag of the source series at or
after the start, minus the start, in windows; reported for all sources and for those averaging BUSY posts per
window or more in the hour before (a smaller series needs more silent windows to be told from chance). Recovery
alerts: spike and drop flags of the affected series in the RECOVERY windows after an outage ends (outage flags
there, the outage still reported while the series is still silent, are counted apart). Outages reported after the
fact: a small series' silence that nobody scored live, reported when it posts again, and how many of them overlap
a labelled outage. Chance: the episode precision of random flags at the detector's own per-window rate (same
series, same labels).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bench.volume_series import Dataset, Label, generate
from shared.settings import load_settings
from shared.volume import VolumeSettings, observe, still_expected

MARGIN = 3  # windows after a label's end in which an alert is still about it
RECOVERY = 10  # windows after an outage in which any flag is a recovery alert
HISTORY = 60  # windows of the rolling references
# Posts per window at and above which an outage can be seen within 3 windows: 3 silent windows of a Poisson series
# expecting 3 posts each happen by chance with probability e^-9 ≈ 1e-4; a smaller series needs longer silence.
BUSY = 3
NONE, SPIKE, DROP, OUTAGE = 0, 1, 2, 3
CODES = {None: NONE, "spike": SPIKE, "drop": DROP, "outage": OUTAGE}


def report(name: str, value: float, unit: str = "") -> None:
    print(f"{name}: {value:,.3f} {unit}".rstrip(), flush=True)


@dataclass
class Flags:
    direction: np.ndarray  # per window: NONE, SPIKE, DROP or OUTAGE
    critical: np.ndarray  # per window: bool
    # (first, last) positions of outages reported after the fact, when a small series posts again
    after_the_fact: list[tuple[int, int]] = field(default_factory=list)


Detector = Callable[[np.ndarray, int], Flags]


def detect_volume(settings: VolumeSettings) -> Detector:
    def run(counts: np.ndarray, first_index: int) -> Flags:
        direction, critical = np.zeros(len(counts), np.int8), np.zeros(len(counts), bool)
        state, after_the_fact = None, []
        for i, posts in enumerate(counts.tolist()):
            index = first_index + i
            if posts == 0 and (state is None or state.last_index != index - 1 or not still_expected(state, settings)):
                continue  # the job scores a silent window only from its timer
            state, decision = observe(state, index, posts, settings)
            direction[i], critical[i] = CODES[decision.direction], decision.severity == "critical"
            ended = decision.outage
            if ended is not None and not ended.ongoing and direction[ended.start_index - first_index] == NONE:
                after_the_fact.append((ended.start_index - first_index, ended.last_index - first_index))
        return Flags(direction, critical, after_the_fact)
    return run


def detect_ewma_z(counts: np.ndarray, first_index: int) -> Flags:
    """The job's detector before shared/volume.py's negative binomial (its defaults), verbatim maths."""
    alpha, z_threshold, critical_z, history, min_expected, max_run = 0.1, 4.0, 8.0, 10, 5.0, 15
    direction, critical = np.zeros(len(counts), np.int8), np.zeros(len(counts), bool)
    mean = var = 0.0
    windows, run, last = 0, 0, None
    for i, posts in enumerate(counts.tolist()):
        if posts == 0 and (last != i - 1 or mean < min_expected):
            continue
        if last is not None and i > last + 1:  # absent windows: zeros, one by one then in closed form
            k = i - last - 1
            while k > 0 and 1 / (windows + 1) > alpha:
                windows, k = windows + 1, k - 1
                diff = -mean
                mean, var = mean + diff / windows, (1 - 1 / windows) * (var + diff * diff / windows)
            keep = (1 - alpha) ** k
            mean, var, windows = keep * mean, keep * (var + mean * mean * (1 - keep)), windows + k
        z = (posts - mean) / math.sqrt(max(var, mean) + 1) if windows else 0.0
        flagged = 0
        if windows >= history:
            if z >= z_threshold:
                flagged = SPIKE
            elif z <= -z_threshold and mean >= min_expected:
                flagged = DROP
        direction[i], critical[i], last = flagged, flagged and abs(z) >= critical_z, i
        if flagged and run < max_run:
            run += 1
            continue
        windows += 1
        weight = max(alpha, 1 / windows)
        diff = posts - mean
        mean, var = mean + weight * diff, (1 - weight) * (var + weight * diff * diff)
        run = run + 1 if flagged else 0
    return Flags(direction, critical)


def previous_windows(counts: np.ndarray) -> np.ndarray:
    """Rows of the HISTORY counts before each window (NaN-padded at the start)."""
    padded = np.concatenate([np.full(HISTORY, np.nan), counts.astype(float)])
    return np.lib.stride_tricks.sliding_window_view(padded, HISTORY)[:-1]


def detect_median_mad(counts: np.ndarray, first_index: int) -> Flags:
    past = previous_windows(counts)
    median = np.nanmedian(past, axis=1)
    mad = np.nanmedian(np.abs(past - median[:, None]), axis=1)
    score = np.nan_to_num((counts - median) / np.maximum(1.4826 * mad, 1.0))
    score[:HISTORY] = 0
    direction = np.where(score >= 5, SPIKE, np.where(score <= -5, DROP, NONE)).astype(np.int8)
    return Flags(direction, np.abs(score) >= 10)


def poisson_tail(posts: int, lam: float, upper: bool) -> float:
    """P(X ≥ posts) or P(X ≤ posts), X ~ Poisson(lam), summed outward from `posts` (the tail side)."""
    if upper and posts <= 0:
        return 1.0
    log_term = posts * math.log(lam) - lam - math.lgamma(posts + 1)
    total, ratio, k = 1.0, 1.0, posts
    while ratio > 1e-17 * total and (upper or k > 0):
        ratio *= lam / (k + 1) if upper else k / lam
        k += 1 if upper else -1
        total += ratio
    return min(1.0, math.exp(log_term) * total)


def detect_poisson(counts: np.ndarray, first_index: int) -> Flags:
    mean = np.nan_to_num(np.nanmean(previous_windows(counts), axis=1))
    direction, critical = np.zeros(len(counts), np.int8), np.zeros(len(counts), bool)
    z = (counts - mean) / np.sqrt(np.maximum(mean, 1e-9))
    for i in np.flatnonzero((np.abs(z) >= 3) & (np.arange(len(counts)) >= HISTORY) & (mean > 0)):
        p = poisson_tail(int(counts[i]), float(mean[i]), upper=counts[i] > mean[i])
        if p <= 1e-6:
            direction[i], critical[i] = SPIKE if counts[i] > mean[i] else DROP, p <= 1e-12
    return Flags(direction, critical)


def episodes(flagged: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) positions of each run of flagged windows."""
    edges = np.diff(np.concatenate([[0], flagged.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))


def label_spans(data: Dataset) -> dict[str, list[tuple[int, int, Label]]]:
    """Per series, the (first, last + MARGIN) positions of the labels that affect it."""
    spans: dict[str, list] = {name: [] for name in data.counts}
    for label in data.labels:
        for name in label.affected:
            spans[name].append((label.start - data.first_index, label.end - data.first_index + MARGIN, label))
    return spans


def evaluate(data: Dataset, flags: dict[str, Flags]) -> dict[str, float]:
    spans = label_spans(data)
    n_windows = sum(len(c) for c in data.counts.values())
    all_eps = true_eps = 0
    detected: set[int] = set()
    for name, f in flags.items():
        for first, last in episodes(f.direction != NONE):
            all_eps += 1
            hits = [id(label) for a, b, label in spans[name] if first <= b and last >= a]
            true_eps += bool(hits)
            detected.update(hits)
    late = [(name, first, last) for name, f in flags.items() for first, last in f.after_the_fact]
    late_true = sum(any(first <= b and last >= a and label.kind == "outage" for a, b, label in spans[name])
                    for name, first, last in late)
    out = {"precision_episodes": true_eps / max(1, all_eps), "episodes": all_eps}
    if late:
        out |= {"outages_reported_after_the_fact": len(late), "outages_reported_after_the_fact_true": late_true}
    for kind in ("all", "spike", "drop", "outage", "level_shift"):
        chosen = [lb for lb in data.labels if kind in ("all", lb.kind)]
        out[f"recall_{kind}"] = sum(id(lb) in detected for lb in chosen) / max(1, len(chosen))
    delays, busy_delays, recovery_flags, recoveries_alerted, overrun = [], [], 0, 0, 0
    for label in (lb for lb in data.labels if lb.kind == "outage"):
        a, b = label.start - data.first_index, label.end - data.first_index
        for source in sorted({data.source_of[name] for name in label.affected}):
            low = np.flatnonzero(np.isin(flags[source].direction[a:b + 1], (DROP, OUTAGE)))
            delays.append(int(low[0]) if len(low) else None)
            if data.counts[source][max(0, a - HISTORY):a].mean() >= BUSY:
                busy_delays.append(delays[-1])
        after = [flags[name].direction[b + 1:b + 1 + RECOVERY] for name in label.affected]
        # An alert about the recovery is a spike or drop; an outage flag there is the outage still reported
        # because the series is still silent (a small series' first minutes back are often empty).
        flagged_after = sum(int(np.isin(d, (SPIKE, DROP)).sum()) for d in after)
        recovery_flags += flagged_after
        recoveries_alerted += flagged_after > 0
        overrun += sum(int((d == OUTAGE).sum()) for d in after)
    found = [d for d in delays if d is not None]
    out |= {"outage_source_pairs": len(delays), "outages_detected": len(found),
            "outages_detected_within_3_windows": sum(d <= 3 for d in found),
            f"outages_of_sources_at_{BUSY}_or_more_per_window": len(busy_delays),
            f"outages_of_sources_at_{BUSY}_or_more_per_window_detected_within_3_windows":
                sum(d is not None and d <= 3 for d in busy_delays),
            "outage_delay_median": statistics.median(found) if found else math.nan,
            "outage_delay_max": max(found) if found else math.nan,
            "recovery_alert_windows": recovery_flags, "outages_with_recovery_alert": recoveries_alerted,
            "outage_windows_after_the_label": overrun}
    flagged = sum(int((f.direction != NONE).sum()) for f in flags.values())
    days = n_windows * data.window_s / 86400
    out |= {"flagged_windows_per_series_day": flagged / days, "episodes_per_series_day": all_eps / days,
            "share_critical": sum(int(f.critical.sum()) for f in flags.values()) / max(1, flagged),
            "flag_rate": flagged / n_windows}
    return out


def chance_precision(data: Dataset, rate: float, seed: int) -> float:
    """Episode precision of flags thrown at random at `rate` per window."""
    rng = np.random.default_rng(seed)
    spans = label_spans(data)
    all_eps = true_eps = 0
    for name, counts in data.counts.items():
        covered = np.zeros(len(counts), bool)
        for a, b, _ in spans[name]:
            covered[a:b + 1] = True
        for first, last in episodes(rng.random(len(counts)) < rate):
            all_eps += 1
            true_eps += bool(covered[first:last + 1].any())
    return true_eps / max(1, all_eps)


UNITS = {"outage_delay_median": "windows", "outage_delay_max": "windows", "flagged_windows_per_series_day":
         "windows/series-day", "episodes_per_series_day": "episodes/series-day"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, nargs="+", default=[7])
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--window-s", type=int, default=60)
    parser.add_argument("--verbose", action="store_true", help="list each outage's delay per detector")
    args = parser.parse_args(argv)
    settings = load_settings(with_credentials=False).volume.model_copy(update={"tumble_s": args.window_s})
    print(f"# python -m bench.volume_quality --seed {' '.join(map(str, args.seed))} --days {args.days:g} "
          f"--window-s {args.window_s}")
    print(f"# volume settings: {settings.model_dump()}")
    detectors: dict[str, Detector] = {"volume": detect_volume(settings), "ewma_z": detect_ewma_z,
                                      "median_mad": detect_median_mad, "poisson": detect_poisson}
    for seed in args.seed:
        started = time.perf_counter()
        data = generate(seed, args.days, args.window_s)
        kinds = {kind: sum(lb.kind == kind for lb in data.labels) for kind in ("spike", "drop", "outage",
                                                                                 "level_shift")}
        n_windows = sum(len(c) for c in data.counts.values())
        print(f"# seed {seed}: {len(data.counts)} series × {args.days:g} days of {args.window_s} s windows = "
              f"{n_windows:,} windows; labels {kinds}, margin {MARGIN} windows, recovery {RECOVERY} windows")
        report(f"seed{seed}.generate_seconds", time.perf_counter() - started, "s")
        for name, detector in detectors.items():
            started = time.perf_counter()
            flags = {series: detector(counts, data.first_index) for series, counts in data.counts.items()}
            report(f"seed{seed}.{name}.scoring_seconds", time.perf_counter() - started, "s")
            result = evaluate(data, flags)
            for key, value in result.items():
                if key != "flag_rate":
                    report(f"seed{seed}.{name}.{key}", value, UNITS.get(key, ""))
            report(f"seed{seed}.{name}.chance_precision_episodes", chance_precision(data, result["flag_rate"], seed))
            if args.verbose:
                for label in (lb for lb in data.labels if lb.kind == "outage"):
                    a = label.start - data.first_index
                    for source in sorted({data.source_of[s] for s in label.affected}):
                        low = np.flatnonzero(np.isin(flags[source].direction[a:label.end - data.first_index + 1],
                                                     (DROP, OUTAGE)))
                        print(f"  {name} outage {label.target} {source} {label.end - label.start + 1} windows "
                              f"mean {data.counts[source][max(0, a - 60):a].mean():.1f}: "
                              f"{'missed' if not len(low) else f'delay {low[0]}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
