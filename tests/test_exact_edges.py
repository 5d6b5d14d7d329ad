"""Exact mode at the ends of p_a: p_a -> 1/2, p_a -> 1 and p_a = 1, every norm, dims up to 150528
(and 2**40, without O(dim) memory), every catalogue family, binary and multiclass.

Checked: no exception; radii >= 0, finite or inf (inf exactly where the margin cannot reach 0:
p_a = 1 or p_b = 0 with full support); non-decreasing in p_a; the closed forms (Gaussian l_p,
Laplace l1, uniform l1 and the axis of the log-concave families) to 1e-6 relative plus the
engines' absolute error on probabilities carried through dR/dp_a (exact.py module doc, "Ends of
p_a": an error e on the probabilities acts like an error e on p_a). Here the cheaper families;
the wider sweep over every family x norm x dim (minutes per family) is not in the suite.
"""
import math

import numpy as np
import pytest
import torch
from scipy import special

import unicr_fast as uc
from unicr_fast.radius import exact as ex
from unicr_fast.radius import closed_forms as ref

SIGMA = 0.7
REL = 1e-6
P_A = [0.5 + 1e-9, 0.500001, 0.75, 0.999, 1 - 1e-9, 1 - 1e-10, 1 - 1e-12, 1.0]
FAMILIES = [("gaussian", {}), ("laplace", {}), ("hyperbolic_secant", {}),
            ("general_normal", {"beta": 0.5}), ("general_normal", {"beta": 1.5}),
            ("general_normal", {"beta": 3.0}), ("uniform", {}), ("cauchy", {}),
            ("pareto", {"a": 3.0}), ("laplace_gaussian_mixture", {"weight": 0.3}),
            ("exponential_mixture", {"weight": 0.4, "beta1": 1.0, "beta2": 3.0})]


def fam_id(case):
    name, params = case
    return name + "".join(f"-{k}{v}" for k, v in params.items())


def make(case):
    name, params = case
    return uc.noise.make(name, sigma=SIGMA, **params)


def multiclass(p_a):
    return 0.5 * (1.0 - p_a)


def prob_error(engines) -> float:
    """The module doc's absolute error on probabilities, for the engines that were used."""
    budget = {"direct": 4.4e-16, "atoms": 4.4e-16, "fourier": 2e-15, "lattice": 1e-8}
    return max((budget[e] for e in engines.values()), default=0.0)


def assert_close(got, want, slope, engines):
    """|got - want| <= 1e-6 want + e dR/dp_a (``slope``: sum of |dR/dp| over p_a and p_b)."""
    tol = REL * want + prob_error(engines) * slope
    assert abs(got - want) <= tol, (got, want, tol, engines)


def sweep(noise, p_b_of, norm, dim, p_as=P_A):
    """Radii (with details) over p_as; asserts the invariants common to every family."""
    out = []
    for p_a in p_as:
        p_b = None if p_b_of is None else p_b_of(p_a)
        r = ex.exact_radius(noise, p_a, p_b, norm, dim, return_details=True)
        assert isinstance(r.radius, float) and r.radius >= 0 and not math.isnan(r.radius)
        bounded = isinstance(noise, uc.noise.Uniform)
        if p_a == 1.0 or p_b == 0.0:
            assert math.isfinite(r.radius) == bounded, (p_a, p_b, r.radius)
        else:
            assert 0 < r.radius < math.inf, (p_a, p_b, r.radius)
        out.append(r)
    radii = [r.radius for r in out]
    assert all(a <= b for a, b in zip(radii, radii[1:])), radii
    return out


# ----------------------------------------------------------------------------------------------
# Closed forms (the radius and its slope dR/dp_a)


def npdf(z):
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def gaussian_form(p_a, p_b, norm, dim, sigma=SIGMA):
    """R = sigma/2 (Phi^-1(p_a) - Phi^-1(p_b)) (binary: sigma Phi^-1(p_a)) times the l_p factor,
    and |dR/dp_a| + |dR/dp_b|."""
    scale = 1.0 if norm <= 2 else dim ** ((0.0 if math.isinf(norm) else 1.0 / norm) - 0.5)
    r = ref.gaussian_radius(sigma, p_a, p_b, norm, dim)
    za = special.ndtri(p_a)
    if p_b is None:
        return r, sigma * scale / npdf(za)
    return r, 0.5 * sigma * scale * (1 / npdf(za) + 1 / npdf(special.ndtri(p_b)))


def check_gaussian(norm, dim, p_b_of):
    for r in sweep(uc.noise.Gaussian(SIGMA), p_b_of, norm, dim):
        if r.p_a < 1:
            assert_close(r.radius, *gaussian_form(r.p_a, r.p_b, norm, dim), r.engines)


