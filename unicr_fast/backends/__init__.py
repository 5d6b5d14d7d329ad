"""Backend registry: "cuda" | "cpu" | "torch" (pure-torch reference, always present) | "auto".

A backend implements the two kernels of the radius engine on torch tensors:

* ``log_ratio(noise, eps, shifts) -> (a, b)``: X-side and Y-side log-ratio sums (docs/theory.md §5),
  float64, shape (M, N) for N samples of dimension d and M shifts.
* ``log_ratio_radial(noise, eps, shifts, tail) -> (a, b)``: the same for ``Radial`` noise, whose
  log-ratio is not a sum over coordinates: ``tail`` (N,) carries the l_q statistic of each
  sample's coordinates beyond the d columns given (unicr_fast.noise.radial.lq_tail).
* ``threshold_stats(a, b, p_a, p_b, tie_rtol) -> (M, 8)``: t_A, P_X(L<t_A), P_X(L=t_A),
  P_Y(L<t_A), t_B, P_X(L>t_B), P_X(L=t_B), P_Y(L>t_B) (docs/theory.md §3).

The public functions below validate once, then dispatch; the compiled modules validate again.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..noise import Noise
from ..radius.mc.thresholds import pooled_stats_reference

#: Two log-ratio values count as tied when |L - t| <= TIE_RTOL * max(1, |t|). Terms are computed
#: and summed in float64, so values that are equal in exact arithmetic (e.g. Laplace atoms, the
#: uniform plateau) differ by a few ulp times the number of terms: far below 1e-9 for d <= 1e6.
#: Points of the continuous part that fall in the band are weighted by e^t instead of e^L, a
#: relative error below 1e-9 in P_Y (docs/theory.md §3).
TIE_RTOL = 1e-9

NUM_STATS = 8
STAT_NAMES = ("t_a", "px_lt_a", "px_eq_a", "py_lt_a", "t_b", "px_gt_b", "px_eq_b", "py_gt_b")

# Rows of samples processed at once by the torch reference (bounds its M x rows x d temporaries).
_TORCH_ELEMS_PER_CHUNK = 1 << 24


def quantile_rank(p: float, n: int, lo: int) -> int:
    """ceil(p n), guarded against rounding just above an integer, clamped to [lo, n].
    Must agree with csrc/cpu/threshold_stats.cpp."""
    return int(min(n, max(lo, math.ceil(p * n - 1e-6))))


class TorchBackend:
    """Pure-torch reference: a few lines per kernel, the oracle for tests and benchmarks."""

    name = "torch"

    def log_ratio(self, noise: Noise, eps: torch.Tensor, shifts: torch.Tensor):
        N, d = eps.shape
        M = shifts.shape[0]
        x64 = eps.to(torch.float64)
        shifts = shifts.to(device=eps.device, dtype=torch.float64)
        a = torch.empty(M, N, dtype=torch.float64, device=eps.device)
        b = torch.empty_like(a)
        rows = max(1, _TORCH_ELEMS_PER_CHUNK // max(1, M * d))
        for lo in range(0, N, rows):
            x = x64[lo:lo + rows].unsqueeze(0)          # 1 x n x d
            delta = shifts.unsqueeze(1)                  # M x 1 x d
            base = noise.log_pdf(x)
            back = noise.log_pdf(x - delta)
            fwd = noise.log_pdf(x + delta)
            ta = torch.where(back == -math.inf, back, back - base)
            tb = torch.where(fwd == -math.inf, -fwd, base - fwd)
            a[:, lo:lo + rows] = ta.sum(-1)
            b[:, lo:lo + rows] = tb.sum(-1)
        return a, b

    def log_ratio_radial(self, noise, eps, shifts, tail):
        """Straight from the definition: the three norms, then energy differences (float64)."""
        N, d = eps.shape
        M = shifts.shape[0]
        q, beta, scale = noise.kernel_scalars()
        x64 = eps.to(torch.float64)
        shifts = shifts.to(device=eps.device, dtype=torch.float64)

        def energy(v):   # (||v||_q / a)^beta with the tail coordinates appended
            if math.isinf(q):
                norm = torch.maximum(v.abs().amax(-1), tail_rows)
            else:
                norm = (v.abs().pow(q).sum(-1) + tail_rows).pow(1.0 / q)
            return (norm / scale).pow(beta)

        a = torch.empty(M, N, dtype=torch.float64, device=eps.device)
        b = torch.empty_like(a)
        rows = max(1, _TORCH_ELEMS_PER_CHUNK // max(1, M * d))
        for lo in range(0, N, rows):
            x = x64[lo:lo + rows].unsqueeze(0)
            tail_rows = tail[lo:lo + rows].to(torch.float64).unsqueeze(0)
            base = energy(x)
            a[:, lo:lo + rows] = base - energy(x - shifts.unsqueeze(1))
            b[:, lo:lo + rows] = energy(x + shifts.unsqueeze(1)) - base
        return a, b

    def threshold_stats(self, a, b, p_a, p_b, tie_rtol):
        M, N = a.shape
        out = torch.empty(M, NUM_STATS, dtype=torch.float64, device=a.device)
        sorted_a = torch.sort(a, dim=1).values
        for m in range(M):
            t_a = sorted_a[m, quantile_rank(float(p_a[m]), N, 1) - 1]
            k_b = quantile_rank(float(p_b[m]), N, 0)
            t_b = sorted_a[m, N - k_b] if k_b > 0 else torch.tensor(math.inf, dtype=torch.float64)
            out[m] = torch.stack(self._row_stats(a[m], b[m], t_a.to(a.device), t_b.to(a.device), tie_rtol))
        return out

    def pooled_stats(self, a, b, p_a, p_b, tie_rtol):
        return pooled_stats_reference(a, b, p_a, p_b, tie_rtol)

    @staticmethod
    def _row_stats(a, b, t_a, t_b, tie_rtol):
        def tie(v, t):
            tol = tie_rtol * max(1.0, abs(float(t))) if math.isfinite(float(t)) else 0.0
            return (v == t) | ((v - t).abs() <= tol)

        ta_x, tb_x, ta_y, tb_y = tie(a, t_a), tie(a, t_b), tie(b, t_a), tie(b, t_b)
        mean = lambda mask: mask.to(torch.float64).mean()
        return [t_a.to(torch.float64), mean((a < t_a) & ~ta_x), mean(ta_x), mean((b < t_a) & ~ta_y),
                t_b.to(torch.float64), mean((a > t_b) & ~tb_x), mean(tb_x),
                mean((b == math.inf) | ((b > t_b) & ~tb_y))]


class CpuBackend:
    """Compiled multithreaded CPU kernels (unicr_fast._cpu)."""

    name = "cpu"

    def __init__(self, module, num_threads: int = 0):
        self._m = module
        self.num_threads = num_threads

    def log_ratio(self, noise, eps, shifts):
        a, b = self._m.log_ratio(eps.numpy(), shifts.to(torch.float64).contiguous().numpy(),
                                 noise.family_id, noise.kernel_params, self.num_threads)
        return torch.from_numpy(a), torch.from_numpy(b)

    def log_ratio_philox(self, noise, seed, num_samples, dim, shifts, dtype=torch.float64):
        """``log_ratio`` on the draws ``SampleBank`` would store for (noise, seed, dtype),
        regenerated row by row: for sample sets too large to keep in memory."""
        a, b = self._m.log_ratio_philox(noise.family_id, noise.kernel_params, int(seed),
                                        int(num_samples), int(dim),
                                        shifts.to(torch.float64).contiguous().numpy(),
                                        dtype == torch.float32, self.num_threads)
        return torch.from_numpy(a), torch.from_numpy(b)

    def log_ratio_radial(self, noise, eps, shifts, tail):
        q, beta, scale = noise.kernel_scalars()
        a, b = self._m.log_ratio_radial(eps.numpy(), shifts.to(torch.float64).contiguous().numpy(),
                                        tail.to(torch.float64).contiguous().numpy(), q, beta,
                                        scale, self.num_threads)
        return torch.from_numpy(a), torch.from_numpy(b)

    def threshold_stats(self, a, b, p_a, p_b, tie_rtol):
        return torch.from_numpy(self._m.threshold_stats(
            a.numpy(), b.numpy(), p_a.numpy(), p_b.numpy(), float(tie_rtol), self.num_threads))

    def pooled_stats(self, a, b, p_a, p_b, tie_rtol):
        return torch.from_numpy(self._m.pooled_stats(
            a.numpy(), b.numpy(), p_a.numpy(), p_b.numpy(), float(tie_rtol), self.num_threads))


def _load_cpu():
    try:
        from .. import _cpu
    except ImportError:
        return None
    return CpuBackend(_cpu)


def _load_cuda():
    try:
        from .cuda import load_cuda_backend
    except ImportError:
        return None
    return load_cuda_backend()


_CACHE: Dict[str, object] = {}
_LOADERS = {"torch": TorchBackend, "cpu": _load_cpu, "cuda": _load_cuda}


def available_backends() -> Tuple[str, ...]:
    """Names of the backends that load on this machine."""
    return tuple(name for name in ("cuda", "cpu", "torch") if _get(name) is not None)


def _get(name: str):
    if name not in _CACHE:
        _CACHE[name] = _LOADERS[name]()
    return _CACHE[name]


def get_backend(name: str = "auto", device: Optional[torch.device] = None,
                noise: Optional[Noise] = None):
    """Resolve a backend by name. "auto": cuda for CUDA tensors, else cpu, else torch; noises
    without a compiled kernel (``Custom``) always use torch."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string, got {type(name).__name__}")
    name = name.lower()
    if name not in ("auto", *_LOADERS):
        raise ValueError(f"unknown backend '{name}'; choose 'auto', 'cuda', 'cpu' or 'torch'")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    compiled_ok = noise is None or noise.has_compiled_kernel
    if name == "auto":
        if compiled_ok and dev.type == "cuda" and _get("cuda") is not None:
            return _get("cuda")
        if compiled_ok and dev.type == "cpu" and _get("cpu") is not None:
            return _get("cpu")
        return _get("torch")
    if name != "torch" and not compiled_ok:
        raise ValueError(f"noise '{noise.name}' has no compiled kernel; use backend='torch'")
    if name == "cuda" and dev.type != "cuda":
        raise ValueError("backend 'cuda' needs CUDA tensors (device='cuda')")
    if name == "cpu" and dev.type != "cpu":
        raise ValueError(f"backend 'cpu' needs CPU tensors, got device '{dev}'")
    backend = _get(name)
    if backend is None:
        if name == "cuda":
            from .cuda import require_cuda_backend
            return require_cuda_backend()   # raises, saying why (no module / no device)
        raise RuntimeError("backend 'cpu' is not available: the compiled module unicr_fast._cpu "
                           "did not import; reinstall with 'pip install .'")
    return backend


