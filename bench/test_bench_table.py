"""Radius tables against the per-input RadiusCache: the radius cost of a data set's inputs.

Run with
    python -m pytest bench/test_bench_table.py --benchmark-only -s

A synthetic data set of INPUTS certified inputs: top-class counts n_a ~ Binomial(n, p) with
1 - p log-uniform in [1e-5, 0.5], p_a their Clopper–Pearson lower bounds at alpha (n = 100,000,
alpha = 0.001, certify's defaults). Laplace noise, l1, d = 64 (the digits data set), default grid
step 0.01. Measured in one run, each path cold (direction memo and sample bank cleared first):
  table  -- RadiusTable.build over [1/2, alpha^(1/n)] (959 p_a points), then one lookup per input;
  cache  -- a fresh RadiusCache, one radius() per input (one engine call per new grid point).
Reported: the build time, per-input radius time of each path and their ratio, and the number of
distinct grid points whose cache searches cost as much as the build (break-even).
"""
import time

import numpy as np
import pytest

import unicr_fast as uc
from unicr_fast import radius as radius_mod
from unicr_fast.radius.mc import samples as samples_mod
from unicr_fast.confidence import clopper_pearson_lower
from unicr_fast.radius.cache import RadiusCache
from unicr_fast.radius.table import RadiusTable

pytest.importorskip("pytest_benchmark")

NOISE, NORM, DIM = uc.noise.Laplace(0.25), 1, 64
N, ALPHA, INPUTS = 100_000, 0.001, 200


def synthetic_p_a(inputs: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = 1 - 10 ** rng.uniform(-5, np.log10(0.5), inputs)
    return np.array([clopper_pearson_lower(int(k), N, ALPHA) for k in rng.binomial(N, p)])


def cold() -> None:
    """Forget the memoised direction sets and sample bank, so each path pays its own search."""
    radius_mod._direction_sets.clear()
    samples_mod._cache.clear()


@pytest.mark.parametrize("radius_samples", [20_000, 100_000])
def test_table_vs_cache_per_input(benchmark, radius_samples):
    p_a = synthetic_p_a(INPUTS)

    cold()
    t0 = time.perf_counter()
    table = RadiusTable.build(NOISE, NORM, DIM, num_samples=radius_samples, n=N, alpha=ALPHA,
                              progress=False)
    build_s = time.perf_counter() - t0

    cold()
    cache = RadiusCache(NOISE, num_samples=radius_samples)
    t0 = time.perf_counter()
    cached = [cache.radius(p, None, NORM, DIM) for p in p_a]
    cache_s = (time.perf_counter() - t0) / INPUTS

    looked = benchmark.pedantic(lambda: [table.radius(p) for p in p_a], rounds=5, iterations=1)
    table_s = benchmark.stats.stats.mean / INPUTS
    # Same grid, step and engine settings: the table holds the cache's radii, enveloped (<=).
    assert np.all(np.array(looked) <= np.array(cached))

    info = dict(radius_samples=radius_samples, dim=DIM, inputs=INPUTS, grid_points=len(table.p_a),
                cache_misses=cache.misses, build_s=build_s, table_per_input_s=table_s,
                cache_per_input_s=cache_s, ratio=cache_s / table_s,
                break_even_points=build_s / cache_s * INPUTS / max(cache.misses, 1))
    benchmark.extra_info.update(info)
    print(f"\nN={radius_samples}: build {build_s:.1f}s ({len(table.p_a)} points) | per input: "
          f"table {table_s * 1e6:.1f}us, cache (cold) {cache_s * 1e3:.1f}ms "
          f"({cache.misses} engine grid points for {INPUTS} inputs) | cache/table "
          f"{info['ratio']:.0f}x | the build costs as much as the cache's searches for "
          f"~{info['break_even_points']:.0f} distinct grid points")
