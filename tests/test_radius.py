"""certified_radius against the closed forms of docs/theory.md §8.

Tolerances come from the DKW inequality (docs/theory.md §6). Along one direction with continuous L the
estimator is lambda_hat = F_N^-1(p_a) - F_N^-1(1/2) in the noise's own quantiles (binary; the
Y-side values are the same samples shifted), so with sup|F_N - F| <= e,
    F^-1(p_a - e) - F^-1(1/2 + e) <= lambda_hat <= F^-1(p_a + e) - F^-1(1/2 - e).
With particles=0 the engine tries a fixed set of B = O(log d) directions, so a union bound gives
e = sqrt(log(2 B / beta) / (2 N)) with failure probability beta = 1e-3 for the whole test.
Multiclass: the same with both quantiles and both CDF terms (see estimator_interval). Where L
has atoms (Laplace, uniform) the tie term reads P_X as well as P_Y: each probability then moves by
at most 3e (quantile, P_X, P_Y), so the interval is taken at 3e.
Bisection adds a relative error of rtol (1e-4) and the search of a coarse 1e-2 is never reported.
"""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

import unicr_fast as uc
from unicr_fast.radius import closed_forms as ref
from unicr_fast.radius.mc.search import block_edges

BETA = 1e-3
N = 40_000
RTOL = 1e-4


def dkw(dim, n=N):
    B = len(block_edges(dim)) - 1
    return math.sqrt(math.log(2 * B / BETA) / (2 * n))


def radius(noise, p_a, dim, norm=2, p_b=None, **kw):
    """The Monte-Carlo engine (this file's subject; the exact one has tests/test_exact.py)."""
    kw.setdefault("num_samples", N)
    kw.setdefault("particles", 0)
    kw.setdefault("method", "mc")
    return uc.certified_radius(noise, p_a, p_b=p_b, norm=norm, dim=dim, seed=kw.pop("seed", 0),
                               device="cpu", **kw)


def estimator_interval(noise, p_a, p_b, e):
    """Interval that holds the estimated lambda* of a 1-D problem with noise CDF F whenever the
    empirical CDF of the samples is within e of F (module doc). Binary: the root of
    F_N(q_a - c) = 1/2; multiclass: of F_N(q_a - c) + F_N(q_b - c) = 1, with q_a, q_b the empirical
    p_a and (1 - p_b) quantiles. Each F_N moves by <= e and each quantile by <= e in probability."""
    F = lambda x: float(noise.cdf(torch.tensor(x, dtype=torch.float64)))
    Q = lambda p: float(noise.icdf(torch.tensor(min(max(p, 1e-12), 1 - 1e-12), dtype=torch.float64)))
    if p_b is None:
        return Q(p_a - e) - Q(0.5 + e), Q(p_a + e) - Q(0.5 - e)

    def root(qa, qb, shift):
        g = lambda c: F(qa - c) + F(qb - c) - 1 + shift
        hi = 1.0
        while g(hi) > 0:
            hi *= 2
        return brentq(g, -hi, hi, xtol=1e-13)

    lo = root(Q(p_a - e), Q(1 - p_b - e), -2 * e)
    hi = root(Q(p_a + e), Q(1 - p_b + e), 2 * e)
    return lo, hi


def gaussian_interval(sigma, p_a, p_b, e, scale):
    """Gaussian in d dims: along any unit-l2 direction u, eps.u ~ N(0, sigma^2), so the 1-D
    interval applies; ``scale`` turns l2 into the l_p radius of the worst direction."""
    lo, hi = estimator_interval(uc.noise.Gaussian(sigma), p_a, p_b, e)
    return scale * lo * (1 - RTOL), scale * hi * (1 + RTOL)


PROBS = [(0.55, None), (0.8, None), (0.99, None), (0.999, None), (0.7, 0.2), (0.95, 0.03)]
# d=3072 runs two (p_a, p_b) per norm to keep CI short; the full grid runs at d <= 784.
GAUSSIAN_CASES = [(d, pa, pb, nrm) for nrm in (2, 1, "inf") for d in (1, 10, 784) for pa, pb in PROBS]
GAUSSIAN_CASES += [(3072, pa, pb, nrm) for nrm in (2, 1, "inf") for pa, pb in ((0.8, None), (0.95, 0.03))]


@pytest.mark.parametrize("dim, p_a, p_b, norm", GAUSSIAN_CASES)
def test_gaussian_closed_form(dim, p_a, p_b, norm):
    sigma = 0.25 if dim > 10 else 0.5
    noise = uc.noise.Gaussian(sigma)
    r = radius(noise, p_a, dim, norm, p_b)
    p = math.inf if norm == "inf" else float(norm)
    scale = 1.0 if p <= 2 else dim ** ((0.0 if math.isinf(p) else 1 / p) - 0.5)
    lo, hi = gaussian_interval(sigma, p_a, p_b, dkw(dim), scale)
    exact = ref.gaussian_radius(sigma, p_a, p_b, p, dim)
    assert lo <= exact <= hi           # the interval is about the truth
    assert lo <= r <= hi, (r, exact)


