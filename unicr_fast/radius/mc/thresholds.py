"""Tie-aware margins of the worst-case classifier (docs/theory.md §3, §5, §6; docs/theory.md §5).

The worst classifier puts class A where L is smallest and B where L is largest, splitting the
tie set {L = t} so that the X-masses are exactly p_a and p_b. On the tie set dP_Y = e^t dP_X:

    P_Y(S_A) = P_Y(L < t_A) + e^{t_A} (p_a - P_X(L < t_A))
    P_Y(S_B) = P_Y(L > t_B) + e^{t_B} (p_b - P_X(L > t_B))

Binary margin: P_Y(S_A) - 1/2. Multiclass margin: P_Y(S_A) - P_Y(S_B). Certified iff > 0.

Two estimators of these from the N common-random-number pairs (a_i = L(eps_i) ~ law of L under
X, b_i = L(eps_i + delta) ~ law under Y):

``pooled_margins`` (the default): the 2N values as one sample of the mixture (X + Y) / 2, each
weighted by its likelihood ratio to X, 1 / (1 + e^L), and to Y, e^L / (1 + e^L) (balance
heuristic). Both weights lie in [0, 1], so the X-tail at p_a close to 1 is estimated from the
Y-samples that land there, not from the handful of X-samples beyond the quantile, and a single
sample's tie share is at most 1/N of P_Y instead of e^t / N. docs/theory.md §5 has the argument.

``margins`` on ``threshold_stats`` (empirical counts of the X- and Y-samples separately): kept
for the sound mode, whose DKW slack is a bound on those plain empirical CDFs (docs/theory.md §6).
"""
from __future__ import annotations

import torch


