"""certified_radius(): the public entry point of the radius engine (THEORY §4-§6).

Pipeline: draw N noise samples once (common random numbers) -> rank directions with a coarse
scale search on the first ``search_samples`` of them (k-sparse candidates, then a particle
swarm) -> refine lambda* of the best directions on all N samples to ``rtol`` -> radius = the
smallest refined lambda*. In sound mode the DKW slack is applied and the chosen direction is
re-checked on fresh samples (THEORY §6).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from . import backends
from ._validation import check_int, check_norm, check_positive, check_probability_open
from .confidence import dkw_epsilon
from .noise import Noise
from .radial import LqTails
from .samples import PhiloxRows, SampleBank, get_sample_bank
from .search import (ScaleResult, SwarmConfig, direction_search, directions_from_levels,
                     scale_search, sparse_levels)
from .thresholds import margins

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


def _tails(noise: Noise, eps: torch.Tensor) -> Optional[LqTails]:
    """Radial noise: the memoised l_q statistics of the coordinates beyond a shift's support."""
    return None if noise.iid else LqTails(eps, noise.q)


class _MarginEvaluator:
    """Margins of scaled directions on a fixed sample matrix, in batched kernel calls.
    Row r is direction ``directions[r]`` judged at ``p_a[r]`` (and ``p_b[r]``). ``tails``:
    ``_tails(noise, eps)``, shared by the evaluators of one sample matrix."""

    def __init__(self, backend, noise: Noise, eps: torch.Tensor, directions: np.ndarray,
                 p_a, p_b, binary: bool, slack: float, tails: Optional[LqTails] = None):
        self.backend, self.noise, self.eps, self.tails = backend, noise, eps, tails
        self.dirs = directions
        self.nnz = np.count_nonzero(directions, axis=1)   # sorted directions: a prefix
        rows = len(directions)
        pa = np.broadcast_to(np.asarray(p_a, dtype=np.float64), (rows,))
        pb = (1.0 - pa) if binary else np.broadcast_to(np.asarray(p_b, dtype=np.float64), (rows,))
        # Sound mode (THEORY §6): thresholds at p_a - e, p_b + e; P_Y moved by e in margins().
        self.pa = np.clip(pa - slack, 1e-300, 1.0)
        self.pb = np.clip(pb + slack, 0.0, 1.0)
        self.binary, self.slack = binary, slack

    def __call__(self, rows: np.ndarray, lams: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows))
        for lo in range(0, len(rows), _MAX_SHIFTS_PER_CALL):
            r, lam = rows[lo:lo + _MAX_SHIFTS_PER_CALL], lams[lo:lo + _MAX_SHIFTS_PER_CALL]
            k = max(1, int(self.nnz[r].max()))
            shifts = torch.from_numpy(np.ascontiguousarray(self.dirs[r, :k] * lam[:, None]))
            shifts = shifts.to(self.eps.device)
            a, b = self._log_ratio(shifts, k)
            pa = torch.from_numpy(np.ascontiguousarray(self.pa[r])).to(a.device)
            pb = torch.from_numpy(np.ascontiguousarray(self.pb[r])).to(a.device)
            stats = self.backend.threshold_stats(a, b, pa, pb, backends.TIE_RTOL)
            out[lo:lo + len(r)] = margins(stats, pa, pb, self.binary, self.slack).cpu().numpy()
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


def _refine(evaluator, dirs, lam_guess, noise, rtol, cap_factor, groups) -> ScaleResult:
    """lambda* on all samples from a coarse estimate (made on the subsample, at a nearby
    reference p_a): a 25% bracket step, then bisection; only each group's minimum is kept."""
    scale = _typical_scale(noise, dirs)
    init = np.where(lam_guess > 0, lam_guess, 0.5 * scale)
    return scale_search(evaluator, len(dirs), init, rtol, lam_max=cap_factor * scale,
                        lam_min=1e-9 * scale, growth=1.25, groups=groups)


#: Class-probability bounds the swarm searches directions at: (p_a, p_b), p_b None = binary.
#: The set of directions (the k-sparse candidates + the swarm's winners) depends on the
#: configuration only, never on the p_a asked for, so radii from separate calls are minima over
#: the same directions: consistent and monotone in p_a. One reference keeps a first call cheap;
#: more references (e.g. 0.6 and 0.99 too) widen the set at a proportional search cost.
_REFERENCE_BINARY = ((0.9, None),)
_REFERENCE_MULTICLASS = ((0.9, 0.05),)
_KEEP = 1.5


