"""Volume anomaly maths: one series' baseline and the score of its latest 1-minute window.

A series is the post count of one source, one source's language, or one source's community per
tumbling window. The volume job keys the window counts by series and calls `observe(state, index,
posts, settings)` once per window in order, with posts = 0 for a window in which the series had no
posts at all (the job's timer supplies those, so a source going silent is scored too).

- baseline: an exponentially weighted mean and variance of the series' counts. The weight of the n-th
  window is max(alpha, 1/n), so the first windows form a plain mean instead of one (often partial)
  first minute dominating for dozens of windows;
- score: z = (x − m) / sqrt(max(v, m) + 1), the Poisson floor of the trend maths (shared/trends.py), so
  that small series do not look explosive;
- anomaly: after `min_history_windows` windows, z ≥ z_threshold is a spike and z ≤ −z_threshold a drop;
  a drop needs an expected count of at least `min_expected` (a series expecting 2 posts that gets 0
  is noise, not an outage). Severity is `critical` from |z| ≥ critical_z, `warning` below;
- an anomalous window does not enter the baseline, so an outage stays an anomaly for as long as it
  lasts instead of teaching the baseline that silence is normal; after `max_anomalous_run` anomalous
  windows in a row the level is accepted as the new normal and the baseline follows it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.post import SocialPost
from shared.trends import absent_windows, ewma_step, z_score


class VolumeSettings(BaseModel):
    """Every constant of the volume job; config/streampulse.yaml section `volume`."""

    model_config = ConfigDict(extra="forbid")

    tumble_s: Annotated[int, Field(ge=1, description="seconds, a whole number ≥ 1")] = 60
    watermark_s: Annotated[int, Field(ge=0, description="seconds of allowed out-of-orderness, a whole number ≥ 0")] = 30
    alpha: Annotated[float, Field(gt=0, lt=1, description="the EWMA weight of a new window, between 0 and 1")] = 0.1
    z_threshold: Annotated[float, Field(gt=0, description="a positive number of standard deviations")] = 4.0
    critical_z: Annotated[float, Field(gt=0, description="a positive number of standard deviations")] = 8.0
    min_history_windows: Annotated[int, Field(ge=1, description="a whole number ≥ 1")] = 10
    min_expected: Annotated[float, Field(gt=0, description="posts per window, a positive number")] = 5.0
    max_anomalous_run: Annotated[int, Field(ge=0, description="windows, a whole number ≥ 0")] = 15


@dataclass(frozen=True)
class SeriesBaseline:
    mean: float = 0.0
    var: float = 0.0
    windows: int = 0  # windows in mean/var
    last_index: int | None = None  # the last window observed (window_start // tumble)
    anomalous_run: int = 0  # anomalous windows in a row, kept out of the baseline


@dataclass(frozen=True)
class VolumeDecision:
    window_index: int
    posts: int
    expected: float
    std: float
    z: float
    direction: Literal["spike", "drop"] | None
    severity: Literal["warning", "critical"] | None

    @property
    def is_anomaly(self) -> bool:
        return self.direction is not None


def observe(state: SeriesBaseline | None, index: int, posts: int,
            settings: VolumeSettings) -> tuple[SeriesBaseline, VolumeDecision]:
    """Score window `index` of a series against its baseline, then update the baseline."""
    state = state or SeriesBaseline()
    if state.last_index is not None and index > state.last_index + 1:
        # Windows nobody scored (the series had stopped expecting posts): zeros, folded in closed form.
        mean, var, windows = absent_windows(state.mean, state.var, state.windows, index - state.last_index - 1,
                                            settings.alpha)
        state = replace(state, mean=mean, var=var, windows=windows)
    z = z_score(posts, state.mean, state.var) if state.windows else 0.0
    direction = None
    if state.windows >= settings.min_history_windows:
        if z >= settings.z_threshold:
            direction = "spike"
        elif z <= -settings.z_threshold and state.mean >= settings.min_expected:
            direction = "drop"
    severity = None if direction is None else ("critical" if abs(z) >= settings.critical_z else "warning")
    decision = VolumeDecision(index, posts, state.mean, math.sqrt(state.var), z, direction, severity)
    if direction is not None and state.anomalous_run < settings.max_anomalous_run:
        return replace(state, last_index=index, anomalous_run=state.anomalous_run + 1), decision
    windows = state.windows + 1
    mean, var = ewma_step(state.mean, state.var, float(posts), max(settings.alpha, 1 / windows))
    run = state.anomalous_run + 1 if direction is not None else 0
    return SeriesBaseline(mean, var, windows, index, run), decision


def still_expected(state: SeriesBaseline, settings: VolumeSettings) -> bool:
    """Whether a silent window of this series can still be a drop: worth scoring the next one."""
    return state.mean >= settings.min_expected


def series_of(post: SocialPost) -> list[tuple[str, str]]:
    """The (dimension, series) pairs a post counts in: its source, its source's language (the first of its
    languages, 'und' without one) and its source's community (when it has one)."""
    series = [("source", post.source), ("lang", f"{post.source}/{post.langs[0] if post.langs else 'und'}")]
    if post.community:
        series.append(("community", f"{post.source}/{post.community}"))
    return series
