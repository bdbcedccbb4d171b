"""Volume anomaly maths (shared/volume.py) with hand-worked numbers."""

from __future__ import annotations

import math

import pytest

from shared.stats import nb_tail
from shared.volume import (
    Outage,
    SeriesBaseline,
    VolumeSettings,
    cusum_step,
    dispersion,
    forgotten,
    observe,
    outage_llr,
    seasonal_bins,
    still_expected,
    update_factor,
    winsorise,
)

SETTINGS = VolumeSettings()  # history 15, alpha 0.05, min dispersion 0.002, outage 9 / 20 nats, p 1e-6 / 1e-12


def run(counts, settings=SETTINGS, state=None, start=0):
    decisions = []
    for index, posts in enumerate(counts, start=start):
        state, decision = observe(state, index, posts, settings)
        decisions.append(decision)
    return state, decisions


def test_the_negative_binomial_tails():
    # mean 2, a 0.5: r = 2, p = r / (r + μ) = 1/2; P(0) = p² = 1/4, P(1) = r·p²·(1 − p) = 1/4,
    # P(2) = r(r + 1)/2 · p² · (1 − p)² = 3/16.
    assert nb_tail(0, 2.0, 0.5, upper=False) == pytest.approx(0.25)
    assert nb_tail(1, 2.0, 0.5, upper=False) == pytest.approx(0.5)
    assert nb_tail(2, 2.0, 0.5, upper=True) == pytest.approx(0.5)
    assert nb_tail(3, 2.0, 0.5, upper=True) == pytest.approx(1 - 0.25 - 0.25 - 3 / 16)
    assert nb_tail(0, 2.0, 0.5, upper=True) == 1.0
    # Overdispersion makes the same count far less surprising than Poisson: P(X = 0) for μ = 100.
    assert nb_tail(0, 100.0, 0.002, upper=False) == pytest.approx((500 / 600) ** 500)
    assert nb_tail(0, 100.0, 0.5, upper=False) == pytest.approx((2 / 102) ** 2)


def test_the_outage_log_likelihood_ratio_and_the_cusum_step():
    # 0 posts where 100 were expected (a = 0.002, r = 500): outage Poisson(5) gives log P = −5, the baseline
    # 500·log(500/600) = −91.16, so 86.16 nats of evidence; 2 expected: 500·log(500/502) − 0.1 = 1.896.
    assert outage_llr(0, 100.0, 0.002, 0.05) == pytest.approx(-5 - 500 * math.log(500 / 600))
    assert outage_llr(0, 2.0, 0.002, 0.05) == pytest.approx(1.8960, abs=1e-4)
    assert outage_llr(100, 100.0, 0.002, 0.05) < 0  # a normal window speaks against an outage
    assert cusum_step(3.0, 2.0) == 5.0 and cusum_step(3.0, -5.0) == 0.0


