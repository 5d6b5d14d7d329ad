"""Exact mode (unicr_fast.radius.exact): the deterministic law of L along k-sparse directions.

What is checked, and against what:
* every closed form of docs/theory.md §8 to 1e-6 relative (Gaussian l2 / l1 / l_inf, binary and
  multiclass, d in {1, 10, 784, 3072, 150528}; Laplace l1 binary; uniform l1 binary down to
  p_a = 0.55; the axis closed form of every log-concave family, binary and multiclass);
* the two general engines against each other ("fourier": characteristic function by x-quadrature;
  "lattice": level-set cell masses, tilt-consistent lattice, FFT, Richardson) and against an
  independent k = 2 computation (conditioning on the first coordinate, x-space quadrature of the
  exact 1-D distribution function), to 5e-8 in the margin;
* the symmetry / tilt identities the margins rely on (P_X(L = -t) = e^t P_X(L = t), E_X[e^L] = 1);
* agreement with the Monte-Carlo engine where the worst direction is k-sparse (module doc of
  that test for the DKW tolerance);
* bad inputs raise ValueError / TypeError naming the argument.
"""
import math

import numpy as np
import pytest
import torch
from scipy import optimize

import unicr_fast as uc
from unicr_fast.radius import exact as ex
from unicr_fast.radius import closed_forms as ref
from unicr_fast._validation import check_norm

SIGMA = 0.5
REL = 1e-6            # closed forms: required relative accuracy of a radius


def rel_err(a, b):
    return abs(a / b - 1.0)


# ----------------------------------------------------------------------------------------------
# Closed forms (docs/theory.md §8)


GAUSS_CASES = [(dim, norm, p_a, p_b)
               for dim in (1, 10, 784, 3072, 150528) for norm in (2, 1, math.inf)
               for p_a, p_b in [(0.9, None), (0.8, 0.1)]
               + ([(0.55, None), (0.999, None)] if dim in (1, 10, 150528) else [])]


@pytest.mark.parametrize("dim, norm, p_a, p_b", GAUSS_CASES)
def test_gaussian_closed_form(dim, norm, p_a, p_b):
    g = uc.noise.Gaussian(SIGMA)
    r = ex.exact_radius(g, p_a, p_b, norm, dim)
    assert rel_err(r, ref.gaussian_radius(SIGMA, p_a, p_b, norm, dim)) < REL


@pytest.mark.parametrize("dim", [1, 10, 3072])
@pytest.mark.parametrize("p_a", [0.55, 0.9, 0.999])
def test_laplace_l1_closed_form(dim, p_a):
    r = ex.exact_radius(uc.noise.Laplace(SIGMA), p_a, None, 1, dim)
    assert rel_err(r, ref.laplace_l1_binary(SIGMA, p_a)) < REL


@pytest.mark.parametrize("dim", [1, 10, 150528])
@pytest.mark.parametrize("p_a", [0.55, 0.6, 0.9, 0.999])
def test_uniform_l1_closed_form(dim, p_a):
    r = ex.exact_radius(uc.noise.Uniform(SIGMA), p_a, None, 1, dim)
    assert rel_err(r, ref.uniform_l1_binary(SIGMA, p_a)) < REL


AXIS_FAMILIES = [uc.noise.HyperbolicSecant(SIGMA), uc.noise.GeneralNormal(SIGMA, beta=1.5),
                 uc.noise.GeneralNormal(SIGMA, beta=3.0), uc.noise.Laplace(SIGMA),
                 uc.noise.Gaussian(SIGMA), uc.noise.Uniform(SIGMA)]


@pytest.mark.parametrize("noise", AXIS_FAMILIES, ids=lambda n: repr(n))
@pytest.mark.parametrize("p_a, p_b", [(0.55, None), (0.9, None), (0.999, None), (0.8, 0.1),
                                      (0.6, 0.35), (0.99, 0.001)])
def test_axis_closed_form(noise, p_a, p_b):
    lam = ex.exact_lambda(noise, 1, 1, p_a, p_b)
    assert rel_err(lam, ref.axis_lambda(noise, p_a, p_b)) < REL


def test_axis_lattice_engine_agrees_with_closed_form():
    """The lattice engine at k = 1 (a discretised law, not the direct one) stays within 1e-6."""
    for noise in AXIS_FAMILIES[:3]:
        lam = ex.exact_lambda(noise, 1, 1, 0.9, 0.05, engine="lattice")
        assert rel_err(lam, ref.axis_lambda(noise, 0.9, 0.05)) < REL


