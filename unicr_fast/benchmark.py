"""Kernel throughput on this machine (`unicr bench`): the log-ratio + threshold-statistics step of
the radius engine on each available backend, timed in one run against the pure-torch reference,
with their outputs checked equal. bench/ holds the pytest-benchmark versions of these and of the
radius, Smooth, table and exact-mode timings."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from . import backends
from .noise import Noise

#: Top-class / runner-up bounds the threshold statistics are taken at (any valid pair works).
P_A, P_B = 0.9, 0.05


def run_kernels(backend: str, noise: Noise, eps: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """One engine step: log-ratios of every shift, then their threshold statistics (M x 8)."""
    impl = backends.get_backend(backend, eps.device, noise)
    a, b = impl.log_ratio(noise, eps, shifts)
    M = shifts.shape[0]
    pa = torch.full((M,), P_A, dtype=torch.float64, device=a.device)
    pb = torch.full((M,), P_B, dtype=torch.float64, device=a.device)
    return impl.threshold_stats(a, b, pa, pb, backends.TIE_RTOL)


def _timed(fn, device: torch.device, repeats: int) -> Tuple[float, torch.Tensor]:
    """(best wall time of ``repeats`` calls, last result); CUDA work is waited for."""
    best, out = math.inf, None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


@dataclass
class KernelTiming:
    noise: str
    backend: str
    seconds: float
    speedup: float            # torch reference seconds / these seconds, same run
    pairs_per_second: float   # (sample coordinate, shift) pairs per second


def time_backends(noise: Noise, num_samples: int, dim: int, num_shifts: int, *,
                  names: Optional[Sequence[str]] = None, repeats: int = 1,
                  seed: int = 0) -> List[KernelTiming]:
    """Timings of ``run_kernels`` for ``noise`` on each backend in ``names`` (default: every
    available one) and on the torch reference, same float32 samples and float64 shifts. Each
    backend's statistics must match the reference (same rounding budget as the tests)."""
    names = list(backends.available_backends() if names is None else names)
    gen = torch.Generator().manual_seed(seed)
    eps_cpu = noise.sample((num_samples, dim), generator=gen, dtype=torch.float32)
    shifts_cpu = torch.rand(num_shifts, dim, generator=gen, dtype=torch.float64) * 0.05 * noise.sigma
    pairs = num_samples * dim * num_shifts
    ref_seconds, ref = _timed(lambda: run_kernels("torch", noise, eps_cpu, shifts_cpu),
                              torch.device("cpu"), 1)
    rows = [KernelTiming(noise.name, "torch", ref_seconds, 1.0, pairs / ref_seconds)]
    for name in names:
        if name == "torch":
            continue
        dev = torch.device("cuda" if name == "cuda" else "cpu")
        eps, shifts = eps_cpu.to(dev), shifts_cpu.to(dev)
        seconds, out = _timed(lambda: run_kernels(name, noise, eps, shifts), dev, repeats)
        torch.testing.assert_close(out.cpu(), ref, rtol=1e-9, atol=1e-9)
        rows.append(KernelTiming(noise.name, name, seconds, ref_seconds / seconds, pairs / seconds))
    return rows


def format_timings(rows: Sequence[KernelTiming]) -> str:
    lines = [f"{'noise':<20}{'backend':<9}{'seconds':>10}{'speedup':>10}{'G pairs/s':>11}"]
    for r in rows:
        lines.append(f"{r.noise:<20}{r.backend:<9}{r.seconds:>10.3f}{r.speedup:>9.1f}x"
                     f"{r.pairs_per_second / 1e9:>11.3f}")
    return "\n".join(lines) + "\n"


def default_noises(sigma: float = 0.5, families: Optional[Sequence[str]] = None) -> List[Noise]:
    """Compiled families with the parameters `unicr validate` uses (all of them by default)."""
    from .noise import make
    from .validate import DEFAULT_FAMILIES
    params: Dict[str, dict] = {name: p for name, p in DEFAULT_FAMILIES if name != "radial"}
    chosen = list(params) if families is None else list(families)
    unknown = [f for f in chosen if f not in params]
    if unknown:
        raise ValueError(f"no benchmark settings for {unknown}; choose from {sorted(params)}")
    return [make(f, sigma=sigma, **params[f]) for f in chosen]
