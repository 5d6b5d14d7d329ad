"""Radial noise mu(w) ∝ exp(-(||w||_q / a)^beta): sampler, density, kernels, radii.

Sampler checks use the exact laws of the polar decomposition (unicr_fast.noise.radial): (R/a)^beta ~
Gamma(d/beta); |theta_1|^q ~ Beta(1/q, (d-1)/q) for finite q (|g_1|^q ~ Gamma(1/q) over a
Gamma(d/q) total); for q = inf one coordinate sits on the cube's face (|w_j| = R), its index
uniform, the others uniform on [-R, R]. KS tests at alpha = 1e-3.

Radius checks: q = beta is i.i.d. generalised normal, so docs/theory.md §8's closed forms apply (and in
d = 1 every q gives GN(beta)); for q = 2, beta != 2 the law of L along any direction depends on
two scalars only (R and t = theta . u, (t+1)/2 ~ Beta((d-1)/2, (d-1)/2)), which gives an
independent reference (see ``test_l2_radial_matches_two_scalar_reference``).
"""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from test_cli import run_cli
from test_radius import BETA, RTOL, dkw, estimator_interval, gaussian_interval, radius

import unicr_fast as uc
from unicr_fast import backends
from unicr_fast.radius import closed_forms as ref
from unicr_fast.noise import GeneralNormal, Radial
from unicr_fast.noise.radial import lq_tail
from unicr_fast.radius.mc.search import block_edges

KS_ALPHA = 1e-3
QS = [0.5, 1.0, 1.5, 2.0, 3.0, math.inf]


def draws(noise, n, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return noise.sample((n, noise.dim), generator=gen, dtype=dtype)


# -- construction ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, word", [
    ({"q": 0.0}, ValueError, "norm"), ({"q": -1.0}, ValueError, "norm"),
    ({"q": float("nan")}, ValueError, "NaN"), ({"beta": 0.0}, ValueError, "beta"),
    ({"beta": math.inf}, ValueError, "beta"), ({"dim": 0}, ValueError, "dim"),
    ({"dim": 2.5}, TypeError, "dim"), ({"sigma": -1.0}, ValueError, "sigma"),
    ({"sigma": None}, TypeError, "exactly one"), ({"a": 1.0}, TypeError, "exactly one"),
    ({"sigma": None, "a": 0.0}, ValueError, "a "),
])
def test_bad_parameters_are_named(kwargs, error, word):
    args = {"sigma": 0.5, "q": 2.0, "beta": 1.0, "dim": 4, **kwargs}
    with pytest.raises(error, match=word):
        Radial(**args)


def test_parameters_catalogue_and_scale():
    noise = uc.noise.make("radial", sigma=0.5, q="inf", beta=1.5, dim=6.0)
    assert noise.params == {"sigma": 0.5, "q": math.inf, "beta": 1.5, "dim": 6}
    assert noise == Radial(0.5, math.inf, 1.5, 6) and hash(noise) == hash(Radial(0.5, math.inf, 1.5, 6))
    assert noise != Radial(0.5, math.inf, 1.5, 7)
    again = Radial.from_scale(noise.a, math.inf, 1.5, 6)
    assert again.sigma == pytest.approx(0.5, rel=1e-13)
    assert again.params == {"a": noise.a, "q": math.inf, "beta": 1.5, "dim": 6}
    # q = beta: the scale is the generalised normal's
    assert Radial(0.5, 1.5, 1.5, 9).a == pytest.approx(GeneralNormal(0.5, 1.5).a, rel=1e-13)
    w = torch.randn(4, 6, dtype=torch.float64)
    assert torch.equal(noise.log_pdf(w), noise.log_density(w))     # per vector: no 1-D factor
    with pytest.raises(TypeError, match="kernel"):
        noise.kernel_params


