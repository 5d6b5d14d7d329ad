"""Whole radius curves in one pass: lambda*(p_a) for an array of p_a (and p_b) from one sweep
over lambda per direction (docs/theory.md §9.3).

Along a fixed direction u_k and scale lambda the law of L is fixed, and the margin is zero at
one p_a: the X-mass of the least Y-likely set whose Y-mass is beta (beta = 1/2 binary, the
runner-up's P_Y(S_B(p_b)) multiclass), the inverse of the Neyman-Pearson ROC at beta:

    p_a*(lambda) = P_X(S) with S = {L < t} + a tie share, P_Y(S) = beta.

Certified iff p_a > p_a*(lambda), so ``lambda*(p_a) = inf{lambda : p_a*(lambda) >= p_a}``: the
first crossing, the same quantity the root search of ``exact_lambda`` finds. One law per lambda
answers every p_a (and, multiclass, one law answers every p_b column). The sweep evaluates
``z(lambda) = Phi^-1(p_a*) [- Phi^-1(p_b)]`` on a geometric lambda grid and inverts it by
cubic interpolation of log(lambda) in log(z) (exact for Gaussian noise, where z is linear in
lambda; near-linear in the CLT regime), with two stencils per interval: where they differ by
more than the tolerance, the interval is halved and evaluated, until they agree or the interval
is ``rtol`` narrow. Non-monotone p_a* is handled by the running maximum (the first crossing).

Directions. The k of the minimum is found by ``exact_radius`` at reference points (a few p_a
per column at a few p_b columns; between two references whose best k differ, their midpoint,
recursively down to adjacent targets, searching the k between theirs). Every target is swept along the best
k of the references next to it (both, between two that differ), and takes the smaller lambda*.
Where the references agree their k is taken as the best in between -- the same approximation
as a search per point, which also minimises over the k-sparse family only.
Targets the sweep does not bracket (beyond the cap, p_a = 1, p_b = 0) go to ``exact_radius``.
"""
from __future__ import annotations

import math
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy import special

from .. import exact as ex
from .profile import Profile, ProfileDirection, search_radius
from ...noise import Noise

__all__ = ["exact_radius_curve"]

#: Initial spacing of the lambda grid in log(lambda).
_STEP = 0.1
#: Reference p_a per reference column, and reference columns (multiclass).
_REFS_PER_COLUMN = 3
_REF_COLUMNS = 3
#: Halvings of one grid interval at most (2^-40 of the initial step: far below any rtol).
_MAX_DEPTH = 40
#: Relative accuracy of lambda where the lattice engine computes the law (exact.py).
_LATTICE_RTOL = 1e-7
#: Memory for the laws kept per sweep (the columns of a multiclass sweep ask for the same
#: lambdas in turn); a lattice law holds up to 3 x 2^21 float64.
_LAW_CACHE_BYTES = 256 << 20


def _law_bytes(law) -> int:
    """Rough size of a law object: its arrays, or 64 KiB for the ones that hold a term."""
    arrays = [getattr(law, a, None) for a in ("m", "v", "cum", "coef")]
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray)) or 65536


def _pa_star(law: "ex._Law", beta: float) -> float:
    """The X-mass of the least Y-likely set S_A with P_Y(S_A) = beta: the p_a at which the margin
    (P_Y(S_A) - beta) is zero along this law. 1.0 where even S_A = supp X has Y-mass <= beta."""
    if beta >= 1.0 - law.p_ninf:
        return 1.0
    if beta <= 0.0:
        return law.p_ninf                      # the X-mass at -inf has no Y-mass
    s = law.quantile(1.0 - beta)               # P_X(L < s) <= 1 - beta <= P_X(L <= s)
    t = -s                                     # P_Y(L < t) = P_X(L > s) <= beta
    py_below = 1.0 - law.cdf(s)
    y_tie = law.atom(s)                        # P_Y(L = t) = P_X(L = -t) = P_X(L = s)
    if y_tie > 0:
        frac = min(max((beta - py_below) / y_tie, 0.0), 1.0)
        return law.cdf(t, strict=True) + frac * law.atom(t)
    return law.cdf(t)


