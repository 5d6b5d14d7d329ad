"""certified_radius through its DEFAULT path: no ``method`` argument, i.e. ``method="auto"``, which
resolves to the exact engine for the catalogue's product noise (unicr_fast.radius.resolve_method)
and to Monte Carlo for radial and Custom noise.

tests/test_exact.py and tests/test_exact_edges.py test unicr_fast.radius.exact directly; this file tests
what a user gets from the public entry point without choosing an engine:

1. every closed form of unicr_fast.radius.closed_forms / docs/theory.md §8 (Gaussian in l_0.5, l1, l2,
   l_inf, binary and multiclass; Laplace and uniform l1 binary; the axis form of every
   log-concave family, which is the l_p radius for p <= 1, binary and multiclass) to 1e-6
   relative, d from 1 to 150,528, p_a from 0.51 to 1 - 1e-9; the details say the exact engine
   ran; array p_a gives the scalar numbers;
2. monotonicity: non-decreasing in p_a (binary) and non-increasing in p_b (multiclass) for every
   catalogue family x {l1, l2, l_inf}, with a tolerance taken from the engine's stated error;
   multiclass with p_b = 1 - p_a equals binary (the runner-up set is the complement of S_A);
3. agreement with the Monte-Carlo engine (method="mc") within the bound tests/test_mc_accuracy.py
   derives for N = 20,000;
4. bad inputs on the default path.

Heavier sweeps (the large dims for the axis families, every family in the monotonicity checks)
are marked ``slow``; the rest runs in well under a minute on two cores.
"""
import math

import numpy as np
import pytest
import torch

import unicr_fast as uc
from unicr_fast.radius import exact as ex
from unicr_fast.radius import closed_forms as ref

SIGMA = 0.5
#: Closed forms: required relative accuracy. The exact engine's module doc ("Ends of p_a") states
#: that the closed forms hold to 1e-6 from p_a ~ 1/2 + 1e-9 to ~ 1 - 1e-10, the range used here.
REL = 1e-6
#: Array p_a against scalar calls. A scalar p_a runs unicr_fast.radius.exact.exact_radius; an array
#: runs unicr_fast.radius.exact.curve (one lambda sweep per direction). Both solve the same lambda* to
#: the engine's rtol, 1e-9 relative, where the law is computed to rounding ("direct", "fourier",
#: "atoms"); where the lattice engine computes it, each is accurate to ~1e-7 relative (exact.py,
#: "lattice"; exact_curve._LATTICE_RTOL), so two of them agree to 2e-7.
SAME = 1e-9
SAME_LATTICE = 2e-7


def same_tol(*details) -> float:
    return SAME_LATTICE if any("lattice" in d.engine for d in details) else SAME

P_A = (0.51, 0.75, 0.9, 0.999, 0.99999, 1 - 1e-9)
SMALL_DIMS = (1, 2, 7)
LARGE_DIMS = (3072, 150528)
# Each (noise, norm, dim) at a large dim costs ~0.2-0.6 s per p_a (the k-grid scan), so the fast
# run takes the two ends of P_A there and the slow run the middle.
P_A_LARGE_FAST = (0.51, 1 - 1e-9)
P_A_LARGE_SLOW = tuple(p for p in P_A if p not in P_A_LARGE_FAST)

FAMILIES = [("gaussian", {}), ("laplace", {}), ("hyperbolic_secant", {}),
            ("general_normal", {"beta": 0.5}), ("general_normal", {"beta": 3.0}), ("uniform", {}),
            ("cauchy", {}), ("pareto", {"a": 3.0}), ("laplace_gaussian_mixture", {"weight": 0.5}),
            ("exponential_mixture", {"weight": 0.5, "beta1": 1.0, "beta2": 2.0})]
#: Families whose exact radii take ~0.1 s at d = 16 (the others take ~0.5-2 s per p_a).
CHEAP = ("gaussian", "laplace", "uniform", "hyperbolic_secant")
NORMS = (1, 2, math.inf)


