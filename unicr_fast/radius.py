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
from typing import Optional, Union

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
    """Margins of scaled directions on a fixed sample matrix, in batched kernel calls."""

    def __init__(self, backend, noise: Noise, eps: torch.Tensor, directions: np.ndarray,
                 p_a: float, p_b: Optional[float], slack: float):
        self.backend, self.noise, self.eps = backend, noise, eps
        self.dirs = directions
        self.nnz = np.array([int(np.count_nonzero(u)) for u in directions])  # sorted: prefix
        self.binary = p_b is None
        pb_eff = (1.0 - p_a) if self.binary else p_b
        # Sound mode (THEORY §6): thresholds at p_a - e, p_b + e; P_Y moved by e in margins().
        self.pa = min(1.0, max(p_a - slack, 1e-300))
        self.pb = min(1.0, max(pb_eff + slack, 0.0))
        self.slack = slack

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
            M = len(r)
            pa = torch.full((M,), self.pa, dtype=torch.float64, device=a.device)
            pb = torch.full((M,), self.pb, dtype=torch.float64, device=a.device)
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


def _radius_one(noise, p_a, p_b, p, dim, bank: SampleBank, backend, search_samples, rtol,
                swarm: SwarmConfig, slack, seed, cap_factor, sound, fresh_bank_fn) -> RadiusDetails:
    t0 = time.perf_counter()
    if (p_b is None and p_a <= 0.5) or (p_b is not None and p_a <= p_b):
        return RadiusDetails(0.0, p_a, p_b, None, True, 0, time.perf_counter() - t0, sound)
    eps_full = bank.samples()
    eps_search = eps_full[: min(search_samples, eps_full.shape[0])]

    def coarse(dirs):
        return _MarginEvaluator(backend, noise, eps_search, dirs, p_a, p_b, slack)

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EA5C4]))
    found = direction_search(_scale_fn(coarse, noise, dim, p, swarm.coarse_rtol, cap_factor),
                             dim, swarm, rng)
    best_dir = directions_from_levels(found.levels[None, :], dim, p)
    evaluator = _MarginEvaluator(backend, noise, eps_full, best_dir, p_a, p_b, slack)
    fine = _refine(evaluator, best_dir, np.array([found.lam]), noise, rtol, cap_factor)
    evals = found.evaluations + fine.evaluations
    radius = float(fine.lam[0])
    fresh_radius = None
    if sound:
        fresh_eps = fresh_bank_fn().samples()
        fresh_eval = _MarginEvaluator(backend, noise, fresh_eps, best_dir, p_a, p_b, slack)
        fresh = _refine(fresh_eval, best_dir, fine.lam, noise, rtol, cap_factor)
        evals += fresh.evaluations
        fresh_radius = float(fresh.lam[0])
        radius = min(radius, fresh_radius)
    return RadiusDetails(radius, p_a, p_b, best_dir[0], bool(fine.found[0]), evals,
                         time.perf_counter() - t0, sound, fresh_radius, found.history)


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
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}")
    if device == "auto":
        cuda_ok = torch.cuda.is_available() and "cuda" in backends.available_backends()
        return torch.device("cuda" if cuda_ok else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:k]', got '{device}'") from None


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
                     return_details: bool = False):
    """Certified l_p radius of a smoothed classifier with top-class probability >= ``p_a``
    (and runner-up <= ``p_b``; ``None`` = binary bound, Theorem 3) under i.i.d. ``noise`` in
    dimension ``dim``.

    Returns a float (an ndarray if ``p_a`` is an array; one sample set is shared). 0.0 where
    nothing can be certified (p_a <= p_b, or p_a <= 1/2 binary). The radius is the smallest
    lambda* over the directions searched (THEORY §4): an approximation from above of the true
    infimum over directions, with Monte-Carlo error controlled by ``num_samples``.

    Search knobs: ``search_samples`` samples rank directions at coarse tolerance (the first ones
    of the N), ``particles`` x ``iterations`` particle swarm after the k-sparse candidates,
    ``rtol`` the final relative tolerance on lambda. ``cap``: scales beyond ``cap`` noise units
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
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    dev = _resolve_device(device)
    impl = backends.get_backend(backend, dev, noise)
    slack = dkw_epsilon(num_samples, beta) if sound else 0.0

    bank = get_sample_bank(noise, num_samples, dim, seed, dtype, dev)
    fresh = lambda: SampleBank(noise, num_samples, dim, seed + 1_000_003, dtype, dev)
    swarm = SwarmConfig(particles=particles, iterations=iterations)
    details = [
        _radius_one(noise, float(pa), p_b, p, dim, bank, impl, search_samples, rtol, swarm,
                    slack, seed, cap, sound, fresh)
        for pa in pa_arr.reshape(-1)
    ]
    _enforce_monotone(details)
    if return_details:
        return details[0] if pa_arr.ndim == 0 else np.array(details, dtype=object).reshape(pa_arr.shape)
    radii = np.array([d.radius for d in details]).reshape(pa_arr.shape)
    return float(radii) if pa_arr.ndim == 0 else radii