class _SparseDirection:
    """Laws along u_k as functions of lambda (the k-sparse engines of exact.py)."""

    def __init__(self, noise: Noise, fam, k: int, p: float):
        self.noise, self.fam, self.k, self.p = noise, fam, k, p
        self.tv_of = ex._tv_of(noise, fam, k, p)
        self.plan = None
        self.engines = set()

    def tv(self, lam: float) -> float:
        return self.tv_of(lam) if self.tv_of is not None else 1.0

    def laws(self, lam: float):
        c = ex._shift(lam, self.k, self.p)
        if self.plan is None:
            self.plan = ex._plan(self.noise, self.fam, self.k, c, "auto", ex._LATTICE_TOL)
        plan = self.plan
        if plan.engine == "lattice":
            # Fourier first at every shift (it is feasible over most of a sweep), and where the
            # lattice is needed h / c is chosen per shift: one h / c for a whole sweep is too
            # coarse where the continuous part of l_c carries more of its variance (Laplace)
            plan = ex._Plan("fourier")
        try:
            laws = ex._laws_at(self.noise, self.fam, self.k, c, plan)
        except ex._Infeasible:      # Fourier cannot reach its tolerance at this shift
            plan = ex._lattice_plan(ex._Term(self.noise, c, self.fam), self.k, ex._LATTICE_TOL)
            laws = ex._laws_at(self.noise, self.fam, self.k, c, plan)
        self.engines.add(plan.engine)
        return laws


class _Sweep:
    """z(lambda) along one direction (a k-sparse one, or an exact_profile.ProfileDirection) per
    column (p_b; None = binary), each on its own growing lambda grid; the laws are shared
    between columns through a small cache."""

    def __init__(self, direction, columns: Sequence[Optional[float]]):
        self.direction = direction
        self.columns = list(columns)
        self.points: Dict[int, Dict[float, float]] = {}   # column -> log(lambda) -> z
        self._cache: Dict[float, list] = {}               # log(lambda) -> laws (LRU)
        self._bytes: Dict[float, int] = {}                # log(lambda) -> their size

    @property
    def engines(self):
        return self.direction.engines

    @property
    def tol(self) -> float:
        """The interpolation tolerance in log(lambda): the lattice engine resolves lambda to
        ~1e-7 (exact.py, "lattice"), and its h / c changes with the shift, so its z carries
        noise at that level; the other engines are at the rounding level."""
        return _LATTICE_RTOL if "lattice" in self.engines else 0.0

    def add(self, u: float, col: int) -> None:
        """Evaluate z at lambda = e^u for column ``col`` (the law is kept for the others)."""
        pts = self.points.setdefault(col, {})
        if u in pts:
            return
        lam = math.exp(u)
        laws = self._cache.pop(u, None)
        self._bytes.pop(u, None)
        if laws is None:
            laws = self.direction.laws(lam)
        self._cache[u] = laws                     # most recently used last
        self._bytes[u] = sum(_law_bytes(law) for _, law in laws)
        while sum(self._bytes.values()) > _LAW_CACHE_BYTES and len(self._cache) > 1:
            oldest = next(iter(self._cache))
            self._cache.pop(oldest)
            self._bytes.pop(oldest)
        p_b = self.columns[col]
        star = sum(w * _pa_star(law, 0.5 if p_b is None else ex._py_sb(law, p_b))
                   for w, law in laws)
        # total variation: certified once p_a - 1/2 > TV (p_a - p_b > 2 TV), so p_a* is at most
        # that, whatever an engine resolves at tiny shifts
        tv = self.direction.tv(lam)
        pts[u] = _z(min(star, 0.5 + tv if p_b is None else p_b + 2 * tv), p_b)

    def grid(self, col: int):
        pts = self.points.get(col, {})
        u = np.array(sorted(pts))
        return u, np.array([pts[x] for x in u])

    @property
    def evaluations(self) -> int:
        return sum(len(v) for v in self.points.values())


def _z(p_a: float, p_b: Optional[float]) -> float:
    """Phi^-1(p_a) - Phi^-1(p_b) (binary: p_b = 1/2): linear in lambda for Gaussian noise."""
    if p_a >= 1.0:
        return math.inf
    zb = 0.0 if p_b is None else float(special.ndtri(p_b))
    return float(special.ndtri(p_a)) - zb


