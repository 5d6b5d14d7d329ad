"""I-OPT cost per input relative to one plain certification with the same n, on the digits demo
MLP (d = 64, trained a few epochs with the start noise) on CPU. Run with
    python -m pytest bench/test_bench_optimize.py --benchmark-only -s

Per input, plain certification costs n0 + n forward passes and one radius lookup; I-OPT costs
n0 + evaluations x n_select + n forward passes and one radius lookup per evaluated setting
(``NoiseRadii``: one engine run per new (beta, p_a grid point), shared across inputs). Both are
measured warm (radius caches filled by a first pass over the same inputs, as in a data-set run)
and the first pass is reported too (cold: the engine runs). ``extra_info``: the time ratio
iopt / plain (warm and cold), the forward-pass ratio, the mean evaluations and the mean radius
of both."""
import time

import numpy as np
import pytest
import torch

import unicr_fast as uc
from unicr_fast import optimize as opt
from unicr_fast.demo import train_mlp

N0, N, N_SELECT, ALPHA, BATCH, INPUTS = 100, 10_000, 1000, 0.001, 1000, 6


@pytest.fixture(scope="module")
def digits_data():
    torch.set_num_threads(1)
    x_fit, y_fit, x_val, y_val = opt.digits_split()
    return x_fit, y_fit, x_val[:INPUTS], y_val[:INPUTS]


def _run_plain(smooth, xs):
    out = []
    for i, x in enumerate(xs):
        smooth.seed = 100 + i
        out.append(smooth.certify(x, N0, N, ALPHA, BATCH))
    return out


def _run_iopt(iopt, xs):
    out = []
    for i, x in enumerate(xs):
        iopt.seed = 100 + i
        out.append(iopt.optimize(x, N0, N, ALPHA, BATCH))
    return out


@pytest.mark.parametrize("start", [uc.noise.Gaussian(0.25), uc.noise.GeneralNormal(0.25, 1.5)],
                         ids=["gaussian-sigma", "general_normal-sigma-beta"])
def test_iopt_cost_vs_plain_certification(benchmark, digits_data, start):
    x_fit, y_fit, xs, _ = digits_data
    model = train_mlp(start, x_fit, y_fit, epochs=5)
    smooth = uc.Smooth(model, 10, noise=start, norm=2, radius_samples=20_000)
    # The plain run gets the same NoiseRadii as I-OPT, so both pay the same per-lookup cost.
    iopt = opt.InputOptimizer(smooth, n_select=N_SELECT, cache_step=0.02)
    smooth.radius_cache = iopt.radii.bind(start)

    t0 = time.perf_counter()
    _run_plain(smooth, xs)
    plain_cold = (time.perf_counter() - t0) / len(xs)
    t0 = time.perf_counter()
    _run_iopt(iopt, xs)
    iopt_cold = (time.perf_counter() - t0) / len(xs)

    t0 = time.perf_counter()
    plain = _run_plain(smooth, xs)
    plain_warm = (time.perf_counter() - t0) / len(xs)
    results = benchmark.pedantic(_run_iopt, args=(iopt, xs), rounds=1, iterations=1)
    iopt_warm = benchmark.stats.stats.mean / len(xs)

    evals = float(np.mean([r.evaluations for r in results]))
    info = dict(n=N, n0=N0, n_select=N_SELECT, inputs=len(xs), start=repr(start),
                plain_s_per_input=plain_warm, iopt_s_per_input=iopt_warm,
                ratio_warm=iopt_warm / plain_warm,
                plain_cold_s_per_input=plain_cold, iopt_cold_s_per_input=iopt_cold,
                ratio_cold=iopt_cold / plain_cold,
                forward_ratio=(N0 + evals * N_SELECT + N) / (N0 + N),
                mean_evaluations=evals,
                mean_radius_plain=float(np.mean([r for _, r in plain])),
                mean_radius_iopt=float(np.mean([r.radius for r in results])))
    benchmark.extra_info.update(info)
    print(f"\n{start!r}: plain {plain_warm:.3f}s/input, I-OPT {iopt_warm:.3f}s/input -> ratio "
          f"{info['ratio_warm']:.2f} warm ({info['ratio_cold']:.2f} cold: {plain_cold:.2f}s vs "
          f"{iopt_cold:.2f}s); forward passes x{info['forward_ratio']:.2f} "
          f"({evals:.1f} settings evaluated); mean radius {info['mean_radius_plain']:.3f} -> "
          f"{info['mean_radius_iopt']:.3f}")
    assert all(r.select_radius >= r.start_select_radius for r in results)
