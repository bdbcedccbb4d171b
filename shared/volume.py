"""Volume anomaly maths: one series' baseline and the evidence of its latest window.

A series is the post count of one source, one source's language, or one source's community per
tumbling window. The volume job keys the window counts by series and calls `observe(state, index,
posts, settings)` once per window in order, with posts = 0 for a window in which the series had no
posts at all (the job's timer supplies those while `still_expected` says a silent window can matter).

Real counts are overdispersed and follow the clock, so the model is a negative binomial (NB) around a
seasonal expectation:

- expectation μ = level × hour-of-day factor × day-of-week factor (UTC, from the window start = index ×
  tumble_s). The level is a fast EWMA of the deseasonalised counts (weight max(alpha, 1/n): the first
  windows form a plain mean); the 24 + 7 multiplicative factors are learned online against a slow
  (one-day) level, so a fast level does not swallow the daily shape before the factors see it;
- variance μ + a·μ²: the dispersion a is a moment estimate, EWMA of ((x − μ)² − μ) over EWMA of μ²,
  i.e. it measures how far the *predictions* miss beyond Poisson noise;
- robust updates: a count enters the baseline winsorised to μ ± winsor_sd·sd; anomalous windows and
  outage windows do not enter at all. A run of `level_shift_windows` anomalies on the same side of μ
  (interrupted by no window on the other side) is a new normal: the level jumps to the run's mean.
  An outage never becomes the new normal;
- spike / drop: the one-sided NB tail p = P(X ≥ x) above μ or P(X ≤ x) below it; p ≤ p_warning is an
  anomaly, p ≤ p_critical is critical. A spike also needs x − μ ≥ min_excess posts;
- outage: a lower CUSUM of the log-likelihood ratio of "almost empty" (Poisson with mean
  outage_fraction·μ) against the NB baseline. S ← max(0, S + LLR); S ≥ outage_threshold declares an
  outage starting at the first window of the stretch in which S rose from 0. It lasts while windows
  look more like the outage than the baseline (LLR ≥ 0: a trickle of posts in a large series) and ends
  at the first that does not; that window carries the ended outage and is scored normally against the
  baseline, which never saw the empty windows, so a recovery is no spike. Severity is critical once S
  (the stretch's summed LLR) reaches outage_critical nats;
- warm-up: nothing fires before `min_history_windows` windows;
- gaps (windows nobody scored because `still_expected` was false: a small series that fell silent)
  count as zeros for the level, folded in closed form; the factors and the dispersion skip them. A gap
  whose empty windows sum to outage_threshold nats of outage evidence is no quiet spell but an outage,
  reported after the fact when the series posts again, and never folded into the level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from shared.post import SocialPost
from shared.stats import nb_tail

HOURS, DAYS = 24, 7
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday: weekday 0 is Monday
MIN_EXPECTED = 1e-3  # posts: keeps the NB defined for a series whose factors learned a silent hour
GAP_WINDOWS_SCORED = 7 * 1440  # a silent gap's evidence is summed over at most a week of minutes


class VolumeSettings(BaseModel):
    """Every constant of the volume job; config/streampulse.yaml section `volume`."""

    model_config = ConfigDict(extra="forbid")

    tumble_s: Annotated[int, Field(ge=1, description="seconds, a whole number ≥ 1")] = 60
    watermark_s: Annotated[int, Field(ge=0, description="seconds of allowed out-of-orderness, a whole number ≥ 0")] = 30
    min_history_windows: Annotated[int, Field(ge=1, description="windows before anything fires, ≥ 1")] = 15
    alpha: Annotated[float, Field(gt=0, lt=1, description="EWMA weight of a new window in the level, in (0, 1)")] = 0.05
    dispersion_alpha: Annotated[float, Field(gt=0, lt=1, description="EWMA weight in the dispersion, in (0, 1)")] = 0.01
    dispersion_prior: Annotated[float, Field(ge=0, description="NB dispersion a before any data, ≥ 0")] = 0.05
    min_dispersion: Annotated[float, Field(gt=0, description="floor of the NB dispersion a, > 0")] = 0.002
    season_days: Annotated[float, Field(gt=0, description="memory of the hour-of-day factors in days, > 0")] = 3.0
    week_weeks: Annotated[float, Field(gt=0, description="memory of the day-of-week factors in weeks, > 0")] = 2.0
    winsor_sd: Annotated[float, Field(gt=0, description="counts enter the baseline clipped to μ ± this many sd")] = 3.0
    p_warning: Annotated[float, Field(gt=0, lt=1, description="one-sided NB tail at or below which a window is "
                                                              "a spike or drop, in (0, 1)")] = 1e-6
    p_critical: Annotated[float, Field(gt=0, lt=1, description="NB tail at or below which it is critical")] = 1e-12
    min_excess: Annotated[float, Field(ge=0, description="posts above expected a spike needs, ≥ 0")] = 5.0
    level_shift_windows: Annotated[int, Field(ge=1, description="anomalies on one side of μ that make a new "
                                                                "level, a whole number ≥ 1")] = 60
    outage_fraction: Annotated[float, Field(gt=0, lt=1, description="share of μ an outage still posts, in "
                                                                    "(0, 1)")] = 0.05
    outage_threshold: Annotated[float, Field(gt=0, description="nats of CUSUM evidence that declare an "
                                                               "outage, > 0")] = 9.0
    outage_critical: Annotated[float, Field(gt=0, description="nats of evidence that make it critical")] = 20.0
    min_expected: Annotated[float, Field(gt=0, description="posts per window a silent window must be "
                                                           "expected to be scored, > 0")] = 1.0
    # Silence without input (jobs/volume.py): when every producer stops, no record moves the watermark and no
    # event-time timer fires. A live stream's silent windows are then scored by the wall clock.
    silence_after_s: Annotated[int, Field(ge=1, description="seconds the watermark may stand still before silent "
                                                            "windows are scored by the wall clock, ≥ 1")] = 60
    live_lag_s: Annotated[int, Field(ge=0, description="seconds behind the wall clock a stream may be and still "
                                                       "count as live, ≥ 0")] = 300
    # A series the job has not scored for this long is dropped from its state (Flink state TTL, processing
    # time), and one in an outage that has lasted this long is forgotten rather than reported for ever: a
    # language a sender made up once, a community or a source that is gone. If it returns, it warms up anew.
    series_ttl_s: Annotated[int, Field(ge=1, description="seconds, a whole number ≥ 1")] = 14 * 86_400


class Outage(NamedTuple):
    start_index: int
    last_index: int
    expected_posts: float
    observed_posts: int
    p_value: float  # P(≤ observed_posts in the outage's windows) under the baseline
    severity: str
    ongoing: bool


@dataclass(frozen=True)
class SeriesBaseline:
    level: float = 0.0  # deseasonalised expected posts per window (fast)
    slow: float = 0.0  # deseasonalised level with a one-day memory: the reference of the seasonal factors
    hours: tuple[float, ...] = (1.0,) * HOURS  # hour-of-day factors, mean 1
    days: tuple[float, ...] = (1.0,) * DAYS  # day-of-week factors, mean 1
    disp_num: float = 0.0  # EWMA of (x − μ)² − μ
    disp_den: float = 0.0  # EWMA of μ²
    windows: int = 0  # windows in the baseline
    last_index: int | None = None  # the last window observed (window_start // tumble)
    cusum: float = 0.0  # lower CUSUM of the outage log-likelihood ratio, nats
    low_start: int | None = None  # first window of the stretch in which the CUSUM is > 0
    low_expected: float = 0.0  # Σ μ over that stretch
    low_extra_var: float = 0.0  # Σ a·μ² over that stretch
    low_observed: int = 0  # Σ posts over that stretch
    in_outage: bool = False
    shift_side: int = 0  # +1 / −1: the side of μ of the current run of anomalies, 0 without one
    shift_count: int = 0
    shift_sum: float = 0.0  # Σ deseasonalised posts of the run


@dataclass(frozen=True)
class VolumeDecision:
    window_index: int
    posts: int
    expected: float
    std: float
    z: float
    p_value: float  # one-sided NB tail on the side of μ the window fell
    direction: Literal["spike", "drop", "outage"] | None
    severity: Literal["warning", "critical"] | None
    outage: Outage | None = None

    @property
    def is_anomaly(self) -> bool:
        return self.direction is not None


def seasonal_bins(index: int, tumble_s: int) -> tuple[int, int]:
    """(hour of day, weekday) in UTC of the window's start: the clock the posting rhythm follows."""
    seconds = index * tumble_s
    return seconds // 3600 % HOURS, (seconds // 86400 + EPOCH_WEEKDAY) % DAYS