def _lagrange(x: np.ndarray, y: np.ndarray, x0: float) -> float:
    out = 0.0
    for i in range(len(x)):
        w = 1.0
        for j in range(len(x)):
            if j != i:
                w *= (x0 - x[j]) / (x[i] - x[j])
        out += w * y[i]
    return out


def _invert(u: np.ndarray, z: np.ndarray, zmax: np.ndarray, zt: float, rtol: float):
    """log(lambda*) for the target z, from the grid (u, z) of one column (``zmax``: the running
    maximum of z): (value, None) when settled, (None, u_new) when the grid needs the point
    u_new, (None, None) when the target lies beyond the grid's top."""
    j = int(np.searchsorted(zmax, zt, side="left"))
    if j >= len(u):
        return None, None
    if j == 0:
        return None, u[0] - 8 * _STEP            # below the grid: extend it down
    lo, hi = u[j - 1], u[j]
    if hi - lo <= rtol:
        # rtol narrow: linear in z (z[j] >= zt > z[j-1] where z[j-1] is finite)
        if np.isfinite(z[j]) and z[j] > z[j - 1]:
            return lo + (hi - lo) * (zt - z[j - 1]) / (z[j] - z[j - 1]), None
        return hi, None
    guesses = []
    for s in ((j - 2, j - 1, j, j + 1), (j - 1, j, j + 1, j + 2)):
        if s[0] < 0 or s[-1] >= len(u):
            continue
        zs = z[list(s)]
        if not (np.all(np.isfinite(zs)) and np.all(zs > 0) and np.all(np.diff(zs) > 0)):
            continue
        if zt <= 0:
            continue
        guesses.append(_lagrange(np.log(zs), u[list(s)], math.log(zt)))
    if len(guesses) == 2 and abs(guesses[0] - guesses[1]) <= 0.25 * rtol:
        g = 0.5 * (guesses[0] + guesses[1])
        if lo <= g <= hi:
            return g, None
    return None, 0.5 * (lo + hi)


def _sweep_column(sweep: _Sweep, col: int, targets_z: np.ndarray, u_cap: float, rtol: float):
    """log(lambda*) per target (nan: not bracketed below the cap); grows the sweep's grid."""
    out = np.full(len(targets_z), np.nan)
    todo = np.arange(len(targets_z))
    # cover the targets first: down until below the smallest, up until past the largest (or
    # the cap), one point per step
    lo_t, hi_t = float(np.min(targets_z)), float(np.max(targets_z))
    for _ in range(400):
        u, zc = sweep.grid(col)
        if zc[0] < lo_t:
            break
        sweep.add(float(u[0] - _STEP), col)
    while True:
        u, zc = sweep.grid(col)
        if np.max(zc) >= hi_t or u[-1] >= u_cap:
            break
        sweep.add(float(min(u[-1] + _STEP, u_cap)), col)
    for _ in range(4 * _MAX_DEPTH + 200):
        u, zc = sweep.grid(col)
        zmax = np.maximum.accumulate(zc)
        tol = max(rtol, sweep.tol)
        need, left = set(), []
        for i in todo:
            val, u_new = _invert(u, zc, zmax, targets_z[i], tol)
            if val is not None:
                out[i] = val
            elif u_new is None:                 # above the grid: extend it up to the cap
                if u[-1] < u_cap:
                    need.add(min(u[-1] + _STEP, u_cap))
                    left.append(i)
            else:
                need.add(u_new)
                left.append(i)
        if not need:
            break
        for x in sorted(need):
            sweep.add(float(x), col)
        todo = np.array(left, dtype=np.int64)
    return out


def _band(p_a: float) -> int:
    return int(np.clip(np.rint(-math.log10(max(1.0 - p_a, 1e-12))), 0, 12))


