"""Closed-form radii (docs/theory.md §8). Used by tests and `unicr validate`; never by the search."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm as normal

from ..noise import Noise, Gaussian, Laplace, Uniform, GeneralNormal, HyperbolicSecant

LOG_CONCAVE = (Gaussian, Laplace, Uniform, HyperbolicSecant)


def iid_equivalent(noise: Noise) -> Noise:
    """Radial noise with q = beta is i.i.d. generalised normal (exp(-||w||_q^q / a^q) factorises;
    beta 2 Gaussian, 1 Laplace) at the same per-coordinate sigma; any other noise is itself."""
    if noise.iid or noise.q != noise.beta:
        return noise
    if noise.beta == 2.0:
        return Gaussian(noise.sigma)
    if noise.beta == 1.0:
        return Laplace(noise.sigma)
    return GeneralNormal(noise.sigma, noise.beta)


def is_log_concave(noise: Noise) -> bool:
    """I.i.d. noise with a log-concave 1-D density (radial: only when it is i.i.d.)."""
    noise = iid_equivalent(noise)
    return isinstance(noise, LOG_CONCAVE) or (isinstance(noise, GeneralNormal) and noise.beta >= 1)


def gaussian_radius(sigma: float, p_a: float, p_b: Optional[float], norm: float, dim: int) -> float:
    """Gaussian noise: R_2 = sigma/2 (Phi^-1(p_a) - Phi^-1(p_b)) (binary: sigma Phi^-1(p_a)),
    R_p = R_2 for p <= 2 and R_2 d^(1/p - 1/2) for p >= 2."""
    r2 = sigma * normal.ppf(p_a) if p_b is None else 0.5 * sigma * (normal.ppf(p_a) - normal.ppf(p_b))
    r2 = max(0.0, float(r2))
    if norm <= 2:
        return r2
    return r2 * dim ** ((0.0 if math.isinf(norm) else 1.0 / norm) - 0.5)


def laplace_l1_binary(sigma: float, p_a: float) -> float:
    """Laplace noise, l1, binary: -b log(2 (1 - p_a)), b = sigma / sqrt(2)."""
    return max(0.0, -(sigma / math.sqrt(2)) * math.log(2 * (1 - p_a)))


def uniform_l1_binary(sigma: float, p_a: float) -> float:
    """Uniform noise, l1, binary: 2 l (p_a - 1/2), l = sigma sqrt(3)."""
    return max(0.0, 2 * sigma * math.sqrt(3) * (p_a - 0.5))


def axis_lambda(noise: Noise, p_a: float, p_b: Optional[float] = None) -> float:
    """lambda*(axis) for symmetric log-concave noise: F^-1(p_a) (binary), else the root c of
    F(F^-1(p_a) - c) = 1 - F(F^-1(1 - p_b) - c)."""
    if not is_log_concave(noise):
        raise ValueError(f"the axis closed form needs log-concave noise, got {noise.name}")
    noise = iid_equivalent(noise)
    icdf = lambda q: float(np.asarray(noise.icdf(q)))
    cdf = lambda x: float(np.asarray(noise.cdf(x)))
    if p_b is None:
        return max(0.0, icdf(p_a))
    if p_a <= p_b:
        return 0.0
    qa, qb = icdf(p_a), icdf(1 - p_b)
    gap = lambda c: cdf(qa - c) - (1 - cdf(qb - c))
    hi = qa - icdf(min(1 - 1e-15, 1 - p_a)) + abs(qb) + 1.0  # gap(hi) < 0: both CDFs cross
    while gap(hi) > 0:
        hi *= 2
    return brentq(gap, 0.0, hi, xtol=1e-14, rtol=1e-14)


def closed_form_radius(noise: Noise, p_a: float, p_b: Optional[float], norm: float,
                       dim: int) -> Optional[float]:
    """The certified radius where docs/theory.md §8 gives it exactly (for the worst direction), else None."""
    noise = iid_equivalent(noise)
    if isinstance(noise, Gaussian):
        return gaussian_radius(noise.sigma, p_a, p_b, norm, dim)
    if p_b is None and norm == 1:
        if isinstance(noise, Laplace):
            return laplace_l1_binary(noise.sigma, p_a)
        if isinstance(noise, Uniform):
            return uniform_l1_binary(noise.sigma, p_a)
    return None