def fam_id(case):
    name, params = case
    return name + "".join(f"-{k}{v}" for k, v in params.items())


def make(case, sigma=SIGMA):
    name, params = case
    return uc.noise.make(name, sigma=sigma, **params)


def multiclass_p_b(p_a):
    """A runner-up bound that leaves room for other classes: half of what p_a leaves."""
    return 0.5 * (1.0 - p_a)


# ----------------------------------------------------------------------------------------------
# 1. Closed forms through the default path


def closed_form(noise, p_a, p_b, norm, dim):
    """unicr_fast.radius.closed_forms: Gaussian any norm, Laplace / uniform l1 binary; otherwise, for
    log-concave noise and p <= 1, the axis form. docs/theory.md §4: the axis is the worst l1 direction for
    log-concave noise, so R_1 = lambda*(axis); for p < 1, ||delta||_1 <= ||delta||_p, so R_p >= R_1,
    and the axis has ||e_1||_p = ||e_1||_1, so R_p = R_1 as well."""
    want = ref.closed_form_radius(noise, p_a, p_b, norm, dim)
    if want is None and norm <= 1 and ref.is_log_concave(noise):
        want = ref.axis_lambda(noise, p_a, p_b)
    assert want is not None, (noise, norm, p_b)
    return want


def _closed_cases():
    """(noise, norm, dim, multiclass, p_as, slow) for every closed form."""
    out = []
    gauss = uc.noise.Gaussian(SIGMA)
    for dim in SMALL_DIMS + LARGE_DIMS:
        small = dim in SMALL_DIMS
        for norm in (0.5, 1, 2, math.inf):
            for mc in (False, True):
                if small:
                    out.append((gauss, norm, dim, mc, P_A, False))
                else:
                    out.append((gauss, norm, dim, mc, P_A_LARGE_FAST, False))
                    out.append((gauss, norm, dim, mc, P_A_LARGE_SLOW, True))
    # Laplace and uniform l1 binary (their own closed forms), every dim.
    for noise in (uc.noise.Laplace(SIGMA), uc.noise.Uniform(SIGMA)):
        for dim in SMALL_DIMS + LARGE_DIMS:
            if dim in SMALL_DIMS:
                out.append((noise, 1, dim, False, P_A, False))
            else:
                out.append((noise, 1, dim, False, P_A_LARGE_FAST, False))
                out.append((noise, 1, dim, False, P_A_LARGE_SLOW, True))
    # The axis form: every log-concave family in l1 and l_0.5, binary and multiclass (Laplace and
    # uniform l1 binary are above). Large dims: l_0.5 is cheap (the other k are pruned at once),
    # l1 scans the k-grid (~0.5 s per p_a) and is slow.
    for noise in (uc.noise.Laplace(SIGMA), uc.noise.Uniform(SIGMA),
                  uc.noise.HyperbolicSecant(SIGMA), uc.noise.GeneralNormal(SIGMA, beta=1.5),
                  uc.noise.GeneralNormal(SIGMA, beta=3.0)):
        for norm in (1, 0.5):
            for mc in (False, True):
                if norm == 1 and not mc and isinstance(noise, (uc.noise.Laplace, uc.noise.Uniform)):
                    continue
                out.append((noise, norm, 7, mc, P_A, False))
                out.append((noise, norm, 1, mc, P_A, False))
                for dim in LARGE_DIMS:
                    out.append((noise, norm, dim, mc, P_A_LARGE_FAST, norm == 1))
                    out.append((noise, norm, dim, mc, P_A_LARGE_SLOW, True))
    return out


def _param(case):
    noise, norm, dim, mc, p_as, slow = case
    cid = f"{noise!r}-l{norm:g}-d{dim}-{'multi' if mc else 'binary'}-{len(p_as)}pa"
    if slow:
        return pytest.param(noise, norm, dim, mc, p_as, id=cid + "-slow", marks=pytest.mark.slow)
    return pytest.param(noise, norm, dim, mc, p_as, id=cid)