@pytest.mark.parametrize("norm", [1, 2, math.inf])
@pytest.mark.parametrize("dim", [2, 784])
def test_gaussian_binary(norm, dim):
    check_gaussian(norm, dim, None)


def test_gaussian_multiclass():
    check_gaussian(2, 16, multiclass)


@pytest.mark.parametrize("dim", [1, 784])
def test_laplace_l1(dim):
    b = SIGMA / math.sqrt(2)
    for r in sweep(uc.noise.Laplace(SIGMA), None, 1, dim):
        if r.p_a < 1:
            assert_close(r.radius, ref.laplace_l1_binary(SIGMA, r.p_a), b / (1 - r.p_a), r.engines)


@pytest.mark.parametrize("dim", [1, 150528])
def test_uniform_l1(dim):
    l = SIGMA * math.sqrt(3)
    for r in sweep(uc.noise.Uniform(SIGMA), None, 1, dim):
        # p_a = 1: the finite limit l (the shift that moves the whole support)
        assert_close(r.radius, ref.uniform_l1_binary(SIGMA, r.p_a), 2 * l, r.engines)


@pytest.mark.parametrize("noise", [uc.noise.HyperbolicSecant(SIGMA), uc.noise.Laplace(SIGMA),
                                   uc.noise.GeneralNormal(SIGMA, beta=1.5),
                                   uc.noise.GeneralNormal(SIGMA, beta=3.0),
                                   uc.noise.Gaussian(SIGMA)], ids=repr)
def test_axis_closed_form(noise):
    """k = 1 ("direct") against F^-1(p_a), slope 1 / phi(F^-1(p_a))."""
    lams = [ex.exact_lambda(noise, 1, 1, p_a) for p_a in P_A]
    assert lams[-1] == math.inf
    assert all(a <= b for a, b in zip(lams, lams[1:])), lams
    for p_a, lam in zip(P_A[:-1], lams):
        want = ref.axis_lambda(noise, p_a)
        density = math.exp(float(noise.log_pdf(torch.tensor([want], dtype=torch.float64))[0]))
        assert_close(lam, want, 1 / density, {1: "direct"})


def test_issue_cases():
    """The reported failures, through the public entry point."""
    g = uc.noise.Gaussian(1.0)
    for p_a, dim in [(0.500001, 16), (1 - 1e-10, 16), (1 - 1e-12, 784), (0.5 + 1e-9, 2)]:
        r = uc.certified_radius(g, p_a, norm=2, dim=dim, method="exact")
        want, slope = gaussian_form(p_a, None, 2, dim, sigma=1.0)
        assert abs(r - want) <= REL * want + prob_error({dim: "fourier"}) * slope, (p_a, dim, r)


def next_to_ends(case):
    """One ulp from 1/2 (0.0 allowed: the margin is at the rounding level) and from 1."""
    noise = make(case)
    r0 = ex.exact_radius(noise, np.nextafter(0.5, 1.0), None, 2, 16)
    r1 = ex.exact_radius(noise, np.nextafter(1.0, 0.0), None, 2, 16)
    assert 0 <= r0 <= r1 < math.inf, (case, r0, r1)


# the cheaper families (seconds each); Cauchy, Pareto, the mixtures and general normal with
# beta 0.5 (lattice engine at tiny or huge shifts) take minutes
FAST = [c for c in FAMILIES if c[0] in ("gaussian", "laplace", "hyperbolic_secant", "uniform")
        or c[1].get("beta") in (1.5, 3.0)]


@pytest.mark.parametrize("case", FAST, ids=fam_id)
def test_next_to_ends(case):
    next_to_ends(case)


@pytest.mark.parametrize("case", FAST, ids=fam_id)
def test_every_family_no_crash(case):
    sweep(make(case), None, 2, 2, [0.5 + 1e-9, 0.75, 1 - 1e-12, 1.0])


def test_huge_dim_without_dense_vectors():
    """dim = 2**40: the k-grid is O(log d) and nothing of size d is allocated."""
    dim = 2 ** 40
    grid = ex.k_grid(dim)
    assert grid[-1] == dim and len(grid) < 32 + math.log(dim / 32) / math.log(1.3) + 2
    g = uc.noise.Gaussian(SIGMA)
    for norm in (2, math.inf):
        for p_a in (0.5 + 1e-9, 0.9, 1 - 1e-12):
            r = ex.exact_radius(g, p_a, None, norm, dim, return_details=True)
            assert_close(r.radius, *gaussian_form(p_a, None, norm, dim), r.engines)
    for case, norm in [(("uniform", {}), 1), (("uniform", {}), math.inf), (("laplace", {}), 2),
                       (("cauchy", {}), 2)]:
        r = ex.exact_radius(make(case), 0.9, None, norm, dim)
        assert 0 < r < math.inf


# ----------------------------------------------------------------------------------------------
# The full sweep
