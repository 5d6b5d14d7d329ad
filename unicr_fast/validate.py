"""``unicr validate``: the radius engine against the closed forms (the paper's tightness figure).

For every noise family and norm, the binary certified radius is computed on a grid of p_a in
[0.55, 0.999] and written beside

* ``closed_form``: the exact radius where docs/theory.md §8 gives one (Gaussian, any norm; Laplace and
  uniform in l1), and the relative error of the engine against it;
* ``axis_bound``: lambda*(axis) = F^-1(p_a) for log-concave families. The axis has unit l_p norm
  for every p, so it bounds the radius from above in every norm (and equals it in l1 for the
  families above).

Outputs per (family, norm) a TSV ``<family>_l<norm>.tsv``, per family a PNG with one panel per
norm, and ``summary.tsv``. The engine's numbers are Monte-Carlo estimates with a searched
direction (docs/theory.md §4): agreement is to within their sampling error, not exact.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import noise as noise_mod
from .radius import certified_radius
from .radius.closed_forms import axis_lambda, closed_form_radius, is_log_concave

#: (family, extra parameters) validated by default: every compiled family once.
DEFAULT_FAMILIES: List[Tuple[str, Dict[str, float]]] = [
    ("gaussian", {}),
    ("laplace", {}),
    ("uniform", {}),
    ("hyperbolic_secant", {}),
    ("general_normal", {"beta": 1.5}),
    ("cauchy", {}),
    ("pareto", {"a": 3.0}),
    ("laplace_gaussian_mixture", {"weight": 0.5}),
    ("exponential_mixture", {"weight": 0.5, "beta1": 1.0, "beta2": 2.0}),
    ("radial", {"q": 2.0, "beta": 2.0}),   # i.i.d. Gaussian in disguise: its closed forms apply
]
DEFAULT_NORMS = (1.0, 2.0, math.inf)
PA_RANGE = (0.55, 0.999)
COLUMNS = ("p_a", "radius", "closed_form", "rel_err", "axis_bound")


def norm_tag(p: float) -> str:
    return "inf" if math.isinf(p) else f"{p:g}"


def pa_grid(points: int) -> np.ndarray:
    """``points`` values of p_a from 0.55 to 0.999, uniform in Phi^-1(p_a) so that the steep end
    near 1 is sampled as finely as the flat middle."""
    from scipy.stats import norm as normal
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    z = np.linspace(normal.ppf(PA_RANGE[0]), normal.ppf(PA_RANGE[1]), points)
    return np.round(normal.cdf(z), 6)


@dataclass
class ValidationResult:
    family: str
    params: Dict[str, float]
    sigma: float
    norm: float
    p_a: np.ndarray
    radius: np.ndarray
    closed_form: np.ndarray   # NaN where none exists
    axis_bound: np.ndarray    # NaN where none exists
    seconds: float

    @property
    def rel_err(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.radius - self.closed_form) / self.closed_form

    @property
    def max_abs_rel_err(self) -> float:
        err = np.abs(self.rel_err)
        return float(np.nanmax(err)) if np.isfinite(err).any() else math.nan

    def to_tsv(self) -> str:
        fmt = lambda v: "" if not np.isfinite(v) else f"{v:.6g}"
        lines = ["\t".join(COLUMNS)]
        for row in zip(self.p_a, self.radius, self.closed_form, self.rel_err, self.axis_bound):
            lines.append("\t".join(fmt(v) for v in row))
        return "\n".join(lines) + "\n"


def _closed_forms(noise, p_a: np.ndarray, norm: float, dim: int):
    cf = [closed_form_radius(noise, float(p), None, norm, dim) for p in p_a]
    closed = np.array([math.nan if c is None else c for c in cf], dtype=np.float64)
    if is_log_concave(noise):
        axis = np.array([axis_lambda(noise, float(p)) for p in p_a], dtype=np.float64)
    else:
        axis = np.full(len(p_a), math.nan)
    return closed, axis


def _make(family: str, sigma: float, params: Dict[str, float], dim: int):
    """The noise of a validation run; radial noise is built for the run's dimension."""
    extra = {"dim": dim} if family.strip().lower() == "radial" else {}
    return noise_mod.make(family, sigma=sigma, **params, **extra)


