"""Radius tables built by the default (exact) engine at d = 3072: seconds per build.

Run with
    python -m pytest bench/test_bench_table_exact.py --benchmark-only -s -q
(about 2 to 4 minutes on 2 CPU cores; ``-k binary`` for the binary builds only).

``RadiusTable.build(noise, norm, 3072, multiclass=False|True, progress=False)`` on the default
grid (p_a in logit steps of 0.01 from 1/2 to alpha^(1/n), n = 100,000, alpha = 0.001: 959 points;
multiclass adds the p_b grid in logit steps of 0.1, and the engine runs at every entry with
p_b <= 1 - p_a). The default method resolves to the exact engine, which sweeps each curve once
over lambda per direction (unicr_fast.radius.exact.curve). Cases, sigma = 0.5: Gaussian l2, Laplace l1,
Laplace l2. Each build runs once (``benchmark.pedantic(rounds=1, iterations=1)``) after clearing
the library's memos. Reported per build (extra_info and the table printed at the end): seconds,
binary grid points, multiclass entries the engine computes, seconds per point, and where a closed
form exists (Gaussian any entry, Laplace l1 binary) the largest relative error of the table's
radii against it. Targets (reported, never asserted): binary <= 10 s, multiclass <= 60 s.
"""
import math
import os
import time

import numpy as np
import pytest
from scipy.stats import norm as normal

import unicr_fast as uc
from unicr_fast.radius.table import RadiusTable

from _cold import forget_memos, report_after

pytest.importorskip("pytest_benchmark")

SIGMA, DIM = 0.5, 3072
CASES = {
    "gaussian-l2": (lambda: uc.noise.Gaussian(SIGMA), 2),
    "laplace-l1": (lambda: uc.noise.Laplace(SIGMA), 1),
    "laplace-l2": (lambda: uc.noise.Laplace(SIGMA), 2),
}
TARGETS = {"binary": 10.0, "multiclass": 60.0}

_rows = []


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    """Largest relative error where the closed form is positive (it is 0 only at p_a = 1/2 or
    p_a = p_b, where the table must hold 0: any radius there counts as an error of 1)."""
    pos = want > 0
    zero_err = float(np.max(np.abs(got[~pos]) > 0)) if (~pos).any() else 0.0
    return max(zero_err, float(np.max(np.abs(got[pos] / want[pos] - 1))))


def closed_form_error(case: str, table: RadiusTable):
    """Largest relative error of the table's radii against the closed form, or None."""
    p_a = table.p_a
    if case == "gaussian-l2":
        worst = _rel(table.radii, SIGMA * normal.ppf(p_a))
        if table.multiclass:
            valid = table._valid()
            pa, pb = np.broadcast_arrays(p_a[:, None], table.p_b[None, :])
            want_mc = np.maximum(0.0, 0.5 * SIGMA * (normal.ppf(pa[valid]) - normal.ppf(pb[valid])))
            worst = max(worst, _rel(table.radii_mc[valid], want_mc))
        return worst
    if case == "laplace-l1":        # binary column only (no multiclass closed form)
        return _rel(table.radii, -(SIGMA / math.sqrt(2)) * np.log(2 * (1 - p_a)))
    return None


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield from report_after(_rows, _report)


def _report():
    print(f"\n\nRadius tables, exact engine (default), d={DIM}, sigma={SIGMA}, default grid, "
          f"{os.cpu_count()} CPUs (load avg {os.getloadavg()[0]:.1f})")
    fmt = "{:<12} {:<10} {:>8} {:>9} {:>8} {:>10} {:>12}  {}"
    print(fmt.format("case", "kind", "seconds", "p_a pts", "p_b pts", "engine pts", "max rel err",
                     "target"))
    for r in _rows:
        err = "-" if r["max_rel_error"] is None else f"{r['max_rel_error']:.1e}"
        tgt = TARGETS[r["kind"]]
        print(fmt.format(r["case"], r["kind"], f"{r['seconds']:.2f}", r["p_a_points"],
                         r["p_b_points"], r["engine_points"], err,
                         f"<= {tgt:g} s {'met' if r['seconds'] <= tgt else 'MISSED'}"))


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
@pytest.mark.parametrize("case", list(CASES))
def test_table_build_exact(benchmark, case, kind):
    make_noise, p = CASES[case]
    multiclass = kind == "multiclass"

    def build():
        t0 = time.perf_counter()
        table = RadiusTable.build(make_noise(), p, DIM, multiclass=multiclass, progress=False)
        return table, time.perf_counter() - t0

    table, seconds = benchmark.pedantic(build, setup=forget_memos, rounds=1, iterations=1)
    assert table.engine["method"] == "exact" and np.all(np.isfinite(table.radii))
    n_a = len(table.p_a)
    n_b = len(table.p_b) if multiclass else 0
    engine_points = n_a + (int(table._valid().sum()) if multiclass else 0)
    info = dict(case=case, kind=kind, dim=DIM, seconds=seconds, p_a_points=n_a, p_b_points=n_b,
                engine_points=engine_points, seconds_per_point=seconds / engine_points,
                max_rel_error=closed_form_error(case, table), target_s=TARGETS[kind])
    benchmark.extra_info.update(info)
    _rows.append(info)
    print(f"\n{case} {kind}: {seconds:.2f}s, {n_a} p_a x {n_b} p_b points, {engine_points} "
          f"engine points ({1e3 * seconds / engine_points:.2f} ms each)")
