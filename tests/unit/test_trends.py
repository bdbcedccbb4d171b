"""Trend maths with hand-worked numbers (shared/trends.py)."""

from __future__ import annotations

import math

import pytest

from shared.stats import poisson_tail
from shared.trends import (
    Baseline,
    TrendDecision,
    TrendingSettings,
    WindowRow,
    decay,
    ewma_step,
    expired,
    fold,
    minute_count,
    observe,
    rank,
    sequential_step,
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


def row(index: int, posts: int, *, authors: int | None = None, others: int = 1000, keyword: str = "k") -> WindowRow:
    """A window with `others` posts without the keyword: the denominator of its odds."""
    return WindowRow(keyword, index, (index - 5) * 60_000, index * 60_000, posts,
                     posts if authors is None else authors, posts + others)


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


def test_a_keyword_new_after_the_streams_warm_up_has_a_known_zero_baseline():
    # The stream began at window 0; "#aurora" first appears at window 40, absent from 40 windows before.
    settings = SETTINGS
    new = WindowRow("#aurora", 40, 35 * 60_000, 40 * 60_000, 12, 9, 1000, stream_first_index=0)
    state, decision = observe(None, new, settings)
    # Absent from 40 windows spanning 44 minutes: m = 3·5/44 = 0.3409 posts per window, v = 0:
    # z = (12 − 0.3409) / sqrt(0.3409 + 1) = 10.07; P(X ≥ 12 | λ = max(0.3409, min_expected 1)) = 8.3e-10 ≤ 1e-8.
    assert decision.expected == pytest.approx(15 / 44) and decision.z == pytest.approx(11.6591 / math.sqrt(1.3409),
                                                                                         rel=1e-4)
    assert decision.is_trend and state.first_index == 0 and state.folded_until == 40 - settings.overlap
    # Too few posts or authors still hold a new word back: 7 posts < min_posts, or 3 authors < min_authors.
    assert not observe(None, new._replace(posts=7, authors=7), settings)[1].is_trend
    assert not observe(None, new._replace(authors=3), settings)[1].is_trend
    # Just after the warm-up (10 windows watched) the bound is 3·5/14 = 1.07 per window:
    # P(X ≥ 11 | 1.07) = 2.0e-8 > max_p_value 1e-8 although z = 6.9, so 11 are not enough; 12 are (1.8e-9).
    assert not observe(None, new._replace(window_index=10, posts=11), settings)[1].is_trend
    assert observe(None, new._replace(window_index=10, posts=12), settings)[1].is_trend
    # During the stream's warm-up (window 6 < 10 windows in) a new keyword's history starts with the
    # stream's: windows 0 and 1 (those out of the scoring window) are folded in as zeros.
    early_state, early = observe(None, new._replace(window_index=6), settings)
    assert not early.is_trend and early.expected == 0.0
    assert (early_state.first_index, early_state.folded_until, early_state.windows) == (0, 1, 2)


def test_the_warm_up_baseline_is_a_plain_mean_not_the_first_window():
    # The first window (often partial, here lucky) has 30 posts, then 10 per window; alpha = 0.1, so the
    # first 1/alpha = 10 windows are a plain mean: (30 + 9·10) / 10 = 12; window 10 then weighs 0.1:
    # 12 + 0.1·(10 − 12) = 11.8 expected at window 15 (windows 0..10 folded). An EWMA seeded with the
    # first window would still expect 10 + 20·0.9¹⁰ = 16.97.
    _, decisions = run([(0, 30)] + [(i, 10) for i in range(1, 16)], SETTINGS)
    assert decisions[-1].expected == pytest.approx(11.8)


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
    # the busy hour: the keyword doubles, but so does everything else
    state, decision = observe(state, row(30, 100, others=2000), SETTINGS)
    assert not decision.is_trend and decision.expected == pytest.approx(100.0)
    raw_counts = TrendingSettings(**(SETTINGS.model_dump() | {"share_mode": False}))
    _, decisions = run([*series, (30, 100)], raw_counts)
    assert decisions[-1].is_trend  # the same lift in raw counts would have fired


def test_poisson_tail_is_exact_for_small_and_large_counts():
    # P(X ≥ 2 | 1) = 1 − e^−1·(1 + 1) = 0.26424; P(X ≥ 8 | 1.5) = 1.6957e-4 (tables); no underflow to a hang.
    assert poisson_tail(2, 1.0) == pytest.approx(1 - 2 * math.exp(-1))
    assert poisson_tail(8, 1.5) == pytest.approx(1.6957e-4, rel=1e-4)
    assert poisson_tail(0, 3.0) == 1.0 and poisson_tail(5, 0.0) == 0.0 and poisson_tail(100_000, 0.01) == 0.0
    # Far above the mean the tail tracks the normal one: P(X ≥ 150 | 100) = 1.88e-6.
    assert poisson_tail(150, 100.0) == pytest.approx(1.8842e-6, rel=1e-3)


def test_a_small_expected_count_needs_the_poisson_tail_not_only_z():
    # m = 1.5: 8 posts give z = 6.5/sqrt(2.5) = 4.11 ≥ 4, but P(X ≥ 8 | 1.5) = 1.7e-4 ≫ 1e-8: no trend.
    _, decisions = run([(i, 1 + i % 2) for i in range(30)] + [(30, 8)], SETTINGS)
    assert decisions[-1].z >= 4 and not decisions[-1].is_trend


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


def minute_row(index: int, posts: int, authors: int | None = None, *, window: int = 50, others: int = 200):
    """A window of `window` posts of the keyword beside 1000 others, whose newest minute has `posts` of them
    beside `others`."""
    return WindowRow("k", index, (index - 5) * 60_000, index * 60_000, window, window, window + 1000, (), None, posts,
                     posts + others, posts if authors is None else authors)


def test_an_author_adds_at_most_two_posts_to_the_evidence():
    assert minute_count(minute_row(40, 16, 1), SETTINGS) == 2  # one account, 16 posts: two posts of evidence
    assert minute_count(minute_row(40, 16, 5), SETTINGS) == 10
    assert minute_count(minute_row(40, 16, 16), SETTINGS) == 16  # sixteen people: every post counts
    # the window test too: 80 posts by 4 authors are 8 posts of evidence against 2.5 expected, no trend
    state = None
    for index in range(30):
        state, _ = observe(state, minute_row(index, 0, window=3), SETTINGS)
    spam = WindowRow("k", 30, 25 * 60_000, 30 * 60_000, 80, 4, 1080, (), None, 0, 200, 0)
    assert observe(state, spam, SETTINGS)[1].z > 10 and not observe(state, spam, SETTINGS)[1].is_trend


def test_the_sequential_test_adds_the_log_likelihood_ratio_minute_by_minute():
    # odds 0.002 against 200 other posts: λ₁ = 0.4 a minute (above the floor min_expected / overlap = 0.2);
    # variance at the Poisson level, so φ = 1. ρ = 3: a minute of 5 posts adds 5·ln 3 − 2·0.4 = 4.6931 nats.
    state = Baseline(mean=0.002, var=0.002 / 1000, first_index=0, folded_until=34, windows=35)
    state, expected, dispersion = sequential_step(state, minute_row(40, 5), SETTINGS)
    assert expected == pytest.approx(0.4) and dispersion == 1.0
    assert state.evidence == pytest.approx(5 * math.log(3) - 0.8)
    assert (state.evidence_from, state.evidence_posts, state.evidence_expected) == (40, 5, pytest.approx(0.4))
    # a quiet minute takes (ρ − 1)·λ₁ = 0.8 away; two minutes without a row (the keyword absent) 0.8 each
    state, _, _ = sequential_step(state, minute_row(41, 0), SETTINGS)
    assert state.evidence == pytest.approx(5 * math.log(3) - 1.6)
    state, _, _ = sequential_step(state, minute_row(44, 0), SETTINGS)
    assert state.evidence == pytest.approx(5 * math.log(3) - 4.0)
    assert (state.evidence_from, state.evidence_posts, state.evidence_expected) == (40, 5, pytest.approx(2.0))
    # evidence used up: the excursion ends, and the next one starts where it rises again
    state, _, _ = sequential_step(state, minute_row(47, 0), SETTINGS)
    assert (state.evidence, state.evidence_from, state.evidence_posts) == (0.0, None, 0)


def test_the_sequential_evidence_is_capped_at_the_alarm_and_scaled_by_overdispersion():
    state = Baseline(mean=0.002, var=0.0, first_index=0, folded_until=34, windows=35)
    capped, _, _ = sequential_step(state, minute_row(40, 100), SETTINGS)
    assert capped.evidence == pytest.approx(-math.log(SETTINGS.sequential_max_p_value))  # 18.42 nats
    # counts that vary 10× more than Poisson (variance/mean of the window counts = 0.0001·1000/0.01 = 10, 1000
    # posts without the keyword in the window): a
    # minute of 20 posts against λ₁ = 2 adds (20·ln 3 − 4)/10 nats
    noisy = Baseline(mean=0.01, var=0.0001, first_index=0, folded_until=34, windows=35)
    noisy, expected, dispersion = sequential_step(noisy, minute_row(40, 20), SETTINGS)
    assert (expected, dispersion) == (pytest.approx(2.0), pytest.approx(10.0))
    assert noisy.evidence == pytest.approx((20 * math.log(3) - 4) / 10)


def test_a_burst_in_the_newest_minute_fires_on_the_minute_and_says_so():
    # 50 posts a window, 10 a minute; then a minute of 40 by 40 people. The window (80 against 50) is not
    # enough: P(X ≥ 80 | 50) = 1.2e-4. The minute is: P(X ≥ 40 | 10) = 6.5e-12 ≤ 1e-6, z₁ = 30/√11 = 9.0.
    state = None
    for index in range(30):
        state, decision = observe(state, minute_row(index, 10, window=50), SETTINGS)
    state, decision = observe(state, minute_row(30, 40, window=80), SETTINGS)
    assert decision.is_trend and decision.evidence == "minute"
    assert (decision.evidence_posts, decision.evidence_expected) == (40, pytest.approx(10.0))
    assert decision.evidence_start_ms == 29 * 60_000 and decision.p_value == pytest.approx(poisson_tail(40, 10.0))
    no_minute = TrendingSettings(**(SETTINGS.model_dump() | {"minute_test": False, "sequential_test": False}))
    state = None
    for index in range(30):
        state, _ = observe(state, minute_row(index, 10, window=50), no_minute)
    assert not observe(state, minute_row(30, 40, window=80), no_minute)[1].is_trend


def test_a_baseline_past_its_ttl_is_gone_and_the_keyword_returns_with_the_cold_start_rule():
    # state_ttl_s 600 = 10 windows of 60 s. The keyword's last row was window 50 (last_index 50).
    settings = TrendingSettings(**(SETTINGS.model_dump() | {"state_ttl_s": 600}))
    state, _ = run([(i, 50) for i in range(51)], settings)
    assert state.last_index == 50 and not expired(state, 60, settings) and expired(state, 61, settings)
    # Back at window 61 with 12 posts beside 1000 others: absent from every window since the stream began as
    # far as the rule knows, so m = 3·5 / (61 + 4) = 0.2308 posts per window (the watched stream: windows 0..61).
    _, returned = observe(state, row(61, 12)._replace(stream_first_index=0), settings)
    assert returned.expected == pytest.approx(15 / 65) and returned.is_trend
    # Inside its TTL the same return meets its decayed baseline: 50·0.9^6 ≈ 26.6 expected, no trend.
    _, kept = observe(state, row(56, 12)._replace(stream_first_index=0), settings)
    assert kept.expected > 20 and not kept.is_trend
