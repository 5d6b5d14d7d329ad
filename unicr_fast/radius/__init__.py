"""certified_radius(): the public entry point of the radius engine (docs/theory.md §4-§6).

Pipeline: draw N noise samples once (common random numbers) -> rank directions with a coarse
scale search on the first ``search_samples`` of them (k-sparse candidates, then a particle
swarm) -> refine lambda* of the best directions on all N samples to ``rtol`` -> radius = the
smallest refined lambda*. In sound mode the DKW slack is applied and the chosen direction is
re-checked on fresh samples (docs/theory.md §6).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from .. import backends
from .._validation import (check_int, check_norm, check_norm_in_dim, check_positive,
                          check_probability_open, check_real_array, check_seed)
from ..confidence import dkw_epsilon
from ..noise import Noise
from ..noise.radial import LqTails
from .mc.samples import MAX_SAMPLE_BYTES, PhiloxRows, SampleBank, get_sample_bank
from .mc.search import (ScaleResult, SwarmConfig, direction_search, directions_from_levels,
                     scale_search)
from .mc.thresholds import margins, pooled_margins

# Shifts evaluated per kernel call (bounds the M x N float64 outputs).
_MAX_SHIFTS_PER_CALL = 32


@dataclass
class RadiusDetails:
    """What ``certified_radius(..., return_details=True)`` returns for one p_a."""
    radius: float
    p_a: float
    p_b: Optional[float]
    direction: Optional[np.ndarray]   # unit (in l_p) sorted non-negative worst direction found
    found: bool                        # False: no crossing up to the cap (radius = the cap)
    evaluations: int                   # shifts evaluated (each is N x nnz log-density pairs)
    seconds: float
    sound: bool = False
    fresh_radius: Optional[float] = None   # sound mode: lambda* re-checked on fresh samples
    history: list = field(default_factory=list)
    method: str = "mc"                     # the engine that ran: "mc" or "exact"
    engine: str = ""                       # exact: the law engine(s) of the winning k


def _tails(noise: Noise, eps: torch.Tensor) -> Optional[LqTails]:
    """Radial noise: the memoised l_q statistics of the coordinates beyond a shift's support."""
    return None if noise.iid else LqTails(eps, noise.q)


class _MarginEvaluator:
    """Margins of scaled directions on a fixed sample matrix, in batched kernel calls.
    Row r is direction ``directions[r]`` judged at ``p_a[r]`` (and ``p_b[r]``). ``tails``:
    ``_tails(noise, eps)``, shared by the evaluators of one sample matrix."""

    def __init__(self, backend, noise: Noise, eps: torch.Tensor, directions: np.ndarray,
                 p_a, p_b, binary: bool, slack: float, tails: Optional[LqTails] = None,
                 dir_index: Optional[np.ndarray] = None):
        self.backend, self.noise, self.eps, self.tails = backend, noise, eps, tails
        # Row r is direction dirs[dir_index[r]]: many p_a share one direction array.
        self.dirs = directions
        self.dir_index = np.arange(len(directions)) if dir_index is None else dir_index
        self.nnz = np.count_nonzero(directions, axis=1)[self.dir_index]   # sorted: a prefix
        rows = len(self.dir_index)
        pa = np.broadcast_to(np.asarray(p_a, dtype=np.float64), (rows,))
        pb = (1.0 - pa) if binary else np.broadcast_to(np.asarray(p_b, dtype=np.float64), (rows,))
        # Sound mode (docs/theory.md §6): thresholds at p_a - e, p_b + e; P_Y moved by e in margins().
        self.pa = np.clip(pa - slack, 1e-300, 1.0)
        self.pb = np.clip(pb + slack, 0.0, 1.0)
        self.binary, self.slack = binary, slack

    def __call__(self, rows: np.ndarray, lams: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows))
        for lo in range(0, len(rows), _MAX_SHIFTS_PER_CALL):
            r, lam = rows[lo:lo + _MAX_SHIFTS_PER_CALL], lams[lo:lo + _MAX_SHIFTS_PER_CALL]
            k = max(1, int(self.nnz[r].max()))
            shifts = torch.from_numpy(np.ascontiguousarray(self.dirs[self.dir_index[r], :k]
                                                            * lam[:, None]))
            shifts = shifts.to(self.eps.device)
            a, b = self._log_ratio(shifts, k)
            pa = torch.from_numpy(np.ascontiguousarray(self.pa[r])).to(a.device)
            pb = torch.from_numpy(np.ascontiguousarray(self.pb[r])).to(a.device)
            if self.slack > 0:   # sound mode: DKW holds for the plain empirical counts
                stats = self.backend.threshold_stats(a, b, pa, pb, backends.TIE_RTOL)
                m = margins(stats, pa, pb, self.binary, self.slack)
            else:
                stats = self.backend.pooled_stats(a, b, pa, pb, backends.TIE_RTOL)
                m = pooled_margins(stats, self.binary)
            out[lo:lo + len(r)] = m.cpu().numpy()
        return out

    def _log_ratio(self, shifts: torch.Tensor, k: int):
        """Kernel call for shifts supported on the first k coordinates."""
        if isinstance(self.eps, PhiloxRows):   # not stored: regenerated inside the kernel
            e = self.eps
            return self.backend.log_ratio_philox(self.noise, e.seed, e.rows, k, shifts, e.dtype)
        eps = backends.kernel_rows(self.backend, self.eps[:, :k])
        if self.tails is None:
            return self.backend.log_ratio(self.noise, eps, shifts)
        # radial: the coordinates past k enter through their l_q statistic
        return self.backend.log_ratio_radial(self.noise, eps, shifts, self.tails(k))


