"""CUDA backend: the compiled kernels of ``unicr_fast._cuda`` on CUDA tensors.

The extension does not link libtorch: this module checks the tensors, allocates the outputs
with torch, and hands raw device pointers, shapes, dtype codes, the device index and torch's
current stream to the kernels, which run asynchronously on that stream (no synchronisation).

Beyond the registry's two kernels (``log_ratio``, ``threshold_stats``) the backend offers the
counter-based Philox noise of docs/theory.md §5: ``sample(noise, shape, seed)`` draws eps_ij as a pure
function of (seed, i, j), and ``log_ratio_philox`` regenerates exactly those draws inside the
log-ratio kernel, so N x d noise never has to be stored.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional

import torch

from ..noise import Noise
from ..radius.mc.thresholds import pooled_stats_reference

__all__ = ["CudaBackend", "load_cuda_backend", "require_cuda_backend", "cuda_unavailable_reason"]

_DTYPE_CODES = {torch.float32: 0, torch.float64: 1}


def _import_module():
    try:
        from .. import _cuda
    except ImportError:
        return None
    return _cuda


def cuda_unavailable_reason() -> Optional[str]:
    """Why the CUDA backend cannot run here, or None when it can."""
    module = _import_module()
    if module is None:
        return ("the compiled module unicr_fast._cuda is missing (the package was built without "
                "nvcc); reinstall with nvcc on PATH, e.g. 'pip install .'")
    if not torch.cuda.is_available():
        return "torch sees no CUDA device (torch.cuda.is_available() is False)"
    if module.device_count() < 1:
        return ("unicr_fast._cuda sees no CUDA device (no driver, or CUDA_VISIBLE_DEVICES "
                "hides them)")
    return None


def load_cuda_backend() -> Optional["CudaBackend"]:
    """The CUDA backend, or None when ``_cuda`` is missing or no device is visible."""
    return None if cuda_unavailable_reason() is not None else CudaBackend(_import_module())


def require_cuda_backend() -> "CudaBackend":
    """The CUDA backend; RuntimeError saying why when CUDA tensors arrive and it cannot run."""
    reason = cuda_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"CUDA tensors need the CUDA backend, which is not available: {reason}")
    return CudaBackend(_import_module())


# ---------------------------------------------------------------------------------------------
# Argument checks: errors name the argument and say what would be right.

def _check_noise(noise):
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be a unicr_fast.noise.Noise, got {type(noise).__name__}")
    if noise.family_id is None:
        raise ValueError(f"noise '{noise.name}' has no compiled kernel; use backend='torch'")


def _check_cuda_tensor(t, name, dtypes, ndim):
    if not torch.is_tensor(t):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cuda":
        raise ValueError(f"{name} must be a CUDA tensor, got device '{t.device}'")
    if t.dtype not in dtypes:
        raise TypeError(f"{name} must have dtype in {[str(d) for d in dtypes]}, got {t.dtype}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous (call .contiguous() first)")


def _check_same_device(t, name, device):
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but the other inputs are on {device}")


def _check_int(value, name, minimum, maximum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must lie in [{minimum}, {maximum}], got {value}")
    return value


def _check_dtype(dtype):
    if dtype not in _DTYPE_CODES:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return _DTYPE_CODES[dtype]


def _cuda_device(device) -> torch.device:
    dev = torch.device("cuda" if device is None else device)
    if dev.type != "cuda":
        raise ValueError(f"device must be a CUDA device, got '{dev}'")
    return torch.device("cuda", torch.cuda.current_device()) if dev.index is None else dev


def _stream(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream


class CudaBackend:
    """Compiled CUDA kernels. Inputs are CUDA tensors on one device; outputs are allocated on
    that device and filled asynchronously on torch's current stream."""

    name = "cuda"

    def __init__(self, module):
        self._m = module

    def log_ratio(self, noise: Noise, eps: torch.Tensor, shifts: torch.Tensor):
        """a, b (M x N float64) for stored samples ``eps`` (N x d float32/float64) and
        ``shifts`` (M x d float64), docs/theory.md §5. eps must lie inside the noise's support."""
        _check_noise(noise)
        _check_cuda_tensor(eps, "eps", tuple(_DTYPE_CODES), 2)
        _check_cuda_tensor(shifts, "shifts", (torch.float64,), 2)
        _check_same_device(shifts, "shifts", eps.device)
        N, d = eps.shape
        if shifts.shape[1] != d:
            raise ValueError(f"shifts has {shifts.shape[1]} coordinates but eps has {d}")
        a, b = self._outputs(shifts.shape[0], N, eps.device)
        self._m.log_ratio(eps.data_ptr(), _DTYPE_CODES[eps.dtype], N, d, shifts.data_ptr(),
                          shifts.shape[0], noise.family_id, noise.kernel_params, a.data_ptr(),
                          b.data_ptr(), eps.device.index, _stream(eps.device))
        return a, b

    def log_ratio_radial(self, noise: Noise, eps: torch.Tensor, shifts: torch.Tensor,
                         tail: torch.Tensor):
        """Radial noise: a, b (M x N float64) for the prefix ``eps`` (N x k) of samples whose
        other coordinates are summarised by ``tail`` (N,), as ``backends.log_ratio_radial``."""
        if not isinstance(noise, Noise) or noise.iid:
            raise TypeError("log_ratio_radial needs a unicr_fast.noise.Radial noise")
        _check_cuda_tensor(eps, "eps", tuple(_DTYPE_CODES), 2)
        _check_cuda_tensor(shifts, "shifts", (torch.float64,), 2)
        _check_cuda_tensor(tail, "tail", (torch.float64,), 1)
        _check_same_device(shifts, "shifts", eps.device)
        _check_same_device(tail, "tail", eps.device)
        N, d = eps.shape
        if shifts.shape[1] != d:
            raise ValueError(f"shifts has {shifts.shape[1]} coordinates but eps has {d}")
        if tail.shape[0] != N:
            raise ValueError(f"tail has {tail.shape[0]} entries but eps has {N} samples")
        q, beta, scale = noise.kernel_scalars()
        a, b = self._outputs(shifts.shape[0], N, eps.device)
        self._m.log_ratio_radial(eps.data_ptr(), _DTYPE_CODES[eps.dtype], N, d, shifts.data_ptr(),
                                 shifts.shape[0], tail.data_ptr(), q, beta, scale, a.data_ptr(),
                                 b.data_ptr(), eps.device.index, _stream(eps.device))
        return a, b

    def log_ratio_philox(self, noise: Noise, seed: int, num_samples: int, dim: int,
                         shifts: torch.Tensor, dtype: torch.dtype = torch.float64):
        """``log_ratio`` on ``sample(noise, (num_samples, dim), seed, dtype)`` without storing
        it: the kernel regenerates each eps_ij from (seed, i, j). Same result as calling
        ``log_ratio`` on that sample, bit for bit."""
        _check_noise(noise)
        seed = _check_int(seed, "seed", 0, 2 ** 64 - 1)
        num_samples = _check_int(num_samples, "num_samples", 1, 2 ** 60)
        dim = _check_int(dim, "dim", 1, 2 ** 31 - 1)
        code = _check_dtype(dtype)
        _check_cuda_tensor(shifts, "shifts", (torch.float64,), 2)
        if shifts.shape[1] != dim:
            raise ValueError(f"shifts has {shifts.shape[1]} coordinates but dim is {dim}")
        a, b = self._outputs(shifts.shape[0], num_samples, shifts.device)
        self._m.log_ratio_philox(seed, code, num_samples, dim, shifts.data_ptr(), shifts.shape[0],
                                 noise.family_id, noise.kernel_params, a.data_ptr(), b.data_ptr(),
                                 shifts.device.index, _stream(shifts.device))
        return a, b

    def sample(self, noise: Noise, shape, seed: int, dtype: torch.dtype = torch.float64,
               device=None) -> torch.Tensor:
        """I.i.d. draws of ``noise``: element (i, j) of the (shape[0], prod(shape[1:])) view is a
        pure function of (seed, i, j), so prefixes of a larger sample agree, and
        ``log_ratio_philox`` regenerates the same numbers."""
        _check_noise(noise)
        seed = _check_int(seed, "seed", 0, 2 ** 64 - 1)
        code = _check_dtype(dtype)
        dev = _cuda_device(device)
        shape = tuple(shape) if isinstance(shape, (tuple, list, torch.Size)) else (shape,)
        shape = tuple(_check_int(s, "shape", 0, 2 ** 60) for s in shape)
        if len(shape) == 0:
            raise ValueError("shape must have at least one dimension")
        out = torch.empty(shape, dtype=dtype, device=dev)
        if out.numel() == 0:
            return out
        N = shape[0]
        d = out.numel() // N
        if d > 2 ** 31 - 1:
            raise ValueError(f"shape[1:] must hold fewer than 2^31 elements, got {d}")
        self._m.sample(noise.family_id, noise.kernel_params, seed, N, d, out.data_ptr(), code,
                       dev.index, _stream(dev))
        return out

    def threshold_stats(self, a: torch.Tensor, b: torch.Tensor, p_a: torch.Tensor,
                        p_b: torch.Tensor, tie_rtol: float) -> torch.Tensor:
        """(M, 8) float64 statistics per row (see backends.STAT_NAMES). ``p_a``, ``p_b``:
        float64 CUDA tensors of length M. Rows with invalid inputs come back as NaN."""
        _check_cuda_tensor(a, "a", (torch.float64,), 2)
        _check_cuda_tensor(b, "b", (torch.float64,), 2)
        _check_cuda_tensor(p_a, "p_a", (torch.float64,), 1)
        _check_cuda_tensor(p_b, "p_b", (torch.float64,), 1)
        for t, name in ((b, "b"), (p_a, "p_a"), (p_b, "p_b")):
            _check_same_device(t, name, a.device)
        M, N = a.shape
        if b.shape != a.shape:
            raise ValueError(f"b must have the shape of a {tuple(a.shape)}, got {tuple(b.shape)}")
        if p_a.shape[0] != M or p_b.shape[0] != M:
            raise ValueError(f"p_a and p_b must have one entry per row of a ({M}), "
                             f"got {p_a.shape[0]} and {p_b.shape[0]}")
        if isinstance(tie_rtol, bool) or not isinstance(tie_rtol, numbers.Real):
            raise TypeError(f"tie_rtol must be a real number, got {type(tie_rtol).__name__}")
        if not (tie_rtol >= 0 and math.isfinite(tie_rtol)):
            raise ValueError(f"tie_rtol must be finite and >= 0, got {tie_rtol}")
        out = torch.empty(M, self._m.num_stats, dtype=torch.float64, device=a.device)
        self._m.threshold_stats(a.data_ptr(), b.data_ptr(), M, N, p_a.data_ptr(), p_b.data_ptr(),
                                float(tie_rtol), out.data_ptr(), a.device.index, _stream(a.device))
        return out

    def pooled_stats(self, a: torch.Tensor, b: torch.Tensor, p_a: torch.Tensor,
                     p_b: torch.Tensor, tie_rtol: float) -> torch.Tensor:
        """(M, 4) pooled statistics: the torch implementation on the GPU (a sort per row)."""
        return pooled_stats_reference(a, b, p_a, p_b, tie_rtol)

    @staticmethod
    def _outputs(M, N, device):
        a = torch.empty(M, N, dtype=torch.float64, device=device)
        return a, torch.empty_like(a)
