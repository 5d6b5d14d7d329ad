"""Tests of the CUDA backend (unicr_fast._cuda, unicr_fast.backends.cuda).

Every kernel is compared with the pure-torch reference (backends.TorchBackend) on the same GPU.
Those tests carry the ``gpu`` mark below and are skipped, with the reason, where torch sees no
GPU or the CUDA backend does not load. The tests in the first section need no GPU: they check
the compiled module itself (import, Philox known answers, the host reference of the sampler,
argument validation that happens before any device is touched).
"""
import importlib
import math

import numpy as np
import pytest
import torch

from unicr_fast.backends import cuda as cuda_backend
from unicr_fast import noise as nz
from unicr_fast.backends import TIE_RTOL, TorchBackend

UNAVAILABLE = cuda_backend.cuda_unavailable_reason()
gpu = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"CUDA backend unavailable: {UNAVAILABLE}")

NOISES = [
    nz.Gaussian(0.5), nz.Laplace(0.5), nz.HyperbolicSecant(0.5), nz.GeneralNormal(0.5, 0.5),
    nz.GeneralNormal(0.5, 1.5), nz.GeneralNormal(0.5, 3.0), nz.Uniform(0.5), nz.Cauchy(0.5),
    nz.Pareto(0.5, 3.0), nz.LaplaceGaussianMixture(0.5, 0.3),
    nz.ExponentialMixture(0.5, 0.4, 1.0, 3.0),
]
NOISE_IDS = [repr(n) for n in NOISES]
DTYPES = [torch.float32, torch.float64]

# Probability that a correct sampler fails one DKW check below.
DKW_BETA = 1e-6


def _compiled(*attrs):
    """The compiled module, skipping when it was not built (or built before `attrs` existed)."""
    try:
        module = importlib.import_module("unicr_fast._cuda")
    except ImportError:
        pytest.skip("unicr_fast._cuda was not built (nvcc was not found at install time)")
    missing = [a for a in attrs if not hasattr(module, a)]
    if missing:
        pytest.skip(f"unicr_fast._cuda is a stale build without {missing}; "
                    "rebuild with 'pip install .'")
    return module


def _cdf(noise, x):
    """CDF of a family as a float64 NumPy array (mixtures from their components)."""
    if isinstance(noise, nz._Mixture):
        return noise.weight * _cdf(noise.first, x) + (1 - noise.weight) * _cdf(noise.second, x)
    return np.asarray(noise.cdf(torch.as_tensor(x, dtype=torch.float64)), dtype=np.float64)


def _assert_dkw(noise, samples):
    """Kolmogorov distance to the family's CDF within the DKW bound: a correct sampler fails
    with probability DKW_BETA (P(sup|F_n - F| > e) <= 2 exp(-2 n e^2))."""
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    n = x.size
    F = _cdf(noise, x)
    dist = max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n))
    bound = math.sqrt(math.log(2 / DKW_BETA) / (2 * n))
    assert dist < bound, f"{noise!r}: Kolmogorov distance {dist:.4g} > DKW bound {bound:.4g}"


# ---------------------------------------------------------------------------------------------
# Without a GPU: the compiled module itself.

def test_compiled_module_imports_and_counts_devices():
    module = _compiled()
    count = module.device_count()
    assert isinstance(count, int) and count >= 0