@dataclass
class _DirectionSet:
    dirs: np.ndarray        # D x d unit directions: the k-sparse candidates + the swarm's winners
    ref_pa: np.ndarray      # the reference p_a values
    ref_lam: np.ndarray     # R x D coarse lambda* at each reference (starting points)
    evaluations: int
    history: list


_direction_sets: "dict" = {}
_MAX_DIRECTION_SETS = 16


def _direction_set(key, noise, p, dim, eps_search, backend, swarm, slack, seed, cap_factor,
                   binary) -> _DirectionSet:
    """Directions to refine for this configuration (memoised per ``key``)."""
    if key in _direction_sets:
        return _direction_sets[key]
    refs = _REFERENCE_BINARY if binary else _REFERENCE_MULTICLASS
    cand = directions_from_levels(sparse_levels(dim), dim, p)
    winners, cand_lams, win_lams, evals, history = [], [], [], 0, []
    tails = _tails(noise, eps_search)
    for r, (pa, pb) in enumerate(refs):
        coarse = lambda dirs, pa=pa, pb=pb: _MarginEvaluator(backend, noise, eps_search, dirs, pa,
                                                             pb, binary, slack, tails)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EA5C4, r]))
        found = direction_search(_scale_fn(coarse, noise, dim, p, swarm.coarse_rtol, cap_factor),
                                 dim, swarm, rng)
        winners.append(directions_from_levels(found.levels[None, :], dim, p)[0])
        cand_lams.append(found.candidate_lam)
        win_lams.append(found.lam)
        evals += found.evaluations
        history.append(found.history)
    dirs, index = np.unique(np.vstack([cand, np.array(winners)]), axis=0, return_inverse=True)
    index = index.reshape(-1)
    ref_lam = np.full((len(refs), len(dirs)), np.nan)
    for r in range(len(refs)):
        ref_lam[r, index[:len(cand)]] = cand_lams[r]
        ref_lam[r, index[len(cand) + r]] = win_lams[r]
    ref_lam = np.where(np.isnan(ref_lam), np.nanmedian(ref_lam, axis=1, keepdims=True), ref_lam)
    # Keep the directions within a factor _KEEP of the best at some reference: one far above
    # the minimum there is not worth refining at every p_a. The choice depends on the
    # references only, so the set stays the same for every p_a.
    keep = (ref_lam <= _KEEP * ref_lam.min(axis=1, keepdims=True)).any(axis=0)
    out = _DirectionSet(dirs[keep], np.array([pa for pa, _ in refs]), ref_lam[:, keep], evals,
                        history)
    if len(_direction_sets) >= _MAX_DIRECTION_SETS:
        _direction_sets.pop(next(iter(_direction_sets)))
    _direction_sets[key] = out
    return out


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
    dset = _direction_set(key, noise, p, dim, eps_search, backend, swarm, slack, seed, cap_factor,
                          binary)
    dirs = dset.dirs
    logit = lambda q: np.log(q) - np.log1p(-np.minimum(q, 1 - 1e-15))
    nearest = np.abs(logit(p_a)[:, None] - logit(dset.ref_pa)[None, :]).argmin(axis=1)
    guess = dset.ref_lam[nearest]          # K x D starting scales

    def refine(eps):
        """lambda* for every (p_a, direction) pair -> (K x D) lambdas and found flags."""
        K, D = len(p_a), len(dirs)
        pair_dirs = np.tile(dirs, (K, 1))
        evaluator = _MarginEvaluator(backend, noise, eps, pair_dirs, np.repeat(p_a, D),
                                     None if binary else np.repeat(p_b, D), binary, slack,
                                     _tails(noise, eps))
        res = _refine(evaluator, pair_dirs, guess.reshape(-1), noise, rtol, cap_factor,
                      groups=np.repeat(np.arange(K), D))
        # A pruned pair's lam is only a lower bound of its lambda*; it is never the minimum.
        lam = np.where(res.pruned, np.inf, res.lam).reshape(K, D)
        return lam, res.found.reshape(K, D), res.evaluations

    lam, found, evals = refine(eps_full)
    fresh_lam = None
    if sound:   # re-check the chosen directions on fresh samples (THEORY §6)
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


