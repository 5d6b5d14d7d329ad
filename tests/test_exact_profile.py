"""Exact laws along block profiles and the swarm over them (unicr_fast.radius.exact.profile).

Block profiles are directions with several magnitudes. Their laws are checked against the
Gaussian closed form (L is normal along any direction), against the single-block engine when the
blocks have one magnitude, and against an independent Monte-Carlo estimate of the margin; the
swarm against a search it must improve on; and the whole search against the directions the
Monte-Carlo engine picks (issue #14's evidence: evaluated exactly, such a direction is never
below the exact search by more than 1e-6 relative).
"""
import math

import numpy as np
import pytest
import torch
from scipy import special

import unicr_fast as uc
from unicr_fast.radius import exact as ex
from unicr_fast.radius.exact import curve as xc
from unicr_fast.radius.exact import profile as xp

SIGMA = 0.5
#: lambda* is solved to rtol 1e-9; the Fourier engine's probabilities are good to ~1e-15, so a
#: closed form holds to ~1e-9 relative away from the ends of p_a (exact.py, "Ends of p_a").
REL = 1e-8
#: The lattice engine resolves lambda to ~1e-7 relative (exact.py, "lattice"); profiles whose
#: blocks' atoms cannot share one lattice carry the O(h) split of the others' atoms on top.
LATTICE_REL = 2e-7
#: Issue #14: a direction the Monte-Carlo engine picks, evaluated exactly, is never below the
#: exact search's radius by more than this.
EVIDENCE_REL = 1e-6


@pytest.fixture(autouse=True)
def fresh_memo():
    """The swarm's results are memoised per configuration: each test starts without them."""
    xp._MEMO.clear()
    yield
    xp._MEMO.clear()


def gaussian_lambda(profile, p_a, p_b=None):
    """Along any direction u, L is normal with variance lambda^2 ||u||_2^2 / sigma^2."""
    l2 = math.sqrt(sum(k * m * m for k, m in zip(profile.counts, profile.mags)))
    za = special.ndtri(p_a)
    z = za if p_b is None else 0.5 * (za - special.ndtri(p_b))
    return SIGMA * z / l2


# -- profiles ---------------------------------------------------------------------------------

def test_profile_from_levels_and_directions():
    prof = xp.Profile.from_levels([1.0, 1.0, 0.5, 0.0, 0.0], 16, 2)     # blocks 1, 1, 2, 4, 8
    assert prof.counts == (2, 2)
    u = prof.dense(16)
    assert u.shape == (16,) and abs(np.linalg.norm(u) - 1) < 1e-15
    assert xp.Profile.from_direction(-3 * u[::-1], 2) == prof           # signs, order, scale
    assert xp.Profile.from_levels([0.7, 0.7, 0.7, 0, 0], 16, 1).sparse_k == 4
    inf = xp.Profile.from_levels([0.2, 0.1, 0.1, 0, 0], 16, math.inf)
    assert inf.mags[0] == 1.0 and inf.counts == (1, 3)
    with pytest.raises(ValueError):
        xp.Profile.from_levels([0, 0, 0, 0, 0], 16, 2)
    with pytest.raises(ValueError):
        xp.Profile.from_levels([1, 0], 16, 2)                            # wrong block count
    with pytest.raises(ValueError):
        xp.Profile.from_direction(np.zeros(4), 2)


@pytest.mark.parametrize("norm", [1, 2, math.inf])
@pytest.mark.parametrize("levels", [[1.0, 0.6, 0.3, 0.1, 0.05], [1.0, 1.0, 0.2, 0.2, 0.0],
                                    [0.9, 0.1, 0.1, 0.1, 0.1]])
def test_gaussian_closed_form_along_mixed_profiles(norm, levels):
    noise = uc.noise.Gaussian(SIGMA)
    prof = xp.Profile.from_levels(levels, 16, norm)
    assert prof.sparse_k is None                     # several parts: the product of CFs
    for p_a, p_b in ((0.6, None), (0.99, None), (0.99999, None), (0.9, 0.05)):
        got = xp.profile_lambda(noise, prof, norm, p_a, p_b)
        want = gaussian_lambda(prof, p_a, p_b)
        assert abs(got / want - 1) < REL, (p_a, p_b, got, want)