def test_philox_matches_known_answers():
    # Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
    philox = _compiled("philox4x32_10").philox4x32_10
    assert philox([0, 0, 0, 0], [0, 0]) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    assert philox([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2) == (
        0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)
    assert philox([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0]) == (
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)


@pytest.mark.parametrize("noise", NOISES, ids=NOISE_IDS)
def test_host_sampler_follows_the_family(noise):
    module = _compiled("sample_host")
    x = module.sample_host(noise.family_id, noise.kernel_params, 7, 200, 500)
    assert x.shape == (200, 500) and np.isfinite(x).all()
    _assert_dkw(noise, x)


def test_host_sampler_is_counter_based():
    module = _compiled("sample_host")
    noise = nz.GeneralNormal(1.0, 0.7)
    big = module.sample_host(noise.family_id, noise.kernel_params, 11, 50, 30)
    small = module.sample_host(noise.family_id, noise.kernel_params, 11, 20, 30)
    np.testing.assert_array_equal(big[:20], small)  # eps_ij depends on (seed, i, j) only
    other = module.sample_host(noise.family_id, noise.kernel_params, 12, 20, 30)
    assert not np.any(other == small)


@pytest.mark.parametrize("dtype_code", [0, 1])
def test_host_sampler_stays_inside_the_uniform_support(dtype_code):
    module = _compiled("sample_host")
    noise = nz.Uniform(1.0 / 3.0)
    x = module.sample_host(noise.family_id, noise.kernel_params, 3, 1000, 100, dtype_code)
    assert np.abs(x).max() <= noise.l
    if dtype_code == 0:
        np.testing.assert_array_equal(x, x.astype(np.float32).astype(np.float64))


def test_entry_points_validate_before_touching_a_device():
    module = _compiled("log_ratio", "log_ratio_philox", "sample", "threshold_stats")
    params = nz.Gaussian(1.0).kernel_params
    bad_device = module.device_count()  # one past the last visible device
    ptr = 1 << 20  # aligned, non-null: rejected later as not being device memory
    ok = dict(eps=ptr, eps_dtype=1, num_samples=4, dim=3, shifts=ptr, num_shifts=2, family=0,
              params=params, a=ptr, b=ptr, device=0, stream=0)
    cases = [
        (dict(family=9), "family"), (dict(family=-1), "family"),
        (dict(params=params[:7]), "params"), (dict(params=[math.nan] + [1.0] * 7), "finite"),
        (dict(params=[-1.0] + [0.0] * 7), "> 0"), (dict(num_samples=0), "num_samples"),
        (dict(dim=0), "dim"), (dict(num_shifts=0), "num_shifts"), (dict(eps=0), "null"),
        (dict(a=ptr + 4), "aligned"), (dict(eps_dtype=2), "eps_dtype"),
        (dict(device=bad_device), "device"), (dict(device=-1), "device"),
    ]
    for change, words in cases:
        with pytest.raises(ValueError, match=words):
            module.log_ratio(**{**ok, **change})
    with pytest.raises(ValueError, match="sample_dtype"):
        module.log_ratio_philox(0, 5, 4, 3, ptr, 2, 0, params, ptr, ptr, 0, 0)
    with pytest.raises(ValueError, match="dim"):
        module.sample(0, params, 0, 4, 0, ptr, 1, 0, 0)
    with pytest.raises(ValueError, match="tie_rtol"):
        module.threshold_stats(ptr, ptr, 2, 5, ptr, ptr, math.nan, ptr, 0, 0)
    with pytest.raises(ValueError, match="device"):
        module.threshold_stats(ptr, ptr, 2, 5, ptr, ptr, 0.0, ptr, bad_device, 0)


def test_backend_rejects_non_cuda_inputs_before_any_launch():
    backend = cuda_backend.CudaBackend(_compiled())
    noise = nz.Laplace(1.0)
    eps, shifts = torch.zeros(4, 3), torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="eps must be a CUDA tensor"):
        backend.log_ratio(noise, eps, shifts)
    with pytest.raises(TypeError, match="noise"):
        backend.log_ratio("laplace", eps, shifts)
    with pytest.raises(ValueError, match="shifts must be a CUDA tensor"):
        backend.log_ratio_philox(noise, 0, 4, 3, shifts)
    with pytest.raises(ValueError, match="seed"):
        backend.log_ratio_philox(noise, 2 ** 64, 4, 3, shifts)
    with pytest.raises(ValueError, match="device must be a CUDA device"):
        backend.sample(noise, (4, 3), 0, device="cpu")
    with pytest.raises(ValueError, match="a must be a CUDA tensor"):
        backend.threshold_stats(shifts, shifts, shifts[0], shifts[0], TIE_RTOL)


def test_missing_module_gives_a_clear_error(monkeypatch):
    monkeypatch.setattr(cuda_backend, "_import_module", lambda: None)
    assert cuda_backend.load_cuda_backend() is None
    with pytest.raises(RuntimeError, match="unicr_fast._cuda is missing"):
        cuda_backend.require_cuda_backend()