def _typical_scale(noise: Noise, directions: np.ndarray) -> np.ndarray:
    """sigma / ||u||_2: the lambda at which a shift along u is one noise 'standard deviation'
    (by the CLT, lambda* is of this order for most noises). Starts and caps the brackets."""
    return noise.sigma / np.sqrt((directions ** 2).sum(axis=1))


def _scale_fn(evaluator_factory, noise, dim, p, rtol, cap_factor):
    def run(levels: np.ndarray, lam_guess: Optional[np.ndarray]) -> ScaleResult:
        dirs = directions_from_levels(levels, dim, p)
        scale = _typical_scale(noise, dirs)
        if lam_guess is None:   # cold start: a factor-2 bracket around one noise unit
            init, growth = 0.5 * scale, 2.0
        else:                   # warm start from a nearby direction: a tight bracket
            init, growth = np.where(lam_guess > 0, lam_guess, 0.5 * scale), 1.25
        # Only the minimum over the batch matters to the search: prune the rest early.
        return scale_search(evaluator_factory(dirs), len(dirs), init, rtol,
                            lam_max=cap_factor * scale, lam_min=1e-9 * scale, growth=growth,
                            groups=np.zeros(len(dirs), dtype=np.int64))
    return run


def _refine(evaluator, scale, lam_guess, rtol, cap_factor, groups) -> ScaleResult:
    """lambda* on all samples from a coarse estimate (made on the subsample, at the band's
    reference p_a): a 25% bracket step, then bisection; only each group's minimum is kept.
    ``scale``: each row's _typical_scale."""
    init = np.where(lam_guess > 0, lam_guess, 0.5 * scale)
    return scale_search(evaluator, len(scale), init, rtol, lam_max=cap_factor * scale,
                        lam_min=1e-9 * scale, growth=1.25, groups=groups)


# Directions are searched per *band* of p_a, one band per decade of 1 - p_a (reference p_a
# 0.6, 0.9, 0.99, 0.999, ...): the worst direction moves with p_a (Cauchy l1 d = 64: the axis at
# 0.9, k = 3 at 0.999), so each band's candidates compete at a p_a of that band. A configuration's
# set is the union of the bands searched so far (extended when a call reaches a new band), so
# every p_a is refined along directions chosen where it lies, and a later call only adds
# directions (its radii can only be smaller).
_MAX_BAND = 15
_KEEP = 1.5            # keep the directions within this factor of a band's best coarse lambda*
_SPARSE_ALL_BELOW = 16  # k-sparse candidates: every k up to here, then a geometric grid
_SPARSE_RATIO = 1.3