# ---------------------------------------------------------------------------------------------
# Public kernel entry points with validation.

def _check_matrix(t, name, dtypes, rows_only=False):
    if not torch.is_tensor(t):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name} must have dtype in {[str(d) for d in dtypes]}, got {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
    if t.shape[0] < 1 or t.shape[1] < 1:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(t.shape)}")
    if rows_only:
        # A column prefix of a contiguous matrix is accepted: rows contiguous, not overlapping.
        if t.stride(1) != 1 or t.stride(0) < t.shape[1]:
            raise ValueError(f"{name} must have contiguous rows (call .contiguous() first)")
    elif not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous (call .contiguous() first)")


def kernel_rows(impl, eps: torch.Tensor) -> torch.Tensor:
    """``eps`` as ``impl`` reads it: the CPU kernels take a column prefix of wider rows as it is,
    the CUDA kernels whole contiguous rows (the prefix is copied)."""
    return eps.contiguous() if impl.name == "cuda" else eps


def _check_log_ratio_inputs(noise, eps, shifts) -> None:
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be a unicr_fast.noise.Noise, got {type(noise).__name__}")
    _check_matrix(eps, "eps", (torch.float32, torch.float64), rows_only=True)
    _check_matrix(shifts, "shifts", (torch.float32, torch.float64))
    if shifts.shape[1] != eps.shape[1]:
        raise ValueError(f"shifts has {shifts.shape[1]} coordinates but eps has {eps.shape[1]}")
    if shifts.device != eps.device:
        raise ValueError(f"shifts is on {shifts.device} but eps is on {eps.device}")
    if not bool(torch.isfinite(eps).all()):
        raise ValueError("eps must be finite (found NaN or inf)")
    if not bool(torch.isfinite(shifts).all()):
        raise ValueError("shifts must be finite (found NaN or inf)")