def test_uncertifiable_and_infinite():
    g = uc.noise.Gaussian(SIGMA)
    assert ex.exact_radius(g, 0.5, None, 2, 10) == 0.0
    assert ex.exact_radius(g, 0.4, 0.45, 2, 10) == 0.0
    assert ex.exact_lambda(g, 3, 2, 0.3, 0.3) == 0.0
    # full support: the margin never reaches 0 when p_a = 1 or p_b = 0
    assert ex.exact_lambda(g, 1, 2, 1.0) == math.inf
    assert ex.exact_lambda(uc.noise.Laplace(SIGMA), 4, 1, 0.8, 0.0) == math.inf
    # bounded support: finite (uniform, p_a = 1: R = 2 l (1 - 1/2) = l)
    u = uc.noise.Uniform(SIGMA)
    assert rel_err(ex.exact_lambda(u, 1, 1, 1.0), ref.uniform_l1_binary(SIGMA, 1.0)) < REL


# ----------------------------------------------------------------------------------------------
# Engines against each other and against an independent k = 2 computation


def _margins(noise, k, lam, p, p_a, p_b):
    fam = ex._family(noise)
    c = ex._shift(lam, k, p)
    term = ex._Term(noise, c, fam)
    mf = ex._margin_of_law(ex._fourier_law(term, k), p_a, p_b)
    ml, err = ex._margin_at(noise, fam, k, c, p_a, p_b, ex._lattice_plan(term, k, ex._LATTICE_TOL))
    return mf, ml, err


@pytest.mark.parametrize("noise, k", [
    (uc.noise.HyperbolicSecant(SIGMA), 64), (uc.noise.GeneralNormal(SIGMA, beta=1.5), 16),
    (uc.noise.Cauchy(SIGMA), 64), (uc.noise.Pareto(SIGMA, a=3.0), 64),
    (uc.noise.LaplaceGaussianMixture(SIGMA, weight=0.3), 64),
    (uc.noise.ExponentialMixture(SIGMA, weight=0.4, beta1=1.0, beta2=3.0), 64),
    (uc.noise.GeneralNormal(SIGMA, beta=0.7), 1000), (uc.noise.Laplace(SIGMA), 150528)],
    ids=lambda v: repr(v) if not isinstance(v, int) else f"k{v}")
def test_fourier_and_lattice_engines_agree(noise, k):
    """Two computations sharing nothing but the noise: margins agree to 5e-8."""
    for p_a, p_b in [(0.9, None), (0.8, 0.1)]:
        mf, ml, err = _margins(noise, k, 0.8, 2, p_a, p_b)
        assert abs(mf - ml) < 5e-8, (mf, ml, err)


GLX, GLW = np.polynomial.legendre.leggauss(30)


class _TwoTermLaw(ex._Law):
    """Law of l(x1) + l(x2) by conditioning on x1: P(L <= t) = E[P(l <= t - l(x1))], with the exact
    1-D distribution function (atoms + level sets) and x1 integrated by Gauss-Legendre on panels
    split and graded where t - l(x1) crosses an atom or an end of the continuous range."""

    def __init__(self, term):
        self.t, self.p_ninf = term, 1 - term.q1 ** 2
        v, m = term.atoms_v, term.atoms_m
        self.av, self.am = (v[:, None] + v[None, :]).ravel(), (m[:, None] * m[None, :]).ravel()

    def _F1(self, s, strict):
        T = self.t
        at = np.array([T.atoms_m[(T.atoms_v < x) if strict else (T.atoms_v <= x)].sum() for x in s])
        return T.p_ninf + at + T.G(s)

    def cdf(self, t, strict=False):
        T = self.t
        out = T.p_ninf
        for v, m in zip(T.atoms_v, T.atoms_m):
            out += m * self._F1(np.array([t - v]), strict)[0]
        lo_c, hi_c = T.cont_range()
        br = set()
        for xs, ls, sgn, _, _ in T.pieces():
            br.update((xs[0], xs[-1]))
            for b in list(T.atoms_v) + [lo_c, hi_c]:
                if min(ls[0], ls[-1]) < t - b < max(ls[0], ls[-1]):
                    br.add(float(T._invert(xs, ls, sgn, np.array([t - b]))[0]))
        br = np.array(sorted(br))
        edges = set(br.tolist())
        for a, b in zip(br[:-1], br[1:]):
            edges.update(np.linspace(a, b, 9).tolist())
            d = 0.5 * (b - a)
            while d > 1e-15 * max(1.0, abs(a), abs(b)):
                d *= 0.3
                edges.update((a + d, b - d))
        e = np.array(sorted(edges))
        A, B = e[:-1], e[1:]
        x = (((A + B) / 2)[:, None] + ((B - A) / 2)[:, None] * GLX[None, :]).ravel()
        w = (((B - A) / 2)[:, None] * GLW[None, :]).ravel()
        ph = np.exp(ex._log_pdf(T.noise, x))
        return out + float((w * ph * self._F1(t - T.l(x), strict)).sum())

    def atom(self, t):
        return float(self.am[self.av == t].sum())

    def quantile(self, p):
        for v in np.unique(self.av):
            if self.cdf(v, True) < p <= self.cdf(v):
                return float(v)
        lo_c, hi_c = self.t.cont_range()
        ends = np.concatenate([[lo_c, hi_c], self.t.atoms_v])
        return optimize.brentq(lambda s: self.cdf(s) - p, 2 * ends.min(), 2 * ends.max(),
                               xtol=1e-14, rtol=1e-15)