def seasonal_factor(state: SeriesBaseline, hour: int, day: int) -> float:
    """The multiplicative factor of the window's hour and weekday, each normalised to mean 1 so that the
    level keeps the meaning "posts per window on an average hour and day"."""
    return (state.hours[hour] * HOURS / sum(state.hours)) * (state.days[day] * DAYS / sum(state.days))


def dispersion(state: SeriesBaseline, settings: VolumeSettings) -> float:
    """NB dispersion a with var = μ + a·μ²: moments of the prediction errors beyond Poisson, so that a
    series that is many times noisier than Poisson is judged by its own noise."""
    if state.disp_den <= 0:
        return max(settings.dispersion_prior, settings.min_dispersion)
    return max(settings.min_dispersion, state.disp_num / state.disp_den)


def nb_logpmf(posts: int, mean: float, disp: float) -> float:
    """log P(X = posts) for the NB baseline."""
    r = 1.0 / disp
    return (math.lgamma(posts + r) - math.lgamma(r) - math.lgamma(posts + 1)
            + r * math.log(r / (r + mean)) + posts * math.log(mean / (r + mean)))


def outage_llr(posts: int, mean: float, disp: float, fraction: float) -> float:
    """log P(posts | outage) − log P(posts | baseline), the outage being Poisson(fraction·μ): a silent
    window of a series expecting 100 posts is ~100 nats of evidence, one expecting 2 posts ~1.7."""
    low = fraction * mean
    outage = posts * math.log(low) - low - math.lgamma(posts + 1)
    return outage - nb_logpmf(posts, mean, disp)


