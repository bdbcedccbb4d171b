"""Trend maths (DESIGN.md §5): one keyword's baseline and the score of its latest window.

The trending job keys the sliding-window results (one row per keyword and window: posts, distinct
authors, and all posts in that window) by keyword and calls `observe(state, row, settings)` for each,
in window order. The state is one small `Baseline` per keyword. What the design notes warn about,
and how this answers:

- cold start: nothing may fire before the *stream* has `min_history_windows` windows of history (the
  job's first window comes from the SQL stage, so it is the same after a restart). Every keyword's
  history starts at the stream's first window, zeros where it was absent, and the baseline is the
  plain mean of that history until it holds 1/alpha windows, an EWMA after that (the weight of the
  n-th window is max(alpha, 1/n)): an EWMA seeded with its first value would carry that one window,
  often a partial or lucky one, for dozens of windows. A keyword first seen after the warm-up was
  absent from every window the job has watched, so its baseline is the rate that absence allows
  (small, and smaller the longer the job has watched): a brand-new hashtag can trend at once;
- low counts: the score is on the sliding window (e.g. 5 minutes) against a baseline of the same
  windows, with the Poisson floor: z = (x − m) / sqrt(max(v, m) + 1). For small expected counts a
  normal z is far too generous (P(X ≥ 8 | λ = 1.5) is 2·10⁻⁴, not the 3·10⁻⁵ of z = 4), and a day holds
  millions of keyword windows; so a trend must also pass the exact Poisson tail,
  P(X ≥ x | λ = max(expected, min_expected)) ≤ max_p_value;
- a big event lifts everything: the baseline is kept on the keyword's *odds*, its posts over the window's
  other posts, and turned into an expected count for the current window (share mode, on by default). The
  odds, not the share of all posts: a common word's own burst adds to the window's posts, and a share
  would raise its expectation with its own burst;
- a burst must not poison its own baseline: a window enters the baseline only once it has left the
  scoring window (`overlap` later), so the windows being scored are never part of their own baseline;
- one account posting a hundred times is not a trend: `min_authors` distinct authors are required;
- absent windows count as 0 and are applied in closed form, without a timer per idle key:
  k zero observations of the EWMA take (m, v) to ((1−a)^k·m, (1−a)^k·(v + m²·(1 − (1−a)^k))).

A 5-minute window is slow to show a rise: a rare word at 2 posts a minute that triples adds 4 a minute, and its
window passes p ≤ 1e-8 only after minutes of burst; a strong burst is diluted by the four quiet minutes in its
window. Two more tests read the same baseline, each held to the same false-alert probability (issue 18):
- the minute test: the window's newest minute alone, x₁ against λ₁ = the baseline's odds × the minute's other
  posts, with the same z and tail rule — a strong burst fires one minute after it starts;
- the sequential test: a Poisson CUSUM on the minute counts, S ← max(0, S + (x₁·ln ρ − (ρ − 1)·λ₁) / φ), the
  log-likelihood ratio of "the rate is ρ× the baseline" against "it is the baseline", accumulated over the minutes
  of a rise: moderate rises of rare words pile up evidence minute by minute. The chance that an excursion ever
  reaches S is at most e^−S (Wald), so the alarm is S ≥ h = ln(1 / sequential_max_p_value), and e^−S is its p.
  S is capped at h: a trend lasts while the evidence keeps coming, not for hours after one huge minute.
  S starts once the stream is past its warm-up: evidence piled against a baseline of a few windows would alarm
  the moment the warm-up ends.
In every test's count an author adds at most `posts_per_author` posts (bounded from the distinct authors:
min(posts, posts_per_author × authors)): one account posting eighty times beside three people is not a trend,
though it passes min_authors.
Real keyword counts are overdispersed, and a Poisson test on them fires on ordinary noise: with φ = max(1, the
window counts' variance / mean), the window and minute tests take their tail from the negative binomial with
variance φ × mean (shared/stats.py count_tail), and the sequential test divides its evidence by φ
(quasi-likelihood). λ₁ is floored at min_expected / overlap, so a
keyword the baseline barely knows does not gain evidence from an occasional post. Every trend names its evidence
(window, minute or sequential), its span, what was observed and expected there, and p.
"""