@pytest.mark.parametrize("noise, norm, dim, multiclass, p_as", [_param(c) for c in _closed_cases()])
def test_closed_forms_on_the_default_path(noise, norm, dim, multiclass, p_as):
    if multiclass:
        # p_b is a scalar argument: one call per p_a (with details, which carry the same radius).
        dets = [uc.certified_radius(noise, p_a, multiclass_p_b(p_a), norm, dim, return_details=True)
                for p_a in p_as]
        radii = [d.radius for d in dets]
        p_bs = [multiclass_p_b(p_a) for p_a in p_as]
    else:
        radii = uc.certified_radius(noise, np.array(p_as), None, norm, dim)   # array p_a
        assert isinstance(radii, np.ndarray) and radii.shape == (len(p_as),)
        p_bs = [None] * len(p_as)
        # one scalar call with details: the exact engine ran, and gave the array's number
        dets = [uc.certified_radius(noise, p_as[0], None, norm, dim, return_details=True)]
        assert abs(dets[0].radius - radii[0]) <= SAME * radii[0], (dets[0].radius, radii[0])
    for d in dets:
        assert d.method == "exact", d.method
        assert d.engine in ("atoms", "direct", "fourier", "lattice"), d.engine
    for p_a, p_b, r in zip(p_as, p_bs, radii):
        want = closed_form(noise, p_a, p_b, norm, dim)
        assert 0 < want < math.inf
        assert abs(r - want) <= REL * want, (p_a, p_b, r, want, r / want - 1)


# Array p_a: any shape, lists, uncertifiable entries; the numbers of scalar calls.
ARRAY_CASES = [(("gaussian", {}), 2, 16, [[0.3, 0.51, 0.9], [0.5, 0.999, 1.0]]),
               (("uniform", {}), math.inf, 16, [[0.3, 0.51, 0.9], [0.5, 0.999, 1.0]]),
               (("laplace", {}), 2, 16, [0.2, 0.75, 0.9, 0.99]),      # lattice engine (k = 16)
               (("laplace", {}), 2, 16, [0.6, 0.9, 0.90001, 0.99, 0.999]),   # points between refs
               (("cauchy", {}), 1, 4, [0.6, 0.999])]                  # k = 3 at 0.999 (heavy tail)


@pytest.mark.parametrize("case, norm, dim, p_a", ARRAY_CASES,
                         ids=[f"{fam_id(c[0])}-l{c[1]:g}-{len(np.ravel(c[3]))}pa" for c in ARRAY_CASES])
def test_array_p_a_matches_scalar_calls(case, norm, dim, p_a):
    noise = make(case)
    arr = uc.certified_radius(noise, p_a, None, norm, dim)               # a (nested) list
    dets = uc.certified_radius(noise, np.asarray(p_a), None, norm, dim, return_details=True)
    flat = np.asarray(p_a, dtype=float).reshape(-1)
    assert isinstance(arr, np.ndarray) and arr.shape == np.shape(p_a)
    assert dets.shape == np.shape(p_a) and dets.dtype == object
    for got, det, p in zip(arr.reshape(-1), dets.reshape(-1), flat):
        want_det = uc.certified_radius(noise, float(p), None, norm, dim, return_details=True)
        want = want_det.radius
        assert want == uc.certified_radius(noise, float(p), None, norm, dim)
        assert det.method == "exact" and det.radius == got and det.p_a == p
        if p <= 0.5:
            assert got == want == 0.0
        elif math.isinf(want):
            assert p == 1.0 and got == math.inf and not isinstance(noise, uc.noise.Uniform)
        else:
            tol = same_tol(det, want_det)
            assert want > 0 and abs(got - want) <= tol * want, (p, got, want)


