"""Memoised certified radii on a probability grid, so a data set does not redo the search per input.

The radius depends only on (noise, norm, dim, p_a, p_b) and the engine settings. ``RadiusCache``
rounds ``p_a`` DOWN and ``p_b`` UP onto a fixed grid, computes the radius at the grid point once
with ``certified_radius`` and reuses it for every input that rounds to that point.

Soundness: the certified radius is non-decreasing in p_a and non-increasing in p_b (a larger top
class or a smaller runner-up only shrinks the worst-case classifier's reach, docs/theory.md §3), so the
radius at the rounded point never exceeds the radius at the exact bounds: rounding only costs
radius, never over-states it. (With common random numbers the Monte-Carlo margin along a fixed
direction is monotone in the same way; the direction search may end on a different direction for
a different p_a, which the search tolerance already covers.)

Grid (our choice): uniform in logit(p) = log(p / (1 - p)) with step ``step``, i.e. the points
q_k = 1 / (1 + exp(-k * step)). Near p = 1/2 this is uniform in p (spacing ~ step / 4); near 1 it
is uniform in log(1 - p), where radii grow fast (Laplace l1: R = -b log(2 (1 - p)) is linear in it,
heavy tails grow like 1 / (1 - p)). The cost of rounding is bounded everywhere: with dR/dlogit
<= b (Laplace l1), <= 0.63 sigma (Gaussian l2), <= l / 2 (uniform l1), a radius loses at most
step times that. The default step 0.01 is several times below the Clopper–Pearson slack of
n = 100,000 samples at alpha = 0.001 (~0.02 to 0.1 in logit), and p_a in [1/2, 1 - 1e-5] spans
at most ~1150 grid points per (norm, dim).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.special import expit, logit

from .._validation import (check_int, check_norm, check_positive, check_probability_open,
                          check_seed)
from ..noise import Noise
from . import certified_radius, resolve_method


class LogitGrid:
    """The points q_k = expit(k * step) = 1 / (1 + exp(-k * step)), k any integer (the module
    docstring says why logit). Shared by ``RadiusCache`` and ``radius_table.RadiusTable``."""

    def __init__(self, step: float):
        self.step = check_positive(step, "step")

    def point(self, k):
        """q_k for an integer or an integer array k."""
        return expit(np.asarray(k, dtype=np.float64) * self.step)

    def index_down(self, p) -> np.ndarray:
        """The largest k with q_k <= p, for p (scalar or array) in (0, 1)."""
        p = self._inside(p)
        k = np.rint(logit(p) / self.step).astype(np.int64)
        # logit/expit round: settle the last step exactly against the points themselves.
        k = _settle(k, lambda k: self.point(k) > p, -1)
        return _settle(k, lambda k: self.point(k + 1) <= p, +1)

    def index_up(self, p) -> np.ndarray:
        """The smallest k with q_k >= p, for p (scalar or array) in (0, 1)."""
        p = self._inside(p)
        k = np.rint(logit(p) / self.step).astype(np.int64)
        k = _settle(k, lambda k: self.point(k) < p, +1)
        return _settle(k, lambda k: self.point(k - 1) >= p, -1)

    @staticmethod
    def _inside(p) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        inside = (p > 0) & (p < 1)          # False for NaN too
        if not np.all(inside):
            raise ValueError(f"grid indices exist for probabilities in (0, 1) only, got "
                             f"{np.ravel(p)[~np.ravel(inside)][0]}")
        return p


def _settle(k: np.ndarray, wrong, move: int) -> np.ndarray:
    """Move k by ``move`` where ``wrong(k)`` holds, until it holds nowhere."""
    while True:
        bad = wrong(k)
        if not np.any(bad):
            return k
        k = k + move * bad


#: Failure probability (beta of sound mode) of the Monte-Carlo radii behind certificates
#: (docs/theory.md §10): a radius overstates with probability <= 2 beta, so Smooth takes its
#: Clopper-Pearson bound at alpha - 2 beta (5e-5 = alpha / 20 at Cohen et al.'s alpha = 0.001).
MC_RADIUS_BETA = 2.5e-5


def certifying_kwargs(noise: Noise, radius_kwargs: Optional[dict]) -> dict:
    """``radius_kwargs`` for radii that back certificates: where the engine is Monte Carlo, sound
    mode at ``beta`` (default ``MC_RADIUS_BETA``); sound=False there is a ValueError."""
    kwargs = dict(radius_kwargs or {})
    if resolve_method(noise, kwargs.get("method", "auto")) != "mc":
        return kwargs
    if kwargs.get("sound", True) is not True:
        raise ValueError("radius_kwargs sound=False: certificates keep their alpha guarantee "
                         "only with sound Monte-Carlo radii (docs/theory.md §10); drop it, or "
                         "use method='exact' for product noise")
    kwargs["sound"] = True
    kwargs.setdefault("beta", MC_RADIUS_BETA)
    return kwargs


def radius_failure(noise: Noise, radius_kwargs: dict) -> float:
    """Probability that a radius computed with these settings overstates: 0 for exact radii,
    2 beta for sound Monte Carlo; ValueError for Monte Carlo without sound mode."""
    if resolve_method(noise, radius_kwargs.get("method", "auto")) != "mc":
        return 0.0
    return monte_carlo_failure(radius_kwargs)


def monte_carlo_failure(radius_kwargs: dict) -> float:
    """``radius_failure`` of Monte-Carlo radii computed with ``radius_kwargs``."""
    if radius_kwargs.get("sound") is not True:
        raise ValueError("these radii come from Monte Carlo without sound mode, so they can "
                         "overstate with unknown probability; certify with sound=True "
                         "(docs/theory.md §10)")
    return 2.0 * radius_kwargs.get("beta", 1e-3)


# Arguments the cache sets itself; radius_kwargs may hold any other certified_radius keyword.
_RESERVED = {"noise", "p_a", "p_b", "norm", "dim", "num_samples", "seed", "device", "return_details"}


class RadiusCache:
    """Certified radii of one noise, memoised on a logit grid of (p_a, p_b) per (norm, dim).

    ``num_samples``, ``seed``, ``device`` and ``radius_kwargs`` are passed to
    ``certified_radius`` for every grid point. ``hits`` / ``misses`` count lookups answered from
    memory / computed.
    """

    def __init__(self, noise: Noise, *, step: float = 0.01, num_samples: int = 100_000,
                 seed: int = 0, device="auto", radius_kwargs: Optional[dict] = None):
        if not isinstance(noise, Noise):
            raise TypeError(f"noise must be a unicr_fast.noise.Noise, got {type(noise).__name__}")
        self.noise = noise
        self.grid = LogitGrid(step)
        self.step = self.grid.step
        self.num_samples = check_int(num_samples, "num_samples", 1)
        self.seed = check_seed(seed)
        self.device = device
        self.radius_kwargs = dict(radius_kwargs or {})
        reserved = sorted(_RESERVED & set(self.radius_kwargs))
        if reserved:
            raise ValueError(f"radius_kwargs must not set {reserved}: the cache sets them")
        self._radii = {}
        self.hits = self.misses = 0

    # -- grid ------------------------------------------------------------------------------
    def round_down(self, p: float) -> float:
        """The largest grid point <= p (p = 1 is kept: it is exact, not rounded)."""
        p = check_probability_open(p, "p_a", allow_edges=True)
        if p >= 1.0 or p <= 0.0:
            return p
        return float(self.grid.point(self.grid.index_down(p)))

    def round_up(self, p: float) -> float:
        """The smallest grid point >= p (p = 0 is kept)."""
        p = check_probability_open(p, "p_b", allow_edges=True)
        if p >= 1.0 or p <= 0.0:
            return p
        return float(self.grid.point(self.grid.index_up(p)))

    # -- lookups ---------------------------------------------------------------------------
    def radius(self, p_a: float, p_b: Optional[float] = None, norm=2, dim: int = None) -> float:
        """Certified radius at (p_a rounded down, p_b rounded up); ``p_b=None`` is binary."""
        return float(self.radii([p_a], p_b, norm, dim)[0])

    def radii(self, p_a, p_b: Optional[float] = None, norm=2, dim: int = None) -> np.ndarray:
        """Radii for an array of p_a (one p_b). Missing grid points are computed in one
        ``certified_radius`` call, which shares its noise samples between them."""
        if dim is None:
            raise TypeError("dim is required: the input dimension d")
        p, dim = check_norm(norm), check_int(dim, "dim", 1)
        qb = None if p_b is None else self.round_up(p_b)
        qa = [self.round_down(float(v)) for v in np.asarray(p_a, dtype=np.float64).reshape(-1)]
        keys = [(p, dim, a, qb) for a in qa]
        missing = sorted({k[2] for k in keys if k not in self._radii})
        if missing:
            found = certified_radius(self.noise, np.array(missing), qb, p, dim, self.num_samples,
                                     self.seed, self.device, **self.radius_kwargs)
            self._radii.update({(p, dim, a, qb): float(r) for a, r in zip(missing, found)})
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return np.array([self._radii[k] for k in keys]).reshape(np.shape(p_a))

    @property
    def failure(self) -> float:
        """Probability that this cache's radii overstate (``radius_failure``)."""
        return radius_failure(self.noise, self.radius_kwargs)

    def __len__(self) -> int:
        return len(self._radii)

    def clear(self) -> None:
        self._radii.clear()
        self.hits = self.misses = 0