@pytest.mark.parametrize("p_norm", [0.5, 1.5, 3.0])
def test_gaussian_other_lp_norms(p_norm):
    noise, dim, p_a = uc.noise.Gaussian(0.5), 10, 0.9
    r = radius(noise, p_a, dim, p_norm)
    scale = 1.0 if p_norm <= 2 else dim ** (1 / p_norm - 0.5)
    lo, hi = gaussian_interval(0.5, p_a, None, dkw(dim), scale)
    assert lo <= r <= hi


@pytest.mark.parametrize("dim", [1, 10, 784])
@pytest.mark.parametrize("p_a", [0.55, 0.6, 0.75, 0.9, 0.99])
@pytest.mark.parametrize("family", ["laplace", "uniform"])
def test_tie_noises_l1_binary(family, dim, p_a):
    sigma = 0.5
    noise = uc.noise.make(family, sigma=sigma)
    closed = ref.closed_form_radius(noise, p_a, None, 1, dim)
    r = radius(noise, p_a, dim, 1)
    # The worst l1 direction is the axis: a 1-D problem in the noise's own CDF (3e: ties).
    lo, hi = estimator_interval(noise, p_a, None, 3 * dkw(dim))
    assert lo <= closed <= hi
    assert r > 0, "a naive tie handling reports no radius here"
    assert lo * (1 - RTOL) <= r <= hi * (1 + RTOL), (r, closed)


@pytest.mark.parametrize("family, params", [("hyperbolic_secant", {}), ("general_normal", {"beta": 1.5}),
                                            ("general_normal", {"beta": 3.0}), ("laplace", {}),
                                            ("gaussian", {})])
@pytest.mark.parametrize("p_a, p_b", [(0.6, None), (0.9, None), (0.99, None), (0.8, 0.1), (0.6, 0.3)])
def test_log_concave_axis_closed_form(family, params, p_a, p_b):
    # d = 1: the only direction is the axis, and lambda*(axis) has the closed form of docs/theory.md §8.
    noise = uc.noise.make(family, sigma=0.5, **params)
    r = radius(noise, p_a, 1, 2, p_b)
    e = dkw(1) * (3 if family == "laplace" else 1)   # Laplace on the axis has atoms
    exact = ref.axis_lambda(noise, p_a, p_b)
    lo, hi = estimator_interval(noise, p_a, p_b, e)
    assert lo <= exact <= hi
    assert lo * (1 - RTOL) <= r <= hi * (1 + RTOL), (r, exact)


@pytest.mark.parametrize("family, params", [("cauchy", {}), ("pareto", {"a": 3.0})])
def test_heavy_tails_finite_and_below_axis(family, params):
    noise = uc.noise.make(family, sigma=0.5, **params)
    dim, p_a = 10, 0.9
    det = radius(noise, p_a, dim, 2, num_samples=20_000, particles=4, iterations=2, return_details=True)
    assert det.found and 0 < det.radius < math.inf
    # The axis is one of the directions tried, so the radius cannot exceed the axis value by more
    # than the MC error of the two estimates; both use e from DKW at the same N.
    axis = radius(noise, p_a, 1, 2, num_samples=20_000)
    axis_hi = radius(noise, min(p_a + 3 * dkw(dim, 20_000), 0.9999), 1, 2, num_samples=20_000)
    assert det.radius <= axis + (axis_hi - axis)


