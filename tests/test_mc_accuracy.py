"""The Monte-Carlo engine against the exact one at high p_a (docs/theory.md §5): the pooled
estimator must not overstate where clean inputs land.

For every catalogue family x {l1, l2, l_inf} x p_a up to 0.99999, the Monte-Carlo radius (N =
20,000, d = 8) may not exceed the exact radius by more than 2% (the bound the soundness issue
sets; the old per-side estimator overstated by up to 77% at N = 20,000, p_a = 0.99999). Below
the exact radius it may fall by its own error (and, off the k-sparse directions, by the search
finding a better direction than the exact engine's candidates); the lower bound of -15% is only a
sanity check against a collapsed estimate. The draws are seeded, so the numbers are reproducible:
measured worst over the grid +1.7% (uniform, l_inf, p_a = 0.6) and -1.1%.
"""
import numpy as np
import pytest

import unicr_fast as uc

FAMILIES = [("gaussian", {}), ("laplace", {}), ("hyperbolic_secant", {}),
            ("general_normal", {"beta": 0.5}), ("general_normal", {"beta": 3.0}), ("uniform", {}),
            ("cauchy", {}), ("pareto", {"a": 3.0}), ("laplace_gaussian_mixture", {"weight": 0.5}),
            ("exponential_mixture", {"weight": 0.5, "beta1": 1.0, "beta2": 2.0})]
P_A = np.array([0.6, 0.9, 0.999, 0.99999])


@pytest.mark.slow
@pytest.mark.parametrize("family,params", FAMILIES)
@pytest.mark.parametrize("norm", [1, 2, "inf"])
def test_monte_carlo_never_overstates_the_exact_radius(family, params, norm):
    noise = uc.noise.make(family, sigma=0.5, **params)
    exact = uc.certified_radius(noise, P_A, norm=norm, dim=8, method="exact")
    mc = uc.certified_radius(noise, P_A, norm=norm, dim=8, num_samples=20_000, seed=0,
                             method="mc")
    rel = mc / exact - 1
    assert rel.max() <= 0.02, (P_A, rel)
    assert rel.min() >= -0.15, (P_A, rel)


def test_heavy_tail_directions_follow_p_a():
    """Cauchy l1, d = 64: the worst k-sparse direction is the axis at p_a = 0.9 but k = 3 at
    0.999 (exact engine); the Monte-Carlo search, asked at 0.999, finds a radius within 1% of the
    exact one (it reported k = 4, +3.8%, when directions were only searched at 0.9)."""
    noise = uc.noise.Cauchy(0.5)
    exact = uc.certified_radius(noise, 0.999, norm=1, dim=64, method="exact", return_details=True)
    mc = uc.certified_radius(noise, [0.9, 0.999], norm=1, dim=64, num_samples=20_000, seed=0,
                             method="mc", return_details=True)
    assert np.count_nonzero(exact.direction) == 3
    assert mc[1].radius <= exact.radius * 1.01
    assert np.count_nonzero(mc[1].direction) == 3
