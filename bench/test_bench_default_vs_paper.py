"""The default certified_radius (exact engine, no sampling) side by side with the UniCR paper's
published procedure (bench/baseline_paper.py), timed in the same run.

Run with
    python -m pytest bench/test_bench_default_vs_paper.py --benchmark-only -s -q
(about 2 minutes on 2 CPU cores, nearly all of it the baseline).

The baseline supports Gaussian and generalised-normal noise (Laplace = generalised normal with
beta = 1); every case below has a closed form to measure both errors against:
    gaussian l2        reference.gaussian_radius (sigma Phi^-1(p_a))
    gaussian linf      reference.gaussian_radius (sigma Phi^-1(p_a) / sqrt(d))
    laplace l1         reference.laplace_l1_binary (-b log(2 (1 - p_a)))
    general_normal(beta=1.5) l1   reference.axis_lambda (the axis is the worst l1 direction for
                                  log-concave noise, so lambda*(axis) is the radius)
Binary, p_a = 0.9, sigma = 0.5, d = 3072 (CIFAR), the setting of bench/test_bench_radius.py.

Baseline: ``paper_radius`` at N = 2,000 draws (its N x d float64 matrix and a full sort per
margin evaluation; N = 2,000 keeps one run near half a minute per case), timed once, seed 0.
Ours: ``uc.certified_radius(noise, p_a, norm=..., dim=...)`` with no method argument (resolves to
the exact engine), median of 3 cold rounds (memos cleared before each). Reported: both times, the
speed ratio baseline / ours (target >= 100x, reported, never asserted), both radii and both
relative errors against the closed form. The baseline's error is Monte-Carlo error at N = 2,000
plus its margin tolerance of 0.01 (one seed: its sign and size are partly luck); a smaller error
would need a larger N, which makes it proportionally slower.
"""
import math
import os
import time

import pytest

import unicr_fast as uc
from unicr_fast.radius import closed_forms as ref

from _cold import forget_memos, report_after
from baseline_paper import paper_radius

pytest.importorskip("pytest_benchmark")

SIGMA, P_A, DIM, N_BASELINE, SEED = 0.5, 0.9, 3072, 2_000, 0
OURS_ROUNDS = 3
TARGET_RATIO = 100.0

# id -> (baseline noise name, beta, our noise, norm, closed form)
CASES = {
    "gaussian-l2": ("gaussian", 2.0, uc.noise.Gaussian(SIGMA), 2,
                    ref.gaussian_radius(SIGMA, P_A, None, 2, DIM)),
    "gaussian-linf": ("gaussian", 2.0, uc.noise.Gaussian(SIGMA), math.inf,
                      ref.gaussian_radius(SIGMA, P_A, None, math.inf, DIM)),
    "laplace-l1": ("general_normal", 1.0, uc.noise.Laplace(SIGMA), 1,
                   ref.laplace_l1_binary(SIGMA, P_A)),
    "general_normal1.5-l1": ("general_normal", 1.5, uc.noise.GeneralNormal(SIGMA, 1.5), 1,
                             ref.axis_lambda(uc.noise.GeneralNormal(SIGMA, 1.5), P_A)),
}

_rows = []


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield from report_after(_rows, _report)


def _report():
    print(f"\n\nDefault certified_radius vs the paper's procedure, binary p_a={P_A}, d={DIM}, "
          f"sigma={SIGMA}, baseline N={N_BASELINE}, {os.cpu_count()} CPUs (load avg "
          f"{os.getloadavg()[0]:.1f})")
    fmt = "{:<22} {:>10} {:>9} {:>9} {:>10} {:>11} {:>11}  {}"
    print(fmt.format("case", "baseline s", "ours s", "ratio", "closed", "base err", "ours err",
                     f"target >= {TARGET_RATIO:g}x"))
    for r in _rows:
        print(fmt.format(r["case"], f"{r['baseline_seconds']:.2f}", f"{r['ours_seconds']:.4f}",
                         f"{r['ratio']:.1f}x", f"{r['closed_form']:.6f}",
                         f"{100 * r['baseline_rel_error']:+.2f}%",
                         f"{r['ours_rel_error']:+.1e}",
                         "met" if r["ratio"] >= TARGET_RATIO else "MISSED"))


def _rel(x: float, r: float) -> float:
    return (x - r) / r if math.isfinite(x) else math.inf


@pytest.mark.parametrize("case", list(CASES))
def test_default_vs_paper(benchmark, case):
    name, beta, noise, norm, closed = CASES[case]

    t0 = time.perf_counter()
    base_r, base_evals, base_dirs = paper_radius(name, SIGMA, beta, norm, DIM, P_A, N_BASELINE,
                                                 SEED)
    base_s = time.perf_counter() - t0

    ours_r = benchmark.pedantic(uc.certified_radius, args=(noise, P_A),
                                kwargs=dict(norm=norm, dim=DIM), setup=forget_memos,
                                rounds=OURS_ROUNDS, iterations=1)
    ours_s = benchmark.stats.stats.median
    info = dict(case=case, dim=DIM, p_a=P_A, closed_form=closed,
                baseline_radius=base_r, baseline_seconds=base_s,
                baseline_rel_error=_rel(base_r, closed), baseline_num_samples=N_BASELINE,
                baseline_margin_evals=base_evals, baseline_directions=base_dirs,
                ours_radius=ours_r, ours_seconds=ours_s, ours_rel_error=_rel(ours_r, closed),
                ratio=base_s / ours_s, target_ratio=TARGET_RATIO)
    benchmark.extra_info.update(info)
    _rows.append(info)
    print(f"\n[{case}] baseline {base_s:.2f}s R={base_r:.6f} ({100 * info['baseline_rel_error']:+.2f}%"
          f", {base_evals} evals / {base_dirs} dirs) | ours {ours_s:.4f}s R={ours_r:.8f} "
          f"({info['ours_rel_error']:+.1e}) | closed {closed:.8f} | ratio {info['ratio']:.1f}x")
