"""Attack check of a certify TSV: PGD on the smoothed classifier inside each certified ball.

For every certified input (``predict != -1``) of a ``unicr certify`` TSV:

1. **Attack** (SmoothAdv style, Salman et al. 2019). Maximise the cross-entropy of the
   noise-averaged softmax, ``-log( (1/m) sum_j softmax(f(x + delta + eps_j))_c )``, where ``c`` is
   the certified class and ``eps_1..eps_m`` are fresh noise draws at every step, by projected
   steepest ascent in the certified norm, starting at ``delta = 0``, over ``steps`` steps of size
   ``step_size * R / steps`` (R = the attack radius: the certified radius times ``radius_scale``):

   * l2: ``g / ||g||_2``;  l_inf: ``sign(g)``;
   * l1: the sign of ``g`` on its ``l1_sparsity`` fraction of largest coordinates, scaled to unit
     l1 norm (steepest l1 ascent moves one coordinate; a few at a time works better in practice);

   each step is followed by the projection onto ``{||delta||_p <= R}``: l2 rescaling, l_inf
   clipping, and for l1 the sorting algorithm of Duchi et al. (2008, "Efficient projections onto
   the l1-ball for learning in high dimensions", Fig. 1). No clipping to a data range: the
   certificate holds for every ``delta`` in the ball, in or out of [0, 1]^d.
2. **Check**: the smoothed prediction at ``x + delta`` with ``Smooth.predict(n, alpha)`` on fresh
   noise (seed derived from (seed, idx), independent of the certification's draws). The input
   *held* when it returns the certified class; it may also abstain (the binomial test cannot
   separate the top two classes near the edge of the ball: no contradiction of the certificate),
   or return another class (*changed*).

What to expect: a certified radius is wrong with probability <= alpha_certify and ``predict``
returns a class other than g(x + delta) with probability <= alpha_predict, so each input changes
class with probability <= alpha_certify + alpha_predict, independently across inputs (each has
its own seeds): the number of changed inputs is stochastically below Binomial(N, that sum).
``violation_bound`` gives the count that is exceeded with probability < 1e-3. (For non-Gaussian
noise the radius also carries the radius engine's Monte-Carlo and search error, docs/theory.md §4.) An
attack at ``radius_scale`` 10 must change some predictions, or the attack is a no-op.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch

from . import outfiles
from ._validation import check_norm

HEADER = ("idx", "radius", "attacked_prediction", "held")
SUPPORTED_NORMS = (1.0, 2.0, math.inf)


# -- projections ------------------------------------------------------------------------------
def _radius_column(radius, flat: torch.Tensor) -> torch.Tensor:
    r = torch.as_tensor(radius, dtype=flat.dtype, device=flat.device)
    if r.ndim == 0:
        r = r.expand(flat.shape[0])
    if r.shape != (flat.shape[0],):
        raise ValueError(f"radius must be a number or have shape ({flat.shape[0]},) (one per "
                         f"row of delta), got shape {tuple(r.shape)}")
    if not torch.isfinite(r).all() or (r < 0).any():
        raise ValueError("radius must be finite and >= 0")
    return r[:, None]


def project_l2(delta: torch.Tensor, radius) -> torch.Tensor:
    """Rows of ``delta`` (dim 0 indexes them) projected onto the l2 balls of ``radius``."""
    flat = delta.reshape(len(delta), -1)
    r = _radius_column(radius, flat)
    norm = flat.norm(dim=1, keepdim=True)
    scale = torch.where(norm > r, r / norm.clamp_min(torch.finfo(flat.dtype).tiny),
                        torch.ones_like(norm))
    return (flat * scale).reshape(delta.shape)


def project_linf(delta: torch.Tensor, radius) -> torch.Tensor:
    """Rows of ``delta`` clipped to [-radius, radius]."""
    flat = delta.reshape(len(delta), -1)
    r = _radius_column(radius, flat)
    return torch.maximum(torch.minimum(flat, r), -r).reshape(delta.shape)


def project_l1(delta: torch.Tensor, radius) -> torch.Tensor:
    """Rows of ``delta`` projected (Euclidean projection) onto the l1 balls of ``radius``.

    Duchi et al. (2008), Fig. 1: with ``u`` = |v| sorted decreasingly,
    ``rho = max{j : u_j - (sum_{i<=j} u_i - r) / j > 0}``, ``theta = (sum_{i<=rho} u_i - r) / rho``
    and the projection is ``sign(v) max(|v| - theta, 0)``; rows already inside are unchanged."""
    flat = delta.reshape(len(delta), -1)
    r = _radius_column(radius, flat)
    mag = flat.abs()
    outside = mag.sum(dim=1, keepdim=True) > r
    u, _ = torch.sort(mag, dim=1, descending=True)
    css = torch.cumsum(u, dim=1)
    j = torch.arange(1, flat.shape[1] + 1, dtype=flat.dtype, device=flat.device)
    positive = (u - (css - r) / j) > 0
    # rho = the largest such j (>= 1 for r > 0; a row with r = 0 is sent to 0 below).
    rho = torch.where(positive, j.expand_as(u), torch.zeros_like(u)).amax(dim=1, keepdim=True)
    rho_idx = (rho.long() - 1).clamp_min(0)
    theta = (css.gather(1, rho_idx) - r) / rho.clamp_min(1)
    shrunk = torch.sign(flat) * (mag - theta).clamp_min(0)
    shrunk = torch.where(r > 0, shrunk, torch.zeros_like(shrunk))
    return torch.where(outside, shrunk, flat).reshape(delta.shape)


def project(delta: torch.Tensor, radius, norm) -> torch.Tensor:
    """Projection of each row of ``delta`` onto the l_norm ball of ``radius`` (norm 1, 2, inf)."""
    p = check_norm(norm)
    if p == 2:
        return project_l2(delta, radius)
    if p == 1:
        return project_l1(delta, radius)
    if math.isinf(p):
        return project_linf(delta, radius)
    raise ValueError(f"norm {norm} has no projection here; the attack supports l1, l2 and linf")


def lp_norm(delta: torch.Tensor, norm) -> torch.Tensor:
    """l_p norm of each row of ``delta``."""
    return torch.linalg.vector_norm(delta.reshape(len(delta), -1), ord=check_norm(norm), dim=1)


def ascent_direction(grad: torch.Tensor, norm, l1_sparsity: float = 0.05) -> torch.Tensor:
    """Per row, a unit-norm (in l_norm) direction of steepest or near-steepest ascent."""
    p = check_norm(norm)
    flat = grad.reshape(len(grad), -1)
    tiny = torch.finfo(flat.dtype).tiny
    if p == 2:
        out = flat / flat.norm(dim=1, keepdim=True).clamp_min(tiny)
    elif math.isinf(p):
        out = torch.sign(flat)
    elif p == 1:
        k = max(1, int(math.ceil(l1_sparsity * flat.shape[1])))
        top = flat.abs().topk(k, dim=1).indices
        out = torch.zeros_like(flat).scatter_(1, top, torch.sign(flat.gather(1, top)) / k)
    else:
        raise ValueError(f"norm {norm} is not supported by the attack; use 1, 2 or inf")
    return out.reshape(grad.shape)


# -- the attack --------------------------------------------------------------------------------
def pgd_smooth(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, radius, noise,
               norm, *, steps: int = 20, m: int = 16, step_size: float = 2.5,
               l1_sparsity: float = 0.05, generator: Optional[torch.Generator] = None
               ) -> torch.Tensor:
    """Perturbations ``delta`` (shape of ``x``, one per row) with ``||delta_b||_p <= radius_b``
    that maximise the loss of the smoothed classifier's soft prediction of ``labels``
    (module docstring). The model's parameters are not changed (no gradients kept for them)."""
    p = check_norm(norm)
    if p not in SUPPORTED_NORMS:
        raise ValueError(f"norm {norm} is not supported by the attack; use 1, 2 or inf")
    if steps < 1 or m < 1:
        raise ValueError(f"steps and m must be >= 1, got steps={steps}, m={m}")
    r = torch.as_tensor(radius, dtype=x.dtype, device=x.device).expand(len(x)).clone()
    step = (step_size * r / steps).reshape(-1, *([1] * (x.ndim - 1)))
    labels = labels.to(x.device).long()
    delta = torch.zeros_like(x)
    was_training = model.training
    model.eval()
    req = [q.requires_grad for q in model.parameters()]
    for q in model.parameters():
        q.requires_grad_(False)
    try:
        for _ in range(steps):
            delta.requires_grad_(True)
            eps = noise.sample((len(x), m, *x.shape[1:]), generator=generator, device=x.device,
                               dtype=torch.float32).to(x.dtype)
            noisy = ((x + delta)[:, None] + eps).reshape(len(x) * m, *x.shape[1:])
            probs = torch.softmax(model(noisy), dim=1).reshape(len(x), m, -1).mean(dim=1)
            picked = probs.gather(1, labels[:, None]).squeeze(1)
            loss = -torch.log(picked.clamp_min(1e-30)).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = project(delta + step * ascent_direction(grad, p, l1_sparsity), r, p)
    finally:
        for q, flag in zip(model.parameters(), req):
            q.requires_grad_(flag)
        model.train(was_training)
    return delta.detach()


