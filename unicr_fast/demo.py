"""``unicr demo``: the whole pipeline on scikit-learn's digits, in a few minutes on a laptop CPU.

1. Train one small MLP per noise with noise augmentation (inputs in [0, 1]): Gaussian and
   Laplace, both at sigma = 0.25 (the same per-coordinate variance).
2. Certify ``n_points`` held-out points through ``unicr certify``'s code path
   (``cli.certify_file``): Gaussian noise in l2, Laplace noise in l1.
3. Print the certified-accuracy table and write the plot (``unicr curve``'s code path).

Everything is written under the output directory: checkpoints ``models/*.pt``, the certify TSVs,
``curve.png`` and ``curve.tsv``. A rerun starts afresh (it retrains and recertifies).
"""
from __future__ import annotations

import os
import time
from typing import Dict, Optional

import torch
from torch import nn

from . import curve as curve_mod
from .datasets import digits
from .models import build_model, save_checkpoint
from .noise import Noise, make

SIGMA = 0.25
#: (run name, noise family, certified norm)
RUNS = (("gaussian_l2", "gaussian", 2), ("laplace_l1", "laplace", 1))
MLP_KWARGS = {"in_features": 64, "hidden": [256, 256], "num_classes": 10}


def train_mlp(noise: Noise, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 40,
              batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
              device: str = "cpu") -> nn.Module:
    """An MLP trained with Adam on inputs with fresh ``noise`` added to every batch."""
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = build_model("mlp", **MLP_KWARGS).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    x, y = x.to(device), y.to(device)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen, device=device)
        for lo in range(0, len(x), batch_size):
            idx = order[lo:lo + batch_size]
            xb = x[idx] + noise.sample(x[idx].shape, generator=gen, device=device)
            opt.zero_grad()
            loss_fn(model(xb), y[idx]).backward()
            opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             noise: Optional[Noise] = None, seed: int = 0) -> float:
    """Accuracy of the base classifier, on clean inputs or with one noise draw per input."""
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    if noise is not None:
        gen = torch.Generator(device=device).manual_seed(seed)
        x = x + noise.sample(x.shape, generator=gen, device=device)
    return float((model(x).argmax(1) == y).float().mean())


def run_demo(out_dir: str = os.path.join("out", "demo"), *, n_points: int = 100, n: int = 10_000,
             n0: int = 100, alpha: float = 0.001, epochs: int = 40, seed: int = 0,
             device: str = "auto", threads: int = 1, progress: bool = True) -> Dict[str, str]:
    """Train, certify, tabulate, plot. Returns the paths of the certify TSVs by run name.

    ``threads``: torch intra-op threads while it runs (restored after). The models are tiny, so
    one thread is fastest, and on a busy machine extra threads mostly wait for each other."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run_demo(out_dir, n_points, n, n0, alpha, epochs, seed, device, progress)
    finally:
        torch.set_num_threads(saved)


def _run_demo(out_dir, n_points, n, n0, alpha, epochs, seed, device, progress):
    from .cli import _device, certify_file

    dev = _device(device)
    os.makedirs(os.path.join(out_dir, "models"), exist_ok=True)
    x_tr, y_tr = digits("train")
    x_te, y_te = digits("test")
    # Evenly spaced held-out points: every skip-th index, n_points of them.
    skip = max(1, len(x_te) // n_points)
    max_idx = min(len(x_te), skip * n_points)
    print(f"digits: {len(x_tr)} train / {len(x_te)} held-out points, 8x8 in [0, 1] (d = 64); "
          f"certifying {len(range(0, max_idx, skip))} held-out points, n0={n0}, n={n}, "
          f"alpha={alpha}")

    tsvs: Dict[str, str] = {}
    for name, family, norm in RUNS:
        noise = make(family, sigma=SIGMA)
        t0 = time.perf_counter()
        model = train_mlp(noise, x_tr, y_tr, epochs=epochs, seed=seed, device=dev)
        ckpt = os.path.join(out_dir, "models", f"digits_mlp_{family}_{SIGMA:g}.pt")
        clean, noisy = accuracy(model, x_te, y_te), accuracy(model, x_te, y_te, noise, seed)
        save_checkpoint(ckpt, model, "mlp", MLP_KWARGS, 10, [1, 8, 8],
                        meta={"noise": family, "sigma": SIGMA, "epochs": epochs,
                              "clean_test_accuracy": clean, "noisy_test_accuracy": noisy})
        print(f"[{name}] trained MLP with {family} noise, sigma={SIGMA:g} in "
              f"{time.perf_counter() - t0:.1f}s: test accuracy {100 * clean:.1f}% clean, "
              f"{100 * noisy:.1f}% under noise -> {ckpt}")

        tsv = os.path.join(out_dir, f"certify_{name}.tsv")
        for stale in (tsv, tsv + ".params.json"):
            if os.path.exists(stale):
                os.remove(stale)
        t0 = time.perf_counter()
        certify_file("digits", ckpt, noise, norm, tsv, n0=n0, n=n, alpha=alpha, batch=1000,
                     skip=skip, max_idx=max_idx, seed=seed, device=device, progress=progress)
        print(f"[{name}] certified in l{norm} in {time.perf_counter() - t0:.1f}s -> {tsv}")
        tsvs[name] = tsv

    radii, rows = curve_mod.curve_table(list(tsvs.values()))
    for row, name in zip(rows, tsvs):
        row.name = name
    print("\ncertified accuracy (%) at radius r; score = area under the curve (average "
          "certified radius)")
    print(curve_mod.format_table(radii, rows), end="")
    with open(os.path.join(out_dir, "curve.tsv"), "w") as f:
        f.write(curve_mod.table_tsv(radii, rows))
    png = curve_mod.plot_curves(list(tsvs.values()), os.path.join(out_dir, "curve.png"),
                                title=f"digits, MLP, sigma={SIGMA:g}", labels=list(tsvs))
    print(f"plot: {png}")
    print("note: Gaussian radii are l2 and Laplace radii l1. A Gaussian l2 radius is also its l1 "
          "radius (docs/theory.md §8: R_p = R_2 for p <= 2), so in l1 the two curves compare directly.")
    return tsvs