from __future__ import annotations

import math
from typing import Annotated, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.stats import count_tail


class TrendingSettings(BaseModel):
    """Every constant of the trending job; config/streampulse.yaml section `trending`."""

    model_config = ConfigDict(extra="forbid")

    tumble_s: Annotated[int, Field(ge=1, description="seconds, a whole number ≥ 1")] = 60
    hop_size_s: Annotated[int, Field(ge=1, description="seconds, a whole number ≥ 1 (a multiple of hop_slide_s)")] = 300
    hop_slide_s: Annotated[int, Field(ge=1, description="seconds, a whole number ≥ 1")] = 60
    watermark_s: Annotated[int, Field(ge=0, description="seconds of allowed out-of-orderness, a whole number ≥ 0")] = 30
    alpha: Annotated[float, Field(gt=0, lt=1, description="the EWMA weight of a new window, between 0 and 1")] = 0.03
    z_threshold: Annotated[float, Field(gt=0, description="a positive number of standard deviations")] = 4.0
    min_posts: Annotated[int, Field(ge=1, description="a whole number ≥ 1")] = 8
    min_authors: Annotated[int, Field(ge=1, description="a whole number ≥ 1")] = 4
    min_history_windows: Annotated[int, Field(ge=0, description="a whole number ≥ 0")] = 20
    max_p_value: Annotated[float, Field(gt=0, lt=1, description="a probability between 0 and 1, e.g. 1e-8")] = 1e-8
    min_expected: Annotated[float, Field(gt=0, description="posts per window, a positive number")] = 1.0
    share_mode: bool = True
    posts_per_author: Annotated[int, Field(ge=1, description="a whole number ≥ 1")] = 2  # in the tests' counts
    minute_test: bool = True  # also score each window's newest minute (see the module docstring)
    sequential_test: bool = True  # and the Poisson CUSUM on the minute counts
    sequential_ratio: Annotated[float, Field(gt=1, description="the rise the sequential test seeks, a ratio > 1")] = 3.0
    minute_z_threshold: Annotated[float, Field(gt=0, description="a positive number of standard deviations")] = 4.0
    minute_max_p_value: Annotated[float, Field(gt=0, lt=1, description="a probability between 0 and 1")] = 1e-8
    sequential_max_p_value: Annotated[float, Field(gt=0, lt=1, description="a probability between 0 and 1")] = 1e-8
    # Each trend's mood: the sentiment of the window's English posts (shared/enrich.py), about 13 µs per post in the
    # counting (bench/enrichment.py). Off: trends carry no sentiment (sentiment_posts 0).
    sentiment: bool = True
    # Keywords never counted, spelled as counted (`#tag`, a lower-case word): a keyword rule, e.g. a word a source
    # puts in every post. A change applies to what the job counts from then on; `streampulse backfill` recounts
    # a past period with it.
    ignore_keywords: list[Annotated[str, Field(min_length=1, max_length=65)]] = Field(default_factory=list)
    top_n: Annotated[int, Field(ge=1, description="a whole number ≥ 1")] = 20
    redis_ttl_s: Annotated[int, Field(ge=1, description="seconds, a whole number ≥ 1")] = 3600
    # A keyword absent from every window for this long (event time) loses its baseline: by then 1,440 absent
    # windows have decayed it to nothing the scoring can use. The job drops it from its state, and a keyword that
    # returns is scored with the cold-start rule for a keyword new after the warm-up. Event time, not Flink's
    # processing-time TTL: a job restarted after a day down must not find every baseline gone.
    state_ttl_s: Annotated[int, Field(ge=60, description="seconds, a whole number ≥ 60")] = 86_400
    # What PostgreSQL receives besides the trends (shared/keyword_windows.py): each minute's most frequent
    # keywords, and the keywords that trended or came close (z ≥ watch_z), for watch_minutes afterwards.
    top_keywords: Annotated[int, Field(ge=0, description="keywords per minute, a whole number ≥ 0")] = 20
    watch_z: Annotated[float, Field(gt=0, description="a positive number of standard deviations, ≤ z_threshold")] = 3.5
    watch_max: Annotated[int, Field(ge=0, description="keywords per window, a whole number ≥ 0")] = 50
    watch_minutes: Annotated[int, Field(ge=0, description="minutes, a whole number ≥ 0")] = 10

    @model_validator(mode="after")
    def _windows_fit(self):
        if self.hop_slide_s != self.tumble_s:
            raise ValueError(f"trending.hop_slide_s ({self.hop_slide_s}) must equal trending.tumble_s "
                             f"({self.tumble_s}): the sliding windows are built from the tumbling ones")
        if self.hop_size_s % self.hop_slide_s:
            raise ValueError(f"trending.hop_size_s ({self.hop_size_s}) must be a multiple of trending.hop_slide_s "
                             f"({self.hop_slide_s})")
        if self.watch_z > self.z_threshold:
            raise ValueError(f"trending.watch_z ({self.watch_z}) must not exceed trending.z_threshold "
                             f"({self.z_threshold}): every trend is also watched")
        return self

    @property
    def overlap(self) -> int:
        """How many slides a sliding window spans: a window enters the baseline this many slides later."""
        return max(1, math.ceil(self.hop_size_s / self.hop_slide_s))


