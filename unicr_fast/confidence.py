"""Confidence bounds (docs/theory.md §6): Clopper–Pearson for class probabilities, DKW for MC error."""
from __future__ import annotations

import math

from scipy.stats import beta as beta_dist

from ._validation import check_int, check_probability_open


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided (1 - alpha) lower confidence bound of a binomial proportion."""
    k, n = _counts(successes, trials)
    alpha = check_probability_open(alpha, "alpha")
    return 0.0 if k == 0 else float(beta_dist.ppf(alpha, k, n - k + 1))


def clopper_pearson_upper(successes: int, trials: int, alpha: float) -> float:
    """One-sided (1 - alpha) upper confidence bound of a binomial proportion."""
    k, n = _counts(successes, trials)
    alpha = check_probability_open(alpha, "alpha")
    return 1.0 if k == n else float(beta_dist.ppf(1 - alpha, k + 1, n - k))


def dkw_epsilon(num_samples: int, beta: float) -> float:
    """Half-width e_N with P(sup_t |F_N(t) - F(t)| > e_N) <= beta (DKW, Massart's constant)."""
    n = check_int(num_samples, "num_samples", 1)
    beta = check_probability_open(beta, "beta")
    return math.sqrt(math.log(2.0 / beta) / (2.0 * n))


def _counts(successes, trials):
    n = check_int(trials, "trials", 1)
    k = check_int(successes, "successes", 0)
    if k > n:
        raise ValueError(f"successes ({k}) must not exceed trials ({n})")
    return k, n
