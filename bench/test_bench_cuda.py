"""Throughput of the CUDA kernels against the pure-torch reference on the same GPU.

Run: ``pytest bench/test_bench_cuda.py --benchmark-only``. Skipped without a usable GPU.
Workload of the radius search: d = 3072 (CIFAR-10), N = 100 000 samples, M = 16 shifts,
general-normal noise (beta = 1.5: an exp and a log per log-density, the expensive case; Gaussian
log-ratios are a GEMM and need no custom kernel). Every timing synchronises the device.

``benchmark.extra_info`` holds, measured in the same run:
  evals_per_s        log-ratio evaluations per second, one evaluation = one (sample, shift,
                     coordinate) term of both a and b;
  speedup_vs_torch   time of TorchBackend.log_ratio on the same GPU / time of the kernel;
  fp64_peak_fraction estimated share of the GPU's FP64 instruction peak (see FP64_PER_EVAL).
"""
import time

import pytest
import torch

from unicr_fast import noise as nz
from unicr_fast.backends import TIE_RTOL, TorchBackend
from unicr_fast.backends.cuda import cuda_unavailable_reason, load_cuda_backend

pytest.importorskip("pytest_benchmark")
UNAVAILABLE = cuda_unavailable_reason()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None,
                                reason=f"CUDA backend unavailable: {UNAVAILABLE}")

N, D, M, SEED = 100_000, 3072, 16, 0
NOISE = nz.GeneralNormal(0.5, 1.5)
EVALS = N * D * M

# FP64 arithmetic instructions (DFMA/DADD/DMUL, an FMA counts once) per evaluation of the
# general-normal kernel: 64 fma + 18 mul + 15 add + 13 sub + 2 rcp, counted in the sm_90 PTX of
# one unrolled shift of the inner loop (fast paths of exp/log; noise regeneration excluded).
FP64_PER_EVAL = 112
# FP64 instructions per clock per SM by compute capability (CUDA programming guide, arithmetic
# instruction throughput); the other parts (T4, RTX, L4, ...) issue 2 per clock per SM.
FP64_PER_CLOCK_PER_SM = {(6, 0): 32, (7, 0): 32, (8, 0): 32, (9, 0): 64, (10, 0): 64}


def _fp64_peak_per_s(device):
    """Peak FP64 instructions per second at the boost clock, or None if torch hides the clock."""
    props = torch.cuda.get_device_properties(device)
    clock_khz = getattr(props, "clock_rate", 0)
    lanes = FP64_PER_CLOCK_PER_SM.get((props.major, props.minor), 2)
    return props.multi_processor_count * lanes * clock_khz * 1e3 if clock_khz else None


def _seconds(fn, repeats):
    """Median wall time of fn() over `repeats` calls, each ended by a device synchronisation."""
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


@pytest.fixture(scope="module")
def workload():
    backend = load_cuda_backend()
    g = torch.Generator(device="cuda").manual_seed(1)
    shifts = 0.1 * torch.randn(M, D, generator=g, device="cuda", dtype=torch.float64)
    eps = backend.sample(NOISE, (N, D), SEED, torch.float32)
    return backend, eps, shifts


@pytest.fixture(scope="module")
def torch_seconds(workload):
    _, eps, shifts = workload
    reference = TorchBackend()
    run = lambda: reference.log_ratio(NOISE, eps, shifts)  # noqa: E731
    run()  # warm-up
    return _seconds(run, repeats=2)


def _report(benchmark, torch_s):
    if benchmark.stats is None:  # --benchmark-disable
        return
    seconds = benchmark.stats.stats.median
    peak = _fp64_peak_per_s(torch.cuda.current_device())
    benchmark.extra_info.update({
        "evals_per_s": EVALS / seconds,
        "torch_evals_per_s": EVALS / torch_s,
        "speedup_vs_torch": torch_s / seconds,
        "fp64_peak_fraction": EVALS * FP64_PER_EVAL / seconds / peak if peak else None,
        "device": torch.cuda.get_device_name(),
    })


def _synchronised(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out
    return run


def test_bench_log_ratio_stored_eps(benchmark, workload, torch_seconds):
    backend, eps, shifts = workload
    benchmark.pedantic(_synchronised(lambda: backend.log_ratio(NOISE, eps, shifts)),
                       rounds=5, warmup_rounds=1)
    _report(benchmark, torch_seconds)


def test_bench_log_ratio_fused_philox(benchmark, workload, torch_seconds):
    backend, _, shifts = workload
    run = lambda: backend.log_ratio_philox(NOISE, SEED, N, D, shifts, torch.float32)  # noqa: E731
    benchmark.pedantic(_synchronised(run), rounds=5, warmup_rounds=1)
    _report(benchmark, torch_seconds)


def test_bench_threshold_stats(benchmark, workload):
    backend, eps, shifts = workload
    a, b = backend.log_ratio(NOISE, eps, shifts)
    p_a = torch.full((M,), 0.9, dtype=torch.float64, device="cuda")
    p_b = 1 - p_a
    reference = TorchBackend()
    torch_s = _seconds(lambda: reference.threshold_stats(a, b, p_a, p_b, TIE_RTOL), repeats=3)
    benchmark.pedantic(_synchronised(lambda: backend.threshold_stats(a, b, p_a, p_b, TIE_RTOL)),
                       rounds=10, warmup_rounds=1)
    if benchmark.stats is not None:
        benchmark.extra_info["speedup_vs_torch"] = torch_s / benchmark.stats.stats.median