def test_no_backend_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert cuda_backend.load_cuda_backend() is None
    with pytest.raises(RuntimeError, match="not available"):
        cuda_backend.require_cuda_backend()


# ---------------------------------------------------------------------------------------------
# On a GPU: kernels against the torch reference.

@pytest.fixture(scope="module")
def backend():
    return cuda_backend.load_cuda_backend()


def _shifts(M, d, seed=0):
    """M float64 shifts cycling through the cases that matter: zero, dense, sparse with trailing
    zeros (sorted non-negative, as the direction search produces), axis, and large (leaving the
    uniform support)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for m in range(M):
        kind = m % 5
        if kind == 0:
            row = torch.zeros(d, dtype=torch.float64)
        elif kind == 1:
            row = 0.4 * torch.randn(d, generator=g, dtype=torch.float64)
        elif kind == 2:
            row = torch.zeros(d, dtype=torch.float64)
            k = max(1, d // 3)
            row[:k] = torch.rand(k, generator=g, dtype=torch.float64).sort(descending=True).values
        elif kind == 3:
            row = torch.zeros(d, dtype=torch.float64)
            row[0] = 0.3
        else:
            row = 1.5 * torch.ones(d, dtype=torch.float64)
        rows.append(row)
    return torch.stack(rows).cuda()


def _eps(noise, N, d, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    eps = noise.sample((N, d), generator=g, dtype=torch.float64)
    if math.isfinite(noise.support_bound()):
        eps = eps * (1 - 1e-6)  # float32 rounding must not leave the support
    return eps.to(dtype).cuda()


def _assert_matches_reference(noise, eps, shifts, a, b):
    """a, b against TorchBackend: the same infinities, and finite values within
    1e-12 * S, S = sum_j (|log phi(x)| + |log phi(x - delta)| + |log phi(x + delta)| + 1).
    Why: each term is a difference of log-densities whose parts are O(|log phi| + 1) and are
    computed to a few ulps (2.2e-16); summing d terms in another order adds at most d ulps of S.
    For the d <= 1000 used here that is below 3e-13 S."""
    a_ref, b_ref = TorchBackend().log_ratio(noise, eps, shifts)
    assert a.shape == a_ref.shape and a.dtype == torch.float64 and b.dtype == torch.float64
    assert not (torch.isnan(a).any() or torch.isnan(b).any()), "NaN in a or b"
    assert not ((a == math.inf).any() or (b == -math.inf).any()), "a = +inf or b = -inf"
    assert torch.equal(a == -math.inf, a_ref == -math.inf), "a: different -inf pattern"
    assert torch.equal(b == math.inf, b_ref == math.inf), "b: different +inf pattern"
    x = eps.to(torch.float64).unsqueeze(0)
    delta = shifts.unsqueeze(1)

    def magnitude(v):
        lp = noise.log_pdf(v).abs()
        return torch.where(torch.isfinite(lp), lp, torch.zeros_like(lp))

    tol = 1e-12 * (magnitude(x) + magnitude(x - delta) + magnitude(x + delta) + 1).sum(-1)
    for got, ref, name in ((a, a_ref, "a"), (b, b_ref, "b")):
        finite = torch.isfinite(ref)
        err = (got - ref).abs()[finite]
        worst = (err / tol[finite]).max().item() if err.numel() else 0.0
        assert worst <= 1.0, f"{name}: error {worst:.3g} times the tolerance"


SHAPES = [(1, 1, 1), (9, 1, 3), (1, 7, 2), (300, 33, 19), (129, 100, 5), (40, 1000, 6)]


@gpu
@pytest.mark.parametrize("shape", SHAPES, ids=[f"N{n}-d{d}-M{m}" for n, d, m in SHAPES])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("noise", NOISES, ids=NOISE_IDS)
def test_log_ratio_matches_torch(backend, noise, dtype, shape):
    N, d, M = shape
    eps, shifts = _eps(noise, N, d, dtype), _shifts(M, d)
    a, b = backend.log_ratio(noise, eps, shifts)
    _assert_matches_reference(noise, eps, shifts, a, b)


@gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_log_ratio_at_the_uniform_support_edges(backend, dtype):
    noise = nz.Uniform(0.5)
    edge = torch.tensor(noise.l, dtype=torch.float64).to(dtype)
    if float(edge) > noise.l:  # the float32 next to l inside the support
        edge = torch.nextafter(edge, torch.zeros_like(edge))
    e = float(edge)
    eps = torch.tensor([[e, -e, 0.0], [0.5 * e, e, -e], [0.0, 0.0, 0.0]], dtype=dtype).cuda()
    shifts = torch.tensor([[0.0, 0.0, 0.0], [e, 0.0, 0.0], [2 * e, 0.0, 0.0], [0.1, -0.1, 0.0],
                           [e, e, e], [1e-9, 0.0, 0.0]], dtype=torch.float64).cuda()
    a, b = backend.log_ratio(noise, eps, shifts)
    _assert_matches_reference(noise, eps, shifts, a, b)
    assert (a == -math.inf).any() and (b == math.inf).any()


@gpu
def test_zero_shifts_give_exact_zeros(backend):
    noise = nz.GeneralNormal(0.5, 1.5)
    zeros = torch.zeros(17, 20, dtype=torch.float64).cuda()
    a, b = backend.log_ratio(noise, _eps(noise, 50, 20, torch.float32), zeros)
    assert torch.equal(a, torch.zeros_like(a)) and torch.equal(b, torch.zeros_like(b))


def _threshold_inputs(N, M, seed):
    """Rows of a with heavy ties (a coarse grid), a continuous part, -inf atoms and -0.0; b with
    +inf atoms. p_a / p_b cover rank 1, interior ranks, p = 1 and p_b = 0 (t_B = +inf)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(M, N, generator=g, dtype=torch.float64)
    grid = torch.rand(M, N, generator=g) < 0.5
    a = torch.where(grid, torch.round(a * 4) / 4, a)
    a[torch.rand(M, N, generator=g) < 0.1] = -math.inf
    a[torch.rand(M, N, generator=g) < 0.05] = -0.0
    b = a + 0.1 * torch.randn(M, N, generator=g, dtype=torch.float64)
    b[torch.rand(M, N, generator=g) < 0.1] = math.inf
    p_a = torch.tensor([1 / N, 0.5, 0.9, 1.0, 0.37, 0.999, 0.6])[:M].to(torch.float64)
    p_b = torch.tensor([0.0, 0.1, 1 / N, 0.5, 1.0, 0.0, 0.25])[:M].to(torch.float64)
    return a.cuda(), b.cuda(), p_a.cuda(), p_b.cuda()