def test_array_p_a_with_one_p_b_matches_scalar_calls():
    """Multiclass: an array of p_a against one p_b (lattice engine: Laplace l2, k = 16)."""
    noise, pb = uc.noise.Laplace(SIGMA), 0.05
    pa = [0.04, 0.75, 0.9]
    multi = uc.certified_radius(noise, pa, pb, 2, 16, return_details=True)
    assert multi[0].radius == 0.0                             # p_a <= p_b
    for got, p in zip(multi[1:], pa[1:]):
        want = uc.certified_radius(noise, p, pb, 2, 16, return_details=True)
        tol = same_tol(got, want)
        assert want.radius > 0 and abs(got.radius - want.radius) <= tol * want.radius, \
            (p, got.radius, want.radius)


def test_p_a_one_on_the_default_path():
    """p_a = 1: inf for full support (the margin never reaches 0), the finite limit l = sigma
    sqrt(3) (uniform, l1: the shift that moves the whole support) for bounded support."""
    assert uc.certified_radius(uc.noise.Gaussian(SIGMA), 1.0, norm=2, dim=10) == math.inf
    r = uc.certified_radius(uc.noise.Uniform(SIGMA), 1.0, norm=1, dim=10)
    assert abs(r - ref.uniform_l1_binary(SIGMA, 1.0)) <= REL * r


def test_sampling_arguments_do_not_change_exact_radii():
    """The exact engine takes no samples: seed, num_samples, sound, beta, dtype, rtol are not
    used (certified_radius doc); only validated."""
    noise = uc.noise.Laplace(SIGMA)
    base = uc.certified_radius(noise, 0.9, norm=2, dim=16)
    for kw in (dict(seed=7), dict(num_samples=100), dict(sound=True, beta=0.1),
               dict(dtype=torch.float64), dict(rtol=1e-2), dict(particles=0, iterations=0)):
        assert uc.certified_radius(noise, 0.9, norm=2, dim=16, **kw) == base, kw


# ----------------------------------------------------------------------------------------------
# 2. Monotonicity
#
# The radius is non-decreasing in p_a and non-increasing in p_b (docs/theory.md §3). The exact engine
# computes it as min_k lambda*(u_k) over the k-sparse directions; at d = 16 the k-grid is every
# k = 1..16 (the default grid: every k <= 16), the same set for every p_a, and lambda*(u_k) is
# monotone for each k, so the minimum is too: any decrease beyond the engines' error is a bug.
#
# Tolerance (unicr_fast/exact.py module doc). Each lambda*(u_k) is solved to rtol = 1e-9 relative
# (RTOL). The probabilities carry an absolute error e <= 2e-15 ("fourier"; "direct" and "atoms"
# a few ulps), which acts like an error e on p_a and p_b: e |dR/dp|; for these families
# |dR/dp| / R is at most of order 1/(1 - p_a) + 1/(p_a - 1/2) (+ 1/p_b multiclass) (tail
# quantiles; R -> 0 linearly as p_a -> 1/2), so the term is E_PROB times that, ~1e-11 relative
# here. The lattice engine is accurate to "~1e-7 relative or better" (LATTICE_REL; also the
# _LATTICE_RTOL of unicr_fast/exact_curve.py, which array p_a now goes through), and its
# error_estimate (the |m_{h/2} - m_h| Richardson removed, converted to lambda) "bounds the
# observed error in every test": a lattice radius carries the larger of the two. The details of
# certified_radius do not report the estimate, so it is read from unicr_fast.radius.exact.exact_radius
# on the same arguments, whose radius must then agree with the default path's within it.
# Two radii r1 <= r2 (true) computed as r1', r2' then satisfy r2' >= r1' - (tol1 + tol2).
# The grids hold a near pair (0.9 and 0.9 + 1e-5; p_b 0.05 and 0.05 + 1e-5) whose true radii
# differ by ~1e-5 relative, 100x these tolerances, so an engine that is noisier than it states
# fails there.

