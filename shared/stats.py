"""Tail probabilities of counts, shared by the trend and volume maths: how surprising a count is under a
Poisson or an overdispersed (negative binomial) expectation, exact where normal tails are not."""

from __future__ import annotations

import math


def poisson_tail(x: int, lam: float) -> float:
    """P(X ≥ x) for X ~ Poisson(lam), exact: terms summed from x upwards, relative to the first."""
    if x <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    if x <= lam:  # the tail is most of the mass: 1 − the (short) lower sum
        return max(0.0, 1.0 - sum(math.exp(k * math.log(lam) - lam - math.lgamma(k + 1)) for k in range(x)))
    # Past the mode each term is the previous × lam / k, so the sum of ratios converges fast.
    log_first = x * math.log(lam) - lam - math.lgamma(x + 1)
    ratio_sum, ratio, k = 1.0, 1.0, x
    while ratio > 1e-16 * ratio_sum:
        k += 1
        ratio *= lam / k
        ratio_sum += ratio
    return math.exp(log_first + math.log(ratio_sum))


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-12:
            break
    return h


def beta_lower(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta I_x(a, b), accurate in its small tail: the NB's CDF."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return min(1.0, front * _beta_cf(a, b, x) / a)
    return max(0.0, 1.0 - front * _beta_cf(b, a, 1.0 - x) / b)


def nb_tail(posts: int, mean: float, disp: float, upper: bool) -> float:
    """P(X ≥ posts) (upper) or P(X ≤ posts) for X ~ NB(mean, var = mean + disp·mean²): how surprising
    the count is under an overdispersed baseline, exact for small counts where normal tails are not."""
    r = 1.0 / disp
    success = r / (r + mean)  # P(X ≤ k) = I_success(r, k + 1)
    if upper:
        return 1.0 if posts <= 0 else beta_lower(posts, r, 1.0 - success)
    return beta_lower(r, posts + 1, success)


def count_tail(x: int, mean: float, dispersion_index: float) -> float:
    """P(X ≥ x) for a count of this mean whose variance is dispersion_index × mean: Poisson at an index of 1,
    else the negative binomial with that variance (var = mean + a·mean², a = (index − 1) / mean)."""
    if dispersion_index <= 1.0 or mean <= 0:
        return poisson_tail(x, mean)
    return nb_tail(x, mean, (dispersion_index - 1.0) / mean, upper=True)