def cusum_step(cusum: float, llr: float) -> float:
    """Lower-side CUSUM: evidence accumulates over consecutive low windows and is forgotten after normal
    ones, so a run of silent windows is detected even when each alone is plausible."""
    return max(0.0, cusum + llr)


def winsorise(posts: float, mean: float, std: float, k: float) -> float:
    """The count clipped to mean ± k·std: a spike or a dip moves the baseline no more than an ordinary
    window does."""
    return min(max(posts, mean - k * std, 0.0), mean + k * std)


def ewma(value: float, x: float, weight: float) -> float:
    return value + weight * (x - value)


def update_factor(factors: tuple[float, ...], position: int, ratio: float, weight: float) -> tuple[float, ...]:
    """Move one seasonal factor toward the ratio observed now (count over slow level × the other factor)
    and renormalise to mean 1, so that the factors describe the shape of the day or week only."""
    values = list(factors)
    values[position] = ewma(values[position], ratio, weight)
    scale = len(values) / sum(values)
    return tuple(v * scale for v in values)


def fold_absent(state: SeriesBaseline, k: int, settings: VolumeSettings) -> SeriesBaseline:
    """k windows nobody scored (the series was silent and not expected to post) as zeros for the level and
    the slow level: one by one while they are plain means, then in closed form."""
    level, slow, n = state.level, state.slow, state.windows
    while k > 0 and 1 / (n + 1) > settings.alpha:
        n, k = n + 1, k - 1
        level, slow = level * (1 - 1 / n), slow * (1 - max(slow_weight(settings), 1 / n))
    return replace(state, level=level * (1 - settings.alpha) ** k,
                   slow=slow * (1 - slow_weight(settings)) ** k, windows=n + k)


def slow_weight(settings: VolumeSettings) -> float:
    """EWMA weight of the slow level: a memory of one day of windows."""
    return min(1.0, settings.tumble_s / 86400)


def update_baseline(state: SeriesBaseline, posts: int, mean: float, std: float, hour: int, day: int,
                    settings: VolumeSettings) -> SeriesBaseline:
    """Fold one ordinary window into level, slow level, seasonal factors and dispersion (winsorised)."""
    x = winsorise(posts, mean, std, settings.winsor_sd) if state.windows else float(posts)
    n = state.windows + 1
    hour_factor = state.hours[hour] * HOURS / sum(state.hours)
    day_factor = state.days[day] * DAYS / sum(state.days)
    deseasonalised = x / (hour_factor * day_factor)
    slow = ewma(state.slow, deseasonalised, max(slow_weight(settings), 1 / n))
    hours, days = state.hours, state.days
    if state.slow > 0:
        hours = update_factor(hours, hour, x / (state.slow * day_factor), min(1.0, settings.tumble_s / (
            3600 * settings.season_days)))
        days = update_factor(days, day, x / (state.slow * hour_factor), min(1.0, settings.tumble_s / (
            86400 * DAYS * settings.week_weeks)))
    disp_num, disp_den = state.disp_num, state.disp_den
    if state.windows:
        weight = max(settings.dispersion_alpha, 1 / n)
        if disp_den <= 0:  # the prior, at the scale of the first prediction
            disp_num, disp_den = settings.dispersion_prior * mean * mean, mean * mean
        disp_num = ewma(disp_num, (x - mean) ** 2 - mean, weight)
        disp_den = ewma(disp_den, mean * mean, weight)
    return replace(state, level=ewma(state.level, deseasonalised, max(settings.alpha, 1 / n)), slow=slow,
                   hours=hours, days=days, disp_num=disp_num, disp_den=disp_den, windows=n)