def attack_seed(seed: int, idx: int) -> int:
    """Seed of the check's fresh draws for input ``idx`` (independent of cli.point_seed's)."""
    return int(np.random.SeedSequence([seed, idx, 0xA77AC]).generate_state(1)[0])


def violation_bound(count: int, p_violation: float, level: float = 1e-3) -> int:
    """Smallest k with P(Binomial(count, p_violation) > k) < level."""
    from scipy.stats import binom
    if count == 0:
        return 0
    return int(binom.isf(level, count, min(1.0, p_violation)))


@dataclass
class AttackSummary:
    out: str
    norm: float
    attacked: int                 # certified inputs attacked
    held: int                     # smoothed prediction unchanged
    abstained: int                # predict abstained
    changed: int                  # predict returned another class
    bound: int                    # violation_bound(attacked, alpha_certify + alpha)
    radius_scale: float
    rows: List[tuple] = field(default_factory=list)

    def line(self) -> str:
        frac = self.held / self.attacked if self.attacked else float("nan")
        scale = "" if self.radius_scale == 1 else f" x {self.radius_scale:g}"
        verdict = ("consistent with the certificates" if self.changed <= self.bound else
                   "MORE than the certificates allow")
        if self.radius_scale != 1:
            verdict = "radius beyond the certified one: changes are expected"
        return (f"attack (l{'inf' if math.isinf(self.norm) else f'{self.norm:g}'}, certified "
                f"radius{scale}): {self.held}/{self.attacked} certified inputs held "
                f"({100 * frac:.1f}%), {self.abstained} abstained, {self.changed} changed class "
                f"(<= {self.bound} expected at the certified radius); {verdict}")