def _assert_stats_equal(got, ref, N):
    """t_A and t_B are elements of a: equal exactly. The masses are counts / N: equal counts."""
    assert got.shape == ref.shape and got.dtype == torch.float64
    thresholds = [0, 4]
    masses = [1, 2, 3, 5, 6, 7]
    assert torch.equal(got[:, thresholds], ref[:, thresholds]), (got, ref)
    assert torch.equal(torch.round(got[:, masses] * N), torch.round(ref[:, masses] * N))
    torch.testing.assert_close(got[:, masses], ref[:, masses], rtol=4e-16, atol=0.0)


@gpu
@pytest.mark.parametrize("tie_rtol", [0.0, TIE_RTOL, 1e-2])
@pytest.mark.parametrize("N", [1, 2, 7, 1000, 4097])
def test_threshold_stats_equal_torch(backend, N, tie_rtol):
    M = 7
    a, b, p_a, p_b = _threshold_inputs(N, M, seed=N)
    got = backend.threshold_stats(a, b, p_a, p_b, tie_rtol)
    _assert_stats_equal(got, TorchBackend().threshold_stats(a, b, p_a, p_b, tie_rtol), N)


@gpu
@pytest.mark.parametrize("noise", [nz.Laplace(0.5), nz.Uniform(0.5), nz.Gaussian(0.5)], ids=repr)
def test_threshold_stats_on_log_ratios(backend, noise):
    # Laplace along an axis has atoms of L; uniform has a plateau and -inf: ties everywhere.
    N, d = 5000, 8
    eps = _eps(noise, N, d, torch.float64, seed=1)
    shifts = torch.zeros(3, d, dtype=torch.float64)
    shifts[0, 0], shifts[1, :2], shifts[2] = 0.3, 0.2, 0.1
    a, b = backend.log_ratio(noise, eps, shifts.cuda())
    p_a = torch.tensor([0.9, 0.7, 0.55], dtype=torch.float64).cuda()
    p_b = 1 - p_a
    got = backend.threshold_stats(a, b, p_a, p_b, TIE_RTOL)
    _assert_stats_equal(got, TorchBackend().threshold_stats(a, b, p_a, p_b, TIE_RTOL), N)


