"""Time per exact radius (unicr_fast.radius.exact.exact_radius: min over the k-sparse directions, no
sampling) at d = 3072 (CIFAR) and d = 150,528 (ImageNet), and its error against the closed forms
of docs/theory.md §8, both in extra_info. Run with
    python -m pytest bench/test_bench_exact.py --benchmark-only
Target: < 1 s per radius on this CPU. Two cases without a closed form (Laplace l_inf, hyperbolic
secant l2) report the engine's own error estimate instead."""
import math

import pytest

import unicr_fast as uc
from unicr_fast.radius import exact as ex
from unicr_fast.radius import closed_forms as ref

SIGMA = 0.5

CASES = [  # (id, noise, norm, p_a, p_b, closed form as a function of d, or None)
    ("gauss-l2", uc.noise.Gaussian(SIGMA), 2, 0.9, None,
     lambda d: ref.gaussian_radius(SIGMA, 0.9, None, 2, d)),
    ("gauss-l1", uc.noise.Gaussian(SIGMA), 1, 0.9, None,
     lambda d: ref.gaussian_radius(SIGMA, 0.9, None, 1, d)),
    ("gauss-linf", uc.noise.Gaussian(SIGMA), math.inf, 0.9, None,
     lambda d: ref.gaussian_radius(SIGMA, 0.9, None, math.inf, d)),
    ("gauss-l2-multiclass", uc.noise.Gaussian(SIGMA), 2, 0.8, 0.1,
     lambda d: ref.gaussian_radius(SIGMA, 0.8, 0.1, 2, d)),
    ("laplace-l1", uc.noise.Laplace(SIGMA), 1, 0.9, None,
     lambda d: ref.laplace_l1_binary(SIGMA, 0.9)),
    ("uniform-l1", uc.noise.Uniform(SIGMA), 1, 0.9, None,
     lambda d: ref.uniform_l1_binary(SIGMA, 0.9)),
    ("laplace-linf", uc.noise.Laplace(SIGMA), math.inf, 0.9, None, None),
    ("hsecant-l2", uc.noise.HyperbolicSecant(SIGMA), 2, 0.9, None, None),
]


@pytest.mark.parametrize("dim", [3072, 150528])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_exact_radius(benchmark, case, dim):
    name, noise, norm, p_a, p_b, closed = case
    out = benchmark.pedantic(ex.exact_radius, args=(noise, p_a, p_b, norm, dim),
                             kwargs={"return_details": True}, rounds=3, iterations=1)
    seconds = benchmark.stats.stats.min
    info = dict(dim=dim, radius=out.radius, k=out.k, seconds=seconds, evaluations=out.evaluations,
                k_solved=len(out.lambdas), k_pruned=len(out.lower_bounds),
                engine=out.engines[out.k], error_estimate=out.error_estimate)
    if closed is not None:
        info["closed_form"] = closed(dim)
        info["rel_error"] = abs(out.radius / closed(dim) - 1)
    benchmark.extra_info.update(info)
    err = f"rel err {info['rel_error']:.1e}" if closed else f"est. err {out.error_estimate:.1e}"
    print(f"\n{name} d={dim}: R={out.radius:.8g} (k={out.k}, {out.engines[out.k]}) {err} "
          f"{seconds:.3f}s, {out.evaluations} margin evaluations")
    if closed is not None:
        assert info["rel_error"] < 1e-6