def _references(noise, p, dim, columns, targets, rtol) -> Dict[tuple, "ex.ExactRadius"]:
    """``exact_profile.search_radius`` at reference points (module doc), keyed by (column,
    target index): the ends, the middle and one per band of p_a of a few columns, and between
    two whose directions differ, bisection down to adjacent targets."""
    refs: Dict[tuple, "ex.ExactRadius"] = {}
    grid = ex.k_grid(dim)

    def solve(j, i, between=None):
        if (j, i) not in refs:
            ks = None
            if between is not None and all(isinstance(x, int) for x in between):
                lo, hi = min(between), max(between)     # the k between theirs
                ks = sorted({k for k in grid if lo <= k <= hi} | set(between)
                            | set(range(lo, min(hi, lo + 8) + 1)))
            refs[(j, i)] = search_radius(noise, float(targets[j][i]), columns[j], p, dim,
                                         rtol=rtol, ks=ks)
        return refs[(j, i)]

    ref_cols = sorted({int(round(x)) for x in np.linspace(0, len(columns) - 1,
                                                          min(_REF_COLUMNS, len(columns)))})
    for j in ref_cols:
        n = len(targets[j])
        idx = {int(round(x)) for x in np.linspace(0, n - 1, min(_REFS_PER_COLUMN, n))}
        bands = np.array([_band(a) for a in targets[j]])
        for b in np.unique(bands):                 # one per band: its profile search
            members = np.nonzero(bands == b)[0]
            idx.add(int(members[len(members) // 2]))
        idx = sorted(idx)
        for i in idx:
            solve(j, i)
        stack = list(zip(idx[:-1], idx[1:]))
        while stack:
            a, b = stack.pop()
            ka, kb = solve(j, a).key, solve(j, b).key
            if b - a > 1 and ka != kb:
                # down to adjacent targets: a third k can win in a narrow band at the switch
                m = (a + b) // 2
                solve(j, m, (ka, kb))
                stack += [(a, m), (m, b)]
    return refs


def _assign(columns, targets, refs) -> Dict[object, Dict[int, List[int]]]:
    """direction (k or Profile) -> column -> target indices to sweep along it: a target takes
    the directions of the references next to it in p_a (below and above) in every reference
    column."""
    by_col: Dict[int, list] = {}
    for (j, i), r in refs.items():
        if 0 < r.radius < math.inf:
            by_col.setdefault(j, []).append((float(targets[j][i]), r.key))
    for v in by_col.values():
        v.sort(key=lambda x: x[0])
    out: Dict[object, Dict[int, List[int]]] = {}
    for j in range(len(columns)):
        for i, a in enumerate(targets[j]):
            keys = set()
            for v in by_col.values():
                pas = [x for x, _ in v]
                lo = int(np.searchsorted(pas, a, side="right")) - 1
                hi = int(np.searchsorted(pas, a, side="left"))
                keys.update(v[x][1] for x in (lo, hi) if 0 <= x < len(v))
            for key in keys:
                out.setdefault(key, {}).setdefault(j, []).append(i)
    return out


def exact_radius_curve(noise: Noise, p_a, p_b=None, norm=2, dim: int = None,
                       rtol: float = 1e-9, return_details: bool = False):
    """``exact_radius`` for an array of p_a (and p_b: None, a scalar, or an array of p_a's shape)
    in one sweep over lambda per direction (module doc). Same conventions and returns as
    ``exact_radius`` (an ndarray of p_a's shape; of :class:`ExactRadius` with details)."""
    t0 = time.perf_counter()
    ex._check_noise(noise)
    pa = np.asarray(p_a, dtype=np.float64)
    shape = pa.shape
    pa = pa.reshape(-1)
    if p_b is None:
        pb = [None] * len(pa)
    else:
        pb_arr = np.broadcast_to(np.asarray(p_b, dtype=np.float64), shape).reshape(-1)
        pb = [float(x) for x in pb_arr]
    pairs = [ex._check_probs(float(a), b) for a, b in zip(pa, pb)]
    p = ex.check_norm(norm)
    if dim is None:
        raise TypeError("dim is required: the input dimension d")
    dim = ex.check_int(dim, "dim", 1)
    rtol = ex.check_positive(rtol, "rtol")
    fam = ex._family(noise)
    radii = np.zeros(len(pa))
    best_key = np.zeros(len(pa), dtype=object)
    certifiable = [i for i, (a, b) in enumerate(pairs) if ex._certifiable(a, b)]
    # p_a = 1 and p_b = 0 are limits (inf, or the bounded-support radius): a search each
    at_ends = [pairs[i][0] >= 1 or (pairs[i][1] is not None and pairs[i][1] <= 0)
               for i in certifiable]
    per_point = [i for i, end in zip(certifiable, at_ends) if end]
    sweepable = [i for i, end in zip(certifiable, at_ends) if not end]
    columns = sorted({pairs[i][1] for i in sweepable}, key=lambda b: -1.0 if b is None else b)
    col_of = {b: j for j, b in enumerate(columns)}
    targets = [np.array(sorted({pairs[i][0] for i in sweepable if pairs[i][1] == b}))
               for b in columns]
    sweeps: Dict[object, _Sweep] = {}
    refs = {}
    if sweepable and sum(len(t) for t in targets) <= 3:
        per_point += sweepable                  # nothing to share
        sweepable = []
    if sweepable:
        refs = _references(noise, p, dim, columns, targets, rtol)
        # the cap of exact_lambda for the largest p_a and p_b asked (the largest reach)
        top = max(max(t) for t in targets)
        b_top = max((b for b in columns if b is not None), default=None)
        best: Dict[tuple, tuple] = {}          # (column, target) -> (lambda, direction)
        for key, per_col in _assign(columns, targets, refs).items():
            if isinstance(key, Profile):
                direction, mag = ProfileDirection(noise, key, p), key.mags[0]
            else:
                direction = _SparseDirection(noise, fam, key, p)
                mag = 1.0 if math.isinf(p) else key ** (-1.0 / p)
            u_cap = math.log(ex._lam_cap(noise, fam, top, b_top, mag))
            sweep = sweeps[key] = _Sweep(direction, columns)
            u0 = math.log(min(r.radius for r in refs.values()
                              if r.key == key and 0 < r.radius < math.inf))
            for j, idx in per_col.items():
                for x in u0 + _STEP * np.arange(-2, 3):
                    sweep.add(float(x), j)
                zt = np.array([_z(float(targets[j][i]), columns[j]) for i in idx])
                for i, x in zip(idx, _sweep_column(sweep, j, zt, u_cap, rtol)):
                    # nan: not bracketed below the cap along this direction (the others
                    # decide, or a search at that point)
                    if np.isfinite(x) and ((j, i) not in best or math.exp(x) < best[(j, i)][0]):
                        best[(j, i)] = (math.exp(x), key)
        for (j, i), r in refs.items():          # a reference is a full search at its point
            if 0 < r.radius < math.inf and not best.get((j, i), (math.inf,))[0] <= r.radius:
                best[(j, i)] = (r.radius, r.key)
        for i in sweepable:
            a, b = pairs[i]
            j = col_of[b]
            lam, key = best.get((j, int(np.searchsorted(targets[j], a))), (math.nan, 0))
            if not lam > 0:
                per_point.append(i)
            else:
                radii[i], best_key[i] = lam, key
    singles = {}
    for i in per_point:
        r = search_radius(noise, pairs[i][0], pairs[i][1], p, dim, rtol=rtol)
        singles[i] = r
        radii[i], best_key[i] = r.radius, r.key
    seconds = time.perf_counter() - t0
    if not return_details:
        return radii.reshape(shape)
    evaluations = sum(s.evaluations for s in sweeps.values()) + \
        sum(r.evaluations for r in refs.values())
    out = np.empty(len(pa), dtype=object)
    for i, (a, b) in enumerate(pairs):
        if i in singles:
            out[i] = singles[i]
            continue
        key = best_key[i]
        prof = key if isinstance(key, Profile) else None
        k = sum(prof.counts) if prof is not None else int(key)
        engines = {}
        if key in sweeps:
            engines = {"profile" if prof is not None else k: "+".join(sorted(sweeps[key].engines))}
        out[i] = ex.ExactRadius(float(radii[i]), k, a, b, p, dim, {}, {}, engines, 0.0,
                                evaluations, seconds, profile=prof)
    return out.reshape(shape)