def outage_record(state: SeriesBaseline, last_index: int, settings: VolumeSettings, ongoing: bool) -> Outage:
    """The outage of the current low stretch. Its p-value is P(≤ observed posts over its windows) under the
    sum of the windows' NBs, matched by mean Σμ and variance Σμ + Σa·μ²; its severity is critical once the
    stretch's evidence (the CUSUM, = Σ LLR since the stretch began) reaches outage_critical nats."""
    disp = max(state.low_extra_var / (state.low_expected * state.low_expected), 1e-9)
    p_value = nb_tail(state.low_observed, state.low_expected, disp, upper=False)
    severity = "critical" if state.cusum >= settings.outage_critical else "warning"
    return Outage(state.low_start, last_index, state.low_expected, state.low_observed, p_value, severity, ongoing)


def silent_outage(state: SeriesBaseline, first: int, last: int, settings: VolumeSettings) -> Outage | None:
    """Windows first..last that nobody scored (the series expected under min_expected posts a window, so the
    job's timer let them pass) and in which it posted nothing: an outage after the fact when their summed
    evidence (the outage log-likelihood ratio of empty windows against the baseline before them) reaches
    outage_threshold. A small series that stops for an hour is reported when it posts again, and its silence
    does not drag its level to zero, which would make the return a spike."""
    if state.windows < settings.min_history_windows:
        return None
    disp = dispersion(state, settings)
    evidence = expected = extra_var = 0.0
    for index in range(first, min(last, first + GAP_WINDOWS_SCORED) + 1):
        mean = max(MIN_EXPECTED, state.level * seasonal_factor(state, *seasonal_bins(index, settings.tumble_s)))
        evidence += outage_llr(0, mean, disp, settings.outage_fraction)
        expected, extra_var = expected + mean, extra_var + disp * mean * mean
    if evidence < settings.outage_threshold:
        return None
    severity = "critical" if evidence >= settings.outage_critical else "warning"
    p_value = nb_tail(0, expected, max(extra_var / (expected * expected), 1e-9), upper=False)
    return Outage(first, last, expected, 0, p_value, severity, ongoing=False)