# NamedTuples, not dataclasses: the job builds, scores and pickles hundreds of thousands of these per
# minute of a busy stream, and a tuple is several times cheaper to make and to pickle (bench/trending_throughput.py).
class WindowRow(NamedTuple):
    keyword: str
    window_index: int  # window_end // slide: consecutive windows differ by 1
    window_start_ms: int
    window_end_ms: int
    posts: int
    authors: int
    window_posts: int  # all posts in the window; without the keyword's, the denominator of its odds
    samples: tuple[str, ...] = ()
    stream_first_index: int | None = None  # the first window the job saw (any keyword); None = this row's
    minute_posts: int = 0  # the keyword's posts in the window's newest minute
    minute_total: int = 0  # all posts in that minute
    minute_authors: int = 0  # the keyword's distinct authors in that minute


class Baseline(NamedTuple):
    mean: float = 0.0  # of the odds (share mode) or of the count
    var: float = 0.0
    first_index: int | None = None  # where the keyword's history starts
    folded_until: int | None = None  # the last window index already in mean/var
    windows: int = 0  # how many windows (absent ones included) are in mean/var
    pending: tuple[tuple[int, float], ...] = ()  # (index, value) still inside the scoring window
    last_index: int | None = None  # the last window observed: the minutes between are absent ones
    evidence: float = 0.0  # the sequential test's S, in nats
    evidence_from: int | None = None  # the window whose newest minute began the current excursion of S
    evidence_posts: int = 0  # posts and expected posts in the minutes of that excursion
    evidence_expected: float = 0.0
    mood: float = 0.0  # the usual mood: EWMA of the window means of sentiment (see `mood_step`)
    mood_windows: int = 0  # windows in `mood`
    mood_pending: tuple[tuple[int, float], ...] = ()  # (index, window mean) still inside the scoring window


class Mood(NamedTuple):
    """The sentiment around a keyword in one window (shared/enrich.py scores English posts only)."""

    sentiment: float | None  # the mean score of the window's scored posts with the keyword; None: none scored
    negative_share: float | None  # the share of those scored negative
    scored: int  # how many were scored
    usual: float | None  # the keyword's usual mood before this window; None: no history yet

    @property
    def change(self) -> float | None:
        return None if self.sentiment is None or self.usual is None else self.sentiment - self.usual


class TrendDecision(NamedTuple):
    keyword: str
    window_start_ms: int
    window_end_ms: int
    posts: int
    authors: int
    expected: float
    std: float
    z: float
    is_trend: bool
    samples: tuple[str, ...] = ()
    warm: bool = True  # the stream has the history the score needs (min_history_windows): z means something
    evidence: str = ""  # what made it a trend: "window", "minute" or "sequential" ("" when it is not one)
    p_value: float = 1.0  # of that evidence
    evidence_start_ms: int = 0  # the span the evidence covers, to window_end_ms
    evidence_posts: int = 0  # posts in that span (shared.trends.minute_count for the minute tests), and expected
    evidence_expected: float = 0.0


