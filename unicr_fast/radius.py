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
from .samples import SampleBank, get_sample_bank
from .search import ScaleResult, SwarmConfig, direction_search, directions_from_levels, scale_search
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


class _MarginEvaluator:
    """Margins of scaled directions on a fixed sample matrix, in batched kernel calls.
    Row r is direction ``directions[r]`` judged at ``p_a[r]`` (and ``p_b[r]``)."""

    def __init__(self, backend, noise: Noise, eps: torch.Tensor, directions: np.ndarray,
                 p_a, p_b, binary: bool, slack: float):
        self.backend, self.noise, self.eps = backend, noise, eps
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
            eps = self.eps[:, :k]
            if self.backend.name == "cuda":
                eps = eps.contiguous()
            a, b = self.backend.log_ratio(self.noise, eps, shifts)
            pa = torch.from_numpy(np.ascontiguousarray(self.pa[r])).to(a.device)
            pb = torch.from_numpy(np.ascontiguousarray(self.pb[r])).to(a.device)
            stats = self.backend.threshold_stats(a, b, pa, pb, backends.TIE_RTOL)
            out[lo:lo + len(r)] = margins(stats, pa, pb, self.binary, self.slack).cpu().numpy()
        return out


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
        return scale_search(evaluator_factory(dirs), len(dirs), init, rtol,
                            lam_max=cap_factor * scale, lam_min=1e-9 * scale, growth=growth)
    return run


def _refine(evaluator, dirs, lam_guess, noise, rtol, cap_factor) -> ScaleResult:
    scale = _typical_scale(noise, dirs)
    init = np.where(lam_guess > 0, lam_guess, 0.5 * scale)
    return scale_search(evaluator, len(dirs), init, rtol, lam_max=cap_factor * scale,
                        lam_min=1e-9 * scale, growth=1.1)


def _search_points(p_a: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` p_a values (spread over the sorted distinct values) to search directions at."""
    distinct = np.unique(p_a)
    if len(distinct) <= count:
        return distinct
    return distinct[np.unique(np.linspace(0, len(distinct) - 1, count).round().astype(int))]


def _radii(noise, p_a: np.ndarray, p_b: Optional[np.ndarray], binary, p, dim, bank: SampleBank, backend, search_samples,
           rtol, swarm: SwarmConfig, slack, seed, cap_factor, sound, fresh_bank, search_points):
    """Radii for the certifiable p_a values (one sample set): search directions at a few of
    them, then refine lambda* of every (p_a, direction) pair on all N samples in batched calls
    and keep the smallest per p_a. Sharing the directions keeps the radius monotone in p_a."""
    t0 = time.perf_counter()
    eps_full = bank.samples()
    eps_search = eps_full[: min(search_samples, eps_full.shape[0])]
    levels, guesses, evals, history = [], [], 0, []
    for i, pa in enumerate(_search_points(p_a, search_points)):
        pb = None if binary else p_b[np.argmax(p_a == pa)]
        coarse = lambda dirs, pa=pa, pb=pb: _MarginEvaluator(backend, noise, eps_search, dirs, pa,
                                                             pb, binary, slack)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EA5C4, i]))
        found = direction_search(_scale_fn(coarse, noise, dim, p, swarm.coarse_rtol, cap_factor),
                                 dim, swarm, rng)
        levels.append(found.levels)
        guesses.append(found.lam)
        evals += found.evaluations
        history.append(found.history)
    dirs = np.unique(directions_from_levels(np.array(levels), dim, p), axis=0)
    guess = float(np.median(guesses))

    def refine(eps):
        """lambda* for every (p_a, direction) pair -> (K x D) lambdas and found flags."""
        K, D = len(p_a), len(dirs)
        pair_dirs = np.tile(dirs, (K, 1))
        evaluator = _MarginEvaluator(backend, noise, eps, pair_dirs, np.repeat(p_a, D),
                                     None if binary else np.repeat(p_b, D), binary, slack)
        res = _refine(evaluator, pair_dirs, np.full(K * D, guess), noise, rtol, cap_factor)
        return res.lam.reshape(K, D), res.found.reshape(K, D), res.evaluations

    lam, found, n = refine(eps_full)
    evals += n
    fresh_lam = None
    if sound:   # re-check the chosen directions on fresh samples (THEORY §6)
        fresh_lam, fresh_found, n = refine(fresh_bank.samples())
        evals += n
        lam, found = np.minimum(lam, fresh_lam), found & fresh_found
    best = lam.argmin(axis=1)
    seconds = time.perf_counter() - t0
    rows = range(len(p_a))
    return [RadiusDetails(float(lam[i, best[i]]), float(p_a[i]),
                          None if binary else float(p_b[i]), dirs[best[i]],
                          bool(found[i, best[i]]), evals, seconds, sound,
                          None if fresh_lam is None else float(fresh_lam[i, best[i]]), history)
            for i in rows]


def _enforce_monotone(details) -> None:
    """With shared samples lambda*(u) is non-decreasing in p_a for every direction u, so the
    direction found at a larger p_a certifies at most its radius at any smaller p_a too: take the
    suffix minimum over p_a (a smaller, never larger radius; one radius per direction tried)."""
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
                     search_points: int = 3, return_details: bool = False):
    """Certified l_p radius of a smoothed classifier with top-class probability >= ``p_a``
    (and runner-up <= ``p_b``; ``None`` = binary bound, Theorem 3) under i.i.d. ``noise`` in
    dimension ``dim``.

    Returns a float (an ndarray if ``p_a`` is an array; one sample set is shared). 0.0 where
    nothing can be certified (p_a <= p_b, or p_a <= 1/2 binary). The radius is the smallest
    lambda* over the directions searched (THEORY §4): an approximation from above of the true
    infimum over directions, with Monte-Carlo error controlled by ``num_samples``.

    Search knobs: ``search_samples`` samples rank directions at coarse tolerance (the first ones
    of the N), ``particles`` x ``iterations`` particle swarm after the k-sparse candidates,
    ``rtol`` the final relative tolerance on lambda. For an array of p_a, directions are searched
    at ``search_points`` of its values and every p_a is refined along all of them. ``cap``: scales beyond ``cap`` noise units
    (sigma / ||u||_2) are not explored; a direction with no crossing below it reports
    ``found=False`` in the details and the cap as its radius.
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
    num_samples = check_int(num_samples, "num_samples", 1)
    search_samples = check_int(search_samples, "search_samples", 1)
    seed = check_int(seed, "seed", 0)
    rtol = check_positive(rtol, "rtol")
    cap = check_positive(cap, "cap")
    particles = check_int(particles, "particles", 0)
    iterations = check_int(iterations, "iterations", 0)
    search_points = check_int(search_points, "search_points", 1)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    dev = _resolve_device(device)
    impl = backends.get_backend(backend, dev, noise)
    slack = dkw_epsilon(num_samples, beta) if sound else 0.0

    bank = get_sample_bank(noise, num_samples, dim, seed, dtype, dev)
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
                      swarm, slack, seed, cap, sound, fresh, search_points)
        for i, d in zip(np.nonzero(ok)[0], todo):
            details[i] = d
    _enforce_monotone(details)
    if return_details:
        return details[0] if pa_arr.ndim == 0 else np.array(details, dtype=object).reshape(pa_arr.shape)
    radii = np.array([d.radius for d in details]).reshape(pa_arr.shape)
    return float(radii) if pa_arr.ndim == 0 else radii
