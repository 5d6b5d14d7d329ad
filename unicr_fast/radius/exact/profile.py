"""Exact laws along block profiles, and the direction search over them (docs/theory.md §9.2, §9.4).

A block profile (unicr_fast.radius.mc.search) is a direction with several magnitudes: ``counts[b]``
coordinates shifted by ``lambda * mags[b]`` (``||u||_p = 1``). L is then a sum of independent
blocks, each a sum of ``counts[b]`` i.i.d. terms ``l_{c_b}``, so its law is the product of the
blocks' characteristic functions (``exact._fourier_law_parts``) or, where that cannot reach its
tolerance (atoms of the sum off one lattice, slow decay), the convolution of the blocks'
lattice discretisations on one lattice ``h Z`` (``exact._lattice_law_parts``: atoms off the
lattice are split keeping mass and tilted mass, so the tilt identity still holds), with
Richardson's extrapolation over h and h/2 as for one block. Ties, atoms, the mass at -inf and
the margin are those of the k-sparse engine (the mirror x -> c_b - x acts per coordinate).

Search. The k-sparse family is searched first (``exact.exact_radius``); then, except where a
k-sparse direction is known to be the worst (``sparse_is_worst``), a particle swarm over block
levels looks for a profile whose margin at that radius is negative, i.e. whose lambda* is
smaller. Its objective is that margin (one law per particle, no root finding: Fourier, else a
coarse lattice whose error estimate is added); a profile that wins is checked on an accurate
law and then solved to ``rtol``. The swarm runs once per (noise, norm, dim, band of
p_a, binary/multiclass) -- bands as in the Monte-Carlo engine, one per decade of 1 - p_a -- and
is memoised: a band where no profile beats the k-sparse directions costs nothing afterwards,
and one where a profile won adds one root finding along it per radius.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
from scipy import special

from .. import exact as ex
from ..mc.search import block_edges, lp_norm

__all__ = ["Profile", "profile_margin", "profile_lambda", "best_profile", "search_radius"]

#: Target relative variance error of the lattice for a profile (as exact._LATTICE_TOL).
_LATTICE_TOL = ex._LATTICE_TOL
#: Swarm settings: particles x iterations margin evaluations per band.
_PARTICLES, _ITERATIONS = 6, 3
#: Lattice points at most in a swarm objective's coarse lattice.
_SWARM_LATTICE = 1 << 15
#: A profile replaces the k-sparse minimum only if its lambda* is smaller by this (relative).
_WIN = 1e-6


@dataclass(frozen=True)
class Profile:
    """``counts[b]`` coordinates at magnitude ``mags[b]`` (descending, > 0), ``||u||_p = 1``."""
    counts: Tuple[int, ...]
    mags: Tuple[float, ...]

    @classmethod
    def from_levels(cls, levels, dim: int, p: float) -> "Profile":
        """The profile of block levels (search.block_edges blocks), equal levels merged."""
        sizes = np.diff(block_edges(dim))
        levels = np.abs(np.asarray(levels, dtype=np.float64))
        if levels.shape != sizes.shape or not np.all(np.isfinite(levels)) or levels.max() <= 0:
            raise ValueError(f"levels must be {len(sizes)} finite values, not all zero")
        merged: Dict[float, int] = {}
        for v, s in zip(levels, sizes):
            if v > 0:
                merged[float(v)] = merged.get(float(v), 0) + int(s)
        mags = np.array(sorted(merged, reverse=True))
        counts = np.array([merged[m] for m in mags])
        norm = float(mags[0]) if math.isinf(p) else float(lp_norm(
            np.repeat(mags, counts)[None, :], p)[0])
        return cls(tuple(int(c) for c in counts), tuple(float(m / norm) for m in mags))

    @classmethod
    def from_direction(cls, u, p: float) -> "Profile":
        """The profile of a dense direction (any signs and order; scaled to ||u||_p = 1)."""
        u = np.abs(np.asarray(u, dtype=np.float64)).ravel()
        vals, counts = np.unique(u[u > 0], return_counts=True)
        if not len(vals):
            raise ValueError("a direction must have a non-zero coordinate")
        vals, counts = vals[::-1], counts[::-1]
        norm = float(vals[0]) if math.isinf(p) else float(lp_norm(
            np.repeat(vals, counts)[None, :], p)[0])
        return cls(tuple(int(c) for c in counts), tuple(float(v / norm) for v in vals))

    @property
    def sparse_k(self) -> Optional[int]:
        """k if this is the k-sparse equal-magnitude direction, else None."""
        return self.counts[0] if len(self.counts) == 1 else None

    def dense(self, dim: int) -> np.ndarray:
        return np.concatenate([np.repeat(self.mags, self.counts),
                               np.zeros(dim - sum(self.counts))])


class ProfileDirection:
    """Laws and the total-variation bound along one profile, as functions of lambda."""

    def __init__(self, noise, profile: Profile, p: float):
        self.noise, self.profile, self.p = noise, profile, p
        self.fam = ex._family(noise)
        self.tv1 = ex._tv_of(noise, self.fam, 1, math.inf)     # lambda -> TV of one coordinate
        self.engines = set()

    def parts(self, lam: float):
        return [(ex._Term(self.noise, lam * m, self.fam), k)
                for k, m in zip(self.profile.counts, self.profile.mags)]

    def tv(self, lam: float) -> float:
        """1 - prod_b (1 - TV_1(c_b))^k_b (the product coupling); 1.0 without a TV_1."""
        if self.tv1 is None:
            return 1.0
        log_keep = 0.0
        for k, m in zip(self.profile.counts, self.profile.mags):
            t = self.tv1(lam * m)
            if t >= 1:
                return 1.0
            log_keep += k * math.log1p(-t)
        return -math.expm1(log_keep)

    def laws(self, lam: float):
        """[(weight, law)] at scale lambda (exact._laws_at's convention)."""
        k = self.profile.sparse_k
        if k is not None:
            c = lam * self.profile.mags[0]
            plan = ex._plan(self.noise, self.fam, k, c, "auto", _LATTICE_TOL)
            self.engines.add(plan.engine)
            return ex._laws_at(self.noise, self.fam, k, c, plan)
        parts = self.parts(lam)
        if not any(t.has_cont for t, _ in parts):
            # uniform: every finite term is the atom 0, so the finite sum is one atom too
            log_finite = sum(k * math.log1p(-t.p_ninf) if t.p_ninf < 1 else -math.inf
                             for t, k in parts)
            self.engines.add("atoms")
            return [(1.0, ex._AtomLaw(np.array([sum(k * t.atoms_v[0] for t, k in parts)]),
                                      np.array([math.exp(log_finite)]),
                                      -math.expm1(log_finite)))]
        try:
            law = ex._fourier_law_parts(parts)
            self.engines.add("fourier")
            return [(1.0, law)]
        except ex._Infeasible:
            pass
        h = _lattice_h(parts)
        self.engines.add("lattice")
        return [(-1.0 / 3.0, ex._lattice_law_parts(parts, h)),
                (4.0 / 3.0, ex._lattice_law_parts(parts, h / 2))]


def _lattice_h(parts, tol: float = _LATTICE_TOL, length: int = ex._LATTICE_MAX) -> float:
    """h for the profile's lattice: the discretisation adds ~ w_C h^2 / 6 of variance per term
    (exact.py, "lattice"), so h^2 = 6 tol Var(L) / sum_b k_b w_C,b, within the FFT budgets
    (at most ``length`` lattice points over the window)."""
    var = sum(k * t.moments()[1] ** 2 for t, k in parts)
    wc = sum(k * t.moments()[5] for t, k in parts)
    h = math.sqrt(6 * tol * var / max(wc, 1e-300))
    ext = max(max(abs(t.moments()[3]), abs(t.moments()[4])) for t, _ in parts)
    lo, hi = ex._window_parts(parts)
    h = max(h, ext / ex._LATTICE_MAX_CELLS, (hi - lo) / (0.45 * length))
    # the atoms of one block can sit on the lattice (those of the others are split, an O(h)
    # error): the block whose atoms weigh most in the sum, (atom mass)^k largest
    heavy = [(k * math.log(t.atoms_m.sum() / t.q1), float(np.max(np.abs(t.atoms_v))))
             for t, k in parts if len(t.atoms_v) and t.q1 > 0 and t.atoms_m.sum() > 0]
    if heavy:
        a = max(heavy)[1]
        if a > 0:
            h = a / max(1, math.ceil(a / h))
    return h


def _margin(direction: ProfileDirection, lam: float, p_a: float, p_b: Optional[float]) -> float:
    if lam <= 0:
        return p_a - (0.5 if p_b is None else p_b)
    laws = direction.laws(lam)
    ms = [ex._margin_of_law(law, p_a, p_b) for _, law in laws]
    return ms[0] if len(ms) == 1 else (4 * ms[1] - ms[0]) / 3


def profile_margin(noise, profile: Profile, lam: float, p: float, p_a: float,
                   p_b: Optional[float] = None) -> float:
    """Margin of docs/theory.md §3 at the shift lambda * profile, from the exact law of L."""
    ex._check_noise(noise)
    p_a, p_b = ex._check_probs(p_a, p_b)
    return _margin(ProfileDirection(noise, profile, ex.check_norm(p)), float(lam), p_a, p_b)


def profile_lambda(noise, profile: Profile, p: float, p_a: float, p_b: Optional[float] = None,
                   rtol: float = 1e-9, guess: Optional[float] = None) -> float:
    """lambda* along a profile: the first crossing of the margin from a CLT guess (or
    ``guess``), never below the total-variation bound (as ``exact.exact_lambda``)."""
    ex._check_noise(noise)
    p_a, p_b = ex._check_probs(p_a, p_b)
    if not ex._certifiable(p_a, p_b):
        return 0.0
    direction = ProfileDirection(noise, profile, ex.check_norm(p))
    fam = direction.fam
    if (p_a >= 1 or p_b == 0) and fam.kind != "uniform" and not math.isfinite(fam.half_width):
        return math.inf
    cap = ex._lam_cap(noise, fam, p_a, p_b, profile.mags[0])
    # CLT: Var L ~ lambda^2 I sum_b k_b m_b^2 (Fisher information I of one coordinate)
    qa = float(special.ndtri(min(p_a, 1 - 1e-16)))
    s = qa if p_b is None else 0.5 * (qa - float(special.ndtri(max(p_b, 1e-300))))
    c0 = 1e-2 * fam.scale
    sd = ex._Term(noise, c0, fam).moments()[1]
    fisher = (sd / c0) ** 2 if sd > 0 else 1.0 / fam.scale ** 2
    spread = math.sqrt(fisher * sum(k * m * m for k, m in zip(profile.counts, profile.mags)))
    clt = min(max(s, 1e-300), 40.0) / spread
    gap = (lambda lam: p_a - 0.5 - direction.tv(lam)) if p_b is None else \
        (lambda lam: p_a - p_b - 2 * direction.tv(lam))
    lam_tv = 0.0 if direction.tv1 is None else ex._tv_root(gap, clt, rtol)
    floor = max(1e-6 * clt, lam_tv)
    g0 = min(max(guess if guess is not None else clt, 1.01 * floor), cap)
    cache: Dict[float, float] = {}

    def m(lam):
        if lam not in cache:
            cache[lam] = _margin(direction, lam, p_a, p_b)
        return cache[lam]

    lam, found = ex._root(m, g0, rtol, cap, floor)
    return lam_tv if found and lam == 0.0 else float(lam)


# -- search ------------------------------------------------------------------------------------

_MEMO: Dict[tuple, Optional[Profile]] = {}


def _memo_key(noise, p, dim, p_a, p_b):
    """Noise objects compare by family and parameters; bands as radius._band."""
    band = int(np.clip(np.rint(-math.log10(max(1.0 - p_a, 1e-12))), 0, 12))
    return (noise, p, dim, band, p_b is None)


def sparse_is_worst(noise, p: float, dim: int) -> bool:
    """Where a k-sparse direction is known to be the worst (``exact.known_worst_k``): the swarm
    is skipped there."""
    return ex.known_worst_k(noise, p, dim) is not None


def best_profile(noise, p: float, dim: int, p_a: float, p_b: Optional[float], lam_best: float,
                 k_best: int, seed: int = 0) -> Optional[Profile]:
    """The swarm of the module doc at (p_a, p_b), against the k-sparse minimum ``lam_best``
    (attained at ``k_best``): a profile whose margin at lam_best is negative beyond the tie
    tolerance, or None. Memoised per (noise, norm, dim, band of p_a, binary/multiclass)."""
    key = _memo_key(noise, p, dim, p_a, p_b)
    if key in _MEMO:
        return _MEMO[key]
    B = len(block_edges(dim)) - 1
    found = None
    if B > 1 and 0 < lam_best < math.inf and not sparse_is_worst(noise, p, dim):
        found = _swarm(noise, p, dim, p_a, p_b, lam_best, k_best, B,
                       np.random.default_rng(seed))
    _MEMO[key] = found
    return found


def _swarm(noise, p, dim, p_a, p_b, lam_best, k_best, B, rng) -> Optional[Profile]:
    sizes = np.diff(block_edges(dim))
    ends = np.cumsum(sizes)

    def objective(levels) -> float:
        """The margin at lam_best: Fourier, else one coarse lattice (ranking only; a profile
        that wins is solved accurately afterwards)."""
        try:
            prof = Profile.from_levels(levels, dim, p)
        except ValueError:
            return math.inf
        d = ProfileDirection(noise, prof, p)
        if prof.sparse_k is not None:
            return _margin(d, lam_best, p_a, p_b)
        parts = d.parts(lam_best)
        if not any(t.has_cont for t, _ in parts):
            return _margin(d, lam_best, p_a, p_b)
        try:
            return ex._margin_of_law(ex._fourier_law_parts(parts), p_a, p_b)
        except ex._Infeasible:
            # coarse h and h/2, Richardson-combined, plus 4 times their difference: a
            # pessimistic margin, so that the coarse lattice's error cannot make a false winner
            h = _lattice_h(parts, ex._LATTICE_TOL_COARSE, _SWARM_LATTICE)
            m1, m2 = (ex._margin_of_law(ex._lattice_law_parts(parts, x), p_a, p_b)
                      for x in (h, h / 2))
            return (4 * m2 - m1) / 3 + 4 * abs(m2 - m1)

    # seeds: the k-sparse optimum (as block levels, its last block partly filled) and
    # two-level neighbours of it, then random profiles with mass in front
    start = np.zeros(B)
    full = int(np.searchsorted(ends, k_best, side="right"))
    start[:full] = 1.0
    if full < B:
        start[full] = (k_best - (ends[full - 1] if full else 0)) / sizes[full]
    seeds = [start]
    for t in (0.3, 0.6):
        s = start.copy()
        s[min(full + 1, B - 1):] = t
        seeds.append(s)
    n_rand = max(0, _PARTICLES - len(seeds))
    rand = -np.sort(-rng.uniform(0, 1, size=(n_rand, B)), axis=1)
    pos = np.vstack([np.array(seeds), rand])
    vel = rng.normal(0, 0.1, size=pos.shape)
    val = np.array([objective(x) for x in pos])
    pbest, pval = pos.copy(), val.copy()
    g = int(np.argmin(pval))
    for _ in range(_ITERATIONS - 1):
        r1, r2 = rng.uniform(size=pos.shape), rng.uniform(size=pos.shape)
        vel = 0.6 * vel + 1.4 * r1 * (pbest - pos) + 1.4 * r2 * (pbest[g] - pos)
        pos = np.clip(pos + vel, 0.0, 1.0)
        dead = pos.max(axis=1) <= 1e-6
        pos[dead] = rng.uniform(0, 1, size=(int(dead.sum()), B))
        val = np.array([objective(x) for x in pos])
        better = val < pval
        pbest[better], pval[better] = pos[better], val[better]
        g = int(np.argmin(pval))
    # a win must beat the tie tolerance: the margin change of a relative step _WIN in lambda
    # (slope estimated at the start level, where the margin is ~0)
    m0 = objective(start)
    step = objective(start) - _margin(ProfileDirection(noise, Profile.from_levels(start, dim, p),
                                                       p), lam_best * (1 + _WIN), p_a, p_b)
    if not pval[g] < min(m0, 0.0) - abs(step):
        return None
    # the objective may be a coarse lattice: the winner's margin again, accurately
    found = Profile.from_levels(pbest[g], dim, p)
    if not _margin(ProfileDirection(noise, found, p), lam_best, p_a, p_b) < -abs(step):
        return None
    return found


def search_radius(noise, p_a: float, p_b: Optional[float], p: float, dim: int,
                  rtol: float = 1e-9, ks=None) -> "ex.ExactRadius":
    """The exact engine's radius (module doc): ``exact.exact_radius`` over the k-sparse
    directions, then the memoised swarm over block profiles; the details name the profile
    (``.profile``) where one wins."""
    import time
    t0 = time.perf_counter()
    out = ex.exact_radius(noise, p_a, p_b, p, dim, ks=ks, return_details=True, rtol=rtol)
    if not 0 < out.radius < math.inf:
        return out
    prof = best_profile(noise, p, dim, out.p_a, out.p_b, out.radius, out.k)
    if prof is not None:
        lam = profile_lambda(noise, prof, p, out.p_a, out.p_b, rtol, guess=out.radius)
        if lam < out.radius * (1 - _WIN):
            direction = ProfileDirection(noise, prof, p)   # engines, for the report
            direction.laws(lam)
            out.radius, out.profile = lam, prof
            out.engines = dict(out.engines, profile="+".join(sorted(direction.engines)))
    out.seconds = time.perf_counter() - t0
    return out