def log_ratio(noise: Noise, eps: torch.Tensor, shifts: torch.Tensor, backend: str = "auto"):
    """X-side ``a`` and Y-side ``b`` log-ratio sums (docs/theory.md §5) for samples ``eps`` (N x d,
    float32/float64, rows contiguous, inside the noise's support) and ``shifts`` (M x d). Returns two (M, N)
    float64 tensors; ``a`` may hold -inf and ``b`` +inf where a support ends, never NaN.
    Radial noise: d must be the noise's dim (whole vectors); see ``log_ratio_radial``."""
    _check_log_ratio_inputs(noise, eps, shifts)
    noise = noise.bound(eps.shape[1])   # radial: whole vectors (a prefix: log_ratio_radial)
    if not noise.iid:
        tail = torch.zeros(eps.shape[0], dtype=torch.float64, device=eps.device)
        return log_ratio_radial(noise, eps, shifts, tail, backend)
    bound = noise.support_bound()
    if math.isfinite(bound) and bool((eps.abs() > bound).any()):
        raise ValueError(f"eps has values outside the support [-{bound:g}, {bound:g}] of {noise.name}")
    impl = get_backend(backend, eps.device, noise)
    return impl.log_ratio(noise, kernel_rows(impl, eps), shifts.to(torch.float64).contiguous())