def decay(mean: float, var: float, k: int, alpha: float) -> tuple[float, float]:
    """The EWMA after k windows in which the keyword was absent (value 0), in closed form."""
    if k <= 0:
        return mean, var
    keep = (1 - alpha) ** k
    return keep * mean, keep * (var + mean * mean * (1 - keep))


def ewma_step(mean: float, var: float, x: float, alpha: float) -> tuple[float, float]:
    """One exponentially weighted update of mean and variance (West's form)."""
    diff = x - mean
    return mean + alpha * diff, (1 - alpha) * (var + alpha * diff * diff)


def fold(state: Baseline, up_to: int, alpha: float) -> Baseline:
    """Move every pending window with index ≤ up_to into mean/var, zeros for the gaps between them."""
    mean, var, _, done, n, pending = state[:6]
    if (not pending or pending[0][0] > up_to) and (done is None or done >= up_to):
        return state  # nothing to fold (pending is in window order)
    keep: tuple = ()
    for position, (index, value) in enumerate(pending):
        if index > up_to:
            keep = pending[position:]
            break
        if done is not None and index - done > 1:
            mean, var, n = absent_windows(mean, var, n, index - done - 1, alpha)
        n += 1
        weight = alpha if alpha >= 1 / n else 1 / n
        diff = value - mean  # ewma_step, inlined: this loop runs for every keyword of every window
        mean, var = mean + weight * diff, (1 - weight) * (var + weight * diff * diff)
        done = index
    if done is not None and done < up_to:
        mean, var, n = absent_windows(mean, var, n, up_to - done, alpha)  # absent windows up to the edge count as 0
        done = up_to
    return state._replace(mean=mean, var=var, folded_until=done, windows=n, pending=keep)


def absent_windows(mean: float, var: float, n: int, k: int, alpha: float) -> tuple[float, float, int]:
    """k absent windows: one by one while the baseline is still a plain mean, then in closed form."""
    while k > 0 and 1 / (n + 1) > alpha:
        n, k = n + 1, k - 1
        mean, var = ewma_step(mean, var, 0.0, 1 / n)
    return (*decay(mean, var, k, alpha), n + k)


def z_score(x: float, expected: float, variance: float) -> float:
    """(x − m) / sqrt(max(v, m) + 1): the Poisson floor keeps rare words from looking explosive."""
    return (x - expected) / math.sqrt(max(variance, expected) + 1)


def observe(state: Baseline | None, row: WindowRow, settings: TrendingSettings) -> tuple[Baseline, TrendDecision]:
    """Score `row` against the keyword's baseline, then queue it for the baseline."""
    state = _folded(state, row, settings)
    scale = others(row.window_posts, row.posts) if settings.share_mode else 1
    if state.folded_until is None:
        expected = std = 0.0
        z = 0.0
    else:
        expected = state.mean * scale
        variance = state.var * scale * scale
        std = math.sqrt(variance)
        z = z_score(row.posts, expected, variance)
    history = row.window_index - (state.first_index if state.first_index is not None else row.window_index)
    warm = state.folded_until is not None and history >= settings.min_history_windows
    state, minute_expected, dispersion = sequential_step(state, row, settings)
    decision = TrendDecision(row.keyword, row.window_start_ms, row.window_end_ms, row.posts, row.authors, expected,
                             std, z, False, row.samples, warm)
    if warm and row.posts >= settings.min_posts and row.authors >= settings.min_authors:
        decision = _evidence(decision, state, row, settings, minute_expected, dispersion)
    return _queued(state, row, settings), decision


