"""Throughput of the log-ratio + threshold kernels: compiled CPU backend vs the torch reference,
both timed in this run (d=3072, N=20,000, M=16, float32 samples). Run with
    python -m pytest bench/test_bench_kernels.py --benchmark-only
The ratio lands in extra_info and is printed."""
import time

import pytest
import torch

import unicr_fast as uc
from unicr_fast import backends
from unicr_fast.benchmark import run_kernels as kernels

N, D, M = 20_000, 3072, 16
CASES = [("gaussian", {}), ("general_normal", {"beta": 1.5}), ("laplace", {}), ("hyperbolic_secant", {})]


@pytest.mark.skipif("cpu" not in uc.available_backends(), reason="CPU module not built")
@pytest.mark.parametrize("name, params", CASES, ids=[c[0] for c in CASES])
def test_cpu_vs_torch(benchmark, name, params):
    noise = uc.noise.make(name, sigma=0.5, **params)
    gen = torch.Generator().manual_seed(0)
    eps = noise.sample((N, D), generator=gen, dtype=torch.float32)
    shifts = torch.rand(M, D, generator=gen, dtype=torch.float64) * 0.05
    t0 = time.perf_counter()
    ref = kernels("torch", noise, eps, shifts)
    torch_seconds = time.perf_counter() - t0
    out = benchmark.pedantic(kernels, args=("cpu", noise, eps, shifts), rounds=3, iterations=1)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)
    cpu_seconds = benchmark.stats.stats.min
    ratio = torch_seconds / cpu_seconds
    benchmark.extra_info.update(torch_seconds=torch_seconds, cpu_seconds=cpu_seconds, speedup=ratio,
                                cpu_gelem_per_s=N * D * M / cpu_seconds / 1e9)
    print(f"\n{name}: torch {torch_seconds:.2f}s  cpu {cpu_seconds:.3f}s  speedup {ratio:.1f}x")


@pytest.mark.skipif("cpu" not in uc.available_backends(), reason="CPU module not built")
@pytest.mark.parametrize("name, params", CASES[:2], ids=[c[0] for c in CASES[:2]])
def test_regenerated_vs_stored(benchmark, name, params):
    """What a sample set too large to store costs per kernel call: eps_ij regenerated from
    (seed, i, j) inside the kernel vs read from memory (same numbers), both timed here."""
    noise = uc.noise.make(name, sigma=0.5, **params)
    impl = backends.get_backend("cpu")
    eps = impl._m.sample(noise.family_id, noise.kernel_params, 0, N, D, True)
    shifts = torch.rand(M, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.05
    t0 = time.perf_counter()
    stored = impl.log_ratio(noise, torch.from_numpy(eps), shifts)
    stored_seconds = time.perf_counter() - t0
    regen = benchmark.pedantic(impl.log_ratio_philox, args=(noise, 0, N, D, shifts, torch.float32),
                               rounds=1, iterations=1)
    assert torch.equal(regen[0], stored[0]) and torch.equal(regen[1], stored[1])
    seconds = benchmark.stats.stats.min
    benchmark.extra_info.update(stored_seconds=stored_seconds, regenerated_seconds=seconds,
                                overhead=seconds / stored_seconds)
    print(f"\n{name}: stored {stored_seconds:.3f}s  regenerated {seconds:.3f}s  "
          f"({seconds / stored_seconds:.1f}x)")