def _band(p_a: np.ndarray) -> np.ndarray:
    """Band index of each p_a: round(-log10(1 - p_a)), 0 below ~0.68, capped at _MAX_BAND."""
    decades = -np.log10(np.maximum(1.0 - p_a, 10.0 ** -_MAX_BAND))
    return np.clip(np.rint(decades), 0, _MAX_BAND).astype(np.int64)


def _band_reference(band: int, binary: bool):
    """(p_a, p_b) a band's directions are searched at; p_b None binary, else (1 - p_a) / 2."""
    pa = 0.6 if band == 0 else 1.0 - 10.0 ** -band
    return pa, (None if binary else (1.0 - pa) / 2)


def sparse_ks(dim: int):
    """k of the k-sparse equal-magnitude candidates: every k <= _SPARSE_ALL_BELOW, then a
    geometric grid (ratio _SPARSE_RATIO) up to dim, dim included."""
    ks = set(range(1, min(dim, _SPARSE_ALL_BELOW) + 1))
    x = float(min(dim, _SPARSE_ALL_BELOW))
    while x < dim:
        x *= _SPARSE_RATIO
        ks.add(min(dim, int(round(x))))
    return np.array(sorted(ks), dtype=np.int64)


def sparse_directions(ks: np.ndarray, dim: int, p: float) -> np.ndarray:
    """u_k = k^(-1/p) (1, .., 1, 0, .., 0) for each k (len(ks) x dim)."""
    u = (np.arange(dim)[None, :] < ks[:, None]).astype(np.float64)
    return u if math.isinf(p) else u * np.exp(-np.log(ks.astype(np.float64)) / p)[:, None]


@dataclass
class _Band:
    dirs: np.ndarray        # the band's kept unit directions
    lam: np.ndarray         # their coarse lambda* at the band's reference (starting points)
    evaluations: int
    history: list


class _DirectionSet:
    """The directions of one configuration, searched band by band on the search samples."""

    def __init__(self, noise, p, dim, eps_search, backend, swarm, slack, seed, cap_factor,
                 binary):
        self.noise, self.p, self.dim, self.eps, self.backend = noise, p, dim, eps_search, backend
        self.swarm, self.slack, self.seed, self.cap, self.binary = swarm, slack, seed, cap_factor, binary
        self.tails = _tails(noise, eps_search)
        self.bands = {}

    def extend(self, bands) -> None:
        for band in sorted(set(int(b) for b in bands) - set(self.bands)):
            self.bands[band] = self._search(band)

    def _search(self, band: int) -> _Band:
        pa, pb = _band_reference(band, self.binary)
        coarse = lambda dirs: _MarginEvaluator(self.backend, self.noise, self.eps, dirs, pa, pb,
                                               self.binary, self.slack, self.tails)
        # k-sparse candidates (every small k: the worst k may be 3), then the swarm over block
        # profiles starting from the power-of-two ones.
        cand = sparse_directions(sparse_ks(self.dim), self.dim, self.p)
        scale = _typical_scale(self.noise, cand)
        res = scale_search(coarse(cand), len(cand), 0.5 * scale, self.swarm.coarse_rtol,
                           lam_max=self.cap * scale, lam_min=1e-9 * scale, growth=2.0,
                           groups=np.zeros(len(cand), dtype=np.int64))
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x5EA5C4, band]))
        found = direction_search(_scale_fn(coarse, self.noise, self.dim, self.p,
                                           self.swarm.coarse_rtol, self.cap),
                                 self.dim, self.swarm, rng)
        winner = directions_from_levels(found.levels[None, :], self.dim, self.p)
        dirs = np.vstack([cand, winner])
        lam = np.append(res.lam, found.lam)   # a pruned candidate's lam is a lower bound
        # Keep the directions within _KEEP of the band's best: one far above the minimum at
        # the band's reference is not worth refining at every p_a of the band.
        keep = lam <= _KEEP * lam.min()
        return _Band(dirs[keep], lam[keep], res.evaluations + found.evaluations,
                     [found.history])

    def union(self, bands: np.ndarray):
        """(D x dim directions of every band searched so far, len(bands) x D starting scales
        for p_a values in ``bands``: a direction's lambda at that band, else the band median)."""
        dirs, index = np.unique(np.vstack([b.dirs for b in self.bands.values()]), axis=0,
                                return_inverse=True)
        index = index.reshape(-1)
        guess = {}
        at = 0
        for band, entry in self.bands.items():
            row = np.full(len(dirs), np.median(entry.lam))
            row[index[at:at + len(entry.dirs)]] = entry.lam
            guess[band] = row
            at += len(entry.dirs)
        return dirs, np.array([guess[int(b)] for b in bands])

    @property
    def evaluations(self) -> int:
        return sum(b.evaluations for b in self.bands.values())

    @property
    def history(self) -> list:
        return [h for b in self.bands.values() for h in b.history]