def test_monotone_in_p_a_with_shared_samples():
    noise = uc.noise.GeneralNormal(0.5, 1.5)
    grid = np.array([0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
    r = uc.certified_radius(noise, grid, norm=1, dim=20, num_samples=20_000, seed=3)
    assert isinstance(r, np.ndarray) and r.shape == grid.shape
    assert (np.diff(r) >= 0).all(), r


def test_uncertifiable_gives_zero():
    noise = uc.noise.Laplace(0.5)
    assert uc.certified_radius(noise, 0.5, dim=5, num_samples=1000) == 0.0
    assert uc.certified_radius(noise, 0.3, dim=5, num_samples=1000) == 0.0
    assert uc.certified_radius(noise, 0.4, p_b=0.4, dim=5, num_samples=1000) == 0.0
    assert uc.certified_radius(noise, 0.4, p_b=0.5, dim=5, num_samples=1000) == 0.0
    r = uc.certified_radius(noise, np.array([0.2, 0.9]), dim=5, num_samples=1000)
    assert r[0] == 0.0 and r[1] > 0


def test_deterministic_per_seed():
    noise = uc.noise.GeneralNormal(0.5, 1.5)
    kw = dict(norm=1, dim=30, num_samples=5000)
    assert uc.certified_radius(noise, 0.8, seed=4, **kw) == uc.certified_radius(noise, 0.8, seed=4, **kw)


def test_details():
    noise = uc.noise.Laplace(0.5)
    det = uc.certified_radius(noise, 0.8, norm=1, dim=16, num_samples=5000, return_details=True)
    assert isinstance(det, uc.RadiusDetails)
    assert det.direction.shape == (16,) and det.evaluations > 0 and det.seconds >= 0
    np.testing.assert_allclose(np.abs(det.direction).sum(), 1.0)       # unit in l1
    assert (np.diff(det.direction) <= 0).all()                           # canonical: sorted


def test_sound_mode_is_conservative_across_seeds():
    # Each sound radius is below the closed form with probability >= 1 - 2 beta_dkw (docs/theory.md §6);
    # with beta_dkw = 0.01 and 20 seeds, P(more than 2 violations) < 1e-3 (binomial tail).
    noise, dim, p_a = uc.noise.Gaussian(0.5), 10, 0.9
    exact = ref.gaussian_radius(0.5, p_a, None, 2, dim)
    radii = [uc.certified_radius(noise, p_a, dim=dim, num_samples=5000, seed=s, sound=True,
                                 beta=0.01, particles=2, iterations=1, method="mc")
             for s in range(20)]
    assert sum(r > exact for r in radii) <= 2
    plain = uc.certified_radius(noise, p_a, dim=dim, num_samples=5000, seed=0, particles=2,
                                iterations=1, method="mc")
    assert radii[0] < plain


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(p_a=float("nan")), ValueError, "p_a"),
    (dict(p_a=1.5), ValueError, "p_a"),
    (dict(p_a=0.0), ValueError, "p_a"),
    (dict(p_a="0.9"), TypeError, "p_a"),
    (dict(p_a=0.9, p_b=-0.1), ValueError, "p_b"),
    (dict(p_a=0.9, norm=0), ValueError, "norm"),
    (dict(p_a=0.9, norm=-2), ValueError, "norm"),
    (dict(p_a=0.9, norm="l7"), ValueError, "norm"),
    (dict(p_a=0.9, dim=0), ValueError, "dim"),
    (dict(p_a=0.9, dim=2.5), TypeError, "dim"),
    (dict(p_a=0.9, num_samples=0), ValueError, "num_samples"),
    (dict(p_a=0.9, device="tpu"), ValueError, "device"),
    (dict(p_a=0.9, device="meta"), ValueError, "device"),
    (dict(p_a=0.9, device=3), TypeError, "device"),
    (dict(p_a=0.9, backend="fpga"), ValueError, "backend"),
])
def test_bad_inputs(kwargs, err, match):
    kwargs.setdefault("dim", 4)
    with pytest.raises(err, match=match):
        uc.certified_radius(uc.noise.Gaussian(0.5), **kwargs)


def test_bad_noise_object():
    with pytest.raises(TypeError, match="noise"):
        uc.certified_radius("gaussian", 0.9, dim=4)


def test_norm_accepts_inf_string_and_float():
    noise = uc.noise.Gaussian(0.5)
    a = uc.certified_radius(noise, 0.9, norm="inf", dim=4, num_samples=5000)
    b = uc.certified_radius(noise, 0.9, norm=math.inf, dim=4, num_samples=5000)
    assert a == b > 0


@pytest.mark.parametrize("family, norm, dim", [("gaussian", 2, 3072), ("gaussian", "inf", 784),
                                               ("laplace", 1, 150_528), ("uniform", 1, 10)])
def test_exact_method_reproduces_closed_forms(family, norm, dim):
    # No sampling: the tolerance is the exact engine's stated accuracy (1e-6 relative).
    noise = uc.noise.make(family, sigma=0.5)
    p = math.inf if norm == "inf" else float(norm)
    for p_a in (0.6, 0.9, 0.99):
        r = uc.certified_radius(noise, p_a, norm=norm, dim=dim, method="exact")
        assert r == pytest.approx(ref.closed_form_radius(noise, p_a, None, p, dim), rel=1e-6)
    det = uc.certified_radius(noise, 0.9, norm=norm, dim=dim, method="exact", return_details=True)
    np.testing.assert_allclose(float(np.sum(det.direction ** (2 if norm == 2 else 1)))
                               if norm != "inf" else det.direction.max(), 1.0)


def test_exact_method_rejects_custom_noise_and_bad_method():
    custom = uc.noise.Custom(lambda x: -x * x, lambda s, g, d: torch.zeros(s, dtype=torch.float64))
    with pytest.raises(ValueError, match="exact"):
        uc.certified_radius(custom, 0.9, dim=3, method="exact")
    with pytest.raises(ValueError, match="method"):
        uc.certified_radius(uc.noise.Gaussian(1.0), 0.9, dim=3, method="bogus")