def test_noise_without_dim_is_bound_where_the_dimension_is_known():
    free = Radial(0.5, 1.5, 2.0)
    assert free.dim is None and free.a is None and free.params == {"sigma": 0.5, "q": 1.5, "beta": 2.0}
    assert free.bound(6) == Radial(0.5, 1.5, 2.0, 6) and free.bound(6).a is not None
    with pytest.raises(ValueError, match="dim 6"):
        Radial(0.5, 1.5, 2.0, 6).bound(7)
    w = free.sample((5, 2, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bound = Radial(0.5, 1.5, 2.0, 6)
    assert torch.equal(w, bound.sample((5, 2, 3), generator=torch.Generator().manual_seed(0),
                                       dtype=torch.float64))
    assert torch.equal(free.log_density(w.reshape(5, 6)), bound.log_density(w))
    assert uc.certified_radius(free, 0.9, None, 2, 6, 2000) == uc.certified_radius(bound, 0.9, None, 2, 6, 2000)
    by_scale = uc.noise.make("radial", a=0.3, q=math.inf, beta=1.0)
    assert by_scale.sigma is None and by_scale.bound(4).sigma > 0
    with pytest.raises(ValueError, match="bound"):
        by_scale.kernel_scalars()


# -- sampler ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("q", QS)
@pytest.mark.parametrize("beta, dim", [(0.8, 5), (2.0, 40), (3.0, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_norm_law_is_gamma(q, beta, dim, dtype):
    noise = Radial(0.7, q, beta, dim)
    w = draws(noise, 20_000, dtype=dtype).double()
    energy = (uc.noise.radial.lq_norm(w, noise.q) / noise.a) ** beta
    assert stats.kstest(energy.numpy(), stats.gamma(dim / beta).cdf).pvalue > KS_ALPHA


@pytest.mark.parametrize("q", [0.5, 1.5, 3.0])
def test_angular_part_is_cone_measure(q):
    dim = 7
    noise = Radial(0.7, q, 1.3, dim)
    w = draws(noise, 20_000, seed=1)
    norm = uc.noise.radial.lq_norm(w, q)
    share = (w[:, 0].abs() / norm) ** q
    assert stats.kstest(share.numpy(), stats.beta(1 / q, (dim - 1) / q).cdf).pvalue > KS_ALPHA
    # independent of the norm: correlation within 4 standard errors of 0
    r = np.corrcoef(share.numpy(), norm.numpy())[0, 1]
    assert abs(r) < 4 / math.sqrt(len(share))


def test_linf_angular_part_is_a_uniform_face():
    dim, n = 5, 20_000
    noise = Radial(0.7, math.inf, 2.0, dim)
    w = draws(noise, n, seed=2).abs()
    top = w.max(dim=1)
    on_face = (w == top.values.unsqueeze(1)).sum(1)
    assert bool((on_face == 1).all())
    counts = np.bincount(top.indices.numpy(), minlength=dim)
    assert stats.chisquare(counts).pvalue > KS_ALPHA
    others = (w / top.values.unsqueeze(1))[w < top.values.unsqueeze(1)]
    assert stats.kstest(others.numpy(), stats.uniform(0, 1).cdf).pvalue > KS_ALPHA


@pytest.mark.parametrize("q", [1.0, 1.5, 2.0])
def test_q_equal_beta_is_iid_generalised_normal(q):
    noise, gn = Radial(0.6, q, q, 12), GeneralNormal(0.6, q)
    w = draws(noise, 20_000, seed=3)
    assert stats.kstest(w[:, 3].numpy(), lambda x: gn.cdf(torch.from_numpy(x)).numpy()).pvalue > KS_ALPHA
    assert torch.allclose(noise.log_density(w), gn.log_pdf(w).sum(1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("q", QS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_per_coordinate_std_is_sigma(q, dtype):
    noise = Radial(0.7, q, 1.2, 30)
    x = draws(noise, 40_000, seed=4, dtype=dtype)[:, 0].double()   # one coordinate per vector
    var, se = float((x ** 2).mean()), float((x ** 2).std()) / math.sqrt(len(x))
    assert abs(var - 0.49) < 5 * se


def test_sampling_is_deterministic_and_shaped():
    noise = Radial(0.5, 1.5, 2.0, 12)
    a = noise.sample((4, 3, 2, 2), generator=torch.Generator().manual_seed(9))
    b = noise.sample((4, 3, 2, 2), generator=torch.Generator().manual_seed(9))
    assert a.shape == (4, 3, 2, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    with pytest.raises(ValueError, match="dim = 12"):
        noise.sample((4, 11))
    with pytest.raises(ValueError, match="dim = 12"):
        noise.sample((12,))


# -- density ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("q, beta, dim", [(0.7, 2.0, 1), (2.5, 0.9, 1), (math.inf, 1.0, 1),
                                          (math.inf, 2.0, 2), (1.5, 3.0, 2)])
def test_density_integrates_to_one(q, beta, dim):
    """The normaliser (ball volume times a^d Gamma(1 + d/beta)) by quadrature, to 1e-6."""
    noise = Radial(0.5, q, beta, dim)
    f = lambda *w: math.exp(float(noise.log_density(torch.tensor(w, dtype=torch.float64))))
    lim = noise.a * 40 ** (1 / beta)    # |w_j| <= ||w||_q: outside, the energy exceeds 40
    total = integrate.nquad(f, [[-lim, lim]] * dim,
                            opts={"points": [0.0], "limit": 100, "epsabs": 1e-9})[0]
    assert total == pytest.approx(1.0, abs=1e-6)


# -- kernels ------------------------------------------------------------------------------------------

def energy_bound(noise, eps, shifts, tail):
    """Largest |(||v|| / a)^beta| among v = w, w - delta, w + delta: the scale of the rounding."""
    q = noise.q
    x = eps.to(torch.float64)
    stat = lambda v: (torch.maximum(v.abs().amax(-1), tail) if math.isinf(q)
                      else (v.abs().pow(q).sum(-1) + tail).pow(1 / q))
    vals = [stat(x)] + [stat(x.unsqueeze(0) + s * shifts.unsqueeze(1)) for s in (-1, 1)]
    return max(float(((v / noise.a) ** noise.beta).max()) for v in vals)


@pytest.mark.parametrize("q", QS + [0.1, 5.0, 50.0])
@pytest.mark.parametrize("beta", [0.2, 1.0, 2.0, 10.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dim, k", [(64, 20), (3, 3)])
def test_cpu_kernel_equals_torch_reference(q, beta, dtype, dim, k):
    """Both compute the same float64 formula; the kernel sums k terms (k u relative error each
    way) and takes the energy's power (beta/q times that) from stable differences -- or, where
    the shifted statistic falls far below the base (large q), from the shifted sums directly.
    Bound: 16 (k + 1) u max(1, beta/q) times the largest energy in play."""
    if "cpu" not in uc.available_backends():
        pytest.skip("compiled CPU module not built")
    noise = Radial(0.6, q, beta, dim)
    eps = draws(noise, 400, seed=5, dtype=dtype)
    gen = torch.Generator().manual_seed(6)
    shifts = torch.randn(7, k, dtype=torch.float64, generator=gen) * 0.4
    shifts[2] = 0.0                                       # a zero shift: L = 0 exactly
    shifts[3, 5:] = 0.0                                   # sparse inside the prefix
    tail = lq_tail(eps, k, noise.q)
    prefix = eps[:, :k]
    a_ref, b_ref = backends.log_ratio_radial(noise, prefix, shifts, tail, backend="torch")
    a, b = backends.log_ratio_radial(noise, prefix, shifts, tail, backend="cpu")
    gamma = beta if math.isinf(q) else beta / q
    tol = 16 * (k + 1) * np.finfo(float).eps * max(1.0, gamma) * energy_bound(noise, prefix, shifts, tail)
    assert float((a - a_ref).abs().max()) <= tol and float((b - b_ref).abs().max()) <= tol
    assert bool((a[2] == 0).all()) and bool((b[2] == 0).all())
    # the prefix + tail split equals the whole vectors with zero-padded shifts
    full = torch.cat([shifts, torch.zeros(7, dim - k, dtype=torch.float64)], 1)
    a_full, b_full = backends.log_ratio(noise, eps, full, backend="cpu")
    assert float((a_full - a).abs().max()) <= tol and float((b_full - b).abs().max()) <= tol


@pytest.mark.parametrize("q", [1.0, 1.7, math.inf])
def test_reference_is_the_log_density_difference(q):
    noise = Radial(0.5, q, 1.4, 9)
    eps = draws(noise, 300, seed=7)
    shifts = torch.randn(3, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    a, b = backends.log_ratio(noise, eps, shifts, backend="torch")
    ld = noise.log_density
    a_def = ld(eps.unsqueeze(0) - shifts.unsqueeze(1)) - ld(eps).unsqueeze(0)
    b_def = ld(eps).unsqueeze(0) - ld(eps.unsqueeze(0) + shifts.unsqueeze(1))
    scale = 1.0 + float(ld(eps).abs().max())
    assert torch.allclose(a, a_def, rtol=0, atol=1e-13 * scale)
    assert torch.allclose(b, b_def, rtol=0, atol=1e-13 * scale)


def test_log_ratio_radial_bad_inputs():
    noise = Radial(0.5, 2.0, 1.0, 8)
    eps, shifts = draws(noise, 10), torch.ones(2, 8, dtype=torch.float64)
    tail = torch.zeros(10, dtype=torch.float64)
    with pytest.raises(ValueError, match="dim 8"):
        backends.log_ratio(noise, eps[:, :5], shifts[:, :5].contiguous())
    with pytest.raises(ValueError, match="bound"):
        backends.log_ratio_radial(Radial(0.5, 2.0, 1.0), eps, shifts, tail)
    with pytest.raises(ValueError, match="one entry per sample"):
        backends.log_ratio_radial(noise, eps, shifts, tail[:9])
    with pytest.raises(ValueError, match=">= 0"):
        backends.log_ratio_radial(noise, eps, shifts, -torch.ones(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="finite"):
        backends.log_ratio_radial(noise, eps, shifts, torch.full((10,), math.nan, dtype=torch.float64))
    with pytest.raises(TypeError, match="radial"):
        backends.log_ratio_radial(uc.noise.Gaussian(1.0), eps, shifts, tail)


def test_compiled_entry_point_rejects_bad_arguments():
    if "cpu" not in uc.available_backends():
        pytest.skip("compiled CPU module not built")
    from unicr_fast import _cpu
    eps = np.zeros((4, 3))
    shifts = np.zeros((2, 3))
    tail = np.zeros(4)
    for kwargs, word in [({"q": 0.0}, "q"), ({"beta": -1.0}, "beta"), ({"scale": math.inf}, "scale"),
                         ({"tail": np.zeros(3)}, "tail"), ({"tail": -np.ones(4)}, "tail"),
                         ({"shifts": np.zeros((2, 4))}, "coordinates")]:
        args = {"eps": eps, "shifts": shifts, "tail": tail, "q": 2.0, "beta": 1.0, "scale": 1.0, **kwargs}
        with pytest.raises(ValueError, match=word):
            _cpu.log_ratio_radial(**args)


def test_cuda_entry_point_checks_arguments_before_the_device():
    try:
        from unicr_fast import _cuda
    except ImportError:
        pytest.skip("CUDA module not built")
    with pytest.raises(ValueError, match="q"):
        _cuda.log_ratio_radial(8, 1, 4, 3, 8, 2, 8, -1.0, 1.0, 1.0, 8, 8, 0, 0)
    with pytest.raises(ValueError, match="beta"):
        _cuda.log_ratio_radial(8, 1, 4, 3, 8, 2, 8, 2.0, math.nan, 1.0, 8, 8, 0, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")
@pytest.mark.parametrize("q", QS + [50.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dim, k, n", [(300, 200, 1000), (17, 17, 1001), (3, 2, 999), (1, 1, 37)])
def test_cuda_kernel_equals_cpu(q, dtype, dim, k, n):
    """Lane groups of every width (d = 1 .. 300), sample counts that leave a block part-empty,
    a zero shift, a nonzero tail; the sums run in another order, so the CPU test's bound x 2."""
    noise = Radial(0.6, q, 1.3, dim)
    eps = draws(noise, n, seed=10, dtype=dtype)
    shifts = torch.randn(19, k, dtype=torch.float64, generator=torch.Generator().manual_seed(11)) * 0.3
    shifts[4] = 0.0
    tail = lq_tail(eps, k, noise.q)
    a, b = backends.log_ratio_radial(noise, eps[:, :k], shifts, tail, backend="cpu")
    ga, gb = backends.log_ratio_radial(noise, eps[:, :k].cuda(), shifts.cuda(), tail.cuda(),
                                       backend="cuda")
    tol = 16 * (k + 1) * np.finfo(float).eps * 2 * energy_bound(noise, eps[:, :k], shifts, tail)
    assert float((ga.cpu() - a).abs().max()) <= tol and float((gb.cpu() - b).abs().max()) <= tol
    assert bool((ga[4] == 0).all()) and bool((gb[4] == 0).all())


# -- radii --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dim, p_a, p_b, norm", [(10, 0.8, None, 2), (10, 0.99, None, 1),
                                                 (784, 0.9, None, 2), (784, 0.95, 0.03, "inf"),
                                                 (10, 0.7, 0.2, 2)])
def test_q2_beta2_is_gaussian(dim, p_a, p_b, norm):
    sigma = 0.5
    r = radius(Radial(sigma, 2, 2, dim), p_a, dim, norm, p_b)
    p = math.inf if norm == "inf" else float(norm)
    scale = 1.0 if p <= 2 else dim ** ((0.0 if math.isinf(p) else 1 / p) - 0.5)
    lo, hi = gaussian_interval(sigma, p_a, p_b, dkw(dim), scale)
    assert lo <= r <= hi, (r, ref.closed_form_radius(Radial(sigma, 2, 2, dim), p_a, p_b, p, dim))


@pytest.mark.parametrize("dim, p_a", [(10, 0.6), (10, 0.9), (784, 0.99)])
def test_q1_beta1_is_laplace_l1(dim, p_a):
    noise = Radial(0.5, 1, 1, dim)
    closed = ref.closed_form_radius(noise, p_a, None, 1, dim)
    assert closed == pytest.approx(ref.laplace_l1_binary(0.5, p_a))
    r = radius(noise, p_a, dim, 1)
    lo, hi = estimator_interval(uc.noise.Laplace(0.5), p_a, None, 3 * dkw(dim))   # atoms: 3e
    assert lo * (1 - RTOL) <= r <= hi * (1 + RTOL), (r, closed)


@pytest.mark.parametrize("q", [0.7, 3.0, math.inf])
@pytest.mark.parametrize("beta, p_a, p_b", [(1.5, 0.9, None), (2.5, 0.7, 0.2)])
def test_one_dimension_is_generalised_normal_for_every_q(q, beta, p_a, p_b):
    noise = Radial(0.5, q, beta, 1)
    r = radius(noise, p_a, 1, 2, p_b)
    gn = GeneralNormal(0.5, beta)
    lo, hi = estimator_interval(gn, p_a, p_b, dkw(1))
    assert lo * (1 - RTOL) <= r <= hi * (1 + RTOL), (r, ref.axis_lambda(gn, p_a, p_b))


def two_scalar_margin_bounds(noise, lam, p_lo, p_hi, n_ref=1_000_000, seed=0):
    """l2-radial noise, shift of l2 length lam along any direction: binary margin
    P_Y(L < Q_X(p)) - 1/2 at p = p_lo and p_hi, from (R, t) draws only (module doc)."""
    rng = np.random.default_rng(seed)
    d, a, beta = noise.dim, noise.a, noise.beta
    r = a * rng.gamma(d / beta, size=n_ref) ** (1 / beta)
    t = 2 * rng.beta((d - 1) / 2, (d - 1) / 2, size=n_ref) - 1 if d > 1 else rng.choice([-1.0, 1.0], n_ref)
    energy = lambda v: (np.sqrt(np.maximum(v, 0.0)) / a) ** beta
    base = energy(r * r)
    l_x = base - energy(r * r - 2 * lam * r * t + lam * lam)       # L at X
    l_y = energy(r * r + 2 * lam * r * t + lam * lam) - base       # L at Y = X + delta
    l_x.sort()
    out = []
    for p in (p_lo, p_hi):
        thr = l_x[min(n_ref - 1, max(0, math.ceil(p * n_ref) - 1))]
        out.append(float(np.mean(l_y < thr)) - 0.5)
    return out


@pytest.mark.parametrize("beta, dim, p_a", [(1.0, 10, 0.9), (3.0, 50, 0.8), (0.8, 5, 0.95)])
def test_l2_radial_matches_two_scalar_reference(beta, dim, p_a):
    """For q = 2 the law of L_lam along a unit-l2 direction does not depend on the direction, so
    the engine's radius (minimum over its B directions) must sit where the true margin m(lam)
    crosses 0, up to sampling error. With sup-CDF errors <= e for the X-side and Y-side values
    of each of the 2 B (direction, lam) pairs checked below (DKW, union bound at level BETA), the
    engine's margin at lam lies in [G(lam, p_a - e) - e, G(lam, p_a + e) + e] - 1/2 where
    G(lam, p) = P_Y(L < Q_X(p)); the two-scalar reference estimates G with its own error e_ref
    (DKW at N_ref, again for quantile and probability). So at lam_lo (upper margin bound still
    > 0) every direction's margin is positive, at lam_hi (lower bound < 0) negative, and the
    crossing -- the radius -- lies in [lam_lo, lam_hi] up to the bisection's rtol."""
    noise = Radial(0.5, 2, beta, dim)
    n = 40_000
    B = len(block_edges(dim)) - 1
    e = math.sqrt(math.log(2 * 4 * B / BETA) / (2 * n))
    n_ref = 1_000_000
    e_ref = math.sqrt(math.log(2 * 4 / BETA) / (2 * n_ref))
    slack = e + e_ref
    r = radius(noise, p_a, dim, 2)
    margins = lambda lam: two_scalar_margin_bounds(noise, lam, p_a - slack, p_a + slack, n_ref)
    lower = lambda lam: margins(lam)[0] - slack      # <= every engine margin at lam
    upper = lambda lam: margins(lam)[1] + slack      # >= every engine margin at lam
    # Both bounds decrease in lam, so r in [root(lower), root(upper)] (widened by rtol) reads:
    assert lower(r / (1 - RTOL)) <= 0, "radius below the root of the lower margin bound"
    assert upper(r / (1 + RTOL)) >= 0, "radius above the root of the upper margin bound"
    # and the check is not vacuous: both roots lie within 25% of the radius
    assert lower(r * 0.8) > 0 and upper(r * 1.25) < 0


def test_radius_errors_name_the_problem():
    noise = Radial(0.5, 2, 1, 10)
    with pytest.raises(ValueError, match="dim 10"):
        uc.certified_radius(noise, 0.9, None, 2, 11, 1000, 0, "cpu")
    with pytest.raises(ValueError, match="dim 10"):
        uc.Smooth(torch.nn.Flatten(), 2, noise=noise).predict(torch.zeros(11), 10, 0.01, 10)
    with pytest.raises(ValueError, match="radial"):
        uc.certified_radius(noise, 0.9, None, 2, 10, method="exact")


def test_radial_linf_radii_are_monotone_and_positive():
    noise = Radial(0.5, math.inf, 2.0, 20)
    r = radius(noise, np.array([0.6, 0.8, 0.95]), 20, "inf", num_samples=10_000)
    assert (r > 0).all() and (np.diff(r) >= 0).all()


# -- command line -------------------------------------------------------------------------------------

def test_radius_command_builds_radial_noise_for_dim(capsys):
    argv = ["radius", "--noise", "radial", "--param", "q=inf", "--param", "beta=1.5", "--sigma",
            "0.5", "--norm", "2", "--p-a", "0.9", "--dim", "12", "--samples", "3000"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    expected = uc.certified_radius(Radial(0.5, math.inf, 1.5, 12), 0.9, None, 2, 12, 3000)
    assert float(out.strip()) == expected
    code, _, err = run_cli(argv + ["--param", "dim=12"], capsys)
    assert code == 2 and "dimension from the input" in err


def test_certify_command_takes_dim_from_the_data(tmp_path, capsys):
    from unicr_fast.datasets import digits
    from unicr_fast.models import build_model, save_checkpoint
    x, y = digits("test")
    torch.save({"x": x[:3].clone(), "y": y[:3].clone()}, tmp_path / "three.pt")
    torch.manual_seed(0)
    kwargs = {"in_features": 64, "hidden": [16], "num_classes": 10}
    save_checkpoint(tmp_path / "m.pt", build_model("mlp", **kwargs), "mlp", kwargs, 10, [1, 8, 8])
    out = tmp_path / "r.tsv"
    code, _, err = run_cli(["certify", "--data", tmp_path / "three.pt", "--model", tmp_path / "m.pt",
                            "--noise", "radial", "--param", "q=1.5", "--param", "beta=2",
                            "--sigma", "0.25", "--norm", "2", "--out", out, "--n0", "10", "--n",
                            "100", "--batch", "50", "--radius-samples", "2000", "--device", "cpu",
                            "--no-progress"], capsys)
    assert code == 0, err
    assert len(out.read_text().strip().split("\n")) == 4
    import json
    record = json.loads((tmp_path / "r.tsv.params.json").read_text())["noise"]
    assert record == {"name": "radial", "sigma": 0.25, "q": 1.5, "beta": 2.0, "dim": 64.0}