def _exact(noise, pa_arr, p_b, p, dim, return_details):
    """certified_radius(method="exact"): unicr_fast.exact, reported in the same shapes."""
    from .exact import exact_radius
    if not noise.iid:
        raise ValueError("method='exact' needs i.i.d. noise (the log-ratio as a sum of "
                         "independent terms); radial noise is certified with method='mc'")
    if noise.family_id is None:
        raise ValueError("method='exact' needs a catalogue noise family, not Custom noise")
    details = []
    for pa in pa_arr.reshape(-1):
        ex = exact_radius(noise, float(pa), p_b, p, dim, return_details=True)
        direction = None
        if ex.radius > 0:
            direction = np.zeros(dim)
            direction[:ex.k] = 1.0 if math.isinf(p) else ex.k ** (-1.0 / p)
        details.append(RadiusDetails(float(ex.radius), float(pa), p_b, direction,
                                     math.isfinite(ex.radius), ex.evaluations, ex.seconds))
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
    arr = np.asarray(p_a, dtype=np.float64) if not isinstance(p_a, str) else None
    if arr is None or arr.dtype.kind not in "fiu":
        raise TypeError(f"p_a must be a number or an array of numbers, got {type(p_a).__name__}")
    if np.isnan(arr).any():
        raise ValueError("p_a must not be NaN")
    if ((arr <= 0) | (arr > 1)).any():
        raise ValueError(f"p_a must lie in (0, 1], got {arr[(arr <= 0) | (arr > 1)][0]}")
    return arr


def certified_radius(noise: Noise, p_a, p_b: Optional[float] = None, norm=2, dim: int = None,
                     num_samples: int = 100_000, seed: int = 0, device="auto", *,
                     backend: str = "auto", search_samples: int = 10_000, rtol: float = 1e-4,
                     particles: int = 8, iterations: int = 4, sound: bool = False,
                     beta: float = 1e-3, cap: float = 1e3, dtype: torch.dtype = torch.float32,
                     method: str = "mc", return_details: bool = False):
    """Certified l_p radius of a smoothed classifier with top-class probability >= ``p_a``
    (and runner-up <= ``p_b``; ``None`` = binary bound, Theorem 3) under ``noise`` (i.i.d., or
    radial: bound to ``dim``) in dimension ``dim``.

    Returns a float (an ndarray if ``p_a`` is an array; one sample set is shared). 0.0 where
    nothing can be certified (p_a <= p_b, or p_a <= 1/2 binary). The radius is the smallest
    lambda* over the directions searched (THEORY §4): an approximation from above of the true
    infimum over directions, with Monte-Carlo error controlled by ``num_samples``.

    Search knobs: ``search_samples`` samples rank directions at coarse tolerance (the first ones
    of the N), ``particles`` x ``iterations`` particle swarm after the k-sparse candidates,
    ``rtol`` the final relative tolerance on lambda. Directions are searched once per
    configuration (at the reference p_a = 0.9) and memoised; every p_a, of this call or a later
    one with the same settings, is refined along the same directions (k-sparse + swarm winner). ``cap``: scales beyond ``cap`` noise units
    (sigma / ||u||_2) are not explored; a direction with no crossing below it reports
    ``found=False`` in the details and the cap as its radius.
    ``method="exact"``: no sampling; the minimum over the k-sparse equal-magnitude directions of
    lambda* computed from the exact law of L (numerical convolution, unicr_fast.exact). Exact
    where the worst direction is k-sparse (Gaussian any norm, Laplace/uniform l1, any noise
    l_inf); an upper bound of the true radius elsewhere, like the Monte-Carlo search.
    ``sound=True`` applies the DKW slack at level ``beta`` and re-checks the final direction on
    fresh samples (THEORY §6); the result then holds with probability >= 1 - 2 beta over the MC.
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
    noise = noise.bound(dim)     # radial noise lives on R^dim
    num_samples = check_int(num_samples, "num_samples", 1)
    search_samples = check_int(search_samples, "search_samples", 1)
    seed = check_int(seed, "seed", 0)
    rtol = check_positive(rtol, "rtol")
    cap = check_positive(cap, "cap")
    particles = check_int(particles, "particles", 0)
    iterations = check_int(iterations, "iterations", 0)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if method not in ("mc", "exact"):
        raise ValueError(f"method must be 'mc' (Monte Carlo) or 'exact', got {method!r}")
    if method == "exact":
        return _exact(noise, pa_arr, p_b, p, dim, return_details)
    dev = _resolve_device(device)
    impl = backends.get_backend(backend, dev, noise)
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