def log_ratio_radial(noise: Noise, eps: torch.Tensor, shifts: torch.Tensor, tail: torch.Tensor,
                     backend: str = "auto"):
    """Radial-noise log-ratios for the first k coordinates ``eps`` (N x k) of samples whose other
    coordinates are summarised by ``tail`` (N,): sum |w_j|^q over them (max |w_j| for q = inf),
    as ``unicr_fast.noise.radial.lq_tail`` computes; shifts (M x k) are zero beyond k. Same outputs
    as ``log_ratio``."""
    _check_log_ratio_inputs(noise, eps, shifts)
    if noise.iid:
        raise TypeError(f"log_ratio_radial needs radial noise, got '{noise.name}' (use log_ratio)")
    if noise.dim is None:
        raise ValueError("log_ratio_radial sees a prefix of the vectors: give the noise its "
                         "dimension first (noise.bound(dim))")
    if eps.shape[1] > noise.dim:
        raise ValueError(f"eps has {eps.shape[1]} coordinates, more than the noise's dim {noise.dim}")
    if not torch.is_tensor(tail) or tail.dim() != 1 or tail.shape[0] != eps.shape[0]:
        raise ValueError(f"tail must be a 1-D tensor with one entry per sample ({eps.shape[0]})")
    if tail.device != eps.device:
        raise ValueError(f"tail is on {tail.device} but eps is on {eps.device}")
    tail = tail.to(torch.float64).contiguous()
    if not bool(torch.isfinite(tail).all()) or bool((tail < 0).any()):
        raise ValueError("tail must be finite and >= 0")
    impl = get_backend(backend, eps.device, noise)
    shifts = shifts.to(torch.float64).contiguous()
    return impl.log_ratio_radial(noise, kernel_rows(impl, eps), shifts, tail)


def _checked_stats_args(a, b, p_a, p_b, tie_rtol):
    _check_matrix(a, "a", (torch.float64,))
    _check_matrix(b, "b", (torch.float64,))
    if a.shape != b.shape:
        raise ValueError(f"b must have the shape of a {tuple(a.shape)}, got {tuple(b.shape)}")
    M = a.shape[0]
    p_a = _per_row(p_a, M, "p_a", a.device)
    p_b = _per_row(p_b, M, "p_b", a.device)
    if not bool(((p_a > 0) & (p_a <= 1)).all()):
        raise ValueError("p_a must lie in (0, 1]")
    if not bool(((p_b >= 0) & (p_b <= 1)).all()):
        raise ValueError("p_b must lie in [0, 1]")
    if bool(torch.isnan(a).any() | (a == math.inf).any()) or bool(torch.isnan(b).any()):
        raise ValueError("a must not hold NaN or +inf, b must not hold NaN")
    if not (tie_rtol >= 0 and math.isfinite(tie_rtol)):
        raise ValueError(f"tie_rtol must be finite and >= 0, got {tie_rtol}")
    return p_a, p_b


def threshold_stats(a: torch.Tensor, b: torch.Tensor, p_a, p_b, tie_rtol: float = TIE_RTOL,
                    backend: str = "auto") -> torch.Tensor:
    """Tie-aware threshold statistics per row (see module doc); ``p_a``/``p_b`` are scalars or
    one value per row. Returns an (M, 8) float64 tensor whose columns are ``STAT_NAMES``."""
    p_a, p_b = _checked_stats_args(a, b, p_a, p_b, tie_rtol)
    return get_backend(backend, a.device).threshold_stats(a, b, p_a, p_b, tie_rtol)


def pooled_stats(a: torch.Tensor, b: torch.Tensor, p_a, p_b, tie_rtol: float = TIE_RTOL,
                 backend: str = "auto") -> torch.Tensor:
    """The pooled estimator's (M, 4) float64 rows t_A, P_Y(S_A), t_B, P_Y(S_B)
    (thresholds.pooled_stats_reference states them; the margins the radius engine uses)."""
    p_a, p_b = _checked_stats_args(a, b, p_a, p_b, tie_rtol)
    return get_backend(backend, a.device).pooled_stats(a, b, p_a, p_b, tie_rtol)


def _per_row(p, M, name, device):
    t = torch.as_tensor(np.asarray(p, dtype=np.float64) if not torch.is_tensor(p) else p,
                        dtype=torch.float64).to(device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(M)
    if t.numel() != M:
        raise ValueError(f"{name} must be a scalar or have one entry per row ({M}), got {t.numel()}")
    if bool(torch.isnan(t).any()):
        raise ValueError(f"{name} must not be NaN")
    return t.contiguous()
