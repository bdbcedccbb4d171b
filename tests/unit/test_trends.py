"""Trend maths with hand-worked numbers (shared/trends.py)."""

from __future__ import annotations

import math

import pytest

from shared.trends import (
    Baseline,
    TrendDecision,
    TrendingSettings,
    WindowRow,
    decay,
    ewma_step,
    fold,
    observe,
    rank,
    z_score,
)


def test_decay_closed_form_matches_hand_numbers_and_the_step_loop():
    # m=10, v=4, a=0.1, k=3: keep=0.9^3=0.729; m=7.29; v=0.729*(4 + 100*(1-0.729)) = 0.729*31.1 = 22.6719
    mean, var = decay(10.0, 4.0, 3, 0.1)
    assert mean == pytest.approx(7.29) and var == pytest.approx(22.6719)
    m, v = 10.0, 4.0
    for _ in range(3):
        m, v = ewma_step(m, v, 0.0, 0.1)
    assert (m, v) == (pytest.approx(mean), pytest.approx(var))
    assert decay(10.0, 4.0, 0, 0.1) == (10.0, 4.0)


def test_ewma_step_by_hand():
    # m=10, v=4, x=20, a=0.1: m' = 10 + 0.1*10 = 11; v' = 0.9*(4 + 0.1*100) = 12.6
    assert ewma_step(10.0, 4.0, 20.0, 0.1) == (pytest.approx(11.0), pytest.approx(12.6))


def test_z_score_uses_the_poisson_floor():
    # x=30, m=10, v=4: max(4, 10) = 10 -> (30-10)/sqrt(11) = 6.0302
    assert z_score(30, 10, 4) == pytest.approx(20 / math.sqrt(11))
    # v=25 > m: no floor -> 20/sqrt(26) = 3.9223
    assert z_score(30, 10, 25) == pytest.approx(20 / math.sqrt(26))
    # a rare word: 0 -> 3 posts against m=0.2 is z = 2.8/sqrt(1.2) = 2.556, not explosive
    assert z_score(3, 0.2, 0.0) == pytest.approx(2.8 / math.sqrt(1.2))


def test_fold_applies_zeros_for_absent_windows_in_order():
    # windows 1 (value 10) and 4 (value 10) observed; 2, 3 absent. a=0.5:
    # start m=10, v=0; two zeros: keep=0.25 -> m=2.5, v=0.25*(0+100*0.75)=18.75; then x=10:
    # m = 2.5 + 0.5*7.5 = 6.25; v = 0.5*(18.75 + 0.5*56.25) = 23.4375
    state = fold(Baseline(pending=((1, 10.0), (4, 10.0))), up_to=4, alpha=0.5)
    assert (state.mean, state.var, state.folded_until) == (pytest.approx(6.25), pytest.approx(23.4375), 4)
    # nothing pending, three more absent windows: pure decay, keep = 0.125
    later = fold(state, up_to=7, alpha=0.5)
    assert later.mean == pytest.approx(6.25 * 0.125) and later.folded_until == 7


def row(index: int, posts: int, *, authors: int | None = None, total: int = 1000, keyword: str = "k") -> WindowRow:
    return WindowRow(keyword, index, (index - 5) * 60_000, index * 60_000, posts,
                     posts if authors is None else authors, total)


def run(series, settings, **kw):
    state, decisions = None, []
    for index, posts in series:
        state, decision = observe(state, row(index, posts, **kw), settings)
        decisions.append(decision)
    return state, decisions


SETTINGS = TrendingSettings(min_history_windows=10, min_posts=8, min_authors=4, z_threshold=4.0, alpha=0.1)


def test_cold_start_never_fires_even_on_a_huge_first_window():
    _, decisions = run([(i, 500) for i in range(5)], SETTINGS)
    assert not any(d.is_trend for d in decisions)


def test_steady_keyword_does_not_fire_and_a_burst_does_without_poisoning_its_baseline():
    steady = [(i, 50) for i in range(30)]
    burst = [(30 + i, 150) for i in range(5)]
    _, decisions = run(steady + burst, SETTINGS)
    assert not any(d.is_trend for d in decisions[:30])
    fired = decisions[30:]
    assert all(d.is_trend for d in fired)
    # the burst windows are still inside the scoring window: each is scored against the steady baseline
    assert all(d.expected == pytest.approx(50.0) for d in fired)
    assert fired[0].z == pytest.approx(100 / math.sqrt(51))


def test_share_mode_ignores_a_busy_hour_that_lifts_everything():
    series = [(i, 50) for i in range(30)]
    state, _ = run(series, SETTINGS)
    # the busy hour: the keyword doubles, but so does the window's total
    state, decision = observe(state, row(30, 100, total=2000), SETTINGS)
    assert not decision.is_trend and decision.expected == pytest.approx(100.0)
    raw_counts = TrendingSettings(**(SETTINGS.model_dump() | {"share_mode": False}))
    _, decisions = run([*series, (30, 100)], raw_counts)
    assert decisions[-1].is_trend  # the same lift in raw counts would have fired


def test_one_account_is_not_a_trend_and_small_counts_are_not_either():
    _, decisions = run([(i, 2) for i in range(30)] + [(30, 60)], SETTINGS, authors=1)
    assert decisions[-1].z > 10 and not decisions[-1].is_trend
    _, decisions = run([(i, 0) for i in range(1)] + [(i, 1) for i in range(1, 30)] + [(30, 7)], SETTINGS)
    assert not decisions[-1].is_trend  # below min_posts


def test_rank_orders_by_z_then_posts_then_keyword_and_cuts_at_top_n():
    def decision(keyword, z, posts, trend=True):
        return TrendDecision(keyword, 0, 60_000, posts, posts, 1.0, 1.0, z, trend)

    ranked = rank([decision("b", 5.0, 10), decision("a", 5.0, 10), decision("c", 9.0, 3), decision("d", 5.0, 20),
                   decision("e", 20.0, 50, trend=False)], top_n=3)
    assert [(r, d.keyword) for r, d in ranked] == [(1, "c"), (2, "d"), (3, "a")]


def test_overlap_is_the_number_of_slides_in_a_window():
    assert TrendingSettings(hop_size_s=300, hop_slide_s=60).overlap == 5