RTOL = 1e-9
E_PROB = 2e-15
LATTICE_REL = 1e-7
DIM_MONO = 16
P_A_GRID_FAST = (0.6, 0.9, 0.9 + 1e-5, 0.99, 0.999)
P_A_GRID = (0.51, 0.9, 0.9 + 1e-5, 0.9999)          # the suite's time: 4 bands, the near pair
P_A_FIXED = 0.9
P_B_GRID = (1e-4, 0.01, 0.05, 0.05 + 1e-5, 0.09, 1 - P_A_FIXED)   # up to 1 - p_a (see test below)


def _tolerance(noise, det, norm, dim):
    """Absolute error allowed on one default-path radius (block comment above)."""
    r, p_a, p_b = det.radius, det.p_a, det.p_b
    slope = 1 / (1 - p_a) + 1 / (p_a - 0.5) + (1 / p_b if p_b else 0.0)
    tol = r * (RTOL + E_PROB * slope)
    if det.engine == "lattice":
        full = ex.exact_radius(noise, p_a, p_b, norm, dim, return_details=True)
        tol += max(LATTICE_REL * r, full.error_estimate)
        # a scalar default-path call is this computation; an array one (exact_curve) is another
        # computation of the same lambda*, so it may differ by the lattice error
        assert abs(full.radius - r) <= tol, (p_a, p_b, full.radius, r, tol)
    return tol


def _radii_in_p_a(noise, norm, p_as, p_b=None):
    dets = uc.certified_radius(noise, np.array(p_as), p_b, norm, DIM_MONO, return_details=True)
    assert all(d.method == "exact" for d in dets)
    return [d.radius for d in dets], [_tolerance(noise, d, norm, DIM_MONO) for d in dets]


def _assert_non_decreasing(xs, radii, tols):
    for i in range(len(radii) - 1):
        assert 0 < radii[i] < math.inf, (xs[i], radii[i])
        assert radii[i + 1] >= radii[i] - (tols[i] + tols[i + 1]), (
            xs[i], xs[i + 1], radii[i], radii[i + 1], radii[i + 1] / radii[i] - 1)


def _mono_params(grid_fast, grid_slow):
    out = []
    for case in FAMILIES:
        for norm in NORMS:
            cid = f"{fam_id(case)}-l{norm:g}"
            if case[0] in CHEAP:
                out.append(pytest.param(case, norm, grid_fast, id=cid))
            out.append(pytest.param(case, norm, grid_slow, id=cid + "-slow",
                                    marks=pytest.mark.slow))
    return out


@pytest.mark.parametrize("case, norm, p_as", _mono_params(P_A_GRID_FAST, P_A_GRID))
def test_non_decreasing_in_p_a(case, norm, p_as):
    noise = make(case)
    radii, tols = _radii_in_p_a(noise, norm, p_as)
    _assert_non_decreasing(p_as, radii, tols)


@pytest.mark.parametrize("case, norm, p_bs", _mono_params(P_B_GRID[2:4] + P_B_GRID[-1:], P_B_GRID))
def test_non_increasing_in_p_b(case, norm, p_bs):
    noise = make(case)
    dets = [uc.certified_radius(noise, P_A_FIXED, p_b, norm, DIM_MONO, return_details=True)
            for p_b in p_bs]
    assert all(d.method == "exact" for d in dets)
    tols = [_tolerance(noise, d, norm, DIM_MONO) for d in dets]
    # non-increasing in p_b = non-decreasing along the reversed grid
    _assert_non_decreasing(p_bs[::-1], [d.radius for d in dets][::-1], tols[::-1])


@pytest.mark.parametrize("case, norm", [pytest.param(c, n, id=f"{fam_id(c)}-l{n:g}",
                                                     marks=() if c[0] in CHEAP else pytest.mark.slow)
                                        for c in FAMILIES for n in NORMS])