def attack_file(certified, out, *, model=None, data=None, n: int = 10_000,
                alpha: Optional[float] = None, steps: int = 20, m: int = 16,
                step_size: float = 2.5, l1_sparsity: float = 0.05, radius_scale: float = 1.0,
                batch: int = 1000, inputs_per_batch: int = 16, seed: int = 0,
                device: str = "auto", progress: bool = True) -> AttackSummary:
    """Attack every certified row of the certify TSV ``certified`` (its settings are read from
    ``certified + '.params.json'``: noise, norm, model, data) and write ``out``:
    ``idx radius attacked_prediction held`` (radius: the attack radius)."""
    import json

    from tqdm.auto import tqdm

    from . import cli
    from . import curve as curve_mod
    from .noise import make
    from .smooth import Smooth

    certified = os.fspath(certified)
    out = os.fspath(out)
    try:
        result = curve_mod.read_certify_tsv(certified)
    except (FileNotFoundError, ValueError) as exc:
        raise cli.UsageError(str(exc)) from None
    params_path = certified + cli.PARAMS_SUFFIX
    try:
        with open(params_path) as f:
            params = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise cli.UsageError(f"cannot read {params_path} ({type(exc).__name__}): the attack "
                             f"needs the noise and norm of the certify run that wrote "
                             f"{certified}") from None
    record = dict(params["noise"])
    noise = make(record.pop("name"), **record)
    p = check_norm(params["norm"])
    if p not in SUPPORTED_NORMS:
        raise cli.UsageError(f"{certified} holds l{params['norm']} radii; the attack supports "
                             f"l1, l2 and linf")
    alpha = float(params.get("alpha", 0.001)) if alpha is None else float(alpha)
    model = model or params.get("model")
    data = data or params.get("data")
    if not model or not data:
        raise cli.UsageError(f"{params_path} names no model or data; give --model and --data")
    dev = cli._device(device)
    x, y, net, info = cli.load_data_and_model(data, model, dev)
    for key, value in (("model_sha256", lambda: outfiles.sha256_file(model)),
                       ("data_sha256", lambda: outfiles.sha256_tensors(x, y))):
        if params.get(key) and params[key] != value():
            what = key.split("_")[0]
            raise cli.UsageError(f"the {what} ({model if what == 'model' else data}) is not the "
                                 f"one {certified} was certified with; give the same --{what}")
    keep = result.predict != -1
    idx, pred, radius = result.idx[keep], result.predict[keep], result.radius[keep]
    if len(idx) and int(idx.max()) >= len(x):
        raise cli.UsageError(f"{certified} has idx {int(idx.max())} but the data has {len(x)} "
                             f"points; give the data set it was certified on")
    smooth = Smooth(net, int(info["num_classes"]), noise=noise, norm=p)
    gen = torch.Generator(device=dev).manual_seed(seed)
    summary = AttackSummary(out, p, 0, 0, 0, 0, 0, radius_scale)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as fh, tqdm(total=len(idx), unit="input", file=sys.stderr,
                                    desc=os.path.basename(out), disable=not progress,
                                    dynamic_ncols=True) as bar:
        fh.write("\t".join(HEADER) + "\n")
        for lo in range(0, len(idx), inputs_per_batch):
            sl = slice(lo, lo + inputs_per_batch)
            xb = x[torch.as_tensor(idx[sl])].to(dev)
            rb = torch.as_tensor(radius[sl] * radius_scale, dtype=xb.dtype, device=dev)
            delta = pgd_smooth(net, xb, torch.as_tensor(pred[sl]), rb, noise, p, steps=steps, m=m,
                               step_size=step_size, l1_sparsity=l1_sparsity, generator=gen)
            for k in range(len(xb)):
                i, c = int(idx[sl][k]), int(pred[sl][k])
                smooth.seed = attack_seed(seed, i)
                got = int(smooth.predict(xb[k] + delta[k], n, alpha, batch))
                held = int(got == c)
                summary.attacked += 1
                summary.held += held
                summary.abstained += got == Smooth.ABSTAIN
                summary.changed += (not held) and got != Smooth.ABSTAIN
                row = (i, float(rb[k]), got, held)
                summary.rows.append(row)
                fh.write(f"{i}\t{row[1]:.6g}\t{got}\t{held}\n")
                fh.flush()
                bar.update(1)
    summary.bound = violation_bound(summary.attacked, float(params.get("alpha", alpha)) + alpha)
    return summary