@gpu
def test_threshold_stats_flags_invalid_rows_with_nan(backend):
    a, b, p_a, p_b = _threshold_inputs(50, 3, seed=0)
    p_a[0] = 0.0  # outside (0, 1]
    a[1, 3] = math.nan
    out = backend.threshold_stats(a, b, p_a, p_b, TIE_RTOL)
    assert torch.isnan(out[:2]).all() and torch.isfinite(out[2, [1, 2, 3, 5, 6, 7]]).all()


@gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("noise", NOISES, ids=NOISE_IDS)
def test_fused_equals_sample_then_log_ratio(backend, noise, dtype):
    N, d, M, seed = 257, 40, 7, 2024
    shifts = _shifts(M, d, seed=1)
    eps = backend.sample(noise, (N, d), seed, dtype)
    assert eps.dtype == dtype and eps.shape == (N, d)
    a, b = backend.log_ratio_philox(noise, seed, N, d, shifts, dtype)
    a_s, b_s = backend.log_ratio(noise, eps, shifts)
    # Same kernel body, same eps: bit-identical.
    assert torch.equal(a, a_s) and torch.equal(b, b_s)
    _assert_matches_reference(noise, eps, shifts, a, b)


@gpu
@pytest.mark.parametrize("noise", NOISES, ids=NOISE_IDS)
def test_device_sampler_follows_the_family_and_the_host_reference(backend, noise):
    x = backend.sample(noise, (200, 500), 7, torch.float64)
    assert torch.isfinite(x).all()
    _assert_dkw(noise, x.cpu().numpy())
    # Host and device math libraries differ by a few ulps; the transforms amplify that by at
    # most |log G / beta| (general normal) or the tan slope: far below 1e-9 relative.
    host = _compiled("sample_host").sample_host(noise.family_id, noise.kernel_params, 7, 200, 500)
    np.testing.assert_allclose(x.cpu().numpy(), host, rtol=1e-9, atol=1e-12)


@gpu
def test_sampling_is_deterministic_and_counter_based(backend):
    noise = nz.ExponentialMixture(0.5, 0.4, 1.0, 3.0)
    x = backend.sample(noise, (300, 17), 5, torch.float32)
    assert torch.equal(x, backend.sample(noise, (300, 17), 5, torch.float32))
    assert torch.equal(x[:100], backend.sample(noise, (100, 17), 5, torch.float32))
    assert not torch.equal(x, backend.sample(noise, (300, 17), 6, torch.float32))
    assert torch.equal(backend.sample(noise, (300, 17), 5, torch.float64).to(torch.float32), x)
    flat = backend.sample(noise, (4, 3, 5), 5)
    assert torch.equal(flat.reshape(4, 15), backend.sample(noise, (4, 15), 5))
    assert backend.sample(noise, (0, 4), 5).shape == (0, 4)
    shifts = _shifts(5, 17)
    first = backend.log_ratio_philox(noise, 9, 300, 17, shifts)
    second = backend.log_ratio_philox(noise, 9, 300, 17, shifts)
    assert all(torch.equal(u, v) for u, v in zip(first, second))


@gpu
def test_uniform_samples_stay_in_the_support(backend):
    noise = nz.Uniform(1.0 / 3.0)
    for dtype in DTYPES:
        x = backend.sample(noise, (2000, 100), 1, dtype)
        assert x.to(torch.float64).abs().max().item() <= noise.l


