"""A labelled keyword stream built to look like real data, for the trend detector's benchmark.

Seeded and separate from the test fixtures (connectors/synthetic.py): what the detector is tuned on is not
what the tests check. It is generated at the level the detector sees — per minute, the posts of every
keyword with their authors — so that hours of a 30 posts/s stream take seconds:

- a Zipf vocabulary (30,000 keywords) whose rates follow the day (±30 %) and drift (a random walk of each
  keyword's interest every 10 minutes), with overdispersed minute counts (a gamma factor per keyword and minute:
  a common keyword's minute counts vary 1.2 to 3 times more than a Poisson count of the same mean, a rare one's
  rate ±45 % from minute to minute);
- posts per minute from the same rhythm, several keywords per post, authors drawn from a heavy-tailed
  population (a few accounts post a lot);
- decoys that must not trend: a busy half hour (×2.5 all traffic), and one account posting a rare word 80 times;
- labelled bursts on keywords of every frequency (1 to 100+ posts a minute), 2× to 20× their rate, ramping up
  over 1–3 minutes and lasting 8–25; and brand-new hashtags that nobody used before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

START_MS = 1_796_000_400_000  # 2026-11-30T01:00:00Z: the rhythm's phase is taken from the clock
INTENSITIES = (2, 3, 4, 5, 10, 20)
# Baseline bands (posts per minute) the bursts are spread over: the rare words are the hard part.
BANDS = ((1, 2), (2, 5), (5, 20), (20, 100), (100, 1000))


@dataclass(frozen=True)
class Burst:
    keyword: int  # index into the vocabulary (new hashtags come after it)
    start_s: float  # from the stream's start
    length_s: float
    intensity: float
    ramp_s: float
    baseline_per_min: float  # for a new hashtag (new=True): its rate during the burst, from nothing before
    new: bool = False


@dataclass
class TrendSet:
    """Every (minute, keyword, author) occurrence — a post counts once per keyword — and the posts per minute."""

    start_minute: int
    minutes: int
    names: list[str]
    occ_minute: np.ndarray
    occ_keyword: np.ndarray
    occ_author: np.ndarray
    posts_per_minute: np.ndarray
    bursts: list[Burst] = field(default_factory=list)

    def labels(self) -> list[dict]:
        start_ms = self.start_minute * 60_000
        return [{"keyword": self.names[b.keyword], "start_ms": int(start_ms + b.start_s * 1000),
                 "end_ms": int(start_ms + (b.start_s + b.length_s) * 1000), "intensity": b.intensity,
                 "ramp_s": b.ramp_s, "baseline_per_min": 0.0 if b.new else b.baseline_per_min, "new": b.new}
                for b in self.bursts]


def generate(seed: int, hours: float = 3.0, rate: float = 30.0, bursts: int = 24, new_tags: int = 3,
             vocabulary: int = 30_000, keywords_per_post: float = 5.0) -> TrendSet:
    rng = np.random.default_rng(seed)
    minutes = int(hours * 60)
    start_minute = START_MS // 60_000
    t = np.arange(minutes)
    hour_of_day = ((start_minute + t) % 1440) / 60
    rhythm = 1 + 0.3 * np.sin(2 * np.pi * (hour_of_day - 9) / 24)
    busy = np.ones(minutes)
    busy_at = int(rng.integers(minutes // 3, max(minutes // 3 + 1, minutes - 40)))
    busy[busy_at:busy_at + 30] = 2.5
    posts = rng.poisson(rate * 60 * rhythm * busy)

    # Keyword rates: Zipf, scaled so that a post carries ~keywords_per_post of them.
    weights = 1 / np.arange(1, vocabulary + 1) ** 1.05
    rates = weights / weights.sum() * rate * 60 * keywords_per_post  # per minute at rhythm 1
    rng.shuffle(rates[50:])  # rank is not an id: bursts pick by rate below
    drift = np.exp(np.cumsum(rng.normal(0, 0.03, (minutes // 10 + 1, vocabulary)), axis=0))
    # Each keyword's index of dispersion (variance / mean of its minute counts) is log-uniform in [1.2, 3] at its
    # typical rate: the gamma factor's shape is μ / (D − 1), so var = μ + μ²/shape = D·μ. Rare words are Poisson
    # but for a shape of at least 5 (a factor that varies ±45 %).
    dispersion = np.exp(rng.uniform(np.log(1.2), np.log(3.0), vocabulary))
    shape = np.maximum(rates / (dispersion - 1), 5.0)

    plan = _plan_bursts(rng, rates, minutes, bursts, new_tags)
    n_total = vocabulary + new_tags
    extra = np.zeros((minutes, n_total))
    for b in plan:
        extra[:, b.keyword] += b.baseline_per_min * rhythm * _burst_profile(b, minutes)

    names = [f"w{i}" for i in range(vocabulary)] + [f"#newtag{i}" for i in range(new_tags)]
    authors_n = 60_000
    author_weights = 1 / np.arange(1, authors_n + 1) ** 0.8
    author_p = author_weights / author_weights.sum()
    occ_m, occ_k, occ_a = [], [], []
    for m in range(minutes):
        mean = rates * rhythm[m] * busy[m] * drift[m // 10] * rng.gamma(shape, 1 / shape)
        # a burst multiplies the keyword's current rate (its drift included), as the labels say
        boost = extra[m] * np.concatenate([drift[m // 10], np.ones(new_tags)])
        counts = rng.poisson(np.concatenate([mean, np.zeros(new_tags)]) + boost)
        keywords = np.repeat(np.arange(n_total), counts)
        # The keyword's occurrences are its posts this minute, each by an author of the population (burst posts
        # are extra posts by other people, not the same post twice).
        occ_m.append(np.full(keywords.size, m))
        occ_k.append(keywords)
        occ_a.append(rng.choice(authors_n, size=keywords.size, p=author_p))
        posts[m] += int(boost.sum())
    # The spam decoy: one account, a rare word, 80 posts over 5 minutes (one author: never a trend).
    spam_word = int(np.argmin(np.abs(rates - 0.5)))
    spam_at = int(rng.integers(40, minutes - 10))
    for m in range(spam_at, spam_at + 5):
        occ_m.append(np.full(16, m))
        occ_k.append(np.full(16, spam_word))
        occ_a.append(np.full(16, authors_n))
        posts[m] += 16
    return TrendSet(start_minute, minutes, names, np.concatenate(occ_m) + start_minute, np.concatenate(occ_k),
                    np.concatenate(occ_a), posts, plan)


def _plan_bursts(rng, rates: np.ndarray, minutes: int, count: int, new_tags: int) -> list[Burst]:
    """Bursts spread over the frequency bands and intensities, after the detector's warm-up (30 minutes), on
    distinct keywords, at random times; brand-new hashtags at 3, 6 and 12 posts a minute."""
    plan, used = [], set()
    for i in range(count):
        low, high = BANDS[i % len(BANDS)]
        candidates = [k for k in np.flatnonzero((rates >= low) & (rates < high)) if k not in used]
        keyword = int(rng.choice(candidates))
        used.add(keyword)
        length = float(rng.uniform(8, 25) * 60)
        start = float(rng.uniform(30 * 60, minutes * 60 - length - 5 * 60))
        plan.append(Burst(keyword, start, length, INTENSITIES[i % len(INTENSITIES)], float(rng.uniform(60, 180)),
                          float(rates[keyword])))
    for i in range(new_tags):
        length = float(rng.uniform(10, 25) * 60)
        start = float(rng.uniform(30 * 60, minutes * 60 - length - 5 * 60))
        plan.append(Burst(len(rates) + i, start, length, float("inf"), float(rng.uniform(60, 180)), 3.0 * 2 ** i,
                          new=True))
    return plan


def _burst_profile(burst: Burst, minutes: int) -> np.ndarray:
    """The extra rate of a burst in each minute, in multiples of its baseline: (intensity − 1) × the ramp (a new
    hashtag: 1 × its rate), averaged over the seconds of the minute that the burst covers."""
    seconds = np.arange(minutes * 60) + 0.5
    since = seconds - burst.start_s
    ramp = np.clip(since / burst.ramp_s, 0, 1) if burst.ramp_s else (since >= 0).astype(float)
    active = (since >= 0) & (since < burst.length_s)
    gain = 1.0 if burst.new else burst.intensity - 1
    return (gain * ramp * active).reshape(minutes, 60).mean(axis=1)