def test_multiclass_with_complementary_runner_up_is_binary(case, norm):
    """p_b = 1 - p_a: the strongest runner-up set S_B is the complement of S_A (ties split the
    other way, L = +inf in S_B), so P_Y(S_B) = 1 - P_Y(S_A) and the multiclass margin is twice the
    binary one: the same root, up to both radii's tolerances."""
    noise = make(case)
    for p_a in (0.75, 0.99):
        b = uc.certified_radius(noise, p_a, None, norm, DIM_MONO, return_details=True)
        m = uc.certified_radius(noise, p_a, 1 - p_a, norm, DIM_MONO, return_details=True)
        tol = _tolerance(noise, b, norm, DIM_MONO) + _tolerance(noise, m, norm, DIM_MONO)
        assert abs(b.radius - m.radius) <= tol, (p_a, b.radius, m.radius)


@pytest.mark.slow
@pytest.mark.parametrize("norm", NORMS)
def test_identical_noise_under_two_names(norm):
    """ExponentialMixture(w, beta1 = 1, beta2 = 2) is w Laplace + (1 - w) Gaussian, i.e.
    LaplaceGaussianMixture(w): two routes through the engine (separate family ids and log-pdf
    code) must give the same radii within both tolerances."""
    a, b = uc.noise.ExponentialMixture(SIGMA, 0.5, 1.0, 2.0), uc.noise.LaplaceGaussianMixture(SIGMA, 0.5)
    for p_a in (0.75, 0.999):
        da = uc.certified_radius(a, p_a, None, norm, DIM_MONO, return_details=True)
        db = uc.certified_radius(b, p_a, None, norm, DIM_MONO, return_details=True)
        tol = _tolerance(a, da, norm, DIM_MONO) + _tolerance(b, db, norm, DIM_MONO)
        assert abs(da.radius - db.radius) <= tol, (p_a, da.radius, db.radius)


# ----------------------------------------------------------------------------------------------
# 3. The default (exact) radius against the Monte-Carlo engine
#
# tests/test_mc_accuracy.py: at N = 20,000, d = 8 the Monte-Carlo radius may exceed the exact one
# by at most 2% (the soundness issue's bound; measured worst over every family +1.7%). The
# estimator's error behind it: docs/theory.md §5 measures the pooled estimator within +-0.7% of
# the exact engine for Gaussian / Laplace / uniform noise, l1 / l2 / l_inf, d = 16, p_a 0.9 to
# 0.99999 at N = 100,000; it scales as 1/sqrt(N), so +-0.7% sqrt(5) = +-1.6% at N = 20,000, within
# the 2%. Below the exact radius the Monte-Carlo one may also fall by a better direction than the
# exact engine's k-sparse candidates; with particles=0 the Monte-Carlo search tries only k-sparse
# directions (sparse_ks(8) = 1..8, the exact engine's k_grid(8)), so both minimise over the same
# set and the estimator's error is the only difference: the documented amount below is the same
# 2% (test_mc_accuracy keeps -15% because its swarm may find better directions). The draws are
# seeded (seed=0), so the outcome is reproducible. Runtime ~10 s: not marked slow.

MC_REL = 0.02
MC_P_A = np.array([0.9, 0.999])


@pytest.mark.parametrize("family", ["gaussian", "laplace", "uniform"])
@pytest.mark.parametrize("norm", NORMS)
def test_default_radius_agrees_with_monte_carlo(family, norm):
    noise = uc.noise.make(family, sigma=SIGMA)
    exact = uc.certified_radius(noise, MC_P_A, norm=norm, dim=8)
    mc = uc.certified_radius(noise, MC_P_A, norm=norm, dim=8, num_samples=20_000, seed=0,
                             method="mc", particles=0, device="cpu")
    rel = mc / exact - 1
    assert rel.max() <= MC_REL, (MC_P_A, rel)      # never overstates beyond the MC error
    assert rel.min() >= -MC_REL, (MC_P_A, rel)     # same directions: only the MC error below


# ----------------------------------------------------------------------------------------------
# 4. Bad inputs on the default path