_direction_sets: "dict" = {}
_MAX_DIRECTION_SETS = 16


def _direction_set(key, *args) -> _DirectionSet:
    """The memoised direction set of a configuration (``key``)."""
    if key not in _direction_sets:
        if len(_direction_sets) >= _MAX_DIRECTION_SETS:
            _direction_sets.pop(next(iter(_direction_sets)))
        _direction_sets[key] = _DirectionSet(*args)
    return _direction_sets[key]


def _radii(noise, p_a: np.ndarray, p_b: Optional[np.ndarray], binary, p, dim, bank: SampleBank,
           backend, search_samples, rtol, swarm: SwarmConfig, slack, seed, cap_factor, sound,
           fresh_bank):
    """Radii for the certifiable p_a values (one sample set): lambda* of every (p_a, direction)
    pair of the configuration's direction set on all N samples, in batched calls with pruning,
    and the smallest per p_a."""
    t0 = time.perf_counter()
    eps_full = bank.samples()
    eps_search = eps_full[: min(search_samples, eps_full.shape[0])]
    key = (bank.noise, p, dim, bank.num_samples, bank.seed, bank.dtype, str(bank.device), binary,
           swarm.particles, swarm.iterations, search_samples, slack, backend.name, cap_factor)
    dset = _direction_set(key, noise, p, dim, eps_search, backend, swarm, slack, seed,
                          cap_factor, binary)
    bands = _band(p_a)
    dset.extend(bands)
    dirs, guess = dset.union(bands)        # D x dim, K x D starting scales

    def refine(eps):
        """lambda* for every (p_a, direction) pair -> (K x D) lambdas and found flags."""
        K, D = len(p_a), len(dirs)
        evaluator = _MarginEvaluator(backend, noise, eps, dirs, np.repeat(p_a, D),
                                     None if binary else np.repeat(p_b, D), binary, slack,
                                     _tails(noise, eps), dir_index=np.tile(np.arange(D), K))
        scale = np.tile(_typical_scale(noise, dirs), K)
        res = _refine(evaluator, scale, guess.reshape(-1), rtol, cap_factor,
                      groups=np.repeat(np.arange(K), D))
        # A pruned pair's lam is only a lower bound of its lambda*; it is never the minimum.
        lam = np.where(res.pruned, np.inf, res.lam).reshape(K, D)
        return lam, res.found.reshape(K, D), res.evaluations

    lam, found, evals = refine(eps_full)
    fresh_lam = None
    if sound:   # re-check the chosen directions on fresh samples (docs/theory.md §6)
        fresh_lam, fresh_found, n = refine(fresh_bank.samples())
        evals += n
        lam, found = np.minimum(lam, fresh_lam), np.where(fresh_lam < lam, fresh_found, found)
    best = lam.argmin(axis=1)
    seconds = time.perf_counter() - t0
    return [RadiusDetails(float(lam[i, best[i]]), float(p_a[i]),
                          None if binary else float(p_b[i]), dirs[best[i]],
                          bool(found[i, best[i]]), evals + dset.evaluations, seconds, sound,
                          None if fresh_lam is None else float(fresh_lam[i, best[i]]),
                          dset.history)
            for i in range(len(p_a))]


