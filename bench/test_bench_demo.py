"""``unicr demo``: its Laplace/l1 run against its Gaussian/l2 run, timed in the same process.

Run with
    python -m pytest bench/test_bench_demo.py --benchmark-only -s -q
(about a minute on 2 CPU cores at the demo's defaults; BENCH_DEMO_POINTS, BENCH_DEMO_N and
BENCH_DEMO_EPOCHS override its --points / --n / --epochs for a quicker look).

Calls ``unicr_fast.demo.run_demo`` (what ``unicr demo`` runs) once, with the demo's own defaults
(100 held-out digits points, n = 10,000, n0 = 100, alpha = 0.001, 40 epochs, 1 torch thread,
CPU) into a temporary directory. ``demo.train_mlp`` and ``cli.certify_file`` are wrapped by
timers (monkeypatch, inside this test only), so each run's two phases are measured where they
run: training the MLP with its noise, and certifying the held-out points (Smooth.certify with
the default radius engine: Gaussian/l2 closed form, Laplace/l1 exact). An untimed tiny demo runs
first, so neither run pays the process's one-off costs, and the memos are cleared after it.

Reported (extra_info and the table printed at the end): seconds of each phase per run, and the
Laplace/Gaussian ratios of the certify phase and of the whole run (train + certify). Target
(reported, never asserted): ratio <= 1.5.
"""
import os
import time

import pytest

from unicr_fast import cli, demo

from _cold import forget_memos

pytest.importorskip("pytest_benchmark")
pytest.importorskip("sklearn")

POINTS = int(os.environ.get("BENCH_DEMO_POINTS", 100))
N = int(os.environ.get("BENCH_DEMO_N", 10_000))
EPOCHS = int(os.environ.get("BENCH_DEMO_EPOCHS", 40))
TARGET_RATIO = 1.5


def test_demo_laplace_vs_gaussian(benchmark, monkeypatch, tmp_path):
    demo.run_demo(str(tmp_path / "warmup"), n_points=2, n=200, n0=20, epochs=1, device="cpu",
                  progress=False)                                   # untimed warm-up
    forget_memos()

    phases = {}                                  # (noise name, phase) -> seconds
    train, certify = demo.train_mlp, cli.certify_file

    def timed_train(noise, *args, **kwargs):
        t0 = time.perf_counter()
        out = train(noise, *args, **kwargs)
        phases[(noise.name, "train")] = time.perf_counter() - t0
        return out

    def timed_certify(data, model, noise, *args, **kwargs):
        t0 = time.perf_counter()
        out = certify(data, model, noise, *args, **kwargs)
        phases[(noise.name, "certify")] = time.perf_counter() - t0
        return out

    monkeypatch.setattr(demo, "train_mlp", timed_train)
    monkeypatch.setattr(cli, "certify_file", timed_certify)

    def run():
        t0 = time.perf_counter()
        tsvs = demo.run_demo(str(tmp_path / "demo"), n_points=POINTS, n=N, epochs=EPOCHS,
                             device="cpu", progress=False)
        return tsvs, time.perf_counter() - t0

    tsvs, total = benchmark.pedantic(run, rounds=1, iterations=1)
    assert set(tsvs) == {"gaussian_l2", "laplace_l1"}

    g_cert, l_cert = phases[("gaussian", "certify")], phases[("laplace", "certify")]
    g_run = phases[("gaussian", "train")] + g_cert
    l_run = phases[("laplace", "train")] + l_cert
    info = dict(points=POINTS, n=N, epochs=EPOCHS, total_seconds=total,
                gaussian_train_s=phases[("gaussian", "train")], gaussian_certify_s=g_cert,
                laplace_train_s=phases[("laplace", "train")], laplace_certify_s=l_cert,
                certify_ratio=l_cert / g_cert, run_ratio=l_run / g_run, target_ratio=TARGET_RATIO)
    benchmark.extra_info.update(info)
    verdict = lambda r: "met" if r <= TARGET_RATIO else "MISSED"
    print(f"\n\nunicr demo, {POINTS} points, n={N}, {EPOCHS} epochs, {os.cpu_count()} CPUs "
          f"(load avg {os.getloadavg()[0]:.1f}); whole demo {total:.1f}s")
    fmt = "{:<14} {:>8} {:>10} {:>10}"
    print(fmt.format("run", "train s", "certify s", "run s"))
    print(fmt.format("gaussian_l2", f"{info['gaussian_train_s']:.2f}", f"{g_cert:.2f}",
                     f"{g_run:.2f}"))
    print(fmt.format("laplace_l1", f"{info['laplace_train_s']:.2f}", f"{l_cert:.2f}",
                     f"{l_run:.2f}"))
    print(f"laplace/gaussian: certify {info['certify_ratio']:.2f}x "
          f"({verdict(info['certify_ratio'])}), whole run {info['run_ratio']:.2f}x "
          f"({verdict(info['run_ratio'])}); target <= {TARGET_RATIO}")
