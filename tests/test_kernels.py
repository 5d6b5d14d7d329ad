"""The compiled CPU kernels equal the pure-torch reference backend."""
import math

import numpy as np
import pytest
import torch

import unicr_fast as uc
from unicr_fast import backends
from conftest import FAMILY_CASES, family_id, make_noise

pytestmark = pytest.mark.skipif("cpu" not in uc.available_backends(),
                                reason="compiled module unicr_fast._cpu not built")

SHAPES = [(1, 1, 1), (1, 7, 3), (33, 1, 2), (257, 13, 5), (64, 300, 4)]   # (N, d, M)


def random_shifts(gen, M, d, scale):
    shifts = torch.randn(M, d, generator=gen, dtype=torch.float64) * scale
    shifts[0] = 0                                  # a zero shift: every term is exactly 0
    if M > 1 and d > 1:
        shifts[1, d // 2:] = 0                     # zeros at the tail (sorted directions)
        shifts[1, 0] = 0                           # and inside
    return shifts


def magnitude(noise, eps, shifts):
    """sum_j |log phi(x - delta)| + |log phi(x + delta)| + 2 |log phi(x)|: the size of the summands,
    which bounds the rounding error of any summation order (cancellation included)."""
    x = eps.to(torch.float64).unsqueeze(0)
    d = shifts.unsqueeze(1)
    parts = [noise.log_pdf(x - d), noise.log_pdf(x + d), noise.log_pdf(x), noise.log_pdf(x)]
    finite = [torch.where(torch.isfinite(p), p.abs(), torch.zeros_like(p)) for p in parts]
    return sum(finite).sum(-1)


@pytest.mark.parametrize("case", FAMILY_CASES, ids=family_id)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_log_ratio_cpu_equals_torch(case, dtype, shape, gen):
    N, d, M = shape
    noise = make_noise(case)
    eps = noise.sample((N, d), generator=gen, dtype=dtype)
    shifts = random_shifts(gen, M, d, scale=noise.sigma)
    a_ref, b_ref = backends.log_ratio(noise, eps, shifts, backend="torch")
    a, b = backends.log_ratio(noise, eps, shifts, backend="cpu")
    assert a.dtype == b.dtype == torch.float64 and a.shape == b.shape == (M, N)
    assert not torch.isnan(a).any() and not torch.isnan(b).any()
    # Infinite entries (support edges) must coincide exactly.
    assert torch.equal(a == -math.inf, a_ref == -math.inf) and torch.equal(b == math.inf, b_ref == math.inf)
    assert not (a == math.inf).any() and not (b == -math.inf).any()
    tol = 1e-12 * (1 + magnitude(noise, eps, shifts))
    fa, fb = torch.isfinite(a_ref), torch.isfinite(b_ref)
    assert ((a - a_ref).abs()[fa] <= tol[fa]).all()
    assert ((b - b_ref).abs()[fb] <= tol[fb]).all()
    assert (a[0] == 0).all() and (b[0] == 0).all()   # zero shift


def test_uniform_support_edges_give_infinities_not_nan(gen):
    noise = uc.noise.Uniform(sigma=1.0)
    eps = noise.sample((500, 4), generator=gen, dtype=torch.float64)
    shifts = torch.tensor([[0.5, 0.0, 0.0, 0.0], [3 * noise.l, 3 * noise.l, 0, 0]], dtype=torch.float64)
    for backend in ("cpu", "torch"):
        a, b = backends.log_ratio(noise, eps, shifts, backend=backend)
        # a shift past the whole support: every X point leaves Y's support and vice versa
        assert (a[1] == -math.inf).all() and (b[1] == math.inf).all()
        # a small shift: either 0 (both inside) or -inf / +inf
        assert set(a[0].unique().tolist()) <= {0.0, -math.inf}
        assert set(b[0].unique().tolist()) <= {0.0, math.inf}
        inside = (eps[:, 0] - 0.5).abs() <= noise.l
        assert torch.equal(a[0] == 0, inside)


def test_column_prefix_of_wider_matrix_needs_no_copy(gen):
    noise = uc.noise.Laplace(1.0)
    eps = noise.sample((100, 10), generator=gen)
    shifts = torch.rand(3, 4, generator=gen, dtype=torch.float64)
    a1, b1 = backends.log_ratio(noise, eps[:, :4], shifts, backend="cpu")
    a2, b2 = backends.log_ratio(noise, eps[:, :4].contiguous(), shifts, backend="cpu")
    assert torch.equal(a1, a2) and torch.equal(b1, b2)


@pytest.mark.parametrize("case", FAMILY_CASES[:6], ids=family_id)
@pytest.mark.parametrize("p_a, p_b", [(0.9, 0.05), (0.5, 0.5), (1.0, 0.0), (0.55, 0.45),
                                      (0.999, 0.001), (0.99999, 1e-6)])
@pytest.mark.parametrize("stats", [backends.threshold_stats, backends.pooled_stats])
def test_statistics_cpu_equal_torch(case, p_a, p_b, stats, gen):
    noise = make_noise(case)
    eps = noise.sample((1001, 6), generator=gen, dtype=torch.float64)
    shifts = random_shifts(gen, 4, 6, scale=noise.sigma)
    a, b = backends.log_ratio(noise, eps, shifts, backend="cpu")
    s_cpu = stats(a, b, p_a, p_b, backend="cpu")
    s_ref = stats(a, b, p_a, p_b, backend="torch")
    # the pooled sums run in another order (selection vs sort): rounding of 2N terms
    torch.testing.assert_close(s_cpu, s_ref, rtol=1e-10, atol=1e-13)


def test_threshold_stats_ties_and_quantiles():
    # Values with explicit atoms: 0 (mass 0.4), 1 (mass 0.4), 2 (mass 0.2), N = 10.
    a = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 2, 2]], dtype=torch.float64)
    b = torch.tensor([[0, 1, 1, 1, 1, 2, 2, 2, 2, math.inf]], dtype=torch.float64)
    for backend in ("cpu", "torch"):
        s = backends.threshold_stats(a, b, 0.6, 0.3, backend=backend)[0].tolist()
        t_a, px_lt_a, px_eq_a, py_lt_a, t_b, px_gt_b, px_eq_b, py_gt_b = s
        assert t_a == 1 and px_lt_a == pytest.approx(0.4) and px_eq_a == pytest.approx(0.4)
        assert py_lt_a == pytest.approx(0.1)
        # 3rd largest of a is 1 -> t_B = 1: P_X(L > 1) = 0.2, ties 0.4; b > 1: five entries incl. +inf
        assert t_b == 1 and px_gt_b == pytest.approx(0.2) and px_eq_b == pytest.approx(0.4)
        assert py_gt_b == pytest.approx(0.5)
        # nearly-equal values within the tolerance are ties too
        a2 = a + torch.tensor([[0, 1e-12, -1e-12, 0, 0, 1e-12, 0, 0, 0, 0]], dtype=torch.float64)
        s2 = backends.threshold_stats(a2.contiguous(), b, 0.6, 0.3, backend=backend)[0]
        assert s2[2].item() == pytest.approx(0.4) and s2[1].item() == pytest.approx(0.4)