#: The radius engines: "auto" picks "exact" for the catalogue's product (i.i.d.) families and
#: Monte Carlo ("mc") for radial and Custom noise, which have no exact law.
METHODS = ("auto", "exact", "mc")


def resolve_method(noise: Noise, method: str) -> str:
    """The engine ``method`` means for ``noise``: "exact" or "mc" (ValueError if impossible)."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} ('auto': exact for product noise, "
                         f"Monte Carlo otherwise), got {method!r}")
    has_law = noise.iid and noise.family_id is not None
    if method == "auto":
        return "exact" if has_law else "mc"
    if method == "exact" and not noise.iid:
        raise ValueError("method='exact' needs i.i.d. noise (the log-ratio as a sum of "
                         "independent terms); radial noise is certified with method='mc'")
    if method == "exact" and not has_law:
        raise ValueError("method='exact' needs a catalogue noise family, not Custom noise")
    return method


def _exact(noise, pa_arr, p_b, p, dim, return_details):
    """certified_radius(method="exact"): unicr_fast.radius.exact (one search per p_a) or, for an array
    of p_a, unicr_fast.radius.exact.curve (one sweep over lambda per direction for all of them),
    reported in the same shapes. The dense direction of a detail is built only when details
    are asked for."""
    from .exact.curve import exact_radius_curve
    from .exact.profile import search_radius
    flat = pa_arr.reshape(-1)
    pb_eff = None
    if p_b is not None:
        # as in Monte Carlo: nothing where p_a <= p_b, else p_b capped at 1 - p_a (it holds on
        # the event where both bounds do)
        pb_eff = np.where(flat > p_b, np.minimum(p_b, 1.0 - flat), p_b)
    if pa_arr.ndim == 0:
        found = [search_radius(noise, float(flat[0]), None if p_b is None else float(pb_eff[0]),
                               p, dim)]
    else:
        found = list(exact_radius_curve(noise, flat, pb_eff, p, dim, return_details=True))
    details = []
    for pa, ex in zip(flat, found):
        direction = None
        if return_details and ex.radius > 0:
            if ex.profile is not None:
                direction = ex.profile.dense(dim)
            else:
                direction = np.zeros(dim)
                direction[:ex.k] = 1.0 if math.isinf(p) else ex.k ** (-1.0 / p)
        engine = ex.engines.get("profile" if ex.profile is not None else ex.k, "")
        details.append(RadiusDetails(float(ex.radius), float(pa), p_b, direction,
                                     math.isfinite(ex.radius), ex.evaluations, ex.seconds,
                                     method="exact", engine=engine))
    if return_details:
        return details[0] if pa_arr.ndim == 0 else np.array(details, dtype=object).reshape(pa_arr.shape)
    radii = np.array([d.radius for d in details]).reshape(pa_arr.shape)
    return float(radii) if pa_arr.ndim == 0 else radii


def _enforce_monotone(details) -> None:
    """With shared samples lambda*(u) is non-decreasing in p_a for every direction u, and every
    p_a is refined along the same directions; only the bisection tolerance can then break the
    order. Take the suffix minimum over p_a (a smaller radius, never a larger one)."""
    order = sorted(range(len(details)), key=lambda i: details[i].p_a, reverse=True)
    best = math.inf
    for i in order:
        if details[i].radius > best:
            details[i].radius = best
        best = min(best, details[i].radius)


def _resolve_device(device) -> torch.device:
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    if device == "auto":
        cuda_ok = torch.cuda.is_available() and "cuda" in backends.available_backends()
        return torch.device("cuda" if cuda_ok else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:k]', got '{device}'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' was requested but torch sees no CUDA device; "
                         "use device='cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:k]', got '{device}'")
    return dev


def _check_pa(p_a) -> np.ndarray:
    arr = check_real_array(p_a, "p_a")
    if ((arr <= 0) | (arr > 1)).any():
        raise ValueError(f"p_a must lie in (0, 1], got {arr[(arr <= 0) | (arr > 1)][0]}")
    return arr


#: Fewest noise samples of a Monte-Carlo radius: below it the quantiles behind lambda* are a
#: handful of order statistics (relative error ~ 1/sqrt(N) over 10%).
MIN_SAMPLES = 100
#: Smallest rtol: bisection stops at hi - lo <= rtol * lo, and float64 neighbours of lo lie
#: about 1e-16 * lo apart, so a smaller rtol never stops.
_MIN_RTOL = 1e-12


def _check_monte_carlo(num_samples: int, dim: int, particles: int) -> None:
    """The arguments only the Monte-Carlo path needs: enough samples, directions that fit."""
    if num_samples < MIN_SAMPLES:
        raise ValueError(f"num_samples must be >= {MIN_SAMPLES} for Monte-Carlo radii, got "
                         f"{num_samples} (method='exact' takes no samples)")
    # The search holds dense float64 directions of length dim: a band's k-sparse candidates and
    # its winner, or a swarm's particles. Samples too large to store are regenerated;
    # directions are not, so they get the samples' memory limit.
    rows = max(len(sparse_ks(dim)) + 1, particles)
    nbytes = rows * dim * 8
    if nbytes > MAX_SAMPLE_BYTES:
        raise ValueError(f"dim = {dim} is too large for Monte Carlo: the search holds {rows} "
                         f"directions x dim float64 ({nbytes / 2**30:.1f} GiB, limit "
                         f"{MAX_SAMPLE_BYTES / 2**30:.0f} GiB); use method='exact' (i.i.d. "
                         f"noise) or a smaller dim")


def certified_radius(noise: Noise, p_a, p_b: Optional[float] = None, norm=2, dim: int = None,
                     num_samples: int = 100_000, seed: int = 0, device="auto", *,
                     backend: str = "auto", search_samples: int = 10_000, rtol: float = 1e-4,
                     particles: int = 8, iterations: int = 4, sound: bool = False,
                     beta: float = 1e-3, cap: float = 1e3, dtype: torch.dtype = torch.float32,
                     method: str = "auto", return_details: bool = False):
    """Certified l_p radius of a smoothed classifier with top-class probability >= ``p_a``
    (and runner-up <= ``p_b``; ``None`` = binary bound, Theorem 3) under ``noise`` (i.i.d., or
    radial: bound to ``dim``) in dimension ``dim``.

    Returns a float (an ndarray if ``p_a`` is an array). 0.0 where nothing can be certified
    (p_a <= p_b, or p_a <= 1/2 binary). ``return_details=True`` gives ``RadiusDetails`` (which
    ``method`` ran, the direction, evaluations, time).

    ``method`` (docs/theory.md §4, §5, §9):
    - ``"auto"`` (default): ``"exact"`` for the catalogue's product (i.i.d.) families, ``"mc"``
      for radial and Custom noise.
    - ``"exact"``: no sampling; the minimum over the k-sparse equal-magnitude directions of
      lambda* computed from the exact law of L (unicr_fast.radius.exact), to ~1e-9 relative. Exact
      where the worst direction is k-sparse (Gaussian any norm, log-concave noise in l1, any
      product noise in l_inf); elsewhere the minimum over those directions. The sampling
      arguments are not used, and ``sound=True`` changes nothing (there is no sampling error).
    - ``"mc"``: Monte Carlo on ``num_samples`` common noise draws (at least ``MIN_SAMPLES`` =
      100; one sample set is shared by all p_a of a call), with the pooled estimator of §5.
      Directions: the k-sparse candidates (``sparse_ks(dim)``) and a particle swarm over block
      profiles (``particles`` x ``iterations``), ranked at coarse tolerance on the first
      ``search_samples`` draws, searched per band of p_a (one per decade of 1 - p_a) and
      memoised per configuration; every p_a is refined on all N draws to ``rtol`` along the
      directions of the bands searched so far. The radius is the smallest lambda* found: an
      approximation from above of the infimum over directions. ``cap``: scales beyond ``cap``
      noise units (sigma / ||u||_2) are not explored; a direction with no crossing below it
      reports ``found=False`` and the cap as its radius. The search holds its directions densely
      (dim float64 each): a dim where they pass 6 GiB is a ValueError.
      ``sound=True`` applies the DKW slack at level ``beta`` and re-checks the directions on
      fresh samples (§6); the result then holds with probability >= 1 - 2 beta over the draws.
    """
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be a unicr_fast.noise.Noise, got {type(noise).__name__}")
    pa_arr = _check_pa(p_a)
    if p_b is not None:
        p_b = check_probability_open(p_b, "p_b", allow_edges=True)
    p = check_norm(norm)
    if dim is None:
        raise TypeError("dim is required: the input dimension d")
    dim = check_int(dim, "dim", 1)
    p = check_norm_in_dim(p, dim)
    noise = noise.bound(dim)     # radial noise lives on R^dim
    num_samples = check_int(num_samples, "num_samples", 1)
    search_samples = check_int(search_samples, "search_samples", 1)
    seed = check_seed(seed)
    rtol = check_positive(rtol, "rtol")
    if not _MIN_RTOL <= rtol < 1:   # below: the bisection would chase float64 rounding forever
        raise ValueError(f"rtol must lie in [{_MIN_RTOL:g}, 1), got {rtol:g}")
    cap = check_positive(cap, "cap")
    particles = check_int(particles, "particles", 0)
    iterations = check_int(iterations, "iterations", 0)
    if not isinstance(sound, bool):   # sound="no" would be truthy
        raise TypeError(f"sound must be a bool, got {type(sound).__name__}")
    beta = check_probability_open(beta, "beta")
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    method = resolve_method(noise, method)
    dev = _resolve_device(device)
    impl = backends.get_backend(backend, dev, noise)   # checked for every method
    if method == "exact":   # no sampling error: sound mode has nothing to bound
        return _exact(noise, pa_arr, p_b, p, dim, return_details)
    _check_monte_carlo(num_samples, dim, particles)
    slack = dkw_epsilon(num_samples, beta) if sound else 0.0

    bank = get_sample_bank(noise, num_samples, dim, seed, dtype, dev)
    if bank.regenerated and not hasattr(impl, "log_ratio_philox"):
        raise ValueError(f"{num_samples} x {dim} noise samples are too many to store, and the "
                         f"'{impl.name}' backend cannot regenerate them; use backend 'cpu' or "
                         f"'cuda' (or fewer samples)")
    fresh_seed = int(np.random.SeedSequence([seed, 0xF5E5]).generate_state(1)[0])
    fresh = SampleBank(noise, num_samples, dim, fresh_seed, dtype, dev) if sound else None
    swarm = SwarmConfig(particles=particles, iterations=iterations)
    binary = p_b is None
    flat = pa_arr.reshape(-1)
    # Nothing to certify where p_a <= p_b (binary: p_a <= 1/2): radius 0, never an exception.
    ok = flat > (0.5 if binary else p_b)
    details = [RadiusDetails(0.0, float(pa), p_b, None, True, 0, 0.0, sound) for pa in flat]
    if ok.any():
        # p_b <= 1 - p_a on the event where both bounds hold, so capping it loses nothing.
        pb_eff = None if binary else np.minimum(p_b, 1.0 - flat[ok])
        todo = _radii(noise, flat[ok], pb_eff, binary, p, dim, bank, impl, search_samples, rtol,
                      swarm, slack, seed, cap, sound, fresh)
        for i, d in zip(np.nonzero(ok)[0], todo):
            details[i] = d
    _enforce_monotone(details)
    if return_details:
        return details[0] if pa_arr.ndim == 0 else np.array(details, dtype=object).reshape(pa_arr.shape)
    radii = np.array([d.radius for d in details]).reshape(pa_arr.shape)
    return float(radii) if pa_arr.ndim == 0 else radii
