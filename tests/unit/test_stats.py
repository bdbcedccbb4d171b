"""Count tails with hand-worked numbers (shared/stats.py)."""

from __future__ import annotations

import math

import pytest

from shared.stats import count_tail


def test_count_tail_is_poisson_at_index_one_and_negative_binomial_above():
    # index 1: P(X ≥ 2 | Poisson 1) = 1 − 2/e
    assert count_tail(2, 1.0, 1.0) == pytest.approx(1 - 2 * math.exp(-1))
    # mean 2, variance 4 (index 2): NB with r = 2, p = 1/2: P(0) = 1/4, P(1) = 1/4, so P(X ≥ 2) = 1/2
    assert count_tail(2, 2.0, 2.0) == pytest.approx(0.5)
    # overdispersion makes a high count less surprising: 40 against 10
    assert count_tail(40, 10.0, 3.0) > 1000 * count_tail(40, 10.0, 1.0)