@pytest.mark.parametrize("p_a", [0.0, -0.1, 1.0 + 1e-12, 1.5, float("inf"), float("-inf"),
                                 float("nan"), [0.9, 1.2], np.array([0.9, 0.0])])
def test_p_a_outside_the_unit_interval_is_a_value_error(p_a):
    with pytest.raises(ValueError, match="p_a"):
        uc.certified_radius(uc.noise.Gaussian(SIGMA), p_a, norm=2, dim=8)


@pytest.mark.parametrize("case", FAMILIES, ids=fam_id)
def test_nothing_certified_gives_zero(case):
    """p_a <= 1/2 (binary) or p_b >= p_a: radius 0.0, never an exception, for every family;
    the engine still reports itself."""
    noise = make(case)
    for p_a, p_b in [(0.5, None), (0.3, None), (1e-12, None), (0.6, 0.6), (0.6, 0.7),
                     (0.4, 0.45), (0.9, 1.0), (1.0, 1.0)]:
        det = uc.certified_radius(noise, p_a, p_b, 2, 8, return_details=True)
        assert det.radius == 0.0 and det.method == "exact", (p_a, p_b, det.radius)
        assert uc.certified_radius(noise, p_a, p_b, 2, 8) == 0.0
    r = uc.certified_radius(noise, [0.5, 0.2, 0.5 - 1e-12], None, 1, 8)
    np.testing.assert_array_equal(r, 0.0)


@pytest.mark.parametrize("dim, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                        ("8", TypeError), (None, TypeError),
                                        (True, TypeError)])
def test_bad_dim(dim, error):
    """dim must be an int >= 1: 0 and negatives are ValueErrors, non-integers TypeErrors."""
    with pytest.raises(error, match="dim"):
        uc.certified_radius(uc.noise.Gaussian(SIGMA), 0.9, norm=2, dim=dim)


@pytest.mark.parametrize("norm", [0, 0.0, -1, -math.inf, "0", "-2", float("nan"), "l7"])
def test_bad_norm(norm):
    with pytest.raises(ValueError, match="norm"):
        uc.certified_radius(uc.noise.Gaussian(SIGMA), 0.9, norm=norm, dim=8)


@pytest.mark.parametrize("method", ["bogus", "", "monte-carlo", "EXACT ", None, 1])
def test_unknown_method(method):
    with pytest.raises(ValueError, match="method"):
        uc.certified_radius(uc.noise.Gaussian(SIGMA), 0.9, norm=2, dim=8, method=method)


def test_radial_noise_exact_is_refused_and_auto_is_monte_carlo():
    radial = uc.noise.Radial(SIGMA, q=2.0, beta=1.0)
    with pytest.raises(ValueError, match="exact"):
        uc.certified_radius(radial, 0.9, norm=2, dim=8, method="exact")
    # even radial noise with q = beta (i.i.d. in law) has no exact route: it is not a product
    with pytest.raises(ValueError, match="exact"):
        uc.certified_radius(uc.noise.Radial(SIGMA, q=2.0, beta=2.0), 0.9, norm=2, dim=8,
                            method="exact")
    det = uc.certified_radius(radial, 0.9, norm=2, dim=8, num_samples=2000, particles=0,
                              device="cpu", return_details=True)
    assert det.method == "mc" and 0 < det.radius < math.inf


def test_custom_noise_defaults_to_monte_carlo():
    s = SIGMA
    custom = uc.noise.Custom(lambda x: -0.5 * (x / s) ** 2,
                             lambda shape, g, d: torch.randn(shape, generator=g,
                                                             dtype=torch.float64) * s,
                             sigma=s)
    det = uc.certified_radius(custom, 0.9, norm=2, dim=4, num_samples=2000, particles=0,
                              device="cpu", return_details=True)
    assert det.method == "mc" and det.radius > 0
    for name, params in FAMILIES:
        noise = uc.noise.make(name, sigma=s, **params)
        assert uc.radius.resolve_method(noise, "auto") == "exact", name
