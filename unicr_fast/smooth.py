"""Smooth: Cohen et al.'s randomized-smoothing classifier for any catalogue noise (i.i.d. or
radial) and any l_p norm.

A drop-in for ``Smooth(base_classifier, num_classes, sigma)`` of locuslab/smoothing: same
``predict`` / ``certify`` semantics and ``ABSTAIN = -1``; ``noise=`` and ``norm=`` generalise it.
Radii: a ``RadiusTable`` of the (norm, dim) where one is given; otherwise Gaussian noise uses
the exact closed form (docs/theory.md §8: sigma Phi^-1(p_a) in l2, which is also the l_p radius for
p <= 2, and R_2 d^(1/p - 1/2) for p >= 2) and every other noise goes through the radius engine,
memoised by a ``RadiusCache`` (rounding p_a down / p_b up, never over-stating the radius).
"""
from __future__ import annotations

import itertools
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.stats import binomtest

from ._validation import check_int, check_norm, check_probability_open, check_seed
from .confidence import clopper_pearson_lower, clopper_pearson_upper
from .noise import Gaussian, Noise
from .radius.cache import RadiusCache, certifying_kwargs
from .radius.table import RadiusTable
from .radius.closed_forms import gaussian_radius


def check_input_tensor(x) -> None:
    """One input (no batch dimension): a non-empty, finite, floating-point torch tensor."""
    if not torch.is_tensor(x):
        raise TypeError(f"x must be a torch.Tensor (one input, no batch dimension), "
                        f"got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError("x must not be empty")
    if not torch.isfinite(x).all():
        raise ValueError("x must be finite (no NaN or inf)")


class Smooth:
    """Smoothed classifier g(x) = argmax_c P(f(x + eps) = c), eps i.i.d. ``noise`` (or Gaussian
    with std ``sigma``; give exactly one), certified in the l_``norm`` norm.

    ``multiclass=False`` (Cohen): p_b = 1 - p_a, p_a a one-sided Clopper–Pearson bound at
    ``alpha``. ``multiclass=True``: p_a lower and p_b upper (runner-up) bounds at ``alpha / 2``
    each (Bonferroni), which can certify more when the runner-up is rare.

    Determinism: every ``predict`` / ``certify`` call draws its noise from a torch.Generator
    seeded with ``seed`` on x's device (the model's), so the same (x, seed, batch_size, device) gives
    the same answer. A data-set run therefore reuses the same draws for every input (each
    input's guarantee holds on its own); set ``smooth.seed`` per input for independent draws.

    Radii: Gaussian noise uses the exact closed form (no search, no Monte Carlo). Any other noise
    calls the radius engine (``method="auto"``: exact laws for product noise, Monte Carlo for
    radial and Custom noise) with dim = x.numel(), ``radius_samples`` samples, seed ``seed`` (as
    given at construction), ``device`` (None: "auto") and ``radius_kwargs`` (any other
    ``certified_radius`` keyword); its radii are memoised in ``self.radius_cache``.

    Soundness (docs/theory.md §10): Monte-Carlo radii run in sound mode at
    ``radius_kwargs["beta"]`` (default ``MC_RADIUS_BETA`` = 2.5e-5), and ``certify`` then takes
    its Clopper–Pearson bound at ``alpha - 2 beta``, so a certificate is false with probability
    <= alpha whatever the engine and ``radius_samples``. Exact radii need no share of alpha.

    Radius tables (``radius_table``: a ``RadiusTable``, a path to a saved one, or a list of
    them; or ``use_radius_table`` later) answer for their (norm, dim), kept in
    ``self.radius_tables``: one table per key, for any noise including Gaussian (an explicit
    table wins over the closed form, so a run's radii come from the table alone). A table must be
    of this Smooth's noise and binary/multiclass setting (ValueError otherwise). A (norm, dim)
    without a table falls back to the closed form / the cache as above.
    """

    ABSTAIN = -1

    def __init__(self, model: torch.nn.Module, num_classes: int, sigma: Optional[float] = None,
                 noise: Optional[Noise] = None, norm=2, *, multiclass: bool = False, seed: int = 0,
                 radius_samples: int = 100_000, radius_kwargs: Optional[dict] = None, device=None,
                 radius_table=None):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if (sigma is None) == (noise is None):
            raise ValueError("give exactly one of sigma (Gaussian noise) and noise")
        if noise is None:
            noise = Gaussian(sigma)
        elif not isinstance(noise, Noise):
            raise TypeError(f"noise must be a unicr_fast.noise.Noise, got {type(noise).__name__}")
        if not isinstance(multiclass, bool):
            raise TypeError(f"multiclass must be a bool, got {type(multiclass).__name__}")
        self.model = model
        self.num_classes = check_int(num_classes, "num_classes", 2)
        self.noise = noise
        self.norm = check_norm(norm)
        self.multiclass = multiclass
        self.seed = check_seed(seed)
        self.radius_cache = RadiusCache(noise, num_samples=radius_samples, seed=self.seed,
                                        device="auto" if device is None else device,
                                        radius_kwargs=certifying_kwargs(noise, radius_kwargs))
        self.radius_tables: Dict[Tuple[float, int], RadiusTable] = {}
        if radius_table is not None:
            many = isinstance(radius_table, (list, tuple))
            for table in radius_table if many else [radius_table]:
                self.use_radius_table(table)

    # -- public API --------------------------------------------------------------------------
    def use_radius_table(self, table) -> RadiusTable:
        """Answer radii in ``table``'s (norm, dim) from it (replacing any table of that key).
        ``table``: a ``RadiusTable`` or the path of a saved one. Returns the table."""
        if isinstance(table, (str, os.PathLike)):
            table = RadiusTable.load(table)
        elif not isinstance(table, RadiusTable):
            raise TypeError(f"radius_table must be a RadiusTable or a path to one, got "
                            f"{type(table).__name__}")
        table.check_matches(self.noise, table.norm, table.dim, self.multiclass)
        self.radius_tables[table.key] = table
        return table

    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int) -> int:
        """Top class of g at x, or ABSTAIN when a two-sided binomial test cannot tell the top two
        counts apart at level ``alpha`` (Cohen et al.): wrong with probability <= alpha."""
        n = check_int(n, "n", 1)
        alpha = check_probability_open(alpha, "alpha")
        self._check_input(x, batch_size)
        counts = self._counts(x, n, batch_size, self._generator(x))
        top, second = np.argsort(-counts, kind="stable")[:2]
        n_top, n_second = int(counts[top]), int(counts[second])
        if binomtest(n_top, n_top + n_second, 0.5).pvalue > alpha:
            return self.ABSTAIN
        return int(top)

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float,
                batch_size: int) -> Tuple[int, float]:
        """(label, radius) in this Smooth's norm; (ABSTAIN, 0.0) when nothing is certified.
        The label is chosen on ``n0`` draws, its probability bounded on ``n`` fresh ones."""
        alpha = self._bounds_alpha(alpha, [self.norm], x)
        label, p_a, p_b, dim = self.probability_bounds(x, n0, n, alpha, batch_size)
        if label == self.ABSTAIN:
            return self.ABSTAIN, 0.0
        return label, self._radius(p_a, p_b, self.norm, dim)

    def certify_norms(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int,
                      norms: Sequence = (1, 2, "inf")) -> Tuple[int, Dict]:
        """(label, {norm: radius}) for several norms from one set of counts (keys as given;
        two keys naming one norm, such as 2 and "2.0", are a ValueError)."""
        if isinstance(norms, (str, int, float)) or not hasattr(norms, "__iter__"):
            raise TypeError(f"norms must be a sequence of norms such as (1, 2, 'inf'), got {norms!r}")
        norms = tuple(norms)
        if not norms:
            raise ValueError("norms must not be empty")
        exponents = [check_norm(q) for q in norms]
        if len(set(exponents)) < len(norms):   # 2, 2.0 and "2" are one norm (2 == 2.0 as keys)
            p = next(p for p in exponents if exponents.count(p) > 1)
            first, second = [q for q, e in zip(norms, exponents) if e == p][:2]
            raise ValueError(f"norms must be distinct, got {first!r} and {second!r}, both l_{p:g}")
        alpha = self._bounds_alpha(alpha, exponents, x)
        label, p_a, p_b, dim = self.probability_bounds(x, n0, n, alpha, batch_size)
        if label == self.ABSTAIN:
            return self.ABSTAIN, {q: 0.0 for q in norms}
        return label, {q: self._radius(p_a, p_b, p, dim) for q, p in zip(norms, exponents)}

    # -- steps ---------------------------------------------------------------------------------
    def probability_bounds(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int):
        """(label, p_a, p_b, dim) behind ``certify``: the class chosen on ``n0`` draws, a lower
        bound p_a of its probability from ``n`` fresh draws (and, multiclass, an upper bound p_b
        of the runner-up; None binary), dim = x.numel(); label ABSTAIN when p_a cannot beat p_b
        (binary: 1/2). For tools that turn the bounds into radii themselves (I-OPT, C-OPT)."""
        n, n0 = check_int(n, "n", 1), check_int(n0, "n0", 1)
        if n0 > n:
            raise ValueError(f"n0 ({n0}) must not exceed n ({n}): n0 selects, n estimates")
        alpha = check_probability_open(alpha, "alpha")
        self._check_input(x, batch_size)
        gen = self._generator(x)
        # Selection and estimation use consecutive, hence independent, draws of one generator.
        label = int(np.argmax(self._counts(x, n0, batch_size, gen)))
        counts = self._counts(x, n, batch_size, gen)
        n_a = int(counts[label])
        if not self.multiclass:
            p_a = clopper_pearson_lower(n_a, n, alpha)
            return (self.ABSTAIN if p_a < 0.5 else label), p_a, None, x.numel()
        p_a = clopper_pearson_lower(n_a, n, alpha / 2)
        n_b = int(np.delete(counts, label).max())
        # p_B <= 1 - p_A <= 1 - p_a on the same event, so the cap is free and keeps p_a + p_b <= 1.
        p_b = min(clopper_pearson_upper(n_b, n, alpha / 2), 1.0 - p_a)
        return (self.ABSTAIN if p_a <= p_b else label), p_a, p_b, x.numel()

    def _bounds_alpha(self, alpha, norms, x) -> float:
        """The level of the probability bounds behind a certificate at total level ``alpha``:
        alpha less the probability that a radius engine overstates (docs/theory.md §10; 0 for
        the closed form and exact radii, 2 beta for sound Monte Carlo)."""
        alpha = check_probability_open(alpha, "alpha")
        dim = x.numel() if torch.is_tensor(x) else None
        failure = max(self._engine_failure(p, dim) for p in norms)
        if failure >= alpha:
            raise ValueError(f"alpha = {alpha:g} must exceed the Monte-Carlo radius engine's "
                             f"failure probability {failure:g} (2 x its sound-mode beta, "
                             f"docs/theory.md §10); lower radius_kwargs['beta'] or raise alpha")
        return alpha - failure

    def _engine_failure(self, p: float, dim: Optional[int]) -> float:
        table = self.radius_tables.get((p, dim))
        if table is not None:
            return table.failure
        if isinstance(self.noise, Gaussian):
            return 0.0
        return getattr(self.radius_cache, "failure", 0.0)

    def _radius(self, p_a: float, p_b: Optional[float], p: float, dim: int) -> float:
        table = self.radius_tables.get((p, dim))
        if table is not None:
            return table.radius(p_a, p_b)
        if isinstance(self.noise, Gaussian):
            return gaussian_radius(self.noise.sigma, p_a, p_b, p, dim)
        return self.radius_cache.radius(p_a, p_b, p, dim)

    def _generator(self, x: torch.Tensor) -> torch.Generator:
        return torch.Generator(device=x.device).manual_seed(self.seed)

    @torch.no_grad()
    def _counts(self, x: torch.Tensor, num: int, batch_size: int, gen) -> np.ndarray:
        """Class counts of the base classifier on ``num`` noisy copies of x."""
        self.model.eval()
        # Noise families sample in float32/float64; half-precision inputs get float32 draws.
        draw_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        counts = torch.zeros(self.num_classes, dtype=torch.long, device=x.device)
        # argmax of a NaN row is 0: a broken model would be counted as voting for class 0.
        # Rows with a NaN/inf logit are counted on the device (no sync per batch), refused below.
        bad = torch.zeros((), dtype=torch.long, device=x.device)
        for start in range(0, num, batch_size):
            size = min(batch_size, num - start)
            batch = self.noise.sample((size, *x.shape), generator=gen, device=x.device,
                                      dtype=draw_dtype).to(x.dtype).add_(x)
            out = self.model(batch)
            if not torch.is_tensor(out) or tuple(out.shape) != (size, self.num_classes):
                got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
                raise ValueError(f"model output must have shape (batch, num_classes) = "
                                 f"({size}, {self.num_classes}), got {got}")
            bad += (~torch.isfinite(out)).any(dim=1).sum()
            counts += torch.bincount(out.argmax(dim=1), minlength=self.num_classes)
        if int(bad):
            raise ValueError(f"model returned non-finite outputs (NaN/inf) for {int(bad)} of "
                             f"{num} noisy inputs; their argmax is no prediction, so nothing is "
                             f"counted: fix the model (or its input scaling) to give finite logits")
        return counts.cpu().numpy()

    def _check_input(self, x, batch_size) -> None:
        check_int(batch_size, "batch_size", 1)
        check_input_tensor(x)
        self.noise.bound(x.numel())   # radial noise: ValueError when built for another dim
        devices = {t.device for t in itertools.chain(self.model.parameters(), self.model.buffers())}
        if devices and devices != {x.device}:
            where = ", ".join(sorted(str(d) for d in devices))
            raise ValueError(f"model parameters are on {where} but x is on {x.device}; "
                             f"move x (x.to(...)) or the model (model.to(...)) to one device")