@pytest.mark.parametrize("noise, lam, p", [
    (uc.noise.Laplace(SIGMA), 0.7, 1), (uc.noise.Laplace(SIGMA), 0.9, 2),
    (uc.noise.HyperbolicSecant(SIGMA), 0.5, 2), (uc.noise.GeneralNormal(SIGMA, beta=1.5), 0.7, 1)],
    ids=["laplace-l1", "laplace-l2", "hsecant", "gn1.5"])
def test_lattice_engine_against_independent_k2(noise, lam, p):
    fam = ex._family(noise)
    c = ex._shift(lam, 2, p)
    term = ex._Term(noise, c, fam)
    law = _TwoTermLaw(term)
    m_ref = ex._margin_of_law(law, 0.9, None)
    m_lat, err = ex._margin_at(noise, fam, 2, c, 0.9, None, ex._lattice_plan(term, 2, ex._LATTICE_TOL))
    assert abs(m_lat - m_ref) < 5e-8, (m_lat, m_ref, err)
    assert abs(m_lat - m_ref) < max(err, 1e-9)      # the reported estimate bounds the error


def test_direct_and_lattice_agree_for_non_log_concave():
    """k = 1 for noise whose log-ratio is not monotone (level sets of several pieces)."""
    for noise in [uc.noise.Cauchy(SIGMA), uc.noise.Pareto(SIGMA, a=3.0),
                  uc.noise.GeneralNormal(SIGMA, beta=0.7)]:
        for p_a, p_b in [(0.9, None), (0.75, 0.2)]:
            md = ex.exact_margin(noise, 0.6, 1, 2, p_a, p_b, engine="direct")
            ml = ex.exact_margin(noise, 0.6, 1, 2, p_a, p_b, engine="lattice")
            assert abs(md - ml) < 5e-8


def test_tilt_identities():
    """Lattice laws satisfy P_X(L = -t) = e^t P_X(L = t) and E_X[e^L] = 1 (to rounding); the exact
    Laplace atoms do too."""
    noise = uc.noise.Laplace(SIGMA)
    fam = ex._family(noise)
    for k, c in [(1, 0.3), (5, 0.2), (200, 0.05)]:
        term = ex._Term(noise, c, fam)
        h = ex._lattice_spec(term, k).kappa * c
        law = ex._lattice_law(term, k, h)
        s = law.s0 + np.arange(len(law.m))
        big = law.m > 1e-12
        mirror = np.array([law.atom(-v) for v in law.v[big]])
        np.testing.assert_allclose(mirror, np.exp(s[big] * h) * law.m[big], rtol=1e-6, atol=1e-15)
        assert abs(float(law.m.sum()) - 1.0) < 1e-12
        if k == 1:   # E_X[e^Z] = 1 for the discretised term (e^t would amplify the FFT's
            # rounding floor in the far tail of a long sum, so only the term is checked)
            assert abs(float(np.sum(np.exp(s * h) * law.m)) - 1.0) < 1e-12
    a = 0.3 / fam.b
    term = ex._Term(noise, 0.3, fam)
    (m_lo, m_hi) = term.atoms_m
    assert term.atoms_v.tolist() == [-a, a]
    assert abs(m_lo - math.exp(a) * m_hi) < 1e-15