def mood_step(state: Baseline, window_index: int, scored: int, sentiment_sum: float, negative: int,
              settings: TrendingSettings) -> tuple[Baseline, Mood]:
    """The window's mood against the keyword's usual one, and the baseline with this window queued.

    The usual mood is an EWMA (weight max(alpha, 1/n), like the counts' baseline) of the keyword's window means,
    over the windows that have left the scoring window (`overlap` slides later), so that a window is never
    compared with windows sharing its own minutes. Windows without a scored post are skipped, not counted as
    neutral. The job calls it for every keyword with at least min_posts posts in the window (the ones that can
    trend), so the usual mood is that of the windows in which the keyword was that frequent."""
    mood, n, pending = state.mood, state.mood_windows, state.mood_pending
    edge = window_index - settings.overlap
    while pending and pending[0][0] <= edge:
        n += 1
        mood += max(settings.alpha, 1 / n) * (pending[0][1] - mood)
        pending = pending[1:]
    if not scored:
        return state._replace(mood=mood, mood_windows=n, mood_pending=pending), Mood(None, None, 0,
                                                                                     mood if n else None)
    mean = sentiment_sum / scored
    window = Mood(mean, negative / scored, scored, mood if n else None)
    return state._replace(mood=mood, mood_windows=n, mood_pending=(*pending, (window_index, mean))), window


def minute_count(row: WindowRow, settings: TrendingSettings) -> int:
    """x₁ of the minute tests: the newest minute's posts, each author counting for at most posts_per_author."""
    return min(row.minute_posts, settings.posts_per_author * row.minute_authors)


def _evidence(decision: TrendDecision, state: Baseline, row: WindowRow, settings: TrendingSettings,
              minute_expected: float, dispersion: float) -> TrendDecision:
    """The first test that passes, in the order window, minute, sequential: is_trend, and what it saw."""
    if decision.z >= settings.z_threshold:
        x = min(row.posts, settings.posts_per_author * row.authors)
        p = count_tail(x, max(decision.expected, settings.min_expected), dispersion)
        if p <= settings.max_p_value:
            return decision._replace(is_trend=True, evidence="window", p_value=p,
                                     evidence_start_ms=row.window_start_ms, evidence_posts=row.posts,
                                     evidence_expected=decision.expected)
    minute_ms = (row.window_end_ms - row.window_start_ms) // settings.overlap
    x = minute_count(row, settings)
    if settings.minute_test and z_score(x, minute_expected,
                                        dispersion * minute_expected) >= settings.minute_z_threshold:
        p = count_tail(x, minute_expected, dispersion)
        if p <= settings.minute_max_p_value:
            return decision._replace(is_trend=True, evidence="minute", p_value=p,
                                     evidence_start_ms=row.window_end_ms - minute_ms,
                                     evidence_posts=x, evidence_expected=minute_expected)
    if settings.sequential_test and state.evidence >= -math.log(settings.sequential_max_p_value):
        return decision._replace(is_trend=True, evidence="sequential", p_value=math.exp(-state.evidence),
                                 evidence_start_ms=row.window_end_ms - (row.window_index - state.evidence_from + 1)
                                 * minute_ms,
                                 evidence_posts=state.evidence_posts, evidence_expected=state.evidence_expected)
    return decision


def advance(state: Baseline | None, row: WindowRow, settings: TrendingSettings) -> Baseline:
    """The baseline `observe` leaves behind, without the score: for a row that can neither trend nor be
    watched (fewer than min_posts posts), which is most of a long-tailed vocabulary's rows."""
    state, _, _ = sequential_step(_folded(state, row, settings), row, settings)
    return _queued(state, row, settings)