def observe(state: SeriesBaseline | None, index: int, posts: int,
            settings: VolumeSettings) -> tuple[SeriesBaseline, VolumeDecision]:
    """Score window `index` of a series against its baseline, then update the baseline."""
    state = state or SeriesBaseline()
    silent = None
    if state.last_index is not None and index > state.last_index + 1:
        silent = silent_outage(state, state.last_index + 1, index - 1, settings)
        if silent is None:
            state = fold_absent(state, index - state.last_index - 1, settings)
        else:  # an outage never becomes baseline: its empty windows are not folded in
            state = replace(state, last_index=index - 1)
    hour, day = seasonal_bins(index, settings.tumble_s)
    if not state.windows:
        state = update_baseline(state, posts, 0.0, 0.0, hour, day, settings)
        return replace(state, last_index=index), VolumeDecision(index, posts, 0.0, 0.0, 0.0, 1.0, None, None)
    mean = max(MIN_EXPECTED, state.level * seasonal_factor(state, hour, day))
    disp = dispersion(state, settings)
    std = math.sqrt(mean + disp * mean * mean)
    p_value = nb_tail(posts, mean, disp, upper=posts >= mean)
    z = (posts - mean) / std
    if state.windows < settings.min_history_windows:
        state = update_baseline(state, posts, mean, std, hour, day, settings)
        return replace(state, last_index=index), VolumeDecision(index, posts, mean, std, z, p_value, None, None)

    # Outage evidence: the lower CUSUM and the stretch it covers. An outage ends at the first window that
    # looks more like the baseline than like an outage (LLR < 0: for a series expecting 3 posts or more,
    # any post), and that window is scored as an ordinary one.
    llr = outage_llr(posts, mean, disp, settings.outage_fraction)
    cusum = cusum_step(state.cusum, llr)
    ended = silent
    if cusum > 0 and not (state.in_outage and llr < 0):
        fresh = state.cusum <= 0
        low = replace(state, cusum=cusum, low_start=index if fresh else state.low_start,
                      low_expected=(0.0 if fresh else state.low_expected) + mean,
                      low_extra_var=(0.0 if fresh else state.low_extra_var) + disp * mean * mean,
                      low_observed=(0 if fresh else state.low_observed) + posts, last_index=index)
        if low.in_outage or cusum >= settings.outage_threshold:
            outage = outage_record(low, index, settings, ongoing=True)
            low = replace(low, in_outage=True, shift_side=0, shift_count=0, shift_sum=0.0)
            return low, VolumeDecision(index, posts, mean, std, z, p_value, "outage", outage.severity, outage)
        state = low
    else:
        if state.in_outage:
            ended = outage_record(state, state.last_index, settings, ongoing=False)
        state = replace(state, cusum=0.0, low_start=None, low_expected=0.0, low_extra_var=0.0, low_observed=0,
                        in_outage=False)

    if ended is not None and posts < mean:
        # Posts came back part-way through this window: its low count is the outage's tail, not a drop, and a
        # partial window does not enter the baseline.
        return replace(state, last_index=index), VolumeDecision(index, posts, mean, std, z, p_value, None, None, ended)
    direction, severity = None, None
    if p_value <= settings.p_warning and (posts < mean or posts - mean >= settings.min_excess):
        direction = "spike" if posts > mean else "drop"
        severity = "critical" if p_value <= settings.p_critical else "warning"
    decision = VolumeDecision(index, posts, mean, std, z, p_value, direction, severity, ended)
    side = 1 if posts > mean else -1
    if direction is None:
        if side != state.shift_side:
            state = replace(state, shift_side=0, shift_count=0, shift_sum=0.0)
        return replace(update_baseline(state, posts, mean, std, hour, day, settings), last_index=index), decision
    return replace(level_shift(state, side, posts * state.level / mean, settings), last_index=index), decision


def level_shift(state: SeriesBaseline, side: int, deseasonalised: float, settings: VolumeSettings) -> SeriesBaseline:
    """Count an anomalous window toward a level shift; after `level_shift_windows` of them on one side the
    level (and the slow level the factors are learned against) jump to the run's mean: a level that
    persists is the new normal, while a spike that ends before that never touches the baseline."""
    count = state.shift_count + 1 if side == state.shift_side else 1
    total = (state.shift_sum if side == state.shift_side else 0.0) + deseasonalised
    if count < settings.level_shift_windows:
        return replace(state, shift_side=side, shift_count=count, shift_sum=total)
    level = total / count
    return replace(state, level=level, slow=level, shift_side=0, shift_count=0, shift_sum=0.0)


def forgotten(outage: Outage | None, index: int, settings: VolumeSettings) -> bool:
    """Whether window `index` ends an outage that has lasted series_ttl_s: the series is gone (a source shut
    down, a community closed) and is forgotten instead of being reported as silent every minute for ever."""
    return outage is not None and outage.ongoing and (index - outage.start_index + 1) * settings.tumble_s >= \
        settings.series_ttl_s


def still_expected(state: SeriesBaseline, settings: VolumeSettings) -> bool:
    """Whether a silent window of this series can still matter: it expects min_expected posts in its next
    window, or silent windows are piling up outage evidence (an outage is reported for as long as it lasts,
    whatever the hour)."""
    if state.cusum > 0 or state.in_outage:
        return True
    if state.last_index is None or not state.windows:
        return False
    hour, day = seasonal_bins(state.last_index + 1, settings.tumble_s)
    return state.level * seasonal_factor(state, hour, day) >= settings.min_expected


def series_of(post: SocialPost) -> list[tuple[str, str]]:
    """The (dimension, series) pairs a post counts in: its source, its source's language (the first of its
    languages, 'und' without one) and its source's community (when it has one)."""
    series = [("source", post.source), ("lang", f"{post.source}/{post.langs[0] if post.langs else 'und'}")]
    if post.community:
        series.append(("community", f"{post.source}/{post.community}"))
    return series
