"""Whole radius curves in one sweep (unicr_fast.radius.exact.curve) against per-point searches.

The sweep inverts p_a*(lambda), the inverse Neyman-Pearson ROC, instead of finding one root per
p_a; both must give the same lambda* to the engines' accuracy: rtol 1e-9 where the law is exact
to rounding, ~1e-7 where the lattice engine computes it (exact.py, "lattice")."""
import math

import numpy as np
import pytest
from scipy.special import expit

import unicr_fast as uc
from unicr_fast.radius import exact as ex
from unicr_fast.radius.exact import curve as xc

SIGMA = 0.5
SAME, SAME_LATTICE = 1e-8, 2e-7


def tol(*details):
    return SAME_LATTICE if any("lattice" in str(d.engines) for d in details) else SAME


@pytest.mark.parametrize("law", ["direct", "fourier", "lattice", "atoms"])
def test_pa_star_inverts_the_roc(law):
    """P_Y(S_A(p_a*(beta))) = beta: the p_a the sweep reads off a law is the one at which the
    margin of exact.py is zero."""
    noise = {"atoms": uc.noise.Uniform(SIGMA), "fourier": uc.noise.HyperbolicSecant(SIGMA)}.get(
        law, uc.noise.Laplace(SIGMA))
    fam = ex._family(noise)
    k = {"direct": 1, "fourier": 64, "lattice": 3, "atoms": 5}[law]
    c = 0.3 if law in ("direct", "lattice") else 0.05   # p_a* in (0.6, 0.999): well conditioned
    plan = ex._plan(noise, fam, k, c) if law != "lattice" else \
        ex._lattice_plan(ex._Term(noise, c, fam), k, ex._LATTICE_TOL)
    assert plan.engine == law
    for _, dist in ex._laws_at(noise, fam, k, c, plan):
        for beta in (0.1, 0.5, 0.9):
            star = xc._pa_star(dist, beta)
            if beta >= 1 - dist.p_ninf:      # out of reach: even S_A = supp X has less Y-mass
                assert star == 1.0 and ex._py_sa(dist, 1.0) <= beta
                continue
            assert 0 < star < 1
            assert abs(ex._py_sa(dist, star) - beta) < 1e-12, (beta, star)


# heavy tails move the worst k with p_a (Cauchy l1: k = 1 .. 5): references bisect down to
# adjacent targets there, so those cases take ~30 s and run with the slow tests
SLOW = pytest.mark.slow
CASES = [(uc.noise.Laplace(SIGMA), 2, 64), (uc.noise.HyperbolicSecant(SIGMA), 2, 64),
         pytest.param(uc.noise.Cauchy(SIGMA), 1, 16, marks=SLOW),
         pytest.param(uc.noise.GeneralNormal(SIGMA, 0.5), 1, 16, marks=SLOW),
         (uc.noise.Uniform(SIGMA), 2, 64), (uc.noise.Gaussian(SIGMA), math.inf, 100)]
IDS = ["laplace-l2", "hsecant-l2", "cauchy-l1", "gn0.5-l1", "uniform-l2", "gaussian-linf"]


@pytest.mark.parametrize("noise, norm, dim", CASES, ids=IDS)
def test_binary_curve_equals_per_point_searches(noise, norm, dim):
    p_a = expit(np.linspace(0.02, 11.0, 40))                 # 0.505 .. 1 - 1.7e-5
    curve = xc.exact_radius_curve(noise, p_a, None, norm, dim, return_details=True)
    radii = np.array([c.radius for c in curve])
    assert np.all(np.diff(radii) >= -SAME_LATTICE * radii[1:])
    for i in range(0, len(p_a), 5):
        one = ex.exact_radius(noise, float(p_a[i]), None, norm, dim, return_details=True)
        assert abs(radii[i] / one.radius - 1) <= tol(one, curve[i]), (p_a[i], radii[i], one.radius)


def test_multiclass_grid_equals_per_point_searches():
    """Several p_b columns in one call (as RadiusTable builds them)."""
    noise, norm, dim = uc.noise.Laplace(SIGMA), 2, 32
    pa, pb = np.meshgrid(expit(np.linspace(0.5, 9.0, 25)), [1e-4, 0.01, 0.1, 0.3],
                         indexing="ij")
    ok = pb <= 1 - pa
    curve = xc.exact_radius_curve(noise, pa[ok], pb[ok], norm, dim, return_details=True)
    rng = np.random.default_rng(3)
    for i in rng.choice(len(curve), 10, replace=False):
        one = ex.exact_radius(noise, float(pa[ok][i]), float(pb[ok][i]), norm, dim,
                              return_details=True)
        assert abs(curve[i].radius / one.radius - 1) <= tol(one, curve[i])


def test_special_points_and_shapes():
    """Non-certifiable entries give 0, p_a = 1 goes to the per-point search (inf for full
    support), and the output has p_a's shape."""
    noise = uc.noise.Laplace(SIGMA)
    p_a = np.array([[0.3, 0.5, 0.6], [0.9, 0.999, 1.0]])
    out = xc.exact_radius_curve(noise, p_a, None, 2, 8)
    assert out.shape == p_a.shape
    assert out[0, 0] == out[0, 1] == 0.0 and out[1, 2] == math.inf
    assert 0 < out[0, 2] < out[1, 0] < out[1, 1] < math.inf
    multi = xc.exact_radius_curve(noise, [0.6, 0.9], [0.7, 0.05], 2, 8)
    assert multi[0] == 0.0 and multi[1] > 0
