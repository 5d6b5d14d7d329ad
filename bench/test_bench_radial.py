"""Radial noise (unicr_fast.noise.radial): the compiled log-ratio kernel vs the torch reference, both
timed in this run (d=3072, N=20,000, M=16, float32 samples), the saving of the tail statistic
for sparse shifts, and one certified radius. Run with
    python -m pytest bench/test_bench_radial.py --benchmark-only -s
Ratios land in extra_info and are printed."""
import math
import time

import pytest
import torch

import unicr_fast as uc
from unicr_fast import backends
from unicr_fast.noise import Radial
from unicr_fast.noise.radial import lq_tail

N, D, M = 20_000, 3072, 16
QS = [1.0, 2.0, 1.5, math.inf]
needs_cpu = pytest.mark.skipif("cpu" not in uc.available_backends(), reason="CPU module not built")


def samples(noise, n=N):
    return noise.sample((n, noise.dim), generator=torch.Generator().manual_seed(0),
                        dtype=torch.float32)


def shifts_of(k, m=M):
    return torch.rand(m, k, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.05


def radial_kernel(backend, noise, eps, shifts, tail):
    return backends.get_backend(backend).log_ratio_radial(noise, eps, shifts, tail)


@needs_cpu
@pytest.mark.parametrize("q", QS, ids=[f"q{q:g}" for q in QS])
def test_cpu_vs_torch(benchmark, q):
    noise = Radial(0.5, q, 1.5, D)
    eps, shifts = samples(noise), shifts_of(D)
    tail = torch.zeros(N, dtype=torch.float64)
    t0 = time.perf_counter()
    ref = radial_kernel("torch", noise, eps, shifts, tail)
    torch_seconds = time.perf_counter() - t0
    out = benchmark.pedantic(radial_kernel, args=("cpu", noise, eps, shifts, tail), rounds=3,
                             iterations=1)
    for got, want in zip(out, ref):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-9 * float(want.abs().max() + 1))
    cpu_seconds = benchmark.stats.stats.min
    benchmark.extra_info.update(torch_seconds=torch_seconds, cpu_seconds=cpu_seconds,
                                speedup=torch_seconds / cpu_seconds,
                                cpu_gelem_per_s=N * D * M / cpu_seconds / 1e9)
    print(f"\nradial q={q:g}: torch {torch_seconds:.2f}s  cpu {cpu_seconds:.3f}s  "
          f"speedup {torch_seconds / cpu_seconds:.1f}x")


@needs_cpu
@pytest.mark.parametrize("k", [8, 256])
def test_sparse_shift_with_tail_vs_dense(benchmark, k):
    """A k-sparse shift visits k coordinates (the rest enter through one tail value per sample,
    computed once per k): the cost of a dense call vs a k-prefix call, in this run."""
    noise = Radial(0.5, 1.5, 1.5, D)
    eps = samples(noise)
    dense = torch.zeros(M, D, dtype=torch.float64)
    dense[:, :k] = shifts_of(k)
    zero_tail = torch.zeros(N, dtype=torch.float64)
    t0 = time.perf_counter()
    full = radial_kernel("cpu", noise, eps, dense, zero_tail)
    dense_seconds = time.perf_counter() - t0
    tail = lq_tail(eps, k, noise.q)
    out = benchmark.pedantic(radial_kernel, args=("cpu", noise, eps[:, :k], dense[:, :k].contiguous(),
                                                  tail), rounds=3, iterations=1)
    torch.testing.assert_close(out[0], full[0], rtol=0, atol=1e-9 * float(full[0].abs().max() + 1))
    sparse_seconds = benchmark.stats.stats.min
    benchmark.extra_info.update(dense_seconds=dense_seconds, sparse_seconds=sparse_seconds,
                                speedup=dense_seconds / sparse_seconds)
    print(f"\nk={k}: dense {dense_seconds:.3f}s  prefix+tail {sparse_seconds:.4f}s  "
          f"speedup {dense_seconds / sparse_seconds:.1f}x")


@needs_cpu
@pytest.mark.parametrize("q, norm", [(2.0, 2), (math.inf, math.inf)], ids=["q2-l2", "qinf-linf"])
def test_radius_time(benchmark, q, norm):
    """One certified radius (binary, p_a = 0.9) at d = 3072 with N = 20,000 samples."""
    noise = Radial(0.5, q, 1.0, D)

    def run():
        from unicr_fast import radius as radius_mod
        radius_mod._direction_sets.clear()     # time the whole search, not a memoised one
        return uc.certified_radius(noise, 0.9, None, norm, D, num_samples=N, seed=0, device="cpu")

    r = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(radius=r, seconds=benchmark.stats.stats.min)
    print(f"\nradial q={q:g} l{norm:g}: radius {r:.4f} in {benchmark.stats.stats.min:.1f}s")