def sequential_step(state: Baseline, row: WindowRow, settings: TrendingSettings) -> tuple[Baseline, float, float]:
    """Add the window's newest minute to the sequential test (minutes without a row, the keyword absent from
    the whole window, count 0 each); also return that minute's expected posts and the dispersion φ."""
    if state.folded_until is None:  # no baseline yet: nothing to compare with
        return state._replace(last_index=row.window_index), 0.0, 1.0
    if row.window_index - state.first_index < settings.min_history_windows:
        # Warm-up: a baseline of a few windows is no reference yet, and evidence piled up against it would
        # alarm the moment the warm-up ends.
        return state._replace(last_index=row.window_index), 0.0, 1.0
    floor = settings.min_expected / settings.overlap
    if settings.share_mode:
        expected = max(state.mean * others(row.minute_total, row.minute_posts), floor)
        dispersion = state.var * others(row.window_posts, row.posts) / state.mean if state.mean > 0 else 1.0
    else:
        expected = max(state.mean / settings.overlap, floor)
        dispersion = state.var / state.mean if state.mean > 0 else 1.0
    dispersion = max(1.0, dispersion)
    ratio = settings.sequential_ratio
    evidence, start, posts, total = state.evidence, state.evidence_from, state.evidence_posts, state.evidence_expected
    absent = row.window_index - state.last_index - 1 if state.last_index is not None else 0
    if absent > 0 and evidence > 0:
        evidence = max(0.0, evidence - absent * (ratio - 1) * expected / dispersion)
        total += absent * expected
        if evidence == 0:
            start, posts, total = None, 0, 0.0
    alarm = -math.log(settings.sequential_max_p_value)
    x = minute_count(row, settings)
    evidence = min(alarm, evidence + (x * math.log(ratio) - (ratio - 1) * expected) / dispersion)
    if evidence <= 0:
        evidence, start, posts, total = 0.0, None, 0, 0.0
    elif start is None:
        start, posts, total = row.window_index, x, expected
    else:
        posts, total = posts + x, total + expected
    return (state._replace(last_index=row.window_index, evidence=evidence, evidence_from=start, evidence_posts=posts,
                           evidence_expected=total), expected, dispersion)


def others(total: int, posts: int) -> int:
    """The posts without the keyword, the denominator of its odds (at least 1)."""
    return total - posts if total > posts else 1


def expired(state: Baseline | None, window_index: int, settings: TrendingSettings) -> bool:
    """Whether a keyword's baseline is past its time to live at `window_index`: the keyword has been absent from
    every window for longer than state_ttl_s of event time. The job drops such baselines from its state, and
    `observe` treats one it still holds as gone, so that the result never depends on when the job swept."""
    return (state is not None and state.last_index is not None
            and window_index - state.last_index > settings.state_ttl_s // settings.hop_slide_s)


def _folded(state: Baseline | None, row: WindowRow, settings: TrendingSettings) -> Baseline:
    if state is None or expired(state, row.window_index, settings):
        state = _first_baseline(row, settings)
    return fold(state, row.window_index - settings.overlap, settings.alpha)


def _queued(state: Baseline, row: WindowRow, settings: TrendingSettings) -> Baseline:
    value = row.posts / others(row.window_posts, row.posts) if settings.share_mode else float(row.posts)
    return state._replace(pending=(*state.pending, (row.window_index, value)))


def _first_baseline(row: WindowRow, settings: TrendingSettings) -> Baseline:
    stream_first = row.window_index if row.stream_first_index is None else min(row.stream_first_index,
                                                                               row.window_index)
    watched = row.window_index - stream_first
    if watched < settings.min_history_windows:  # warm-up: the history starts with the stream, zeros before now
        return Baseline(first_index=stream_first, folded_until=stream_first - 1 if watched else None)
    # Absent from every window since the stream began. That bounds its rate rather than proving it 0:
    # absent from `watched` sliding windows spanning watched + overlap − 1 slides, its count per window
    # is below 3·overlap / (watched + overlap − 1) with 95 % confidence (P(0 | λ) = e^−λ·… = 0.05).
    upper = 3 * settings.overlap / (watched + settings.overlap - 1)
    mean = upper / others(row.window_posts, row.posts) if settings.share_mode else upper
    folded = row.window_index - settings.overlap
    return Baseline(mean=mean, first_index=stream_first, folded_until=folded, windows=folded - stream_first + 1)


def rank(decisions: list[TrendDecision], top_n: int) -> list[tuple[int, TrendDecision]]:
    """Trends of one window ranked 1..N by z, then posts, then keyword (deterministic)."""
    trends = sorted((d for d in decisions if d.is_trend), key=lambda d: (-d.z, -d.posts, d.keyword))
    return list(enumerate(trends[:top_n], start=1))
