"""Seeded, labelled post-count series shaped like real social volume, for bench/volume_quality.py.

    python -m bench.volume_series [--seed 7] [--days 14] [--window-s 60]   # prints the labels

Separate from the test fixtures on purpose: the unit and integration tests use Poisson traffic, which no
real source is. Here, per window:

- sources (bluesky ~150 posts/min, reddit ~50, mastodon ~15, lemmy ~4) split into languages (each with
  its own daily peak hour, as time zones do) and communities (reddit and lemmy);
- the rate of a language = base × daily rhythm (1 + A·cos, A 0.3–0.7) × weekend factor (0.75–1.15) ×
  a slow random-walk drift × anomaly multipliers; counts are Poisson around it times gamma noise shared
  by the source (dispersion 0.005–0.05) and the series' own (0.01–0.2): negative binomial counts, several
  times more variable than Poisson, correlated within a source;
- the source count is the sum of its languages; a community is its own overdispersed share of the
  source, and a community's extra posts (a spike) also count in its source and the source's first language;
- anomalies, one per 6-hour slot from day 2 on (day 1 is history): spikes on a source, a language or a
  community (×1.5 to ×10, 3 to 60 minutes, 40 % with a linear ramp over their first half), partial drops
  on a source or a language (×0.2 to ×0.6, 10 to 90 minutes), outages of one source or of all sources at
  once (0 posts, 5 minutes to 2 hours) and permanent level shifts of a source (×0.5–0.7 or ×1.5–2.5,
  labelled for their first 3 hours, while an alert about them is still news).

Each label names its kind, target, first and last window, multiplier and the series it affects.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np

START_S = 1_791_158_400  # 2026-10-05T00:00:00Z, a Monday
SOURCES = {  # posts per minute, languages (share, daily peak hour UTC), communities (share)
    "bluesky": (150.0, {"en": (0.55, 16), "ja": (0.2, 3), "pt": (0.15, 23), "de": (0.1, 18)}, {}),
    "reddit": (50.0, {"en": (0.85, 17), "es": (0.1, 21), "und": (0.05, 12)},
               {"news": 0.3, "gaming": 0.2, "science": 0.05}),
    "mastodon": (15.0, {"en": (0.5, 16), "de": (0.3, 19), "fr": (0.2, 20)}, {}),
    "lemmy": (4.0, {"en": (0.8, 17), "und": (0.2, 14)}, {"linux": 0.4, "memes": 0.3}),
}
SLOT_S = 6 * 3600
KINDS = ("spike", "drop", "outage", "outage_all", "level_shift")
KIND_WEIGHTS = (0.4, 0.15, 0.2, 0.1, 0.15)


@dataclass(frozen=True)
class Label:
    kind: str  # spike, drop, outage, level_shift
    target: str  # a series name, or "*" for all sources
    start: int  # first window (index since the epoch)
    end: int  # last window
    multiplier: float
    affected: frozenset[str]  # the series whose counts it changes


@dataclass
class Dataset:
    window_s: int
    first_index: int
    counts: dict[str, np.ndarray]  # series name (the job's: source, source/lang, source/community) -> posts
    source_of: dict[str, str]
    dimension_of: dict[str, str]
    labels: list[Label]


def windows_of(seconds: float, window_s: int) -> int:
    return max(1, round(seconds / window_s))


def plan_labels(rng: np.random.Generator, days: float, window_s: int, first_index: int,
                family: dict[str, list[str]]) -> list[tuple[Label, float]]:
    """One anomaly per slot; returns each label with its ramp (share of its length spent ramping up)."""
    planned = []
    sources = list(SOURCES)
    shifted = dict.fromkeys(sources, 1.0 if rng.random() < 0.5 else 2.0)
    for slot in range(1, int(days * 86400 // SLOT_S)):
        if slot * SLOT_S < 86400:
            continue
        kind = KINDS[rng.choice(len(KINDS), p=KIND_WEIGHTS)]
        source = sources[rng.integers(len(sources))]
        subs = [s for s in family[source] if s != source]
        ramp = 0.0
        if kind == "spike":
            target = [source, *subs][rng.integers(len(subs) + 1)]
            multiplier = float(math.exp(rng.uniform(math.log(1.5), math.log(10))))
            length_s = rng.uniform(3, 60) * 60
            ramp = 0.5 if rng.random() < 0.4 else 0.0
        elif kind == "drop":
            langs = [s for s in subs if s.split("/")[1] in SOURCES[source][1]]
            target = [source, *langs][rng.integers(len(langs) + 1)]
            multiplier, length_s = float(rng.uniform(0.2, 0.6)), rng.uniform(10, 90) * 60
        elif kind in ("outage", "outage_all"):
            target = "*" if kind == "outage_all" else source
            multiplier, length_s = 0.0, float(math.exp(rng.uniform(math.log(5), math.log(120)))) * 60
        else:  # down after an earlier rise and up after a fall, so that sources stay near their sizes
            target = source
            multiplier = float(rng.uniform(0.5, 0.7) if shifted[source] > 1 else rng.uniform(1.5, 2.5))
            shifted[source] *= multiplier
            length_s = 3 * 3600
        start_s = slot * SLOT_S + rng.uniform(0, SLOT_S - length_s - 3600)
        start = first_index + int(start_s // window_s)
        end = start + windows_of(length_s, window_s) - 1
        if target == "*":
            affected = frozenset(s for members in family.values() for s in members)
        elif "/" not in target:
            affected = frozenset(family[target])
        elif target.split("/")[1] in SOURCES[source][1]:
            affected = frozenset({target, source})
        else:  # a community: its extra posts are also the source's and its first language's
            affected = frozenset({target, source, f"{source}/{next(iter(SOURCES[source][1]))}"})
        planned.append((Label(kind.replace("_all", ""), target, start, end, multiplier, affected), ramp))
    return planned


def multiplier_curve(label: Label, ramp: float, n: int, first_index: int) -> np.ndarray:
    """The label's rate multiplier per window (1 outside it; a level shift stays for good)."""
    curve = np.ones(n)
    a, b = label.start - first_index, label.end - first_index + 1
    if label.kind == "level_shift":
        curve[a:] = label.multiplier
        return curve
    curve[a:b] = label.multiplier
    ramp_n = int((b - a) * ramp)
    if ramp_n:
        curve[a:a + ramp_n] = 1 + (label.multiplier - 1) * (np.arange(1, ramp_n + 1) / (ramp_n + 1))
    return curve


