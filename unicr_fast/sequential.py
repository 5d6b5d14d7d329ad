"""Anytime-valid confidence sequences for a class probability (docs/theory.md §12).

A Clopper–Pearson bound is valid for one sample size fixed in advance; looking at the counts
after every batch and stopping when they look good enough would void it. The bounds here hold
*simultaneously for every number of draws*, so a caller may stop whenever it likes (after any
batch, for any reason that depends on the draws so far) and still fail with probability at most
``alpha``.

They come from Robbins' beta-binomial mixture martingale: for a candidate value ``p0``,

    M_t(p0) = B(a + k, b + t - k) / B(a, b) / (p0^k (1 - p0)^(t - k))

(k successes in t draws) is a non-negative martingale with mean 1 when p = p0, so by Ville's
inequality it ever reaches 1/alpha with probability at most alpha. The confidence sequence is
{p0 : M_t(p0) < 1/alpha}; ``log M_t`` is convex in ``p0``, so that set is an interval and its
ends are found by bracketing. The prior Beta(a, b) only decides where the interval is tightest;
it must be fixed before the draws are seen. The defaults put its weight near the end where the
bound is used (p_A near 1 for a lower bound, p_B near 0 for an upper one), which is where clean
inputs land: with k = t draws all of class A the lower bound is about 1 - (b log t + log 1/alpha)/t
against Clopper–Pearson's 1 - log(1/alpha)/t.
"""
from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.special import betaln

from ._validation import check_positive, check_probability_open

#: Prior of the lower bound: Beta(1, LOWER_PRIOR_B), weight toward p = 1 (docs/theory.md §12).
LOWER_PRIOR = (1.0, 0.1)

# The search for an end works on u = log(1 - p0), so bounds within 1e-12 of 1 keep their digits.
_U_NEAR_ONE = math.log(1e-300)
_U_NEAR_ZERO = math.log1p(-1e-12)


def _counts(successes, trials):
    if isinstance(successes, bool) or isinstance(trials, bool):
        raise TypeError("successes and trials must be integers")
    k, t = int(successes), int(trials)
    if k != successes or t != trials:
        raise TypeError(f"successes and trials must be integers, got {successes!r}, {trials!r}")
    if t < 1 or not 0 <= k <= t:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {k} of {t}")
    return k, t


def log_mixture(successes: int, trials: int, p0: float, prior=LOWER_PRIOR) -> float:
    """log M_t(p0) of the module doc: the evidence against p = p0 after these draws."""
    k, t = _counts(successes, trials)
    a, b = (check_positive(v, "prior") for v in prior)
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"p0 must lie in (0, 1), got {p0!r}")
    return betaln(a + k, b + (t - k)) - betaln(a, b) - k * math.log(p0) - (t - k) * math.log1p(-p0)


def lower_bound(successes: int, trials: int, alpha: float, prior=LOWER_PRIOR) -> float:
    """Anytime-valid lower confidence bound of a binomial proportion at level ``alpha``:
    P(for some t, p < lower_bound(k_t, t)) <= alpha, whatever the stopping rule."""
    k, t = _counts(successes, trials)
    alpha = check_probability_open(alpha, "alpha")
    a, b = (check_positive(v, "prior") for v in prior)
    if k == 0:
        return 0.0
    threshold = math.log(1.0 / alpha)
    base = betaln(a + k, b + (t - k)) - betaln(a, b)

    def excess(u):   # log M at p0 = 1 - e^u, less the rejection level; decreasing towards p-hat
        return base - k * math.log1p(-math.exp(u)) - (t - k) * u - threshold

    # The interval's lower end lies below p-hat = k / t, where log M is at its minimum (<= 0).
    u_hat = math.log((t - k) / t) if k < t else _U_NEAR_ONE
    if excess(_U_NEAR_ZERO) < 0.0:
        return 0.0   # not even p0 = 1e-12 is rejected
    if excess(u_hat) >= 0.0:   # cannot happen for alpha < 1 (log M(p-hat) <= 0); guard rounding
        return -math.expm1(u_hat)
    u = brentq(excess, u_hat, _U_NEAR_ZERO, xtol=1e-14, rtol=1e-14)
    # Step past brentq's tolerance towards smaller p0 (larger u), and one ulp down for the final
    # rounding of p0 itself: the reported end is never above the true one.
    p0 = -math.expm1(min(u + 4e-14 * (1.0 + abs(u)), _U_NEAR_ZERO))
    return max(0.0, math.nextafter(p0, 0.0))


def upper_bound(successes: int, trials: int, alpha: float, prior=LOWER_PRIOR[::-1]) -> float:
    """Anytime-valid upper confidence bound (the mirror image of ``lower_bound``; its default
    prior Beta(0.1, 1) puts weight near p = 0, where a runner-up's probability lies)."""
    k, t = _counts(successes, trials)
    return 1.0 - lower_bound(t - k, t, alpha, prior[::-1])
