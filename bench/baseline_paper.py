"""Plain-NumPy baseline: the certified-radius procedure as the UniCR paper publishes it.

Written for the benchmark in bench/test_bench_radius.py; it is deliberately *not* optimised.
What it does, step by step (binary case, Theorem 3 of the paper):

* Noise: one dense N x d matrix ``eps`` drawn once with a seeded ``numpy.random.Generator``
  (float64), the same matrix for every direction and scale (common random numbers).
* Margin of a shift ``delta`` (one "margin evaluation"):
    a_i = sum_j log phi(eps_ij - delta_j) - log phi(eps_ij)      (X side, L(eps))
    b_i = sum_j log phi(eps_ij) - log phi(eps_ij + delta_j)      (Y side, L(eps + delta))
  all four log-pdf arrays are recomputed in NumPy every time, as the published script does with
  its pdf ratios; then a FULL SORT of ``a`` gives t_A = the p_a-quantile, and the naive,
  tie-unaware condition gives the margin  m = P_Y(L < t_A) - 1/2 = mean(b < t_A) - 1/2.
  (The published script multiplies pdf ratios, which under/overflows for d = 3072; log-ratios
  are the same quantity computed safely. Its index ceil(N p_a) is also one past the p_a-quantile;
  we use the quantile itself, ceil(N p_a) - 1 zero-based.)
* Scale search along a direction ``u`` (not normalised: the radius is ||lambda u||_p):
  start at lambda_0 = mean|eps| / 2, double (margin >= 0) or halve (margin < 0) until the sign
  changes (at most 20 steps), then bisect the bracket until |margin| < 0.01 (at most 20 steps).
  The stop is a tolerance on the margin, not on lambda. A direction that fails either loop gets
  radius +inf (the script's sentinel 1000).
* Direction search: a global-best particle swarm over the full d-dimensional direction, bounds
  [-1, 1]^d, 4 particles x 3 iterations, w = 0.9, c1 = 0.5, c2 = 0.3; initial positions one-hot
  random axes for l_p with p < inf and all-ones for l_inf; initial velocities uniform in [0, 1)^d
  (the swarm library's default); positions clipped to the bounds after each move. Each iteration
  evaluates every particle, one at a time. The cost of a particle is its radius ||lambda* u||_p;
  the result is the best cost seen.

``paper_radius`` returns (radius, margin evaluations, directions evaluated).
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy.special import gammaln

MARGIN_TOL = 0.01
MAX_STEPS = 20
PARTICLES = 4
ITERATIONS = 3
W, C1, C2 = 0.9, 0.5, 0.3


# ----------------------------------------------------------------------------------------------
# Noise (numpy): samplers and log-pdfs, per-coordinate variance sigma^2 (docs/theory.md §7)


def _gn_scale(sigma: float, beta: float) -> float:
    return sigma * math.sqrt(math.exp(gammaln(1.0 / beta) - gammaln(3.0 / beta)))


def make_noise(noise_name: str, sigma: float, beta: float = 2.0):
    """(sampler(rng, shape), log_pdf(x)) in NumPy for 'gaussian' or 'general_normal'."""
    if noise_name == "gaussian":
        const = -math.log(sigma * math.sqrt(2.0 * math.pi))

        def sample(rng, shape):
            return rng.standard_normal(shape) * sigma

        def log_pdf(x):
            z = x / sigma
            return const - 0.5 * z * z
    elif noise_name == "general_normal":
        a = _gn_scale(sigma, beta)
        const = math.log(beta) - math.log(2.0 * a) - gammaln(1.0 / beta)

        def sample(rng, shape):
            mag = a * rng.gamma(1.0 / beta, size=shape) ** (1.0 / beta)
            return np.where(rng.random(shape) < 0.5, -mag, mag)

        def log_pdf(x):
            return const - (np.abs(x) / a) ** beta
    else:
        raise ValueError(f"baseline supports 'gaussian' and 'general_normal', got {noise_name!r}")
    return sample, log_pdf


# ----------------------------------------------------------------------------------------------
# The procedure


class PaperCertifier:
    """State of one radius computation: samples, counters, and the three nested loops."""

    def __init__(self, noise_name, sigma, beta, norm, dim, p_a, num_samples, seed):
        self.sample, self.log_pdf = make_noise(noise_name, sigma, beta)
        self.norm = math.inf if norm in (-1, "inf") else float(norm)
        self.dim, self.p_a, self.seed = int(dim), float(p_a), int(seed)
        self.rng = np.random.default_rng(seed)
        t0 = time.perf_counter()
        self.eps = self.sample(self.rng, (int(num_samples), self.dim))
        self.sample_seconds = time.perf_counter() - t0
        self.margin_evaluations = 0
        self.directions = 0

    def margin(self, delta: np.ndarray) -> float:
        """Naive binary margin P_Y(L < t_A) - 1/2 of the shift ``delta`` (full recomputation)."""
        self.margin_evaluations += 1
        eps, lp = self.eps, self.log_pdf
        log_eps = lp(eps)
        a = (lp(eps - delta) - log_eps).sum(axis=1)          # L(eps)
        b = (log_eps - lp(eps + delta)).sum(axis=1)          # L(eps + delta)
        sorted_a = np.sort(a)                                # full sort, every evaluation
        t_a = sorted_a[max(0, math.ceil(len(a) * self.p_a) - 1)]
        return float(np.mean(b < t_a)) - 0.5

    def radius_along(self, u: np.ndarray) -> float:
        """||lambda* u||_p from doubling/halving then bisection to |margin| < 0.01."""
        self.directions += 1
        lam0 = float(np.mean(np.abs(self.eps))) / 2.0
        lam = lam0
        m = self.margin(lam * u)
        steps = MAX_STEPS
        if m >= 0:
            while m >= 0 and steps > 0:
                lam *= 2.0
                m = self.margin(lam * u)
                steps -= 1
        else:
            while m < 0 and steps > 0:
                lam /= 2.0
                m = self.margin(lam * u)
                steps -= 1
        if steps == 0:
            return math.inf
        lo, hi = (lam0, lam) if lam > lam0 else (lam, lam0)   # margin(lo) >= 0 > margin(hi)
        steps = MAX_STEPS
        while abs(m) > MARGIN_TOL and steps > 0:
            lam = 0.5 * (lo + hi)
            m = self.margin(lam * u)
            if m >= 0:
                lo = lam
            else:
                hi = lam
            steps -= 1
        if steps == 0:
            return math.inf
        return float(np.linalg.norm(lam * u, ord=self.norm))

    def swarm(self, particles: int = PARTICLES, iterations: int = ITERATIONS) -> float:
        """Global-best PSO over d-dimensional directions; each particle evaluated on its own."""
        d, rng = self.dim, self.rng
        if math.isinf(self.norm):
            pos = np.ones((particles, d))
        else:
            pos = np.zeros((particles, d))
            pos[np.arange(particles), rng.integers(0, d, size=particles)] = 1.0
        vel = rng.random((particles, d))
        pbest_pos, pbest_cost = pos.copy(), np.full(particles, np.inf)
        gbest_pos, gbest_cost = pos[0].copy(), math.inf
        for _ in range(iterations):
            cost = np.array([self.radius_along(pos[i]) for i in range(particles)])
            better = cost < pbest_cost
            pbest_pos[better], pbest_cost[better] = pos[better], cost[better]
            j = int(np.argmin(pbest_cost))
            if pbest_cost[j] < gbest_cost:
                gbest_pos, gbest_cost = pbest_pos[j].copy(), float(pbest_cost[j])
            r1, r2 = rng.random((particles, d)), rng.random((particles, d))
            vel = W * vel + C1 * r1 * (pbest_pos - pos) + C2 * r2 * (gbest_pos[None, :] - pos)
            pos = np.clip(pos + vel, -1.0, 1.0)
        return gbest_cost


def paper_radius(noise_name: str, sigma: float, beta: float, norm, dim: int, p_a: float,
                 num_samples: int, seed: int):
    """Binary certified l_p radius by the published procedure (module doc).

    Returns ``(radius, evaluations, directions)``: the best radius found (inf if no direction
    bracketed), the number of margin evaluations (each one N x d log-pdf pairs and a full sort)
    and the number of directions whose lambda* was searched (particles x iterations)."""
    cert = PaperCertifier(noise_name, sigma, beta, norm, dim, p_a, num_samples, seed)
    radius = cert.swarm()
    return radius, cert.margin_evaluations, cert.directions


if __name__ == "__main__":  # quick manual check
    for name, beta, norm in [("gaussian", 2.0, 2), ("general_normal", 1.5, 1)]:
        t0 = time.perf_counter()
        out = paper_radius(name, 0.5, beta, norm, 3072, 0.9, 2000, 0)
        print(name, norm, out, f"{time.perf_counter() - t0:.1f}s")
