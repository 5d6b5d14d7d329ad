"""Radius search (docs/theory.md §4): batched scale search along directions, particle swarm over them.

Directions. For i.i.d. symmetric noise (and for radial noise, a function of an l_q norm) the
margin is invariant under permutations and sign flips of the shift, so a direction is a sorted non-negative vector. We search the *block profiles*:
coordinates are cut into blocks of sizes 1, 1, 2, 4, 8, ... (the last one truncated at d), every
block holds one level v_k in [0, 1], and u = v expanded over the blocks, sorted descending and
scaled to ||u||_p = 1. This B = O(log d)-dimensional family contains the axis, the diagonal and
every k-sparse equal-magnitude direction with k a power of two, and it is where the swarm moves.
The search is an approximation: the radius is the smallest lambda* among the directions tried.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

# --------------------------------------------------------------------------------------------
# Directions


def block_edges(dim: int) -> np.ndarray:
    """Block boundaries 0, 1, 2, 4, 8, ..., dim."""
    edges = [0, 1]
    while edges[-1] < dim:
        edges.append(min(dim, 2 * edges[-1]))
    return np.array(edges, dtype=np.int64)


def lp_norm(v: np.ndarray, p: float) -> np.ndarray:
    """||v||_p along the last axis for any p in (0, inf]."""
    v = np.abs(v)
    if math.isinf(p):
        return v.max(axis=-1)
    # Scale by the max first so small p (e.g. 0.1) does not overflow or underflow.
    vmax = v.max(axis=-1, keepdims=True)
    safe = np.where(vmax > 0, vmax, 1.0)
    return safe[..., 0] * ((v / safe) ** p).sum(axis=-1) ** (1.0 / p)


def directions_from_levels(levels: np.ndarray, dim: int, p: float) -> np.ndarray:
    """Expand block levels (P x B) into sorted non-negative unit directions (P x dim)."""
    sizes = np.diff(block_edges(dim))
    u = np.repeat(np.abs(levels), sizes, axis=1)
    u = -np.sort(-u, axis=1)  # canonical form: sorted descending
    norms = lp_norm(u, p)
    if np.any(norms <= 0):
        raise ValueError("a direction must have at least one non-zero level")
    return u / norms[:, None]


def sparse_levels(dim: int) -> np.ndarray:
    """Levels of the k-sparse equal-magnitude directions, k = 1, 2, 4, ..., dim (docs/theory.md §4)."""
    B = len(block_edges(dim)) - 1
    return np.tril(np.ones((B, B)))


# --------------------------------------------------------------------------------------------
# Scale search


@dataclass
class ScaleResult:
    """lambda* per direction: ``lam`` is the largest scale known to certify (margin > 0) and
    ``upper`` the smallest known not to; ``found`` is False where no crossing was seen up to
    ``lam_max`` (then lam = lam_max and upper = inf): the caller decides what that means.
    ``pruned`` directions were dropped once certified beyond another direction's ``upper`` in
    their group: their lambda* exceeds the group minimum, and ``lam`` is only a lower bound."""
    lam: np.ndarray
    upper: np.ndarray
    found: np.ndarray
    evaluations: int
    pruned: np.ndarray


def scale_search(margin_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], num: int,
                 lam_init: np.ndarray, rtol: float, lam_max: float, lam_min: float,
                 growth: float = 2.0, groups: Optional[np.ndarray] = None) -> ScaleResult:
    """Batched bracketing + bisection of lambda*(u) for ``num`` directions at once.

    ``margin_fn(rows, lams)`` returns the margins of directions ``rows`` scaled by ``lams``
    (one batched kernel call). Bracketing grows (or shrinks) lambda geometrically from
    ``lam_init`` until the sign changes; bisection then stops when upper - lower <= rtol * lower,
    a tolerance on lambda, not on the margin (docs/theory.md §4).

    ``groups`` (one label per direction) asks only for each group's minimum lambda*: a direction
    certified at a scale another direction of its group already fails at cannot be the minimum,
    so it is dropped (``pruned``). All lambdas are radii in the same l_p norm, hence comparable."""
    lam_max = np.broadcast_to(np.asarray(lam_max, dtype=np.float64), (num,))
    lam_min = np.broadcast_to(np.asarray(lam_min, dtype=np.float64), (num,))
    lo = np.zeros(num)            # certified (margin > 0); 0 is certified since m(0) = p_a - p_b > 0
    hi = np.full(num, np.inf)     # not certified
    lam = np.clip(np.asarray(lam_init, dtype=np.float64), lam_min, lam_max)
    pruned = np.zeros(num, dtype=bool)
    evals = 0

    def prune(active):
        if groups is None or not active.size:
            return active
        for g in np.unique(groups[active]):
            members = groups == g
            bound = hi[members].min()
            pruned[members & (lo >= bound)] = True
        return active[~pruned[active]]

    # Bracketing.
    active = np.arange(num)
    while active.size:
        m = margin_fn(active, lam[active])
        evals += active.size
        ok = m > 0
        lo[active[ok]] = lam[active[ok]]
        hi[active[~ok]] = lam[active[~ok]]
        still = []
        for idx, good in zip(active, ok):
            if good and math.isinf(hi[idx]):
                if lam[idx] >= lam_max[idx]:
                    continue  # no crossing up to the cap
                lam[idx] = min(lam_max[idx], lam[idx] * growth)
                still.append(idx)
            elif not good and lo[idx] == 0:
                if lam[idx] <= lam_min[idx]:
                    continue  # not certified even at the smallest scale: lambda* ~ 0
                lam[idx] = max(lam_min[idx], lam[idx] / growth)
                still.append(idx)
        active = prune(np.array(still, dtype=np.int64))
    # Bisection on [lo, hi] where both ends are known.
    bisect = np.isfinite(hi) & (lo > 0)
    while True:
        active = prune(np.nonzero(bisect & ~pruned & (hi - lo > rtol * lo))[0])
        if not active.size:
            break
        mid = 0.5 * (lo[active] + hi[active])
        m = margin_fn(active, mid)
        evals += active.size
        ok = m > 0
        lo[active[ok]] = mid[ok]
        hi[active[~ok]] = mid[~ok]
    found = np.isfinite(hi)
    lam_out = np.where(found | pruned, lo, lam_max)
    return ScaleResult(lam=lam_out, upper=hi, found=found & ~pruned, evaluations=evals,
                       pruned=pruned)


# --------------------------------------------------------------------------------------------
# Particle swarm over block levels


@dataclass
class SwarmConfig:
    """Particle swarm settings. Defaults favour few, well-placed particles: the k-sparse
    candidates are always evaluated first, so the swarm only refines around them."""
    particles: int = 8
    iterations: int = 4
    inertia: float = 0.6
    cognitive: float = 1.4
    social: float = 1.4
    coarse_rtol: float = 1e-2     # lambda tolerance while ranking directions


@dataclass
class DirectionSearchResult:
    levels: np.ndarray            # block levels of the best direction
    lam: float                    # its lambda* at coarse tolerance
    found: bool
    evaluations: int
    history: List[float] = field(default_factory=list)  # best lambda* after each round
    candidate_lam: Optional[np.ndarray] = None  # coarse lambda of each k-sparse candidate
                                                 # (a lower bound where it was pruned)


def direction_search(lam_fn: Callable[[np.ndarray, Optional[np.ndarray]], ScaleResult], dim: int,
                     config: SwarmConfig, rng: np.random.Generator) -> DirectionSearchResult:
    """Minimise lambda*(u) over block-profile directions.

    ``lam_fn(levels, lam_guess)`` runs the coarse scale search for a batch of level vectors.
    Round 0 evaluates the k-sparse candidates (axis ... diagonal); the swarm then starts from the
    best of them plus random profiles, all particles of an iteration in one batched call."""
    cand = sparse_levels(dim)
    B = cand.shape[1]
    res = lam_fn(cand, None)
    evals = res.evaluations
    score = np.where(res.found, res.lam, np.inf)   # pruned candidates are not the minimum
    order = np.argsort(score, kind="stable")
    best_i = order[0]
    best_levels, best_lam, best_found = cand[best_i].copy(), float(res.lam[best_i]), bool(res.found[best_i])
    history = [best_lam]
    if config.particles <= 0 or config.iterations <= 0 or B == 1:
        return DirectionSearchResult(best_levels, best_lam, best_found, evals, history, res.lam)

    # Initial swarm: the best candidates, then random profiles (sorted so mass sits in front).
    n_seed = min(config.particles, max(1, config.particles // 2), len(order))
    pos = np.vstack([cand[order[:n_seed]],
                     rng.uniform(0, 1, size=(config.particles - n_seed, B))])
    lam_guess = np.concatenate([res.lam[order[:n_seed]],
                                np.full(config.particles - n_seed, best_lam)])
    vel = rng.normal(0, 0.1, size=pos.shape)
    pbest_pos, pbest_val = pos.copy(), np.full(len(pos), np.inf)
    pbest_val[:n_seed] = score[order[:n_seed]]
    gbest_pos, gbest_val = best_levels.copy(), best_lam if best_found else np.inf

    for it in range(config.iterations):
        if it > 0 or n_seed < len(pos):
            start = 0 if it > 0 else n_seed
            r = lam_fn(pos[start:], lam_guess[start:])
            evals += r.evaluations
            val = np.where(r.found, r.lam, np.inf)
            lam_guess[start:] = r.lam
            better = val < pbest_val[start:]
            idx = np.arange(start, len(pos))[better]
            pbest_pos[idx], pbest_val[idx] = pos[idx], val[better]
            j = int(np.argmin(pbest_val))
            if pbest_val[j] < gbest_val:
                gbest_pos, gbest_val = pbest_pos[j].copy(), float(pbest_val[j])
        r1, r2 = rng.uniform(size=pos.shape), rng.uniform(size=pos.shape)
        vel = (config.inertia * vel + config.cognitive * r1 * (pbest_pos - pos)
               + config.social * r2 * (gbest_pos - pos))
        pos = np.clip(pos + vel, 0.0, 1.0)
        dead = pos.max(axis=1) <= 1e-6       # all-zero profile is not a direction: re-seed it
        pos[dead] = rng.uniform(0, 1, size=(int(dead.sum()), B))
        history.append(float(gbest_val))

    if math.isfinite(gbest_val):
        return DirectionSearchResult(gbest_pos, float(gbest_val), True, evals, history, res.lam)
    return DirectionSearchResult(best_levels, best_lam, best_found, evals, history, res.lam)