@pytest.mark.parametrize("noise", [uc.noise.Laplace(SIGMA), uc.noise.Cauchy(SIGMA),
                                   uc.noise.Uniform(SIGMA), uc.noise.HyperbolicSecant(SIGMA),
                                   uc.noise.GeneralNormal(SIGMA, 0.5)],
                         ids=lambda n: n.name + str(getattr(n, "beta", "")))
@pytest.mark.parametrize("k", [4, 64])
def test_two_blocks_of_one_magnitude_equal_one_block(noise, k):
    """Two blocks at magnitudes 1e-13 apart go through the multi-part engines; the law is (to
    that shift) the one of a single block of k, which the k-sparse engine computes."""
    m = k ** -0.5
    split = xp.Profile((k // 2, k - k // 2), (m * (1 + 1e-13), m))
    want = ex.exact_lambda(noise, k, 2, 0.99)
    got = xp.profile_lambda(noise, split, 2, 0.99)
    assert abs(got / want - 1) < LATTICE_REL, (got, want)


def test_mixed_profile_margin_against_monte_carlo():
    """Hyperbolic secant noise (a continuous L), d = 3, a profile with three magnitudes: the
    exact margin against an estimate from 400,000 draws of X and of Y. The estimate's standard
    deviation: P_Y(L < t_hat) with t_hat the p_a-quantile of the X draws moves by e^t times the
    quantile's binomial error (dP_Y = e^L dP_X), plus the binomial error of the Y draws."""
    noise = uc.noise.HyperbolicSecant(SIGMA)
    prof = xp.Profile((1, 1, 1), (0.8, 0.5, 1 / 3))
    u = prof.dense(3) / np.linalg.norm(prof.dense(3))
    prof = xp.Profile.from_direction(u, 2)
    p_a, lam, n = 0.9, 0.6, 400_000
    exact = xp.profile_margin(noise, prof, lam, 2, p_a)
    gen = torch.Generator().manual_seed(7)
    delta = torch.tensor(lam * prof.dense(3), dtype=torch.float64)

    def log_ratio(w):
        return (noise.log_pdf(w - delta) - noise.log_pdf(w)).sum(-1)

    x = noise.sample((n, 3), gen, dtype=torch.float64)
    y = noise.sample((n, 3), gen, dtype=torch.float64) + delta
    t = torch.quantile(log_ratio(x), p_a).item()
    beta = (log_ratio(y) < t).double().mean().item()
    sd = math.sqrt(math.exp(2 * t) * p_a * (1 - p_a) / n + beta * (1 - beta) / n)
    assert abs((beta - 0.5) - exact) < 5 * sd, (beta - 0.5, exact, sd)


# -- search -----------------------------------------------------------------------------------

def test_swarm_improves_on_a_restricted_search():
    """Laplace l2, d = 16, p_a = 0.99: told only the axis (k = 1), the swarm must find a profile
    whose lambda* is smaller (the k-sparse optimum there is the diagonal)."""
    noise = uc.noise.Laplace(SIGMA)
    axis = ex.exact_lambda(noise, 1, 2, 0.99)
    best = ex.exact_radius(noise, 0.99, None, 2, 16)
    assert best < axis * 0.9
    prof = xp.best_profile(noise, 2, 16, 0.99, None, axis, 1)
    assert prof is not None
    assert xp.profile_lambda(noise, prof, 2, 0.99) < axis * (1 - xp._WIN)


def test_no_swarm_where_a_sparse_direction_is_the_worst():
    """Gaussian (any norm), log-concave noise in l1 and p < 1, any noise in l_inf: skipped, even
    when told a lambda that other directions beat."""
    cases = [(uc.noise.Gaussian(SIGMA), 2), (uc.noise.Laplace(SIGMA), 1),
             (uc.noise.HyperbolicSecant(SIGMA), 0.5), (uc.noise.Cauchy(SIGMA), math.inf)]
    for noise, norm in cases:
        assert xp.sparse_is_worst(noise, norm, 16)
        assert xp.best_profile(noise, norm, 16, 0.99, None, 100.0, 1) is None
    assert not xp.sparse_is_worst(uc.noise.Cauchy(SIGMA), 1, 16)         # heavy tails: k moves
    assert not xp.sparse_is_worst(uc.noise.Laplace(SIGMA), 2, 16)


def test_search_is_memoised_per_band(monkeypatch):
    noise, calls = uc.noise.HyperbolicSecant(SIGMA), []
    swarm = xp._swarm

    def counted(*args, **kwargs):
        calls.append(args[3])
        return swarm(*args, **kwargs)

    monkeypatch.setattr(xp, "_swarm", counted)
    first = xp.search_radius(noise, 0.99, None, 2, 8)
    again = xp.search_radius(noise, 0.991, None, 2, 8)     # same band (2): no new swarm
    other = xp.search_radius(noise, 0.9999, None, 2, 8)    # band 4
    assert calls == [0.99, 0.9999]
    assert first.radius < again.radius < other.radius


def test_curve_sweeps_a_profile_direction(monkeypatch):
    """Where a profile is a reference's direction, the curve sweeps it: with Gaussian noise in
    l2 a mixed profile has the closed-form lambda* of every direction."""
    noise = uc.noise.Gaussian(SIGMA)
    prof = xp.Profile.from_levels([1.0, 0.7, 0.4, 0.2, 0.1], 16, 2)
    search = xp.search_radius

    def with_profile(*args, **kwargs):
        out = search(*args, **kwargs)
        out.profile = prof
        out.radius = xp.profile_lambda(noise, prof, 2, out.p_a, out.p_b)
        return out

    monkeypatch.setattr(xc, "search_radius", with_profile)
    p_a = np.linspace(0.55, 0.999, 40)
    out = xc.exact_radius_curve(noise, p_a, None, 2, 16, return_details=True)
    assert all(o.profile == prof for o in out)
    want = SIGMA * special.ndtri(p_a)
    got = np.array([o.radius for o in out])
    assert np.max(np.abs(got / want - 1)) < REL


# -- evidence: the Monte-Carlo engine's directions, evaluated exactly ---------------------------

FAMILIES = [uc.noise.Laplace(SIGMA), uc.noise.HyperbolicSecant(SIGMA), uc.noise.Cauchy(SIGMA),
            uc.noise.GeneralNormal(SIGMA, 0.5), uc.noise.GeneralNormal(SIGMA, 3.0),
            uc.noise.Uniform(SIGMA), uc.noise.Pareto(SIGMA), uc.noise.LaplaceGaussianMixture(SIGMA)]


def evidence(noise, norm, dim, p_a):
    mc = uc.certified_radius(noise, p_a, None, norm, dim, method="mc", num_samples=4000,
                             search_samples=2000, return_details=True)
    prof = xp.Profile.from_direction(mc.direction, norm)
    along = xp.profile_lambda(noise, prof, norm, p_a)
    searched = xp.search_radius(noise, p_a, None, norm, dim).radius
    assert along >= searched * (1 - EVIDENCE_REL), (prof, along, searched)


@pytest.mark.parametrize("norm", [1, 2, math.inf])
@pytest.mark.parametrize("noise", FAMILIES[:3], ids=lambda n: n.name)
def test_monte_carlo_directions_are_not_better(noise, norm):
    evidence(noise, norm, 8, 0.99)


@pytest.mark.slow
@pytest.mark.parametrize("norm", [1, 2, math.inf])
@pytest.mark.parametrize("noise", FAMILIES, ids=lambda n: n.name + str(getattr(n, "beta", "")))
def test_monte_carlo_directions_are_not_better_grid(noise, norm):
    """Every family x norm at d = 16, p_a from 0.55 to 0.99999 (d = 4 and p_a = 0.9 as well
    passed when this was written; they are left out for the suite's time)."""
    for p_a in (0.55, 0.999, 0.99999):
        evidence(noise, norm, 16, p_a)