def gamma_noise(rng: np.random.Generator, dispersion: float, n: int) -> np.ndarray:
    """Mean-1 gamma multipliers of variance `dispersion`: Poisson × gamma is negative binomial."""
    return rng.gamma(1 / dispersion, dispersion, n)


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def generate(seed: int, days: float = 14, window_s: int = 60) -> Dataset:
    rng = np.random.default_rng(seed)
    first_index = START_S // window_s
    n = int(days * 86400 // window_s)
    seconds = (first_index + np.arange(n)) * window_s
    hours = seconds % 86400 / 3600
    weekend = (seconds // 86400 + 3) % 7 >= 5
    family = {s: [s, *(f"{s}/{lang}" for lang in langs), *(f"{s}/{c}" for c in communities)]
              for s, (_, langs, communities) in SOURCES.items()}
    planned = plan_labels(rng, days, window_s, first_index, family)
    per_window = window_s / 60
    counts, source_of, dimension_of = {}, {}, {}
    for source, (rate, langs, communities) in SOURCES.items():
        drift = np.exp(np.cumsum(rng.normal(0, 0.15 / math.sqrt(86400 / window_s), n)))
        weekly = np.where(weekend, rng.uniform(0.75, 1.15), 1.0)
        shared = gamma_noise(rng, log_uniform(rng, 0.005, 0.05), n)
        amplitude = rng.uniform(0.3, 0.7)

        def source_curve(targets: tuple[str, ...]) -> np.ndarray:
            curve = np.ones(n)
            for label, ramp in planned:
                if label.target in targets:
                    curve *= multiplier_curve(label, ramp, n, first_index)
            return curve

        whole = source_curve(("*", source))
        total = np.zeros(n, dtype=np.int64)
        lang_names = []
        for lang, (share, peak) in langs.items():
            name = f"{source}/{lang}"
            daily = 1 + amplitude * np.cos(2 * math.pi * (hours - peak) / 24)
            mean = (rate * share * per_window * daily * weekly * drift * shared * whole
                    * source_curve((name,)))
            counts[name] = rng.poisson(mean * gamma_noise(rng, log_uniform(rng, 0.01, 0.2), n))
            lang_names.append(name)
            total += counts[name]
        for community, share in communities.items():
            name = f"{source}/{community}"
            daily = 1 + amplitude * np.cos(2 * math.pi * (hours - 17) / 24)
            base = rate * share * per_window * daily * weekly * drift * shared * whole
            noise = gamma_noise(rng, log_uniform(rng, 0.01, 0.2), n)
            extra = rng.poisson(base * noise * (source_curve((name,)) - 1))
            counts[name] = rng.poisson(base * noise) + extra
            counts[lang_names[0]] = counts[lang_names[0]] + extra  # a community's posts are its source's too
            total += extra
        counts[source] = total
        for name in family[source]:
            source_of[name] = source
            dimension_of[name] = "source" if name == source else "community" if name.split("/")[1] in communities \
                else "lang"
    return Dataset(window_s, first_index, counts, source_of, dimension_of, [label for label, _ in planned])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--window-s", type=int, default=60)
    args = parser.parse_args(argv)
    data = generate(args.seed, args.days, args.window_s)
    for name, series in data.counts.items():
        print(f"# {data.dimension_of[name]:9} {name:18} mean {series.mean():8.2f} posts/window")
    for label in data.labels:
        start = (label.start - data.first_index) * data.window_s / 3600
        print(f"{label.kind:11} {label.target:16} ×{label.multiplier:5.2f} day {start // 24:2.0f} "
              f"{start % 24:05.2f} h, {label.end - label.start + 1} windows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