def test_numpy_log_pdf_and_cdf_match_the_noise_classes():
    x = np.linspace(-20, 20, 2001)
    for name, kw in [("gaussian", {}), ("laplace", {}), ("hyperbolic_secant", {}),
                     ("general_normal", {"beta": 1.5}), ("uniform", {}), ("cauchy", {}),
                     ("pareto", {"a": 3.0}), ("laplace_gaussian_mixture", {"weight": 0.3}),
                     ("exponential_mixture", {"weight": 0.4, "beta1": 1.0, "beta2": 3.0})]:
        noise = uc.noise.make(name, sigma=0.7, **kw)
        a, b = ex._log_pdf(noise, x), noise.log_pdf(torch.from_numpy(x)).numpy()
        fin = np.isfinite(b)
        assert (np.isfinite(a) == fin).all()
        np.testing.assert_allclose(a[fin], b[fin], rtol=1e-13, atol=1e-13)
        F = ex._cdf(noise, ex._family(noise), x)
        np.testing.assert_allclose(F, noise.cdf(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-14)
        for c in (1e-3, 0.3, 2.0):   # the cancellation-free log-ratios = the plain difference
            lr = ex._log_ratio(noise, ex._family(noise), x, c)
            b_shift = noise.log_pdf(torch.from_numpy(x - c)).numpy()
            ok = np.isfinite(b) & np.isfinite(b_shift)
            ld = np.where(ok, b_shift - np.where(ok, b, 0.0), 0.0)
            np.testing.assert_allclose(lr[ok], ld[ok], rtol=0,
                                       atol=1e-12 * (1 + np.abs(b[ok]).max()))


def test_custom_noise_matches_builtin():
    """A Custom noise (numeric CDF, generic log-ratio) gives the Gaussian answers."""
    s = SIGMA
    cust = uc.noise.Custom(lambda x: -0.5 * (x / s) ** 2 - math.log(s * math.sqrt(2 * math.pi)),
                           lambda shape, g, d: torch.randn(shape, generator=g, dtype=torch.float64) * s,
                           sigma=s)
    for k in (1, 3):
        assert rel_err(ex.exact_lambda(cust, k, 2, 0.9), ref.gaussian_radius(s, 0.9, None, 2, 1)) < REL


def test_array_p_a():
    g = uc.noise.Gaussian(SIGMA)
    r = ex.exact_radius(g, np.array([0.6, 0.9, 0.4]), None, 2, 10)
    assert r.shape == (3,) and r[2] == 0.0
    for got, p_a in zip(r[:2], (0.6, 0.9)):
        assert rel_err(got, ref.gaussian_radius(SIGMA, p_a, None, 2, 10)) < REL


def test_explicit_ks_and_grid():
    g = uc.noise.Laplace(SIGMA)
    ks = [1, 3, 8]
    r = ex.exact_radius(g, 0.9, None, math.inf, 8, ks=ks, return_details=True)
    lam = [ex.exact_lambda(g, k, math.inf, 0.9) for k in ks]
    assert r.k == 8 and rel_err(r.radius, min(lam)) < 1e-8
    assert set(r.lambdas) | set(r.lower_bounds) == set(ks)
    grid = ex.k_grid(150528)
    assert grid[0] == 1 and grid[-1] == 150528 and all(b > a for a, b in zip(grid, grid[1:]))
    assert ex.k_grid(5) == [1, 2, 3, 4, 5]


# ----------------------------------------------------------------------------------------------
# Agreement with the Monte-Carlo engine


N_MC = 200_000
BETA = 1e-3


def dkw_tolerance(noise, k, p, p_a, p_b, lam):
    """How far the MC radius may be from lam = lambda*(u_k) (u_k: the worst direction).

    The MC margin reads empirical CDFs of L under X and under Y along u_k. DKW (Massart) bounds
    each by sup|F_N - F| <= e = sqrt(log(2 B / beta) / (2 N)) with probability 1 - beta / B; we
    apply it to B = 4 CDFs (X and Y sides, at the two ends of the interval below) with
    beta = 1e-3 for the whole test. On that event each term of docs/theory.md §3 moves by at most
    e (P_Y read directly) + e^t e (the quantile or P_X(L < t) off by e, times the tilt e^t at the
    threshold), so the binary margin moves by <= d_A = e (1 + e^t_A), the multiclass one by
    <= d_A + d_B. Linearising m around lam, the MC root is within 1.5 * d / |m'(lam)| (1.5: slack
    for the curvature over that range), plus the engine's rtol (1e-4, relative)."""
    e = math.sqrt(math.log(2 * 4 / BETA) / (2 * N_MC))
    fam = ex._family(noise)
    c = ex._shift(lam, k, p)
    plan = ex._plan(noise, fam, k, c)
    term = ex._Term(noise, c, fam)
    law = (ex._DirectLaw(term) if plan.engine == "direct" else
           ex._lattice_law(term, k, plan.kappa * c) if plan.engine == "lattice" else
           ex._AtomLaw(term.atoms_v * k, term.atoms_m ** k, 1 - term.q1 ** k)
           if plan.engine == "atoms" else ex._fourier_law(term, k))
    d = e * (1 + math.exp(law.quantile(p_a)))
    if p_b is not None:
        d += e * (1 + math.exp(law.quantile(1 - p_b)))
    eps = 1e-4 * lam
    slope = (ex.exact_margin(noise, lam + eps, k, p, p_a, p_b)
             - ex.exact_margin(noise, lam - eps, k, p, p_a, p_b)) / (2 * eps)
    return 1.5 * d / abs(slope) + 1e-4 * lam


@pytest.mark.parametrize("noise, norm, dim, p_a, p_b", [
    (uc.noise.Gaussian(SIGMA), 2, 10, 0.9, None),
    (uc.noise.Gaussian(SIGMA), math.inf, 16, 0.8, 0.1),
    (uc.noise.Laplace(SIGMA), 1, 10, 0.9, None),
    (uc.noise.Uniform(SIGMA), 1, 10, 0.8, None),
    (uc.noise.Laplace(SIGMA), math.inf, 8, 0.9, 0.05),
    (uc.noise.HyperbolicSecant(SIGMA), math.inf, 16, 0.9, None),
    (uc.noise.Cauchy(SIGMA), math.inf, 8, 0.9, None)],
    ids=["gauss-l2", "gauss-linf-mc", "laplace-l1", "uniform-l1", "laplace-linf-mc",
         "hsecant-linf", "cauchy-linf"])
def test_agrees_with_monte_carlo(noise, norm, dim, p_a, p_b):
    r = ex.exact_radius(noise, p_a, p_b, norm, dim, return_details=True)
    mc = uc.certified_radius(noise, p_a, p_b=p_b, norm=norm, dim=dim, num_samples=N_MC, seed=0,
                             device="cpu", particles=0)
    tol = dkw_tolerance(noise, r.k, check_norm(norm), p_a, p_b, r.radius)
    assert abs(mc - r.radius) <= tol, (mc, r.radius, tol)


# ----------------------------------------------------------------------------------------------
# Bad inputs


def test_bad_inputs_name_the_argument():
    g = uc.noise.Gaussian(SIGMA)
    cases = [
        (lambda: ex.exact_radius(g, float("nan"), None, 2, 10), ValueError, "p_a"),
        (lambda: ex.exact_radius(g, 0.0, None, 2, 10), ValueError, "p_a"),
        (lambda: ex.exact_radius(g, 1.5, None, 2, 10), ValueError, "p_a"),
        (lambda: ex.exact_radius(g, 0.9, -0.1, 2, 10), ValueError, "p_b"),
        (lambda: ex.exact_radius(g, 0.9, None, 0, 10), ValueError, "norm"),
        (lambda: ex.exact_radius(g, 0.9, None, -1, 10), ValueError, "norm"),
        (lambda: ex.exact_radius(g, 0.9, None, "l7", 10), ValueError, "norm"),
        (lambda: ex.exact_radius(g, 0.9, None, 2, 0), ValueError, "dim"),
        (lambda: ex.exact_radius(g, 0.9, None, 2, None), TypeError, "dim"),
        (lambda: ex.exact_radius(g, 0.9, None, 2, 2.5), TypeError, "dim"),
        (lambda: ex.exact_radius(g, 0.9, None, 2, 10, ks=[0, 3]), ValueError, "ks"),
        (lambda: ex.exact_radius(g, 0.9, None, 2, 10, ks=[3, 11]), ValueError, "ks"),
        (lambda: ex.exact_radius(g, 0.9, None, 2, 10, ks=[]), ValueError, "ks"),
        (lambda: ex.exact_radius(g, 0.9, None, 2, 10, rtol=0), ValueError, "rtol"),
        (lambda: ex.exact_radius("gaussian", 0.9, None, 2, 10), TypeError, "noise"),
        (lambda: ex.exact_lambda(g, 0, 2, 0.9), ValueError, "k"),
        (lambda: ex.exact_lambda(g, 2, 2, 0.9, rtol=0.5), ValueError, "rtol"),
        (lambda: ex.exact_lambda(g, 2, 2, 0.9, engine="magic"), ValueError, "engine"),
        (lambda: ex.exact_margin(g, -1.0, 2, 2, 0.9), ValueError, "lam"),
        (lambda: ex.exact_margin(g, float("nan"), 2, 2, 0.9), ValueError, "lam"),
        (lambda: ex.exact_margin(g, 0.5, 2, 2, 0.9, 1.2), ValueError, "p_b"),
        (lambda: ex.exact_margin(g, 0.5, 2, 2, 0.9, engine="direct"), ValueError, "engine"),
    ]
    for call, exc, name in cases:
        with pytest.raises(exc, match=name):
            call()
