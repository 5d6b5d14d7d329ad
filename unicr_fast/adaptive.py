"""Adaptive certification: draw in batches and stop once the outcome is decided (docs/theory.md §12).

The bounds at an early stop come from confidence sequences (``sequential``), valid at every
number of draws; a run that reaches the budget ``n`` also has a Clopper–Pearson bound at ``n``.
Each gets half of ``alpha``, so a certificate is false with probability at most ``alpha`` for
every stopping rule, including the ones below:

* abstain as soon as the upper end of p_A rules certification out;
* stop once the radius at the current lower bound reaches ``target_radius``;
* stop once it is within ``rtol`` of the radius the budget would give if the remaining draws
  followed the current frequency.

Everything here is independent of the model and the noise: ``draw(m)`` returns class counts of
``m`` fresh noisy copies, ``radius_of(p_a, p_b)`` the certified radius of bounds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ._validation import check_int, check_positive, check_probability_open
from .confidence import clopper_pearson_lower, clopper_pearson_upper
from .sequential import lower_bound, upper_bound

ABSTAIN = -1

#: The relative tolerance when neither a target radius nor a tolerance is given.
DEFAULT_RTOL = 0.05


@dataclass(frozen=True)
class StoppingRule:
    """When an adaptive certification may stop before the budget (docs/theory.md §12).
    ``target_radius``: stop once the certified radius reaches it. ``rtol``: stop once more draws
    could raise the radius by less than this fraction. With neither, ``rtol = DEFAULT_RTOL``."""

    target_radius: Optional[float] = None
    rtol: Optional[float] = None

    def __post_init__(self):
        if self.target_radius is not None:
            object.__setattr__(self, "target_radius",
                               check_positive(self.target_radius, "target_radius"))
        if self.rtol is not None:
            object.__setattr__(self, "rtol", check_probability_open(self.rtol, "rtol"))
        if self.target_radius is None and self.rtol is None:
            object.__setattr__(self, "rtol", DEFAULT_RTOL)


@dataclass
class AdaptiveResult:
    """The outcome of one adaptive certification: ``label`` (ABSTAIN = -1), ``radius``, the
    bounds it came from, the number of estimation ``draws`` used and why it stopped
    ("target", "tolerance", "abstain" or "budget")."""

    label: int
    radius: float
    p_a: float
    p_b: Optional[float]
    draws: int
    reason: str


class _Bounds:
    """p_A lower / p_B upper bounds of the current counts: the confidence sequence at half of
    alpha (multiclass: a quarter each), plus Clopper–Pearson at the other half once t = n."""

    def __init__(self, alpha: float, multiclass: bool, n: int):
        self.level = alpha / 2 / (2 if multiclass else 1)
        self.multiclass, self.n = multiclass, n

    def __call__(self, n_a: int, n_b: int, t: int):
        p_a = lower_bound(n_a, t, self.level)
        if t == self.n:
            p_a = max(p_a, clopper_pearson_lower(n_a, t, self.level))
        if not self.multiclass:
            return p_a, None
        p_b = upper_bound(n_b, t, self.level)
        if t == self.n:
            p_b = min(p_b, clopper_pearson_upper(n_b, t, self.level))
        # p_B <= 1 - p_A <= 1 - p_a on the same event (as in the fixed-n path).
        return p_a, min(p_b, 1.0 - p_a)

    def optimistic_upper(self, n_a: int, n_b: int, t: int) -> bool:
        """False when even the upper end of p_A cannot beat what certification needs."""
        u_a = upper_bound(n_a, t, self.level)
        need = 0.5 if not self.multiclass else lower_bound(n_b, t, self.level)
        return u_a > need

    def at_budget(self, n_a: int, n_b: int, t: int):
        """The bounds the full budget would give if the remaining draws kept the current
        frequencies (the Clopper–Pearson half, which is the tighter one at n)."""
        k_a = int(round(n_a * self.n / t))
        p_a = clopper_pearson_lower(k_a, self.n, self.level)
        if not self.multiclass:
            return p_a, None
        k_b = min(self.n - k_a, int(round(n_b * self.n / t)))
        return p_a, min(clopper_pearson_upper(k_b, self.n, self.level), 1.0 - p_a)


def certify_adaptive(draw: Callable[[int], np.ndarray], label: int, n: int, batch_size: int,
                     alpha: float, multiclass: bool,
                     radius_of: Callable[[float, Optional[float]], float],
                     rule: StoppingRule = StoppingRule()) -> AdaptiveResult:
    """Certify ``label`` (chosen beforehand on independent draws) with at most ``n`` draws taken
    ``batch_size`` at a time, stopping by ``rule`` (module doc)."""
    n, batch_size = check_int(n, "n", 1), check_int(batch_size, "batch_size", 1)
    bounds = _Bounds(check_probability_open(alpha, "alpha"), multiclass, n)
    counts, t = None, 0
    while True:
        m = min(batch_size, n - t)
        batch = np.asarray(draw(m), dtype=np.int64)
        counts = batch if counts is None else counts + batch
        t += m
        n_a = int(counts[label])
        n_b = int(np.delete(counts, label).max()) if multiclass else 0
        p_a, p_b = bounds(n_a, n_b, t)
        if not _certifies(p_a, p_b):
            if t == n or not bounds.optimistic_upper(n_a, n_b, t):
                return AdaptiveResult(ABSTAIN, 0.0, p_a, p_b, t, "abstain" if t < n else "budget")
            continue
        radius = radius_of(p_a, p_b)
        if t == n:
            return AdaptiveResult(label, radius, p_a, p_b, t, "budget")
        if rule.target_radius is not None and radius >= rule.target_radius:
            return AdaptiveResult(label, radius, p_a, p_b, t, "target")
        if rule.rtol is not None and radius > 0.0:
            reachable = radius_of(*bounds.at_budget(n_a, n_b, t))
            if radius >= (1.0 - rule.rtol) * reachable:
                return AdaptiveResult(label, radius, p_a, p_b, t, "tolerance")


def _certifies(p_a: float, p_b: Optional[float]) -> bool:
    """As the fixed-n path: binary needs p_a >= 1/2 (radius 0 at 1/2), multiclass p_a > p_b."""
    return p_a >= 0.5 if p_b is None else p_a > p_b