@gpu
def test_kernels_follow_the_current_stream_and_device(backend):
    noise = nz.Laplace(0.5)
    eps, shifts = _eps(noise, 64, 16, torch.float32), _shifts(4, 16)
    expected = backend.log_ratio(noise, eps, shifts)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        got = backend.log_ratio(noise, eps, shifts)
    stream.synchronize()
    assert all(torch.equal(u, v) for u, v in zip(expected, got))
    if torch.cuda.device_count() > 1:
        before = torch.cuda.current_device()
        other = torch.device("cuda", (before + 1) % torch.cuda.device_count())
        moved = backend.log_ratio(noise, eps.to(other), shifts.to(other))
        assert torch.cuda.current_device() == before
        assert all(torch.equal(u.cpu(), v.cpu()) for u, v in zip(expected, moved))


@gpu
def test_bad_inputs_raise_errors_naming_the_argument(backend):
    noise = nz.Gaussian(0.5)
    eps, shifts = _eps(noise, 8, 4, torch.float32), _shifts(3, 4)
    with pytest.raises(ValueError, match="eps must be a CUDA tensor"):
        backend.log_ratio(noise, eps.cpu(), shifts)
    with pytest.raises(TypeError, match="eps"):
        backend.log_ratio(noise, eps.to(torch.int32), shifts)
    with pytest.raises(TypeError, match="shifts"):
        backend.log_ratio(noise, eps, shifts.float())
    with pytest.raises(ValueError, match="contiguous"):
        backend.log_ratio(noise, eps.t(), _shifts(3, 8))
    with pytest.raises(ValueError, match="coordinates"):
        backend.log_ratio(noise, eps, _shifts(3, 5))
    with pytest.raises(ValueError, match="non-empty"):
        backend.log_ratio(noise, eps[:0], shifts)
    custom = nz.Custom(noise.log_pdf, lambda shape, g, dev: torch.zeros(shape, dtype=torch.float64))
    with pytest.raises(ValueError, match="no compiled kernel"):
        backend.log_ratio(custom, eps, shifts)
    with pytest.raises(TypeError, match="noise"):
        backend.sample("gaussian", (2, 2), 0)
    with pytest.raises(ValueError, match="seed"):
        backend.sample(noise, (2, 2), -1)
    with pytest.raises(TypeError, match="seed"):
        backend.log_ratio_philox(noise, 1.5, 8, 4, shifts)
    with pytest.raises(TypeError, match="dtype"):
        backend.sample(noise, (2, 2), 0, dtype=torch.int64)
    with pytest.raises(ValueError, match="device"):
        backend.sample(noise, (2, 2), 0, device="cpu")
    with pytest.raises(ValueError, match="dim"):
        backend.log_ratio_philox(noise, 0, 8, 0, shifts)
    a, b, p_a, p_b = _threshold_inputs(10, 3, seed=0)
    with pytest.raises(ValueError, match="one entry per row"):
        backend.threshold_stats(a, b, p_a[:2], p_b, TIE_RTOL)
    with pytest.raises(ValueError, match="tie_rtol"):
        backend.threshold_stats(a, b, p_a, p_b, math.inf)
    with pytest.raises(ValueError, match="shape of a"):
        backend.threshold_stats(a, b[:, :5].contiguous(), p_a, p_b, TIE_RTOL)
    # The compiled layer checks where pointers live, whatever Python passes.
    module = _compiled()
    host = torch.zeros(8, 4, dtype=torch.float64)
    out = torch.empty(3, 8, dtype=torch.float64, device=eps.device)
    dev = eps.device.index
    with pytest.raises(ValueError, match="eps must point to CUDA device memory"):
        module.log_ratio(host.data_ptr(), 1, 8, 4, shifts.data_ptr(), 3, 0, noise.kernel_params,
                         out.data_ptr(), out.data_ptr(), dev, 0)
    with pytest.raises(ValueError, match="aligned"):
        module.log_ratio(eps.data_ptr() + 2, 0, 8, 4, shifts.data_ptr(), 3, 0, noise.kernel_params,
                         out.data_ptr(), out.data_ptr(), dev, 0)
