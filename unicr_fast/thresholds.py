"""Tie-aware margins of the worst-case classifier (THEORY §3, §5, §6).

Given the threshold statistics of a batch of shifts (backends.threshold_stats), the worst
classifier puts class A where L is smallest and B where L is largest, splitting the tie set
{L = t} so that the X-masses are exactly p_a and p_b. On the tie set dP_Y = e^t dP_X, hence

    P_Y(S_A) = P_Y(L < t_A) + e^{t_A} (p_a - P_X(L < t_A))
    P_Y(S_B) = P_Y(L > t_B) + e^{t_B} (p_b - P_X(L > t_B))

Binary margin: P_Y(S_A) - 1/2. Multiclass margin: P_Y(S_A) - P_Y(S_B). Certified iff > 0.
"""
from __future__ import annotations

import torch

from . import backends


def _tie_mass(t: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """e^t * residual, exactly 0 where residual is 0 (so t = +inf with no tie mass is fine)."""
    return torch.where(residual > 0, torch.exp(t) * residual, torch.zeros_like(residual))


def worst_case_probabilities(stats: torch.Tensor, p_a: torch.Tensor, p_b: torch.Tensor,
                             slack: float = 0.0):
    """P_Y(S_A) and P_Y(S_B) per row. ``p_a``/``p_b`` are the X-masses the stats were computed
    with; ``slack`` (a DKW half-width, THEORY §6) moves both against certification."""
    t_a, px_lt_a, px_eq_a, py_lt_a, t_b, px_gt_b, px_eq_b, py_gt_b = stats.unbind(1)
    # The residual lies in [0, P_X(L = t)] by the choice of t; clamp only against rounding.
    res_a = torch.minimum((p_a - px_lt_a).clamp_min(0), px_eq_a)
    res_b = torch.minimum((p_b - px_gt_b).clamp_min(0), px_eq_b)
    py_sa = (py_lt_a + _tie_mass(t_a, res_a) - slack).clamp(0, 1)
    py_sb = (py_gt_b + _tie_mass(t_b, res_b) + slack).clamp(0, 1)
    return py_sa, py_sb


def margins(stats: torch.Tensor, p_a: torch.Tensor, p_b: torch.Tensor, binary: bool,
            slack: float = 0.0) -> torch.Tensor:
    """m(delta) per row (THEORY §3); positive means still certified at that shift."""
    py_sa, py_sb = worst_case_probabilities(stats, p_a, p_b, slack)
    return py_sa - 0.5 if binary else py_sa - py_sb


def margins_from_log_ratios(a, b, p_a, p_b, binary: bool, slack: float = 0.0,
                            backend: str = "auto", tie_rtol: float = backends.TIE_RTOL):
    """Margins of a batch of shifts straight from their log-ratio values ``a``, ``b`` (M x N).
    ``p_a``/``p_b`` are per-row tensors (p_b = 1 - p_a in the binary case)."""
    stats = backends.threshold_stats(a, b, p_a, p_b, tie_rtol=tie_rtol, backend=backend)
    return margins(stats, p_a.to(stats.device), p_b.to(stats.device), binary, slack)