def test_seasonal_bins_and_the_factor_update():
    assert seasonal_bins(1_793_534_400 // 60, 60) == (12, 6)  # 2026-11-01T12:00Z, a Sunday (Monday is 0)
    hours = update_factor((1.0,) * 24, 0, 2.0, 0.5)  # 1 → 1.5, then × 24 / 24.5 back to mean 1
    assert hours[0] == pytest.approx(1.5 * 24 / 24.5) and hours[1] == pytest.approx(24 / 24.5)
    assert sum(hours) == pytest.approx(24)


def test_dispersion_and_winsorising():
    assert dispersion(SeriesBaseline(disp_num=50.0, disp_den=1000.0), SETTINGS) == pytest.approx(0.05)
    assert dispersion(SeriesBaseline(disp_num=-5.0, disp_den=1000.0), SETTINGS) == 0.002  # below Poisson: floor
    assert dispersion(SeriesBaseline(), SETTINGS) == 0.05  # no data: the prior
    assert winsorise(500, 100, 10, 3) == 130 and winsorise(0, 100, 10, 3) == 70 and winsorise(0, 5, 10, 3) == 0


def test_nothing_fires_during_warm_up():
    _, decisions = run([100] * 14 + [1000, 0])
    assert not any(d.is_anomaly for d in decisions[:15])  # 14 windows of history at index 14: not yet 15
    assert decisions[15].direction == "outage"  # the 16th window has 15 behind it


def steady(level=100, n=30):
    state, _ = run([level] * n)
    # Constant counts: factors stay 1, the level is the count, the dispersion sits on its floor.
    assert state.level == level and state.hours == (1.0,) * 24 and dispersion(state, SETTINGS) == 0.002
    return state


def test_a_spike_is_graded_by_its_tail_and_stays_out_of_the_baseline():
    state = steady()
    _, small = observe(state, 30, 130, SETTINGS)
    assert small.std == pytest.approx(math.sqrt(120)) and small.z == pytest.approx(30 / math.sqrt(120))
    assert small.p_value == pytest.approx(nb_tail(130, 100.0, 0.002, upper=True)) and small.p_value > 1e-6
    assert not small.is_anomaly
    after, big = observe(state, 30, 200, SETTINGS)
    assert big.p_value < 1e-12 and (big.direction, big.severity) == ("spike", "critical")
    assert after.level == 100 and after.windows == 30  # kept out of the baseline
    _, drop = observe(state, 30, 40, SETTINGS)
    assert drop.direction == "drop" and drop.p_value == pytest.approx(nb_tail(40, 100.0, 0.002, upper=False))


def test_a_level_that_persists_becomes_the_new_normal():
    settings = SETTINGS.model_copy(update={"level_shift_windows": 3})
    state, _ = run([100] * 30, settings)
    state, decisions = run([300, 300, 300, 300], settings, state, start=30)
    assert [d.direction for d in decisions] == ["spike", "spike", "spike", None]
    assert decisions[3].expected == pytest.approx(300)  # the run's mean became the level after the third
    # A spike that ends before the run is long enough leaves the baseline where it was.
    state, _ = run([100] * 30, settings)
    state, decisions = run([300, 300, 90], settings, state, start=30)
    assert decisions[2].expected == 100 and not decisions[2].is_anomaly


def test_a_large_series_outage_starts_at_once_is_critical_and_its_recovery_is_no_alert():
    state = steady()
    state, decisions = run([0] * 5 + [100, 100], state=state, start=30)
    assert [d.direction for d in decisions] == ["outage"] * 5 + [None, None]
    first, last, recovery = decisions[0], decisions[4], decisions[5]
    assert first.outage.start_index == 30 and first.outage.ongoing and first.severity == "critical"
    assert last.outage[:4] == (30, 34, 500.0, 0)
    assert recovery.outage.start_index == 30 and recovery.outage.last_index == 34 and not recovery.outage.ongoing
    assert recovery.outage.p_value == pytest.approx(nb_tail(0, 500.0, 0.002 * 5 * 100**2 / 500**2, upper=False))
    assert recovery.expected == 100 and decisions[6].outage is None  # the zeros never entered the baseline
    assert state.level == 100 and state.cusum == 0


def test_the_window_in_which_posts_come_back_is_the_outages_end_not_a_drop():
    # Posts return part-way through window 35: 40 of the 100 expected. That looks more like normal than like an
    # outage (so the outage ends), and although P(X ≤ 40 | NB(100)) is tiny it is no drop: the outage's tail. The
    # partial window stays out of the baseline.
    state, decisions = run([0] * 5 + [40, 100], state=steady(), start=30)
    assert [d.direction for d in decisions] == ["outage"] * 5 + [None, None]
    assert decisions[5].outage.last_index == 34 and not decisions[5].outage.ongoing
    assert decisions[5].p_value < SETTINGS.p_warning and state.level == 100  # a drop anywhere else


def test_a_small_series_outage_needs_accumulated_evidence_and_is_dated_from_its_first_empty_window():
    state = steady(level=2)
    state, decisions = run([0] * 14, state=state, start=30)
    # An empty window expecting 2 posts is 1.896 nats. Until the outage is declared the zeros still enter the
    # baseline (a silent minute is ordinary for a small series), so the level falls to 2·0.95^k and the
    # evidence sums to 1.896 + 1.800 + 1.712 + 1.626 + 1.545 = 8.58 < 9 after five windows, 10.05 ≥ 9 after
    # six (a warning, dated from the first), then ~1.4 a window at the frozen level: critical ≥ 20 from the 13th or
    # 14th (the hour's seasonal factor also learned a little from the five zeros).
    assert [d.direction for d in decisions] == [None] * 5 + ["outage"] * 9
    assert decisions[5].outage.start_index == 30 and decisions[5].severity == "warning"
    assert decisions[10].severity == "warning" and decisions[13].severity == "critical"
    assert decisions[13].expected == decisions[6].expected < 2 * 0.95**4  # frozen from the declaration on
    assert still_expected(state, SETTINGS)  # the job keeps scoring the silent windows of an outage
    _, after = observe(state, 44, 2, SETTINGS)
    assert after.outage.last_index == 43 and not after.outage.ongoing and not after.is_anomaly


def test_still_expected_follows_the_expected_count():
    assert still_expected(steady(level=2), SETTINGS)
    quiet, _ = run([0, 1] * 15)
    assert quiet.level == pytest.approx(0.45, abs=0.05) and not still_expected(quiet, SETTINGS)  # < 1 expected


def test_windows_nobody_scored_count_as_zeros_for_the_level():
    # A series of 2 posts a window; windows 30 and 31 nobody scored (the job skips silent windows it does not expect):
    # each empty window is log(P(0 | outage)) − log(P(0 | NB)) = −0.1 + 500·ln(502/500) = 1.896 nats, 3.79 in
    # all, short of outage_threshold 9: two ordinary zeros at alpha 0.05.
    state = steady(level=2)
    state, decision = observe(state, 32, 2, SETTINGS)
    assert decision.expected == pytest.approx(2 * 0.95**2) and decision.outage is None
    assert state.windows == 33 and state.last_index == 32


def test_a_long_unscored_silence_is_an_outage_after_the_fact_and_not_baseline():
    # Ten empty windows (30..39) of the same series: 10 × 1.896 = 18.96 nats ≥ 9, below outage_critical 20. It is
    # reported when posts return, as an ended outage, and the level is still 2: the return is no spike.
    state = steady(level=2)
    llr = -0.1 + 500 * math.log(502 / 500)
    state, decision = observe(state, 40, 2, SETTINGS)
    assert decision.outage == Outage(30, 39, pytest.approx(20.0), 0, pytest.approx(
        nb_tail(0, 20.0, 10 * 0.002 * 4 / 400, upper=False)), "warning", False)
    assert 10 * llr == pytest.approx(18.96, abs=0.01) and decision.expected == pytest.approx(2.0)
    assert not decision.is_anomaly and state.level == pytest.approx(2.0) and state.last_index == 40


def test_an_outage_that_lasts_the_series_ttl_forgets_the_series():
    settings = VolumeSettings(**(SETTINGS.model_dump() | {"series_ttl_s": 600}))  # ten 60 s windows
    outage = Outage(100, 108, 900.0, 0, 0.0, "critical", True)
    assert not forgotten(outage, 108, settings)  # windows 100..108: 9 minutes
    assert forgotten(outage, 109, settings)  # the tenth
    assert not forgotten(outage._replace(ongoing=False), 120, settings) and not forgotten(None, 120, settings)
