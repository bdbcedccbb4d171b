"""Volume anomaly maths (shared/volume.py) with hand-worked numbers."""

from __future__ import annotations

import math

import pytest

from shared.volume import SeriesBaseline, VolumeSettings, observe, still_expected

SETTINGS = VolumeSettings()  # alpha 0.1, z 4, critical 8, history 10, min_expected 5, run 15


def run(counts, settings=SETTINGS, state=None, start=0):
    decisions = []
    for index, posts in enumerate(counts, start=start):
        state, decision = observe(state, index, posts, settings)
        decisions.append(decision)
    return state, decisions


def test_the_first_windows_form_a_plain_mean_and_nothing_fires_before_the_history():
    state, decisions = run([10, 12, 8])
    # 10 (weight 1) → mean 10, var 0; 12 (weight 1/2) → 11, 0.5·(0 + 0.5·4) = 1; 8 (weight 1/3) → 10,
    # (2/3)·(1 + (1/3)·9) = 8/3.
    assert (state.mean, state.windows, state.last_index) == (10, 3, 2)
    assert state.var == pytest.approx(8 / 3)
    assert decisions[2].z == pytest.approx((8 - 11) / math.sqrt(1 + 11))  # Poisson floor: max(1, 11) + 1
    _, early = run([100] * 5 + [1000])
    assert not early[-1].is_anomaly  # z is huge, but 5 windows are not a history


def test_a_spike_and_a_drop_have_a_direction_and_a_severity_and_stay_out_of_the_baseline():
    steady, _ = run([100] * 10)
    assert (steady.mean, steady.var) == (100, 0)
    state, spike = observe(steady, 10, 150, SETTINGS)
    assert spike.z == pytest.approx(50 / math.sqrt(101))  # 4.98
    assert (spike.direction, spike.severity) == ("spike", "warning")
    assert (state.mean, state.windows, state.anomalous_run) == (100, 10, 1)
    state, drop = observe(state, 11, 0, SETTINGS)
    assert drop.z == pytest.approx(-100 / math.sqrt(101))  # −9.95
    assert (drop.direction, drop.severity) == ("drop", "critical")
    state, normal = observe(state, 12, 104, SETTINGS)
    assert not normal.is_anomaly and normal.direction is None and normal.severity is None
    assert (state.mean, state.anomalous_run, state.windows) == (pytest.approx(100.4), 0, 11)


def test_a_long_outage_is_accepted_as_the_new_level_after_max_anomalous_run():
    settings = SETTINGS.model_copy(update={"max_anomalous_run": 2})
    steady, _ = run([100] * 10, settings)
    state, decisions = run([0, 0, 0], settings, steady, start=10)
    assert [d.direction for d in decisions] == ["drop"] * 3
    assert state.mean == pytest.approx(100 + 0.1 * (0 - 100))  # the third zero enters: weight max(0.1, 1/11)
    assert state.anomalous_run == 3


def test_a_drop_needs_an_expected_count_of_min_expected():
    settings = SETTINGS.model_copy(update={"z_threshold": 1.0})
    steady, _ = run([3] * 10, settings)
    _, silent = observe(steady, 10, 0, settings)
    assert silent.z == pytest.approx(-3 / 2) and not silent.is_anomaly  # z ≤ −1, but 3 < 5 expected
    assert not still_expected(steady, settings) and still_expected(SeriesBaseline(mean=5.0), settings)


def test_windows_nobody_scored_count_as_zeros_in_closed_form():
    steady, _ = run([100] * 10)
    state, decision = observe(steady, 12, 100, SETTINGS)  # windows 10 and 11 were absent
    # Two zeros at alpha 0.1: keep = 0.81 → mean 81, var 0.81·(0 + 100²·0.19) = 1539.
    assert decision.expected == pytest.approx(81)
    assert decision.std == pytest.approx(math.sqrt(1539))
    assert decision.z == pytest.approx(19 / math.sqrt(1540))
    assert state.windows == 13 and state.last_index == 12