def test_threshold_stats_p_b_zero_counts_only_infinite_y():
    a = torch.tensor([[0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([[5.0, 6.0, math.inf, 1.0]], dtype=torch.float64)
    for backend in ("cpu", "torch"):
        s = backends.threshold_stats(a, b, 0.5, 0.0, backend=backend)[0].tolist()
        assert s[4] == math.inf and s[5] == 0 and s[6] == 0 and s[7] == pytest.approx(0.25)


def test_pooled_stats_fuzz_atoms_and_infinities():
    """Random rows built from a few atoms (ties), +-inf and a continuous part, any N >= 1: the
    compiled weighted quickselect and the torch sort agree."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        M, N = 4, int(rng.integers(1, 60))
        a = rng.choice([-math.inf, -1.0, 0.0, 0.5, 2.0], size=(M, N))
        b = rng.choice([-1.0, 0.0, 0.5, 2.0, math.inf], size=(M, N))
        a = a + rng.normal(size=(M, N)) * (rng.uniform(size=(M, N)) < 0.3)
        p_a = rng.uniform(0.5, 1.0, M)
        p_b = rng.uniform(0, 1, M) * (1 - p_a)
        p_b[0], p_a[1] = 0.0, 1.0
        a, b = torch.from_numpy(a), torch.from_numpy(b)
        s_cpu = backends.pooled_stats(a, b, p_a, p_b, backend="cpu")
        s_ref = backends.pooled_stats(a, b, p_a, p_b, backend="torch")
        torch.testing.assert_close(s_cpu, s_ref, rtol=1e-10, atol=1e-13, equal_nan=True)


def test_pooled_stats_on_atoms_split_the_tie_set():
    """Atoms only: every value v carries X-mass n_v / (1 + e^v) and Y-mass n_v e^v / (1 + e^v)
    (normalised), and the worst classifier takes the fraction of the tie set it needs."""
    a = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 2, 2]], dtype=torch.float64)
    b = torch.tensor([[0, 1, 1, 1, 1, 2, 2, 2, 2, math.inf]], dtype=torch.float64)
    values, counts = np.unique(torch.cat([a, b], 1).numpy(), return_counts=True)
    mx = np.where(np.isinf(values), 0.0, counts / (1 + np.exp(values)))
    my = counts - mx
    mx, my = mx / mx.sum(), my / my.sum()
    p_a, p_b = 0.6, 0.3
    # t_A: the value with X-mass strictly above <= 1 - p_a < at or above
    above = np.cumsum(mx[::-1])[::-1] - mx
    i = int(np.nonzero(above <= 1 - p_a)[0][0])
    frac = (p_a - mx[:i].sum()) / mx[i]
    py_sa = my[:i].sum() + frac * my[i]
    # t_B: X-mass strictly above < p_b <= at or above; +inf always belongs to the runner-up
    j = int(np.nonzero(above < p_b)[0][0])
    py_sb = my[j + 1:].sum() + (p_b - above[j]) / mx[j] * my[j]
    for backend in ("cpu", "torch"):
        t_a, sa, t_b, sb = backends.pooled_stats(a, b, p_a, p_b, backend=backend)[0].tolist()
        assert (t_a, t_b) == (values[i], values[j])
        assert sa == pytest.approx(py_sa, rel=1e-12) and sb == pytest.approx(py_sb, rel=1e-12)


def test_pooled_tie_share_of_a_continuous_sample_is_at_most_one_over_n(gen):
    """docs/theory.md §5: with no atoms, the tie term adds at most the threshold sample's own
    Y-weight (<= about 1/N), however far in the tail t_A lies -- where the per-side estimator
    added e^t_A x (a residual up to 1/N). Masses by the definition (sigmoid weights, normalised)."""
    N = 2000
    a = torch.randn(1, N, generator=gen, dtype=torch.float64) * 3 - 4.5   # L ~ N(-s^2/2, s^2)
    b = torch.randn(1, N, generator=gen, dtype=torch.float64) * 3 + 4.5   # its Y-law, s = 3
    p_a = torch.from_numpy(1 - np.logspace(-1, -7, 200))
    v = torch.cat([a, b], 1)[0]
    wy = torch.sigmoid(v) / torch.sigmoid(v).sum()
    assert float(wy.max()) <= 1.1 / N
    rows = lambda t: t.expand(len(p_a), N).contiguous()
    for backend in ("cpu", "torch"):
        stats = backends.pooled_stats(rows(a), rows(b), p_a, 0.0, backend=backend)
        for t_a, py_sa in zip(stats[:, 0].tolist(), stats[:, 1].tolist()):
            py_below = float(wy[v < t_a].sum())
            assert -1e-12 <= py_sa - py_below <= float(wy[v == t_a].sum()) + 1e-12


# ---- bad inputs: clear errors from Python, and from the compiled core directly ----

def _eps(dtype=torch.float64):
    return torch.zeros(5, 3, dtype=dtype)


@pytest.mark.parametrize("call, err, match", [
    (lambda n: backends.log_ratio(n, _eps().fill_(math.nan), torch.zeros(1, 3)), ValueError, "eps"),
    (lambda n: backends.log_ratio(n, _eps(), torch.full((1, 3), math.nan)), ValueError, "shifts"),
    (lambda n: backends.log_ratio(n, _eps(), torch.zeros(1, 4)), ValueError, "coordinates"),
    (lambda n: backends.log_ratio(n, torch.zeros(3, 5).t(), torch.zeros(1, 3)), ValueError, "eps"),
    (lambda n: backends.log_ratio(n, torch.zeros(5, 3, dtype=torch.int32), torch.zeros(1, 3)), TypeError, "eps"),
    (lambda n: backends.log_ratio(n, torch.zeros(5), torch.zeros(1, 3)), ValueError, "eps"),
    (lambda n: backends.log_ratio(n, torch.zeros(0, 3), torch.zeros(1, 3)), ValueError, "eps"),
    (lambda n: backends.log_ratio(n, _eps().numpy(), torch.zeros(1, 3)), TypeError, "eps"),
    (lambda n: backends.log_ratio("gaussian", _eps(), torch.zeros(1, 3)), TypeError, "noise"),
    (lambda n: backends.log_ratio(n, _eps(), torch.zeros(1, 3), backend="gpu9"), ValueError, "backend"),
    (lambda n: backends.threshold_stats(torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 5, dtype=torch.float64), 0.9, 0.1), ValueError, "shape"),
    (lambda n: backends.threshold_stats(torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64), 1.5, 0.1), ValueError, "p_a"),
    (lambda n: backends.threshold_stats(torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64), 0.9, [0.1, 0.2, 0.3]), ValueError, "p_b"),
    (lambda n: backends.threshold_stats(torch.zeros(2, 4), torch.zeros(2, 4), 0.9, 0.1), TypeError, "a must"),
    (lambda n: backends.threshold_stats(torch.full((2, 4), math.nan, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64), 0.9, 0.1), ValueError, "NaN"),
    (lambda n: backends.pooled_stats(torch.zeros(2, 4, dtype=torch.float64), torch.full((2, 4), math.nan, dtype=torch.float64), 0.9, 0.1), ValueError, "NaN"),
    (lambda n: backends.pooled_stats(torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64), 0.9, -0.1), ValueError, "p_b"),
])
def test_bad_inputs_raise_clear_errors(call, err, match):
    with pytest.raises(err, match=match):
        call(uc.noise.Gaussian(1.0))


def test_samples_outside_support_are_rejected():
    noise = uc.noise.Uniform(1.0)
    with pytest.raises(ValueError, match="support"):
        backends.log_ratio(noise, torch.full((2, 2), 5.0, dtype=torch.float64), torch.zeros(1, 2))


def test_compiled_core_validates_on_its_own():
    from unicr_fast import _cpu
    p = np.zeros(8)
    eps = np.zeros((4, 3))
    sh = np.zeros((2, 3))
    cases = [
        (lambda: _cpu.log_ratio(eps, sh, 99, p), ValueError),
        (lambda: _cpu.log_ratio(eps, sh, -1, p), ValueError),
        (lambda: _cpu.log_ratio(eps, np.zeros((2, 4)), 0, p), ValueError),
        (lambda: _cpu.log_ratio(eps.astype(np.int64), sh, 0, p), TypeError),
        (lambda: _cpu.log_ratio(eps, sh.astype(np.float32), 0, p), TypeError),
        (lambda: _cpu.log_ratio(eps, sh, 0, np.zeros(3)), ValueError),
        (lambda: _cpu.log_ratio(eps, sh, 0, np.full(8, np.nan)), ValueError),
        (lambda: _cpu.log_ratio(eps.T, sh.T, 0, p), ValueError),
        (lambda: _cpu.log_ratio(np.zeros((0, 3)), sh, 0, p), ValueError),
        (lambda: _cpu.log_ratio(np.zeros(3), sh, 0, p), ValueError),
        (lambda: _cpu.log_ratio(eps, sh, 0, p, -2), ValueError),
        (lambda: _cpu.threshold_stats(np.zeros((2, 3)), np.zeros((2, 3)), np.array([0.9, 2.0]), np.array([0.1, 0.1]), 1e-9), ValueError),
        (lambda: _cpu.threshold_stats(np.zeros((2, 3)), np.zeros((2, 3)), np.array([0.9]), np.array([0.1]), 1e-9), ValueError),
        (lambda: _cpu.threshold_stats(np.zeros((2, 3)), np.zeros((2, 3)), np.array([0.9, 0.9]), np.array([0.1, 0.1]), -1.0), ValueError),
        (lambda: _cpu.threshold_stats(np.full((2, 3), np.inf), np.zeros((2, 3)), np.array([0.9, 0.9]), np.array([0.1, 0.1]), 1e-9), ValueError),
        (lambda: _cpu.pooled_stats(np.zeros((2, 3)), np.zeros((2, 3)), np.array([0.9, 2.0]), np.array([0.1, 0.1]), 1e-9), ValueError),
        (lambda: _cpu.pooled_stats(np.zeros((2, 3)), np.zeros((2, 4)), np.array([0.9, 0.9]), np.array([0.1, 0.1]), 1e-9), ValueError),
        (lambda: _cpu.pooled_stats(np.zeros((2, 3)), np.full((2, 3), np.nan), np.array([0.9, 0.9]), np.array([0.1, 0.1]), 1e-9), ValueError),
        (lambda: _cpu.pooled_stats(np.zeros((2, 3), dtype=np.float32), np.zeros((2, 3)), np.array([0.9, 0.9]), np.array([0.1, 0.1]), 1e-9), TypeError),
    ]
    for call, err in cases:
        with pytest.raises(err):
            call()


def test_backend_registry():
    assert "torch" in uc.available_backends()
    assert backends.get_backend("auto", "cpu").name in ("cpu", "torch")
    custom = uc.noise.Custom(lambda x: -x * x, lambda s, g, d: torch.zeros(s, dtype=torch.float64))
    assert backends.get_backend("auto", "cpu", custom).name == "torch"
    with pytest.raises(ValueError, match="backend"):
        backends.get_backend("cpu", "cuda")
    if "cuda" not in uc.available_backends():
        with pytest.raises((RuntimeError, ValueError), match="cuda"):
            backends.get_backend("cuda", "cuda")


# ---- the compiled Philox sampler ----

@pytest.mark.parametrize("case", FAMILY_CASES, ids=family_id)
def test_cpu_philox_sampler_matches_its_cdf(case):
    from scipy import stats
    from unicr_fast import _cpu
    noise = make_noise(case)
    x = _cpu.sample(noise.family_id, noise.kernel_params, 5, 20_000, 1, False)[:, 0]
    cdf = lambda t: noise.cdf(torch.as_tensor(t, dtype=torch.float64)).numpy()
    assert stats.kstest(x, cdf).pvalue > 1e-3   # a correct sampler fails with probability 1e-3
    single = _cpu.sample(noise.family_id, noise.kernel_params, 5, 20_000, 1, True)[:, 0]
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, x, rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("case", FAMILY_CASES, ids=family_id)
def test_cpu_philox_sampler_is_counter_based(case):
    from unicr_fast import _cpu
    noise = make_noise(case)
    big = _cpu.sample(noise.family_id, noise.kernel_params, 9, 300, 17, False)
    small = _cpu.sample(noise.family_id, noise.kernel_params, 9, 40, 17, False, 1)
    np.testing.assert_array_equal(big[:40], small)          # prefix, any thread count
    other = _cpu.sample(noise.family_id, noise.kernel_params, 10, 40, 17, False)
    assert not np.array_equal(other, small)
    assert np.isfinite(big).all() and (np.abs(big) <= noise.support_bound()).all()
    try:
        from unicr_fast import _cuda
    except ImportError:
        return
    # The CUDA module's host reference of its GPU sampler: the same stream, element for element.
    ref = _cuda.sample_host(noise.family_id, noise.kernel_params.tolist(), 9, 40, 17)
    np.testing.assert_array_equal(ref, small)


def test_cpu_philox_sampler_rejects_bad_input():
    from unicr_fast import _cpu
    p = uc.noise.Gaussian(1.0).kernel_params
    for call in (lambda: _cpu.sample(42, p, 0, 10, 3, True),
                 lambda: _cpu.sample(0, p, 0, 0, 3, True),
                 lambda: _cpu.sample(0, np.zeros(3), 0, 10, 3, True),
                 lambda: _cpu.sample(0, np.full(8, np.nan), 0, 10, 3, True)):
        with pytest.raises(ValueError):
            call()