def validate_one(family: str, params: Dict[str, float], norm: float, p_a: np.ndarray, *,
                 sigma: float = 0.5, dim: int = 10, samples: int = 20_000, seed: int = 0,
                 device="auto") -> ValidationResult:
    """Engine radii (binary bound) on the ``p_a`` grid, beside the closed forms."""
    noise = _make(family, sigma, params, dim)
    t0 = time.perf_counter()
    radius = certified_radius(noise, np.asarray(p_a, dtype=np.float64), None, norm, dim, samples,
                              seed, device, search_samples=min(samples, 20_000))
    seconds = time.perf_counter() - t0
    closed, axis = _closed_forms(noise, p_a, norm, dim)
    return ValidationResult(family, dict(params), sigma, norm, np.asarray(p_a), np.asarray(radius),
                            closed, axis, seconds)


def plot_family(results: Sequence[ValidationResult], out_path: str, dim: int,
                samples: int) -> str:
    """One panel per norm: engine radii (markers) vs closed form and axis bound (lines)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, res in zip(axes[0], results):
        noise = _make(res.family, res.sigma, res.params, dim)
        fine = np.linspace(res.p_a.min(), res.p_a.max(), 200)
        closed, axis = _closed_forms(noise, fine, res.norm, dim)
        if np.isfinite(closed).any():
            ax.plot(fine, closed, "k-", lw=1.2, label="closed form")
        if np.isfinite(axis).any():
            ax.plot(fine, axis, ":", color="tab:gray", lw=1.2, label="axis bound $F^{-1}(p_A)$")
        ax.plot(res.p_a, res.radius, "o", color="tab:red", ms=4, label="unicr_fast")
        ax.set_title(r"$\ell_\infty$" if math.isinf(res.norm) else f"$\\ell_{{{res.norm:g}}}$")
        ax.set_xlabel("$p_A$ (binary)")
        ax.set_ylabel("certified radius")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    extra = "".join(f", {k}={v:g}" for k, v in results[0].params.items())
    fig.suptitle(f"{results[0].family} (sigma={results[0].sigma:g}{extra}), d={dim}, "
                 f"N={samples}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def run_validate(out_dir: str, *, families: Optional[Sequence[Tuple[str, Dict]]] = None,
                 norms: Sequence[float] = DEFAULT_NORMS, points: int = 8, sigma: float = 0.5,
                 dim: int = 10, samples: int = 20_000, seed: int = 0, device="auto",
                 progress: bool = True) -> List[ValidationResult]:
    """Run every (family, norm), write the TSVs, PNGs and summary.tsv under ``out_dir``."""
    from tqdm.auto import tqdm

    families = list(DEFAULT_FAMILIES if families is None else families)
    os.makedirs(out_dir, exist_ok=True)
    grid = pa_grid(points)
    results: List[ValidationResult] = []
    bar = tqdm(total=len(families) * len(norms), desc="validate", unit="curve",
               disable=not progress)
    for family, params in families:
        per_family = []
        for p in norms:
            bar.set_postfix_str(f"{family} l{norm_tag(p)}")
            res = validate_one(family, params, p, grid, sigma=sigma, dim=dim, samples=samples,
                               seed=seed, device=device)
            with open(os.path.join(out_dir, f"{family}_l{norm_tag(p)}.tsv"), "w") as f:
                f.write(res.to_tsv())
            per_family.append(res)
            bar.update(1)
        plot_family(per_family, os.path.join(out_dir, f"{family}.png"), dim, samples)
        results.extend(per_family)
    bar.close()
    with open(os.path.join(out_dir, "summary.tsv"), "w") as f:
        f.write(summary_tsv(results))
    return results


def summary_tsv(results: Sequence[ValidationResult]) -> str:
    lines = ["family\tnorm\tmax_abs_rel_err\tseconds"]
    for r in results:
        err = r.max_abs_rel_err
        lines.append(f"{r.family}\t{norm_tag(r.norm)}\t{'' if math.isnan(err) else f'{err:.4g}'}"
                     f"\t{r.seconds:.2f}")
    return "\n".join(lines) + "\n"


def format_summary(results: Sequence[ValidationResult]) -> str:
    """Aligned text: per (family, norm) the radius at the ends of the grid and the error."""
    w = max(len(r.family) for r in results)
    lines = [f"{'family':<{w}}  {'norm':>4}  {'R(p_a min)':>10}  {'R(p_a max)':>10}  "
             f"{'max |rel err| vs closed form':>28}  {'time':>7}"]
    for r in results:
        err = r.max_abs_rel_err
        err_s = "(no closed form)" if math.isnan(err) else f"{100 * err:.2f}%"
        lines.append(f"{r.family:<{w}}  {norm_tag(r.norm):>4}  {r.radius[0]:>10.4f}  "
                     f"{r.radius[-1]:>10.4f}  {err_s:>28}  {r.seconds:>6.1f}s")
    return "\n".join(lines) + "\n"