def _tie_mass(t: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """e^t * residual, exactly 0 where residual is 0 (so t = +inf with no tie mass is fine)."""
    return torch.where(residual > 0, torch.exp(t) * residual, torch.zeros_like(residual))


def worst_case_probabilities(stats: torch.Tensor, p_a: torch.Tensor, p_b: torch.Tensor,
                             slack: float = 0.0):
    """P_Y(S_A) and P_Y(S_B) per row from plain empirical counts. ``p_a``/``p_b`` are the
    X-masses the stats were computed with; ``slack`` (a DKW half-width, docs/theory.md §6) moves both
    against certification."""
    t_a, px_lt_a, px_eq_a, py_lt_a, t_b, px_gt_b, px_eq_b, py_gt_b = stats.unbind(1)
    # The residual lies in [0, P_X(L = t)] by the choice of t; clamp only against rounding.
    res_a = torch.minimum((p_a - px_lt_a).clamp_min(0), px_eq_a)
    res_b = torch.minimum((p_b - px_gt_b).clamp_min(0), px_eq_b)
    py_sa = (py_lt_a + _tie_mass(t_a, res_a) - slack).clamp(0, 1)
    py_sb = (py_gt_b + _tie_mass(t_b, res_b) + slack).clamp(0, 1)
    return py_sa, py_sb


def margins(stats: torch.Tensor, p_a: torch.Tensor, p_b: torch.Tensor, binary: bool,
            slack: float = 0.0) -> torch.Tensor:
    """m(delta) per row from ``threshold_stats`` (the sound mode's estimator)."""
    py_sa, py_sb = worst_case_probabilities(stats, p_a, p_b, slack)
    return py_sa - 0.5 if binary else py_sa - py_sb


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return t.gather(1, idx[:, None])[:, 0]


def pooled_stats_reference(a: torch.Tensor, b: torch.Tensor, p_a: torch.Tensor,
                           p_b: torch.Tensor, tie_rtol: float) -> torch.Tensor:
    """M x 4 rows (t_A, P_Y(S_A), t_B, P_Y(S_B)) of the pooled estimator, in torch: the oracle
    of the compiled kernel (csrc/cpu/pooled_stats.cpp, whose header states the definitions) and
    the implementation on GPU. Sorts the 2N values of each row, so O(N log N).

    Masses are tail sums (mass at or above a sorted position), so 1 - p_a down to ~1e-12 keeps
    its digits. Ties: values within ``tie_rtol`` * max(1, |t|) of a threshold form its tie set;
    the worst classifier takes the fraction f = residual / P_X(tie) of it, hence f * P_Y(tie)
    of Y's mass (equal to e^t * residual on a true atom, and never more than the set's Y-mass)."""
    a, b = a.to(torch.float64), b.to(torch.float64)
    M, N = a.shape
    v, _ = torch.sort(torch.cat([a, b], dim=1), dim=1)
    # Self-normalised balance weights: dX/d(mix) = 2 / (1 + e^L), dY/d(mix) = 2 e^L / (1 + e^L).
    wx, wy = torch.sigmoid(-v), torch.sigmoid(v)
    sum_x, sum_y = wx.sum(1), wy.sum(1)
    zero = torch.zeros(M, 1, dtype=torch.float64, device=v.device)
    # tail[:, j] = mass of positions >= j (j = 0..2N); tail[:, 2N] = 0. Unnormalised.
    tail_x = torch.cat([wx.flip(1).cumsum(1).flip(1), zero], dim=1)
    tail_y = torch.cat([wy.flip(1).cumsum(1).flip(1), zero], dim=1)
    p_a = p_a.to(v).reshape(M)
    p_b = p_b.to(v).reshape(M)

    def masses(t):
        """(X, Y masses strictly above t's tie set, X, Y masses of the tie set)."""
        tol = torch.where(torch.isfinite(t), tie_rtol * t.abs().clamp_min(1.0),
                          torch.zeros_like(t))
        lo = torch.searchsorted(v, (t - tol)[:, None].contiguous(), side="left")[:, 0]
        hi = torch.searchsorted(v, (t + tol)[:, None].contiguous(), side="right")[:, 0]
        x_above, y_above = _gather(tail_x, hi), _gather(tail_y, hi)
        return x_above, y_above, _gather(tail_x, lo) - x_above, _gather(tail_y, lo) - y_above

    def share(residual, x_tie, y_tie):
        frac = torch.where(x_tie > 0, (residual / x_tie.clamp_min(1e-300)).clamp(0, 1),
                           torch.zeros_like(x_tie))
        return frac * y_tie

    # t_A: the value whose X-mass strictly above is <= 1 - p_a < the mass at or above.
    q_a = (1.0 - p_a).clamp_min(0) * sum_x
    strictly_above = torch.cat([tail_x[:, 1:-1], zero], dim=1).contiguous()
    j_a = torch.searchsorted(-strictly_above, -q_a[:, None].contiguous(), side="left")[:, 0]
    t_a = _gather(v, j_a.clamp(max=2 * N - 1))
    x_above, y_above, x_tie, y_tie = masses(t_a)
    py_sa = 1.0 - (y_above + y_tie) / sum_y + share(x_above + x_tie - q_a, x_tie, y_tie) / sum_y
    # t_B: the value whose X-mass strictly above is < p_b <= the mass at or above; p_b = 0:
    # t_B = +inf. L = +inf (no X-mass) always belongs to the runner-up.
    q_b = p_b * sum_x
    count = torch.searchsorted(-tail_x[:, :-1].contiguous(), -q_b[:, None].contiguous(),
                               side="right")[:, 0]
    inf = torch.full_like(t_a, torch.inf)
    t_b = torch.where(p_b > 0, _gather(v, (count - 1).clamp(0, 2 * N - 1)), inf)
    x_above, y_above, x_tie, y_tie = masses(t_b)
    y_inf = (wy * (v == torch.inf)).sum(1)
    py_sb = torch.where(p_b > 0, (y_above + share(q_b - x_above, x_tie, y_tie)) / sum_y,
                        y_inf / sum_y)
    return torch.stack([t_a, py_sa.clamp(0, 1), t_b, py_sb.clamp(0, 1)], dim=1)


def pooled_margins(stats: torch.Tensor, binary: bool) -> torch.Tensor:
    """m(delta) per row from the pooled statistics (``pooled_stats`` of a backend)."""
    py_sa, py_sb = stats[:, 1], stats[:, 3]
    return py_sa - 0.5 if binary else py_sa - py_sb
