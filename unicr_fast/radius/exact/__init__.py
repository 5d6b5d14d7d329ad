"""Exact mode: deterministic margins, scales and radii along the k-sparse directions (docs/theory.md §2-§4, §8).

Along ``u_k = k^(-1/p) (1,..,1,0,..,0)`` scaled by ``lambda`` each of the ``k`` shifted coordinates
moves by ``c = lambda k^(-1/p)``, so the log-likelihood ratio is a sum of ``k`` i.i.d. terms,
``L = sum_j l_c(x_j)`` with ``l_c(x) = log phi(x - c) - log phi(x)``. Its law under X is the k-fold
convolution of the 1-D law of ``l_c``; it is computed here deterministically (no sampling), and
docs/theory.md §3 then follows from the X-law alone:

* Symmetry / tilt. For a symmetric ``phi``, ``x -> c - x`` maps X onto Y and ``l_c(c - x) =
  -l_c(x)``, so L under Y has the law of -L under X. Together with ``dP_Y = e^L dP_X`` this is
  the tilt identity ``P_X(L = -t) = e^t P_X(L = t)`` (atoms), ``f_X(-t) = e^t f_X(t)`` (densities).
  Every Y-probability is read off the X-law this way: ``P_Y(L < t) = P_X(L > -t)`` and the tilted
  tie mass ``e^t P_X(L = t)`` is the X-mass at ``-t``. That is exact, needs no second convolution,
  keeps the tie split consistent, and never multiplies a small probability by a large ``e^t``.
  ``L = -inf`` (x - c outside a bounded support) is a separate X-mass: first in ``S_A``, no
  Y-mass; its mirror ``L = +inf`` under Y is first in ``S_B``.
* Ties. Atoms of L are known exactly (positions and masses), so the tie split needs no tolerance:
  ``P_Y(S_A) = P_Y(L < t_A) + frac * P_X(L = -t_A)``, ``frac = (p_a - P_X(L < t_A)) / P_X(L = t_A)``,
  likewise for ``S_B``. Where ``t_A`` is not an atom, ``e^{t_A} (p_a - P_X(L <= t_A))`` is added:
  a rounding-level residual whose term cancels the quantile's rounding error to first order.

The law of L comes from one of four engines, chosen automatically (reported in the details):

``"atoms"`` -- the 1-D law has no continuous part (uniform: ``l_c`` is 0 or -inf). Exact.

``"direct"`` (k = 1) -- the 1-D law itself. ``P_X(l_c <= t)`` is the noise CDF over the level set
    ``{l_c <= t}``: x is split into monotone pieces of ``l_c`` (one piece for log-concave noise;
    at the kinks 0 and c and at the refined local extrema otherwise) and each piece is inverted
    (vectorised Illinois, bracketed by a 4096-point table) until x is known to 16 ulps or
    ``l_c(x) - t`` is at the rounding level of ``l_c`` (cancellation-free forms of ``l_c`` are used
    for the built-in families, so that level is ~1e-16 relative). Laplace-type atoms (``-c/b``
    with mass ``F(0)``, ``c/b`` with mass ``1 - F(c)``) are exact. Error: rounding only.

``"fourier"`` (smooth regime, mostly k >= 10) -- the characteristic function ``psi(w) =
    E_X[e^{i w l_c}]`` is integrated in x (Gauss-Legendre, 20 nodes per panel; panels split at 0
    and c, graded geometrically towards them for ``|x|^beta`` densities, geometric towards the
    tails, which are cut where the noise has 1e-20 mass left; subdivided until ``w * l_c`` turns by
    < 3 radians per panel), raised to the k-th power as ``exp(k log1p(psi - 1))`` (``psi - 1``
    summed directly, so ``k`` up to 1e5+ loses nothing), and inverted as the Fourier series of
    the periodised density on a window ``[lo, lo + P]`` that scales with the spread of the sum:
    ``k E[l_c]`` +- the tighter of Bernstein's bound ``sqrt(2 k Var l_c log(1/eps)) + (2/3) B
    log(1/eps)`` and Chernoff's bound (with the log-MGF of ``l_c`` from the same quadrature),
    clipped to ``k * range(l_c)``. CDF values and quantiles are evaluated from the series directly.
    Error budget (absolute, on every probability): (i) mass outside the window <= 2 eps = 2e-18;
    (ii) series truncation ``sum_{l > N} |psi(w_l)|^k / (pi l)`` with N chosen so that
    ``|psi|^k < 1e-17`` over the last quarter of the series and at spot checks up to ``4 w_N`` (and
    at the lattice frequencies of atoms), i.e. ~1e-16; (iii) quadrature and rounding, ~1e-16
    relative in ``psi - 1`` (its imaginary part in a reflected form that does not cancel as
    c -> 0), so ~1e-16 ``|k log psi|`` <= 4e-15 in ``log psi^k`` where ``|psi^k|`` matters.
    Measured: against the exact normal law of L of Gaussian noise, every CDF value to <= 1e-15
    absolute for k from 2 to 2^40; the Gaussian closed forms to < 1e-10 relative for k up to
    150,528. The engine declines (falls back to the lattice) when the decay needs more than
    4096 terms or 3e6 node-frequency pairs: small k with singular densities of ``l_c``
    (hyperbolic secant, Cauchy: ``|psi| ~ w^(-1/2)``), and Laplace noise while L is still
    lattice-like (``|psi(pi/a)|^k`` not negligible).

``"lattice"`` (everything else) -- ``l_c`` is discretised on the symmetric lattice ``h Z`` (for
    Laplace noise ``a = c/b`` is a lattice point, so the atoms stay exact). The mass of every cell
    ``[jh, (j+1)h]`` is computed exactly (level sets, as in "direct") and split between its two
    end points so that the cell keeps both its mass and its tilted mass ``E[e^l; cell]`` (= the
    mass of the mirror cell, by symmetry; when ``e^h - 1`` is too small for that ratio to survive
    the rounding of the masses -- c -> 0 as p_a -> 1/2, or large k -- it is integrated instead,
    ``e^h m - int_0^h e^u (G(jh + u) - G(jh)) du``). The discretised term thus satisfies the tilt
    identity exactly (to rounding), and so does its k-fold convolution (one real FFT, ``Z^k``):
    the margin is the exact margin of a nearby pair of laws. The discretisation acts like extra
    noise of variance ``~ w_C h^2 / 6`` per term (``w_C``: continuous fraction of the 1-D law): a
    relative error of ``~ w_C h^2 / (12 Var l_c)`` on lambda in the CLT regime. ``h`` is chosen to
    make that ``_LATTICE_TOL = 2e-7`` and the margins at ``h`` and ``h/2`` are
    Richardson-extrapolated, ``(4 m_{h/2} - m_h) / 3``, which removes the ``h^2`` term;
    ``|m_{h/2} - m_h|`` is reported, converted to lambda, as ``error_estimate``. Measured: the
    extrapolated margins agree with the Fourier engine and with an independent k = 2 computation to
    <= 1e-8 (every family), i.e. lambda to ~1e-7 relative or better; the estimate bounds the
    observed error in every test. Roots are first bracketed on a coarse lattice
    (``_LATTICE_TOL_COARSE``), then refined on the accurate one inside a 2e-4 bracket.

Truncating x where the noise has 1e-20 mass left changes every probability by < k * 2e-20.

Ends of p_a. An absolute error ``e`` on the probabilities acts on a radius like an error ``e`` on
p_a: ``e dR/dp_a`` (Gaussian l2: ``sigma e / phi(Phi^-1(p_a))``), which exceeds 1e-6 relative only
near the ends. ``e`` is rounding for "direct" and "atoms", a few ulps (<= 4.4e-16; probabilities
near 1 are rounded to 1.1e-16); <= 2e-15 for "fourier" (measured <= 1e-15, above); margins to
~1e-8 for "lattice" (above). So the closed forms hold to 1e-6 from p_a ~ 1/2 + 1e-9 to
~ 1 - 1e-10, and beyond to ``e dR/dp_a`` (Gaussian, p_a = 1 - 1e-12: 2e-6 relative per 1e-16).
The log-ratios are evaluated in forms that keep their relative accuracy as c -> 0, and the mass
at -inf (bounded support) as ``-expm1(k log1p(-p))``, so that p_a -> 1/2 gives radii -> 0 with
that accuracy. p_a = 1 gives ``inf`` for full support and the finite limit for bounded support.
``lambda*(u_k)`` is never returned below the total-variation bound (the margin is at least
p_a - 1/2 - TV > 0 there, ``TV_1 = P(|X| < c/2)`` by quadrature for the built-in families): the
root search stops there, also where an engine cannot resolve margins of size p_a - 1/2 (the
lattice at tiny shifts, general normal beta < 1, large k).

Scope of ``exact_radius``: the minimum of ``lambda*(u_k)`` over the k-sparse family -- an upper
bound on the radius (the infimum over all directions), equal to it where the worst direction lies
in the family: Gaussian noise in any norm (every direction for l2, the axis k = 1 for p <= 2, the
diagonal k = d for p >= 2), Laplace and uniform noise in l1 (axis), any noise in l_inf (diagonal).
The margin is not monotone in k in general, so k runs over every k <= 16, a geometric grid up to
``dim`` and a refinement around the best k; ``lambda*(u_k)`` is "the first crossing found from a
CLT guess", as in the Monte-Carlo engine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from scipy import fft as sp_fft
from scipy import optimize, special

from ... import noise as noise_mod
from ..._validation import check_int, check_norm, check_positive, check_probability_open
from ...noise import (Cauchy, ExponentialMixture, Gaussian, GeneralNormal, HyperbolicSecant, Laplace,
                    LaplaceGaussianMixture, Noise, Pareto, Uniform)

__all__ = ["exact_margin", "exact_lambda", "exact_radius", "ExactLambda", "ExactRadius",
           "k_grid"]

# Gauss-Legendre rule used on every x-panel.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(20)
#: Tail mass of the noise dropped when x is truncated (per side, per coordinate).
_TAIL_EPS = 1e-20
#: Mass allowed outside the summation window (Bernstein bound, per side).
_WINDOW_EPS = 1e-18
#: |psi_L| below this counts as negligible for the Fourier series.
_FOURIER_TOL = 1e-17
#: Largest number of Fourier terms, and of terms x quadrature nodes, before the lattice engine is
#: used instead.
_FOURIER_MAX_TERMS = 4096
_FOURIER_MAX_WORK = 3e6
#: Target relative variance error of the lattice discretisation before Richardson (accurate
#: margins), and the coarse one used to bracket roots and to prune directions.
_LATTICE_TOL = 2e-7
_LATTICE_TOL_COARSE = 1e-4
#: Largest lattice (FFT length) for the k-fold convolution.
_LATTICE_MAX = 1 << 21
#: Cells of the 1-D lattice at most (the level-set inversions cost O(cells)).
_LATTICE_MAX_CELLS = 1 << 17
#: Points per monotone piece of the table that brackets the level-set inversions.
_TABLE_POINTS = 4096


class _Infeasible(Exception):
    """The Fourier engine cannot reach its tolerance here; the caller falls back to the lattice."""


# ==============================================================================================
# Noise helpers: family structure, stable log-ratios, CDFs, tails


@dataclass
class _Family:
    kind: str                    # "laplace" (atoms at +-c/b), "uniform" (atoms only), "continuous"
    scale: float                 # a length scale of phi (sigma)
    b: float = math.nan          # Laplace scale (kind == "laplace")
    half_width: float = math.inf  # half-width of the support
    monotone: bool = False       # l_c nondecreasing in x (phi log-concave)
    graded: bool = True          # phi has |x|^beta-type singularities at 0: grade panels there


def _effective_components(noise):
    """(weight, component) pairs with non-zero weight of a two-component mixture."""
    w = noise.weight
    return [(wt, comp) for wt, comp in ((w, noise.first), (1 - w, noise.second)) if wt > 0]


def _family(noise: Noise) -> _Family:
    s = float(noise.sigma)
    if isinstance(noise, Gaussian):
        return _Family("continuous", s, monotone=True, graded=False)
    if isinstance(noise, Laplace):
        return _Family("laplace", s, b=noise.b, monotone=True, graded=False)
    if isinstance(noise, HyperbolicSecant):
        return _Family("continuous", s, monotone=True, graded=False)
    if isinstance(noise, GeneralNormal):
        if noise.beta == 1:
            return _Family("laplace", s, b=noise.a, monotone=True, graded=False)
        return _Family("continuous", s, monotone=noise.beta >= 1,
                       graded=noise.beta != round(noise.beta))
    if isinstance(noise, Uniform):
        return _Family("uniform", s, half_width=noise.l, monotone=True, graded=False)
    if isinstance(noise, (Cauchy, Pareto)):
        return _Family("continuous", s, monotone=False, graded=False)
    if isinstance(noise, (LaplaceGaussianMixture, ExponentialMixture)):
        comps = [comp for _, comp in _effective_components(noise)]
        if len(comps) == 1:
            fam = _family(comps[0])
            fam.scale = s
            return fam
        if all(isinstance(cp, (Laplace, GeneralNormal)) and getattr(cp, "beta", 1.0) == 1.0
               for cp in comps):
            b = comps[0].b if isinstance(comps[0], Laplace) else comps[0].a
            return _Family("laplace", s, b=b, monotone=True, graded=False)
        graded = any(isinstance(cp, GeneralNormal) and cp.beta != round(cp.beta) for cp in comps)
        return _Family("continuous", s, monotone=False, graded=graded)
    # Custom or user subclasses: nothing is known but log_pdf (and maybe cdf / support_bound).
    return _Family("continuous", s, half_width=float(noise.support_bound()), monotone=False,
                   graded=True)


def _as_np(t) -> np.ndarray:
    if torch.is_tensor(t):
        t = t.detach().cpu().numpy()
    return np.asarray(t, dtype=np.float64)


def _log_pdf(noise: Noise, x: np.ndarray) -> np.ndarray:
    """log phi(x) in float64 numpy: the formulas of noise.py for the built-in families (numpy is
    several times faster than torch on the many small arrays used here; tests check they agree),
    ``noise.log_pdf`` for anything else."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    t = type(noise)
    if t is Gaussian:
        z = x / noise.sigma
        return -0.5 * z * z - math.log(noise.sigma * math.sqrt(2 * math.pi))
    if t is Laplace:
        return -np.abs(x) / noise.b - math.log(2 * noise.b)
    if t is HyperbolicSecant:
        y = np.abs(x) * (math.pi / (2 * noise.sigma))
        return -y - np.log1p(np.exp(-2 * y)) + math.log(2) - math.log(2 * noise.sigma)
    if t is GeneralNormal:
        return (math.log(noise.beta) - math.log(2 * noise.a) - math.lgamma(1 / noise.beta)
                - (np.abs(x) / noise.a) ** noise.beta)
    if t is Uniform:
        return np.where(np.abs(x) <= noise.l, -math.log(2 * noise.l), -math.inf)
    if t is Cauchy:
        return math.log(noise.sigma / math.pi) - np.log(x * x + noise.sigma ** 2)
    if t is Pareto:
        return (math.log(noise.shape_a / (2 * noise.s))
                - (noise.shape_a + 1) * np.log1p(np.abs(x) / noise.s))
    if t in (LaplaceGaussianMixture, ExponentialMixture):
        w = noise.weight
        lw = math.log(w) if w > 0 else -math.inf
        lv = math.log1p(-w) if w < 1 else -math.inf
        return np.logaddexp(lw + _log_pdf(noise.first, x), lv + _log_pdf(noise.second, x))
    return _as_np(noise.log_pdf(torch.from_numpy(x)))


def _logcosh(y):
    y = np.abs(y)
    return y + np.log1p(np.exp(-2 * y)) - math.log(2.0)


def _log_ratio(noise: Noise, fam: _Family, x: np.ndarray, c: float) -> np.ndarray:
    """l_c(x) = log phi(x - c) - log phi(x) for x in the support of X, in forms that do not
    cancel catastrophically where they can (equal to the generic difference up to rounding)."""
    x = np.asarray(x, dtype=np.float64)
    if isinstance(noise, Gaussian):
        return c * (2 * x - c) / (2 * noise.sigma ** 2)
    if fam.kind == "laplace":
        # |x| - |x - c| = clip(2x - c, -c, c) for c >= 0, exactly: no cancellation for |x| >> c
        return np.clip(2 * x - c, -c, c) / fam.b
    if isinstance(noise, GeneralNormal):
        z = (np.abs(x) / noise.a) ** noise.beta
        near = z - (np.abs(x - c) / noise.a) ** noise.beta
        with np.errstate(divide="ignore", invalid="ignore"):
            # x, x - c on one side of 0: |x - c|^beta = |x|^beta (1 - c/x)^beta; the difference
            # of the powers would lose ~ log10(|x| / c) digits (p_a -> 1/2: c -> 0)
            far = -z * np.expm1(noise.beta * np.log1p(-c / x))
        return np.where((x < 0) | (x > c), far, near)
    if isinstance(noise, HyperbolicSecant):
        k = math.pi / (2 * noise.sigma)
        d = k * c
        if d <= 1:
            # cosh(b + d) / cosh(b) = cosh(d) + tanh(b) sinh(d), b = k (x - c): the difference of
            # the two log-cosh values cancels to ~1e-16 absolute, all of l_c when d is small
            return np.log1p(2 * math.sinh(d / 2) ** 2 + np.tanh(k * (x - c)) * math.sinh(d))
        return _logcosh(k * x) - _logcosh(k * (x - c))
    if isinstance(noise, Cauchy):
        g = noise.sigma
        return np.log1p(c * (2 * x - c) / ((x - c) ** 2 + g * g))
    if isinstance(noise, Pareto):
        # |x - c| - |x| = clip(c - 2x, -c, c), exactly
        return -(noise.shape_a + 1) * np.log1p(np.clip(c - 2 * x, -c, c) / (noise.s + np.abs(x)))
    if isinstance(noise, Uniform):
        return np.where(np.abs(x - c) <= noise.l, 0.0, -math.inf)
    if isinstance(noise, (LaplaceGaussianMixture, ExponentialMixture)):
        # log sum_i pi_i(x) e^{l_i(x)} with the posterior weights pi_i(x) of the components:
        # log1p(sum_i pi_i expm1(l_i)) does not cancel when c (and every l_i) is small
        comps = _effective_components(noise)
        lps = [math.log(wt) + _log_pdf(cp, x) for wt, cp in comps]
        lrs = [_log_ratio(cp, _family(cp), x, c) for _, cp in comps]
        lz = np.logaddexp.reduce(lps, axis=0) if len(lps) > 1 else lps[0]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            small = np.log1p(sum(np.exp(lp - lz) * np.expm1(lr) for lp, lr in zip(lps, lrs)))
        terms = [lp - lz + lr for lp, lr in zip(lps, lrs)]
        large = np.logaddexp.reduce(terms, axis=0) if len(terms) > 1 else terms[0]
        return np.where(np.max(np.abs(lrs), axis=0) < 0.5, small, large)
    lp1, lp0 = _log_pdf(noise, x - c), _log_pdf(noise, x)
    with np.errstate(invalid="ignore"):
        out = lp1 - lp0
    return np.where(np.isneginf(lp1), -math.inf, out)


def _ratio_rounding(noise: Noise, x: np.ndarray, c: float) -> np.ndarray:
    """Size of the terms that _log_ratio subtracts (its rounding error is ~eps times this):
    0 for the cancellation-free forms, |log phi(x)| + |log phi(x - c)| for the generic
    difference."""
    t = type(noise)
    if t in (Gaussian, Laplace, HyperbolicSecant, GeneralNormal, Cauchy, Pareto, Uniform):
        return np.zeros_like(x)
    if t in (LaplaceGaussianMixture, ExponentialMixture):
        return np.max([_ratio_rounding(cp, x, c) for _, cp in _effective_components(noise)], axis=0)
    with np.errstate(invalid="ignore"):
        out = np.abs(_log_pdf(noise, x)) + np.abs(_log_pdf(noise, x - c))
    return np.where(np.isfinite(out), out, 0.0)


_NUMERIC_CDF_CACHE: Dict[int, "_NumericCdf"] = {}


class _NumericCdf:
    """CDF of a symmetric density known only through log_pdf: F(x) = 1/2 + int_0^x phi, by
    Gauss-Legendre panels (uniform near 0, geometric outside) with cumulative sums."""

    def __init__(self, noise: Noise, fam: _Family):
        self.noise = noise
        s = fam.scale
        edges = list(np.linspace(0.0, 4 * s, 65))
        x = 4 * s
        limit = fam.half_width if math.isfinite(fam.half_width) else math.inf
        while x < limit:
            x = min(limit, x * 1.25)
            edges.append(x)
            if not math.isfinite(limit):
                lp = _log_pdf(noise, np.array([x]))[0]
                if lp + math.log(x) < math.log(_TAIL_EPS) - 10 or x > 1e30 * s:
                    break
        self.edges = np.array(edges)
        a, b = self.edges[:-1], self.edges[1:]
        self.panel = self._integrate(a, b)
        self.cum = np.concatenate([[0.0], np.cumsum(self.panel)])
        self.total = self.cum[-1]   # ~ 1/2

    def _integrate(self, a, b):
        mid, half = (a + b) / 2, (b - a) / 2
        xs = mid[:, None] + half[:, None] * _GL_X[None, :]
        ph = np.exp(_log_pdf(self.noise, xs.ravel())).reshape(xs.shape)
        return (ph * _GL_W[None, :]).sum(1) * half

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float64)
        ax = np.abs(x)
        i = np.clip(np.searchsorted(self.edges, ax, side="right") - 1, 0, len(self.edges) - 2)
        inside = ax < self.edges[-1]
        part = np.where(inside, self._integrate(self.edges[i], np.minimum(ax, self.edges[-1])), 0.0)
        half_mass = np.where(inside, self.cum[i] + part, self.total)
        half_mass = half_mass * (0.5 / self.total)
        return np.where(x < 0, 0.5 - half_mass, 0.5 + half_mass)


def _left_tail(noise: Noise, ax: np.ndarray) -> Optional[np.ndarray]:
    """F(-|x|) of the built-in families (formulas of noise.py, in numpy/scipy; tests check that
    they agree with ``noise.cdf``), or None."""
    t = type(noise)
    if t is Gaussian:
        return special.ndtr(-ax / noise.sigma)
    if t is Laplace:
        return 0.5 * np.exp(-ax / noise.b)
    if t is HyperbolicSecant:
        return (2 / math.pi) * np.arctan(np.exp(-ax * math.pi / (2 * noise.sigma)))
    if t is GeneralNormal:
        return 0.5 * special.gammaincc(1 / noise.beta, (ax / noise.a) ** noise.beta)
    if t is Uniform:
        return np.clip((noise.l - ax) / (2 * noise.l), 0.0, 0.5)
    if t is Cauchy:
        return np.arctan2(noise.sigma, ax) / math.pi
    if t is Pareto:
        return 0.5 * (1 + ax / noise.s) ** (-noise.shape_a)
    return None


def _cdf(noise: Noise, fam: _Family, x) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float64)
    if isinstance(noise, noise_mod._Mixture):
        return sum(wt * _cdf(comp, _family(comp), x) for wt, comp in _effective_components(noise))
    left = _left_tail(noise, np.abs(x))
    if left is not None:      # symmetric: F(x) = 1 - F(-x); accurate in the left tail
        return np.where(x < 0, left, 1 - left)
    try:
        return _as_np(noise.cdf(torch.from_numpy(x)))
    except NotImplementedError:
        key = id(noise)
        num = _NUMERIC_CDF_CACHE.get(key)
        if num is None or num.noise is not noise:
            num = _NumericCdf(noise, fam)
            if len(_NUMERIC_CDF_CACHE) > 32:
                _NUMERIC_CDF_CACHE.clear()
            _NUMERIC_CDF_CACHE[key] = num
        return num(x)


def _tail_x(noise: Noise, fam: _Family, eps: float = _TAIL_EPS) -> float:
    """x with P(X > x) <= eps (the half-width for bounded support)."""
    if math.isfinite(fam.half_width):
        return fam.half_width
    if isinstance(noise, noise_mod._Mixture):
        return max(_tail_x(comp, _family(comp), eps) for _, comp in _effective_components(noise))
    try:
        x = -float(_as_np(noise.icdf(torch.tensor(eps, dtype=torch.float64))))
        if math.isfinite(x) and x > 0:
            return x
    except (NotImplementedError, ValueError):
        pass
    x = 4 * fam.scale   # numeric: grow until the (left, by symmetry: no rounding of 1 - F) tail
    while _cdf(noise, fam, np.array([-x]))[0] > eps and x < 1e30 * fam.scale:   # is below eps
        x *= 2
    return x


# ==============================================================================================
# The 1-D law of l_c under X


class _Term:
    """Law of ``l_c(x)``, ``x ~ phi``: exact atoms, the mass at -inf, and the continuous part
    through x-space (quadrature nodes for moments / characteristic function, monotone pieces for
    exact level-set masses)."""

    def __init__(self, noise: Noise, c: float, fam: Optional[_Family] = None):
        self.noise, self.c = noise, float(c)
        self.fam = fam = fam or _family(noise)
        self.F = lambda x: _cdf(noise, fam, x)
        c = self.c
        atoms: List[tuple] = []
        self.p_ninf = 0.0
        if fam.kind == "laplace":
            a = c / fam.b
            atoms = [(-a, float(self.F(np.array([0.0]))[0])), (a, float(self.F(np.array([-c]))[0]))]
            self.x_lo, self.x_hi = 0.0, c
        elif fam.kind == "uniform":
            r = min(1.0, c / (2 * fam.half_width))
            self.p_ninf = r
            if r < 1:
                atoms = [(0.0, 1.0 - r)]
            self.x_lo = self.x_hi = 0.0
        elif math.isfinite(fam.half_width):
            B = fam.half_width
            if c >= 2 * B:
                self.p_ninf, self.x_lo, self.x_hi = 1.0, 0.0, 0.0
            else:
                self.p_ninf = float(self.F(np.array([c - B]))[0])
                self.x_lo, self.x_hi = c - B, B
        else:
            X = _tail_x(noise, fam)
            self.x_lo, self.x_hi = -X, c + X
        self.atoms_v = np.array([v for v, _ in atoms], dtype=np.float64)
        self.atoms_m = np.array([m for _, m in atoms], dtype=np.float64)
        self.has_cont = self.x_hi > self.x_lo
        self.q1 = 1.0 - self.p_ninf                      # finite mass
        self._base_edges = None
        self._node_cache: Dict[int, tuple] = {}
        self._pieces = None
        self._moments = None

    # -- x-space panels and nodes ------------------------------------------------------------
    def _edges(self) -> np.ndarray:
        fam, c, lo, hi = self.fam, self.c, self.x_lo, self.x_hi
        s = fam.scale
        bps = sorted({lo, hi} | {z for z in (0.0, c) if lo < z < hi})
        core_lo, core_hi = max(lo, -4 * s), min(hi, c + 4 * s)
        edges = set(bps)
        for a, b in zip(bps[:-1], bps[1:]):
            ca, cb = max(a, core_lo), min(b, core_hi)
            if cb - ca <= 16 * s:
                n = max(1, int(math.ceil((cb - ca) / (0.5 * s))))
                edges.update(np.linspace(ca, cb, n + 1).tolist())
            elif cb > ca:
                # c >> sigma (heavy tails as p_a -> 1): 0.5 sigma panels within 4 sigma of either
                # end, geometric towards the middle, so the panel count stays O(log(c / sigma))
                half = 0.5 * (cb - ca)
                for z, side in ((ca, 1.0), (cb, -1.0)):
                    edges.update((z + side * np.linspace(0.0, 4 * s, 9)).tolist())
                    x = 4 * s
                    while x < half:
                        x = min(max(x * 1.6, x + 0.5 * s), half)
                        edges.add(z + side * x)
        x = core_hi - c       # right tail, measured from c
        while c + x < hi:
            x = max(x * 1.6, x + 0.5 * s)
            edges.add(min(hi, c + x))
        x = -core_lo          # left tail, measured from 0
        while -x > lo:
            x = max(x * 1.6, x + 0.5 * s)
            edges.add(max(lo, -x))
        if fam.graded:
            for z in (0.0, c):
                if not lo <= z <= hi:
                    continue
                for side in (-1.0, 1.0):
                    d = 0.5 * min(s, c) if (side > 0) == (z == 0.0) and c > 0 else 0.5 * s
                    while d > 1e-13 * max(s, c):
                        y = z + side * d
                        if lo < y < hi:
                            edges.add(y)
                        d *= 0.15
        return np.array(sorted(edges))

    def nodes(self, omega_max: float = 0.0):
        """Quadrature nodes (x, weight * phi(x), l_c(x)) of the continuous part, with panels fine
        enough that omega_max * l_c turns by < 3 radians on each (cached per power-of-2 level)."""
        if self._base_edges is None:
            self._base_edges = self._edges()
            self._base_l = self.l(self._base_edges)
            mids = (self._base_edges[:-1] + self._base_edges[1:]) / 2
            lm = self.l(mids)
            le = self._base_l
            var = np.abs(lm - le[:-1]) + np.abs(le[1:] - lm)
            self._base_var = np.where(np.isfinite(var), var, 0.0)
        level = self._level(omega_max)
        hit = self._node_cache.get(level)
        if hit is not None:
            return hit
        edges = self._base_edges
        if level > 0:
            nsub = self._subdivisions(level)
            if nsub.max() > 1:
                parts = [np.linspace(a, b, n + 1)[:-1] for a, b, n in zip(edges[:-1], edges[1:], nsub)]
                edges = np.concatenate(parts + [edges[-1:]])
        a, b = edges[:-1], edges[1:]
        mid, half = (a + b) / 2, (b - a) / 2
        x = (mid[:, None] + half[:, None] * _GL_X[None, :]).ravel()
        gw = (half[:, None] * _GL_W[None, :]).ravel()
        w = gw * np.exp(_log_pdf(self.noise, x))
        l = self.l(x)
        keep = np.isfinite(l) & (w > 0)
        out = (x[keep], w[keep], l[keep])
        self._node_cache[level] = out
        return out

    def _level(self, omega_max):
        if omega_max <= 0:
            return 0
        return max(0, int(math.ceil(math.log2(max(omega_max * self._base_var.max() / 3.0, 1.0)))))

    def _subdivisions(self, level):
        om = 3.0 * 2.0 ** level / max(self._base_var.max(), 1e-300)
        return np.clip(np.ceil(om * self._base_var / 3.0), 1, 4096).astype(np.int64)

    def node_count(self, omega_max: float) -> int:
        """Number of quadrature nodes ``nodes(omega_max)`` would use (without building them)."""
        self.nodes()
        level = self._level(omega_max)
        return int(len(_GL_X) * (self._subdivisions(level).sum() if level > 0
                                 else len(self._base_edges) - 1))

    def l(self, x):
        return _log_ratio(self.noise, self.fam, x, self.c)

    def masses_k(self, k: int):
        """(P(L finite), P(L = -inf)) for the sum of k terms: ``(1 - p_ninf)^k`` and its
        complement through log1p / expm1, since ``1 - p_ninf`` rounds away most of a tiny
        p_ninf (uniform noise as p_a -> 1/2: p_ninf = c / (2 l) ~ 1e-12)."""
        if self.p_ninf >= 1:
            return 0.0, 1.0
        e = k * math.log1p(-self.p_ninf)
        return math.exp(e), -math.expm1(e)

    # -- moments of the finite part (normalised to mass 1) -----------------------------------
    def moments(self):
        """(mean, sd, B, l_min, l_max, w_cont) of the finite part of l_c, normalised; B bounds
        |l - mean|; w_cont is the fraction of finite mass in the continuous part. Truncated tail
        mass is counted at l = 0."""
        if self._moments is None:
            if self.q1 <= 0:
                self._moments = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
                return self._moments
            vals, wts = [self.atoms_v], [self.atoms_m]
            if self.has_cont:
                _, w, l = self.nodes()
                vals.append(l)
                wts.append(w)
            v, m = np.concatenate(vals), np.concatenate(wts)
            mean = float(v @ m) / self.q1
            var = max(float(((v - mean) ** 2) @ m) / self.q1, 0.0)
            lmin, lmax = (float(v.min()), float(v.max())) if len(v) else (0.0, 0.0)
            lmin, lmax = min(lmin, 0.0), max(lmax, 0.0)
            B = max(abs(lmin - mean), abs(lmax - mean))
            wc = float(1.0 - self.atoms_m.sum() / self.q1)
            self._moments = (mean, math.sqrt(var), B, lmin, lmax, max(wc, 0.0))
        return self._moments

    # -- exact level sets ---------------------------------------------------------------------
    def pieces(self):
        """Monotone pieces of l_c over the continuous region: (x table, l table, sign, F(x_a),
        F(x_b)). Split at the region ends, at the kinks 0 and c, and (noise that is not
        log-concave) at every local extremum of l_c, located on the node table and refined."""
        if self._pieces is not None:
            return self._pieces
        if not self.has_cont:
            self._pieces = []
            return self._pieces
        x, _, _ = self.nodes()
        xt = np.unique(np.concatenate([x, self._base_edges]))
        lt = self.l(xt)
        ok = np.isfinite(lt)
        xt, lt = xt[ok], lt[ok]
        cuts = [z for z in (0.0, self.c) if xt[0] < z < xt[-1]]
        if not self.fam.monotone:
            d = np.diff(lt)
            # changes below the rounding of l (up to ~1e-13 of |log phi| for a generic
            # log-density difference, relative to l itself for the stable forms) are not extrema
            rr = _ratio_rounding(self.noise, xt, self.c)
            noise_l = 1e-13 * np.maximum(rr[:-1], rr[1:])
            tol = np.maximum(1e-12 * (np.abs(lt).max() + 1e-300), noise_l)
            sg = np.where(d > tol, 1, np.where(d < -tol, -1, 0))
            nz = np.nonzero(sg)[0]
            for i0, i1 in zip(nz[:-1], nz[1:]):
                if sg[i0] == sg[i1]:
                    continue
                sgn = float(sg[i0])      # +1: a maximum lies in [xt[i0], xt[i1 + 1]]
                lo_x, hi_x = xt[i0], xt[i1 + 1]
                res = optimize.minimize_scalar(
                    lambda z: -sgn * float(self.l(np.array([z]))[0]), bounds=(lo_x, hi_x),
                    method="bounded", options={"xatol": 1e-14 * max(self.fam.scale, abs(hi_x))})
                cuts.append(float(res.x))
        cuts = np.unique(np.array(cuts, dtype=np.float64))
        if len(cuts):
            xt = np.unique(np.concatenate([xt, cuts]))
            lt = self.l(xt)
        bounds = [0] + sorted(set(np.searchsorted(xt, cuts).tolist())) + [len(xt) - 1]
        pieces = []
        for i, j in zip(bounds[:-1], bounds[1:]):
            if j <= i:
                continue
            xs = xt[i:j + 1]
            if len(xs) < _TABLE_POINTS:   # a dense table: tight brackets for the inversions
                sub = int(math.ceil(_TABLE_POINTS / len(xs)))
                frac = np.arange(sub) / sub
                xs = np.concatenate([(xs[:-1, None] + (xs[1:] - xs[:-1])[:, None] * frac).ravel(),
                                     xs[-1:]])
            ls = self.l(xs)
            sgn = 1.0 if ls[-1] >= ls[0] else -1.0
            ls = np.maximum.accumulate(ls) if sgn > 0 else np.minimum.accumulate(ls)
            Fa, Fb = self.F(np.array([xs[0], xs[-1]]))
            pieces.append((xs, ls, sgn, float(Fa), float(Fb)))
        self._pieces = pieces
        return pieces

    def cont_range(self):
        ps = self.pieces()
        if not ps:
            return 0.0, 0.0
        return (min(min(p[1][0], p[1][-1]) for p in ps), max(max(p[1][0], p[1][-1]) for p in ps))

    def G(self, t) -> np.ndarray:
        """P_X(l_c <= t, x in the continuous region), vectorised over t (exact up to rounding)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        out = np.zeros_like(t)
        for xs, ls, sgn, Fa, Fb in self.pieces():
            lo_l, hi_l = (ls[0], ls[-1]) if sgn > 0 else (ls[-1], ls[0])
            full = t >= hi_l
            out[full] += Fb - Fa
            part = (t > lo_l) & ~full
            if not part.any():
                continue
            tp = t[part]
            xv = self._invert(xs, ls, sgn, tp)
            Fx = self.F(xv)
            out[part] += (Fx - Fa) if sgn > 0 else (Fb - Fx)
        return out

    def _invert(self, xs, ls, sgn, t):
        """x in the piece with l_c(x) = t (vectorised Illinois with bisection safeguard)."""
        if sgn > 0:
            j = np.clip(np.searchsorted(ls, t, side="left"), 1, len(ls) - 1)
        else:
            j = np.clip(len(ls) - np.searchsorted(ls[::-1], t, side="left"), 1, len(ls) - 1)
        a, b = xs[j - 1].copy(), xs[j].copy()
        ga, gb = sgn * (ls[j - 1] - t), sgn * (ls[j] - t)   # increasing in x: ga <= 0 <= gb
        # x to 16 ulps (F(x) then to ~1e-15); tighter brackets are rounding noise in l
        xtol = 16 * np.finfo(float).eps * np.maximum(np.maximum(np.abs(a), np.abs(b)),
                                                     1e-3 * self.fam.scale)
        # |l(x) - t| at the rounding level of l: matched as well as l can be computed
        gtol = 8 * np.finfo(float).eps * (np.abs(t) + np.abs(ls).max()
                                          + _ratio_rounding(self.noise, 0.5 * (a + b), self.c))
        x = 0.5 * (a + b)
        side = np.zeros(len(t), dtype=np.int8)
        active = (b - a > xtol) & (ga < 0) & (gb > 0)
        x = np.where(ga >= 0, a, np.where(gb <= 0, b, x))
        width = b - a
        for it in range(80):
            if not active.any():
                break
            idx = np.nonzero(active)[0]
            A, Bv, GA, GB = a[idx], b[idx], ga[idx], gb[idx]
            with np.errstate(invalid="ignore", divide="ignore"):
                xn = Bv - GB * (Bv - A) / (GB - GA)
            bis = ~((xn > A) & (xn < Bv)) | (it % 4 == 3) & (Bv - A > 0.5 * width[idx])
            xn = np.where(bis, 0.5 * (A + Bv), xn)
            width[idx] = Bv - A
            g = sgn * (self.l(xn) - t[idx])
            left = g < 0
            right = g > 0
            # Illinois: halve the stale end's value when the same end is kept twice
            s_old = side[idx]
            GB = np.where(left & (s_old == -1), GB * 0.5, GB)
            GA = np.where(right & (s_old == 1), GA * 0.5, GA)
            A = np.where(left, xn, A)
            GA = np.where(left, g, GA)
            Bv = np.where(right, xn, Bv)
            GB = np.where(right, g, GB)
            side[idx] = np.where(left, -1, np.where(right, 1, 0))
            a[idx], b[idx], ga[idx], gb[idx] = A, Bv, GA, GB
            moved = np.abs(xn - x[idx])
            x[idx] = xn
            done = ((np.abs(g) <= gtol[idx]) | (Bv - A <= xtol[idx])
                    | ((moved <= xtol[idx]) & ~bis))
            active[idx[done]] = False
        return x

    # -- exact 1-D distribution function -------------------------------------------------------
    def cdf(self, t, strict: bool = False) -> float:
        """P_X(l_c <= t) (or < t), including the mass at -inf."""
        if t == -math.inf:
            return self.p_ninf if not strict else 0.0
        at = self.atoms_m[(self.atoms_v < t) if strict else (self.atoms_v <= t)].sum()
        g = float(self.G(np.array([t]))[0]) if self.has_cont else 0.0
        return self.p_ninf + float(at) + g


# ==============================================================================================
# Laws of L = sum of k terms: a common interface for the margin


class _Law:
    p_ninf = 0.0

    def cdf(self, t: float, strict: bool = False) -> float:   # P_X(L <= t) or P_X(L < t)
        raise NotImplementedError

    def atom(self, t: float) -> float:                        # P_X(L = t)
        return 0.0

    def quantile(self, p: float) -> float:                    # inf{t: P_X(L <= t) >= p}
        raise NotImplementedError


class _DirectLaw(_Law):
    """k = 1: the 1-D law itself, exact."""

    def __init__(self, term: _Term):
        self.term = term
        self.p_ninf = term.p_ninf

    def cdf(self, t, strict=False):
        if t == math.inf:
            return 1.0 if not strict else 1.0
        return self.term.cdf(t, strict)

    def atom(self, t):
        hit = self.term.atoms_v == t
        return float(self.term.atoms_m[hit].sum())

    def _atom_steps(self):
        """(value, P(l < v), P(l <= v)) per atom, computed once per law (quantile() is called
        once per p_b column and lambda by the curve sweep)."""
        if not hasattr(self, "_steps"):
            T = self.term
            self._steps = [(float(v), T.cdf(v, strict=True), T.cdf(v)) for v in np.sort(T.atoms_v)]
        return self._steps

    def _table(self):
        """(grid, P(l <= grid)) over the range of l_c, computed once per law."""
        if not hasattr(self, "_grid"):
            T = self.term
            lo_c, hi_c = T.cont_range()
            vals = np.concatenate([[lo_c, hi_c], T.atoms_v])
            grid = np.linspace(vals.min(), vals.max(), 65)
            at = (T.atoms_v[None, :] <= grid[:, None]) @ T.atoms_m if len(T.atoms_v) else 0.0
            self._grid = (grid, T.p_ninf + T.G(grid) + at)
        return self._grid

    def quantile(self, p):
        T = self.term
        if p <= T.p_ninf:
            return -math.inf
        for v, below, upto in self._atom_steps():
            if below < p <= upto:
                return v
        if not T.has_cont:
            return float(T.atoms_v.max()) if len(T.atoms_v) else -math.inf
        fam = T.fam
        if fam.monotone and fam.kind == "continuous" and T.p_ninf == 0:
            try:   # l_c nondecreasing: the p-quantile of l_c is l_c(F^-1(p))
                xq = float(_as_np(T.noise.icdf(torch.tensor(p, dtype=torch.float64))))
                if math.isfinite(xq) and T.x_lo < xq < T.x_hi:
                    return float(T.l(np.array([xq]))[0])
            except (NotImplementedError, ValueError):
                pass
        grid, cd = self._table()
        i = int(np.searchsorted(cd, p, side="left"))
        if i == 0:
            return float(grid[0])
        if i >= len(grid):
            return float(grid[-1])
        f = lambda t: T.cdf(t) - p
        a, b = grid[i - 1], grid[i]
        fa, fb = f(a), f(b)
        if fa >= 0 or fb <= 0:     # p within rounding of the table value: an end is the quantile
            return float(a if fa >= 0 else b)
        # disp=False: with p within the rounding of F (p_a one ulp from 1) Brent's steps can stall
        # on that noise; the last iterate is then as good as F resolves
        return optimize.brentq(f, a, b, xtol=1e-15 * max(1.0, abs(b)),
                               rtol=4 * np.finfo(float).eps, maxiter=200, disp=False)


class _AtomLaw(_Law):
    """A law with finitely many atoms (plus mass at -inf): the uniform case, and lattices."""

    def __init__(self, values: np.ndarray, masses: np.ndarray, p_ninf: float):
        order = np.argsort(values)
        self.v, self.m = np.asarray(values, float)[order], np.asarray(masses, float)[order]
        self.cum = p_ninf + np.cumsum(self.m)
        self.p_ninf = p_ninf

    def cdf(self, t, strict=False):
        i = np.searchsorted(self.v, t, side="left" if strict else "right")
        return float(self.cum[i - 1]) if i > 0 else (self.p_ninf if t > -math.inf or not strict else 0.0)

    def atom(self, t):
        i = np.searchsorted(self.v, t)
        return float(self.m[i]) if i < len(self.v) and self.v[i] == t else 0.0

    def quantile(self, p):
        if p <= self.p_ninf:
            return -math.inf
        i = int(np.searchsorted(self.cum, p, side="left"))
        return float(self.v[min(i, len(self.v) - 1)])


class _LatticeLaw(_AtomLaw):
    """Masses M[s] at the points (s0 + s) h: exact index arithmetic for atom(t), atom(-t)."""

    def __init__(self, s0: int, h: float, masses: np.ndarray, p_ninf: float):
        self.s0, self.h = int(s0), float(h)
        self.m = np.asarray(masses, dtype=np.float64)
        self.v = (self.s0 + np.arange(len(self.m))) * self.h
        self.cum = p_ninf + np.cumsum(self.m)
        self.p_ninf = p_ninf

    def atom(self, t):
        r = t / self.h
        s = int(round(r))
        if abs(r - s) > 1e-9 * max(1.0, abs(r)):
            return 0.0
        i = s - self.s0
        return float(self.m[i]) if 0 <= i < len(self.m) else 0.0


class _FourierLaw(_Law):
    """Continuous law of L from its characteristic function on the window [lo, lo + P]."""

    def __init__(self, lo, P, coef, p_ninf, mean, sd):
        self.lo, self.P = lo, P
        n = len(coef)
        self.ell = np.arange(1, n + 1, dtype=np.float64)
        self.omega = 2 * math.pi * self.ell / P
        self.coef = coef                  # psi_L(w_l) e^{-i w_l lo}
        self.p_ninf = p_ninf
        self.mass = 1.0 - p_ninf
        self.mean, self.sd = mean, sd

    def _F(self, t):
        x = np.atleast_1d(np.asarray(t, dtype=np.float64)) - self.lo
        ph = np.exp(-1j * np.outer(x, self.omega))
        s = ((self.coef[None, :] * (ph - 1)).imag / (math.pi * self.ell[None, :])).sum(1)
        F = x / self.P - s
        F = np.where(x <= 0, 0.0, np.where(x >= self.P, 1.0, F))
        return np.clip(F, 0.0, 1.0)

    def _f(self, t):
        x = np.atleast_1d(np.asarray(t, dtype=np.float64)) - self.lo
        ph = np.exp(-1j * np.outer(x, self.omega))
        return 1.0 / self.P + (2.0 / self.P) * (self.coef[None, :] * ph).real.sum(1)

    def cdf(self, t, strict=False):
        if t == -math.inf:
            return 0.0 if strict else self.p_ninf
        if t == math.inf:
            return 1.0
        return self.p_ninf + self.mass * float(self._F(t)[0])

    def quantile(self, p):
        if p <= self.p_ninf:
            return -math.inf
        q = min((p - self.p_ninf) / self.mass, 1.0)
        a, b = self.lo, self.lo + self.P
        if q >= 1.0:
            return b
        t = self.mean + self.sd * float(special.ndtri(min(max(q, 1e-300), 1 - 1e-16)))
        t = min(max(t, a), b)
        for _ in range(200):
            F = float(self._F(t)[0]) - q
            if F < 0:
                a = t
            else:
                b = t
            if F == 0 or b - a <= 1e-15 * max(1.0, abs(t)):
                break
            f = float(self._f(t)[0])
            tn = t - F / f if f > 0 else math.nan
            if not (a < tn < b) or abs(tn - t) > 0.5 * (b - a):
                tn = 0.5 * (a + b)
            if abs(tn - t) <= 1e-15 * max(1.0, abs(t)):
                t = tn
                break
            t = tn
        return t


# ==============================================================================================
# Engines: the law of L for given term and k


def _log_mgf(term: _Term, theta: np.ndarray) -> np.ndarray:
    """K(theta) = log E[e^{theta l_c}] of the normalised finite part (nodes; truncated mass at 0)."""
    vals, logw = [term.atoms_v], [np.log(np.maximum(term.atoms_m, 1e-300))]
    if term.has_cont:
        _, w, l = term.nodes()
        vals.append(l)
        logw.append(np.log(w))
        lost = term.q1 - term.atoms_m.sum() - w.sum()
        if lost > 0:
            vals.append(np.zeros(1))
            logw.append(np.array([math.log(lost)]))
    v, lw = np.concatenate(vals), np.concatenate(logw)
    return special.logsumexp(lw[None, :] + theta[:, None] * v[None, :], axis=1) - math.log(term.q1)


def _window(term: _Term, k: int, h: float = 0.0):
    """[lo, hi] holding all but 2 * _WINDOW_EPS of the finite part of L: the tighter of Bernstein's
    and Chernoff's bounds (K from the quadrature), within k * [l_min, l_max]."""
    return _window_parts([(term, k)], h)


def _parts_moments(parts):
    """(mean, sd, B, l_min, l_max) of a sum of independent terms: k_b copies of term_b each."""
    ms = [(k, t.moments()) for t, k in parts]
    mean = sum(k * m[0] for k, m in ms)
    sd = math.sqrt(sum(k * m[1] ** 2 for k, m in ms))
    return (mean, sd, max(m[2] for _, m in ms), sum(k * m[3] for k, m in ms),
            sum(k * m[4] for k, m in ms))


def _window_parts(parts, h: float = 0.0):
    """``_window`` for a sum over parts [(term, k)] (block profiles): Bernstein with the summed
    variance and the largest bound B, Chernoff with the summed log-MGFs."""
    mean, sd, B, lmin, lmax = _parts_moments(parts)
    Lg = math.log(1.0 / _WINDOW_EPS)
    u = math.sqrt(2 * Lg) * sd + (2.0 / 3.0) * B * Lg
    lo, hi = max(mean - u, lmin), min(mean + u, lmax)
    if sd > 0:
        th = math.sqrt(2 * Lg) / sd * np.array([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0])
        Kp = sum(kb * _log_mgf(t, th) for t, kb in parts)
        Km = sum(kb * _log_mgf(t, -th) for t, kb in parts)
        hi = min(hi, float(np.min((Kp + Lg) / th)))
        lo = max(lo, float(np.max((Km + Lg) / -th)))
    pad = 0.02 * (hi - lo) + 4 * h + 1e-12 * max(1.0, abs(lo), abs(hi))
    return lo - pad, hi + pad


def _log1p_complex(z, k: float = 1.0):
    """k * log(1 + z), accurate for small z; -inf real part where 1 + z = 0."""
    with np.errstate(divide="ignore"):
        re = 0.5 * np.log1p(2 * z.real + (z.real ** 2 + z.imag ** 2))
    im = np.arctan2(z.imag, 1 + z.real)
    return (k * re) + 1j * (k * im)


def _half_tilt(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """m (e^v - 1) / 2, without overflowing where e^v is huge but m e^v (a mirror mass) is not."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return 0.5 * np.where(v < 1, m * np.expm1(v), np.exp(np.log(m) + v) - m)


def _psi_minus_one(term: _Term, omega: np.ndarray) -> np.ndarray:
    """(E_X[e^{i w l_c}; finite] - q1) / q1 for the normalised finite part, accurately near 0.

    The imaginary part uses the reflection x -> c - x (l -> -l, phi(x) -> phi(x) e^l):
    ``E[sin(w l)] = -E[sin(w l) (e^l - 1)] / 2``. The plain sum cancels from terms ~ w c down to
    ~ w E[l] ~ w c^2 (relative error eps / c, then k times in psi^k: large k, p_a -> 1/2); this
    one has no cancellation while |w l| < pi."""
    out = np.zeros(len(omega), dtype=np.complex128)
    if term.has_cont:
        _, w, l = term.nodes(float(np.max(np.abs(omega))) if len(omega) else 0.0)
        wt = _half_tilt(l, w)
        for i0 in range(0, len(omega), 256):
            A = np.outer(omega[i0:i0 + 256], l)
            hs = np.sin(0.5 * A)
            out[i0:i0 + 256] = (-2 * hs * hs) @ w - 1j * (np.sin(A) @ wt)
    if len(term.atoms_v):
        A = np.outer(omega, term.atoms_v)
        hs = np.sin(0.5 * A)
        out += (-2 * hs * hs) @ term.atoms_m - 1j * (np.sin(A) @ _half_tilt(term.atoms_v,
                                                                            term.atoms_m))
    return out / term.q1


def _fourier_law(term: _Term, k: int) -> _FourierLaw:
    """Law of L by Fourier inversion of psi^k (module doc); raises _Infeasible if psi^k does not
    decay below _FOURIER_TOL within _FOURIER_MAX_TERMS terms."""
    return _fourier_law_parts([(term, k)])


def _fourier_law_parts(parts) -> _FourierLaw:
    """``_fourier_law`` for a sum over parts [(term, k)]: psi_L = prod psi_b^k_b (block
    profiles, docs/theory.md §9). With several parts the atoms of the sum no longer sit on one
    lattice, so their total mass ``prod (atom mass_b)^k_b`` must be negligible (else
    _Infeasible: the lattice engine takes it)."""
    mean, sd, B, lmin, lmax = _parts_moments(parts)
    if sd <= 0:
        raise _Infeasible("degenerate term")
    if len(parts) > 1:
        log_atoms = sum(k * math.log(max(t.atoms_m.sum() / t.q1, 1e-300)) if len(t.atoms_v)
                        else -math.inf for t, k in parts)
        if log_atoms > math.log(_FOURIER_TOL):
            raise _Infeasible("atoms of the sum")
    lo, hi = _window_parts(parts)
    P = hi - lo
    dw = 2 * math.pi / P
    log_tol = math.log(_FOURIER_TOL)

    def log_psi(omega):
        return sum(_log1p_complex(_psi_minus_one(t, omega), k) for t, k in parts)

    def logabs(ell):
        return log_psi(np.asarray(ell, float) * dw).real

    def affordable(n_terms):
        """Work of n_terms frequencies on the nodes they need (sin evaluations)."""
        nodes = sum(t.node_count(n_terms * dw * 4.0) for t, _ in parts)
        return n_terms <= _FOURIER_MAX_TERMS and n_terms * nodes <= _FOURIER_MAX_WORK

    # 0. atoms on a lattice: |psi| comes back near 1 at the lattice frequencies; check those first
    for term, _ in parts:
        if len(term.atoms_v) > 1:
            gap = np.min(np.diff(np.sort(term.atoms_v)))
            if gap > 0:
                peaks = 2 * math.pi / gap * np.array([1.0, 2.0, 3.0])
                if np.any(log_psi(peaks).real > log_tol):
                    raise _Infeasible("lattice peaks of the atoms")

    # 1. geometric pre-scan: where does |psi|^k fall below the tolerance (and stay there)?
    n0 = max(8, int(math.ceil(0.5 * math.sqrt(2 * 45.0) / sd / dw)))
    N, below = n0, 0
    while below < 2:
        if not affordable(N):
            raise _Infeasible("slow decay")
        below = below + 1 if logabs([N])[0] < log_tol else 0
        N *= 2
    N //= 2
    # 2. the series itself, grown until the last quarter is negligible
    N = max(16, N // 2)
    logpsi = np.zeros(0, dtype=np.complex128)
    while True:
        ell = np.arange(len(logpsi) + 1, N + 1, dtype=np.float64)
        logpsi = np.concatenate([logpsi, log_psi(ell * dw)])
        big = np.nonzero(logpsi.real > log_tol)[0]
        last = int(big[-1]) + 1 if len(big) else 0
        if last <= 0.75 * N:
            break
        N *= 2
        if not affordable(N):
            raise _Infeasible("slow decay")
    # 3. spot checks beyond the series, and at the lattice peaks of atoms
    spots = dw * N * np.array([1.25, 1.5, 2.0, 3.0, 4.0])
    if np.any(log_psi(spots).real > log_tol):
        raise _Infeasible("psi^k does not decay beyond the series")
    n_use = max(last, 1)
    ell = np.arange(1, n_use + 1, dtype=np.float64)
    coef = np.exp(logpsi[:n_use] - 1j * ell * dw * lo)
    log_finite = sum(k * math.log1p(-t.p_ninf) if t.p_ninf < 1 else -math.inf for t, k in parts)
    return _FourierLaw(lo, P, coef, -math.expm1(log_finite), mean, sd)


@dataclass
class _LatticeSpec:
    """Lattice resolution fixed for one root-finding in lambda: h = kappa * c (Laplace: c/b = M h)."""
    kappa: float
    M: int = 0


def _lattice_spec(term: _Term, k: int, tol: float = _LATTICE_TOL) -> _LatticeSpec:
    mean, sd, B, lmin, lmax, wc = term.moments()
    c = term.c
    h = sd * math.sqrt(6 * tol / max(wc, 1e-300))
    lo_c, hi_c = term.cont_range()
    width = max(hi_c - lo_c, 1e-300)
    h = min(h, width / 16)
    # budget: cells of the 1-D lattice and length of the k-fold window
    span1 = 2 * max(abs(lmin), abs(lmax))
    lo, hi = _window(term, k)
    h = max(h, span1 / _LATTICE_MAX_CELLS, (hi - lo) / (0.9 * _LATTICE_MAX))
    if term.fam.kind == "laplace":
        a = c / term.fam.b
        M = max(2, int(math.ceil(a / h)))
        return _LatticeSpec(kappa=1.0 / (term.fam.b * M), M=M)
    return _LatticeSpec(kappa=h / c)


def _lattice_law(term: _Term, k: int, h: float) -> _LatticeLaw:
    """k-fold convolution of the tilt-consistent lattice discretisation of l_c (module doc)."""
    lo_c, hi_c = term.cont_range() if term.has_cont else (0.0, 0.0)
    ext = max(abs(lo_c), abs(hi_c), *(np.abs(term.atoms_v).tolist() or [0.0]))
    lo, hi = _window(term, k)
    h_min = max(ext / _LATTICE_MAX_CELLS, (hi - lo) / _LATTICE_MAX)
    if h < h_min:
        # the plan fixes h / c (continuity in lambda), but l_c's range or L's window can shrink
        # slower than c (general normal beta < 1 as c -> 0): coarsen rather than outgrow twice
        # the budgets, keeping a = c / b a lattice point for Laplace (at most h = a: huge k)
        a = float(np.max(np.abs(term.atoms_v))) if len(term.atoms_v) else 0.0
        h = a / max(1, math.floor(a / h_min)) if a > 0 else h_min
    return _lattice_law_parts([(term, k)], h)


def _lattice_masses(term: _Term, h: float):
    """(J, z): the tilt-consistent discretisation of l_c on the points j h, j = -J..J (module
    doc, "lattice"): z[j + J] is the mass at j h."""
    lo_c, hi_c = term.cont_range() if term.has_cont else (0.0, 0.0)
    ext = max(abs(lo_c), abs(hi_c), *(np.abs(term.atoms_v).tolist() or [0.0]))
    J = int(math.ceil(ext / h)) + 1
    z = np.zeros(2 * J + 1)                      # points j h, j = -J..J  (index j + J)
    if term.has_cont:
        edges = np.arange(-J, J + 1) * h
        Gv = term.G(edges)
        m = np.maximum(np.diff(Gv), 0.0)         # cells [jh, (j+1)h], j = -J..J-1
        em1 = math.expm1(h)
        if 4 * np.finfo(float).eps < 1e-6 * em1 * m.max():
            # the masses' rounding (~eps) is small against the tilt of the largest cell
            mt = m[::-1]                          # tilted mass = mass of the mirror cell
            j = np.arange(-J, J)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                rho = np.exp(np.log(mt) - j * h - np.log(m))       # in [1, e^h] exactly
                frac_lo = (em1 - (rho - 1.0)) / em1
            frac_lo = np.where(np.isfinite(frac_lo), np.clip(frac_lo, 0.0, 1.0),
                               np.where(rho > 1, 0.0, 1.0))
        else:
            # rho - 1 ~ h would be lost in that rounding (small c: p_a -> 1/2, large k). The
            # tilted mass without cancellation, by parts: E[e^(l - jh); cell] =
            # e^h m - int_0^h e^u (G(jh + u) - G(jh)) du, by the midpoint rule in u (an O(h^2)
            # error, like the discretisation's own); the rounding of G now enters the split
            # relative to m, not to m (e^h - 1)
            below = h * math.exp(h / 2) * (term.G(edges[:-1] + h / 2) - Gv[:-1])
            with np.errstate(divide="ignore", invalid="ignore"):
                frac_lo = np.clip(below / (m * em1), 0.0, 1.0)
        frac_lo = np.where(m > 0, frac_lo, 0.0)
        u = m * frac_lo
        z[:-1] += u
        z[1:] += m - u
    for v, mass in zip(term.atoms_v, term.atoms_m):
        r = v / h
        s = int(round(r))
        if abs(r - s) <= 1e-6:
            z[s + J] += mass
            continue
        # off the lattice (block profiles: one h for several shifts): split between the two
        # neighbours keeping the mass and the tilted mass m e^v, as the cells are
        j = int(math.floor(r))
        up = mass * math.expm1(v - j * h) / math.expm1(h)
        z[j + J] += mass - up
        z[j + 1 + J] += up
    return J, z


def _lattice_law_parts(parts, h: float) -> _LatticeLaw:
    """Law of the sum over parts [(term, k)] on the lattice h Z: the product of the parts'
    discretisations' transforms, each to its power k (one real FFT)."""
    ones = [(k, *_lattice_masses(t, h)) for t, k in parts]
    J_sum = sum(k * J for k, J, _ in ones)
    lo, hi = _window_parts(parts, h)
    s_lo = max(int(math.floor(lo / h)), -J_sum)
    s_hi = min(int(math.ceil(hi / h)), J_sum)
    n = sp_fft.next_fast_len(max(s_hi - s_lo + 1, *(2 * J + 1 for _, J, _ in ones)), real=True)
    Zk = 1.0
    for k, _, z in ones:
        Z = sp_fft.rfft(z, n)
        Zk = Zk * (Z ** k if k < 64 else np.exp(k * np.log(Z + 0j)))
    Mfull = sp_fft.irfft(Zk, n)
    # result index r holds the sum point -J_sum + r (mod n)
    s = np.arange(s_lo, s_lo + n)
    M = Mfull[(s + J_sum) % n]
    M = np.where(M > 0, M, 0.0)
    log_finite = sum(k * math.log1p(-t.p_ninf) if t.p_ninf < 1 else -math.inf for t, k in parts)
    return _LatticeLaw(s_lo, h, M, -math.expm1(log_finite))


# ==============================================================================================
# Margin from a law (docs/theory.md §3, with the symmetry/tilt identity of the module doc)


def _tie_continuous(t: float, r: float) -> float:
    """e^t r for a quantile t that is not an atom: r is a rounding-level residual and the term
    cancels the quantile's rounding error to first order; anything larger is not a residual."""
    if r == 0:
        return 0.0
    return max(-1e-8, min(1e-8, math.exp(min(t, 700.0)) * r))


def _py_sa(law: _Law, p_a: float) -> float:
    if p_a >= 1:
        return 1.0 - law.p_ninf                    # S_A = supp X: all of Y except L = +inf
    t = law.quantile(p_a)
    if t == -math.inf:
        return 0.0
    py_lt = 1.0 - law.cdf(-t)                     # P_Y(L < t) = P_X(L > -t)
    below = law.cdf(t, strict=True)
    m = law.atom(t)
    if m > 0:
        frac = min(max((p_a - below) / m, 0.0), 1.0)
        tie = frac * law.atom(-t)                  # e^t P_X(L = t) = P_X(L = -t)
    else:
        tie = _tie_continuous(t, p_a - below)
    return py_lt + tie


def _py_sb(law: _Law, p_b: float) -> float:
    if p_b <= 0:
        return law.p_ninf                          # Y-mass at +inf (mirror of X at -inf)
    if p_b >= 1 - law.p_ninf:
        return 1.0
    t = law.quantile(1.0 - p_b)
    if t == -math.inf:
        return 1.0
    py_gt = law.cdf(-t, strict=True)               # P_Y(L > t) = P_X(L < -t), incl. -inf
    above = 1.0 - law.cdf(t)
    m = law.atom(t)
    if m > 0:
        frac = min(max((p_b - above) / m, 0.0), 1.0)
        tie = frac * law.atom(-t)
    else:
        tie = _tie_continuous(t, p_b - above)
    return py_gt + tie


def _margin_of_law(law: _Law, p_a: float, p_b: Optional[float]) -> float:
    sa = _py_sa(law, p_a)
    if p_b is None:
        return sa - 0.5
    return sa - _py_sb(law, p_b)


# ==============================================================================================
# Engine selection and the margin as a function of lambda


@dataclass
class _Plan:
    """How margins along u_k are computed during one root-finding: the engine and, for the
    lattice, kappa = h / c (fixed, so that the margin is a continuous function of lambda)."""
    engine: str                      # "atoms" | "direct" | "fourier" | "lattice"
    kappa: float = math.nan
    tol: float = _LATTICE_TOL


def _shift(lam: float, k: int, p: float) -> float:
    return lam if math.isinf(p) else lam * k ** (-1.0 / p)


def _lattice_plan(term: _Term, k: int, tol: float) -> _Plan:
    return _Plan("lattice", _lattice_spec(term, k, tol).kappa, tol)


def _plan(noise: Noise, fam: _Family, k: int, c: float, engine: str = "auto",
          tol: float = _LATTICE_TOL) -> _Plan:
    term = _Term(noise, c, fam)
    if not term.has_cont:
        return _Plan("atoms")
    if engine == "auto":
        if k == 1:
            return _Plan("direct")
        try:
            _fourier_law(term, k)
            return _Plan("fourier")
        except _Infeasible:
            return _lattice_plan(term, k, tol)
    if engine == "lattice":
        return _lattice_plan(term, k, tol)
    if engine == "direct" and k != 1:
        raise ValueError(f"engine 'direct' needs k = 1, got k = {k}")
    return _Plan(engine)


def _laws_at(noise: Noise, fam: _Family, k: int, c: float, plan: _Plan):
    """The law of L along u_k at shift c > 0 as [(weight, law)]: one law, or for the lattice the
    pair at h and h/2 whose combination (4 x_{h/2} - x_h) / 3 is Richardson's (it removes the
    h^2 term of any smooth function x of the law: a margin, a point of the ROC)."""
    term = _Term(noise, c, fam)
    if plan.engine == "atoms" or not term.has_cont:
        if len(term.atoms_v) > 1:
            raise RuntimeError("several atoms without a continuous part are not supported")
        finite, ninf = term.masses_k(k)     # the single atom (if any) holds the finite mass
        return [(1.0, _AtomLaw(term.atoms_v * k, np.full(len(term.atoms_v), finite), ninf))]
    if plan.engine == "direct":
        return [(1.0, _DirectLaw(term))]
    if plan.engine == "fourier":
        return [(1.0, _fourier_law(term, k))]
    h = plan.kappa * c
    return [(-1.0 / 3.0, _lattice_law(term, k, h)), (4.0 / 3.0, _lattice_law(term, k, h / 2))]


def _margin_at(noise: Noise, fam: _Family, k: int, c: float, p_a: float, p_b: Optional[float],
               plan: _Plan):
    """(margin, error estimate). The estimate is |m(h/2) - m(h)| for the lattice (the size of the
    h^2 term Richardson removes), 0 for the other engines (rounding level)."""
    if c <= 0:
        return p_a - (0.5 if p_b is None else p_b), 0.0
    laws = _laws_at(noise, fam, k, c, plan)
    ms = [_margin_of_law(law, p_a, p_b) for _, law in laws]
    if len(ms) == 1:
        return ms[0], 0.0
    return (4 * ms[1] - ms[0]) / 3, abs(ms[1] - ms[0])


# ==============================================================================================
# Public API


_ENGINES = ("auto", "direct", "fourier", "lattice")


def _check_noise(noise):
    if not isinstance(noise, Noise):
        raise TypeError(f"noise must be a unicr_fast.noise.Noise, got {type(noise).__name__}")


def _check_probs(p_a, p_b):
    p_a = check_probability_open(p_a, "p_a", allow_edges=True)
    if p_a <= 0:
        raise ValueError(f"p_a must lie in (0, 1], got {p_a}")
    if p_b is not None:
        p_b = check_probability_open(p_b, "p_b", allow_edges=True)
    return p_a, p_b


def _check_engine(engine):
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {_ENGINES}, got {engine!r}")
    return engine


def _certifiable(p_a, p_b):
    return p_a > (0.5 if p_b is None else p_b)


def exact_margin(noise: Noise, lam, k, p, p_a, p_b=None, *, engine: str = "auto") -> float:
    """Margin ``m(lambda u_k)`` of docs/theory.md §3 from the exact law of L (module doc).

    ``u_k`` is the k-sparse equal-magnitude direction with ``||u_k||_p = 1``: each of the ``k``
    shifted coordinates moves by ``lam * k^(-1/p)``. Binary (``p_b=None``): ``P_Y(S_A) - 1/2``;
    multiclass: ``P_Y(S_A) - P_Y(S_B)``. Positive means certified at that shift. ``engine``:
    "auto" (default), "direct" (k = 1 only), "fourier" or "lattice" (module doc).
    """
    _check_noise(noise)
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)):
        raise TypeError(f"lam must be a real number, got {type(lam).__name__}")
    lam = float(lam)
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be finite and >= 0, got {lam}")
    k = check_int(k, "k", 1)
    p = check_norm(p)
    p_a, p_b = _check_probs(p_a, p_b)
    _check_engine(engine)
    fam = _family(noise)
    c = _shift(lam, k, p)
    if c <= 0:
        return p_a - (0.5 if p_b is None else p_b)
    plan = _plan(noise, fam, k, c, engine)
    try:
        return _margin_at(noise, fam, k, c, p_a, p_b, plan)[0]
    except _Infeasible:
        if engine == "fourier":
            raise ValueError("engine='fourier' cannot reach its tolerance here; use 'auto'") from None
        return _margin_at(noise, fam, k, c, p_a, p_b, _lattice_plan(_Term(noise, c, fam), k,
                                                                     _LATTICE_TOL))[0]


@dataclass
class ExactLambda:
    """lambda*(u_k) and how it was computed."""
    lam: float
    k: int
    engine: str
    found: bool                    # False: the margin stayed positive up to the cap (lam = inf)
    evaluations: int
    error_estimate: float = 0.0    # lattice: the lambda shift of the h^2 term Richardson removed
    seconds: float = 0.0
    slope: Optional[float] = None  # dm/dlog(lambda) at the root (used to warm-start neighbours)


def _clt_guess(noise, fam, k, p, p_a, p_b) -> float:
    """lambda from the CLT: L ~ N(-s^2/2, s^2) with s^2 = k Var(l_c) ~ k c^2 I (Fisher)."""
    qa = float(special.ndtri(min(p_a, 1 - 1e-16)))
    s = qa if p_b is None else 0.5 * (qa - float(special.ndtri(max(p_b, 1e-300))))
    s = min(max(s, 1e-300), 40.0)     # no lower clamp: s ~ p_a - 1/2 near 1/2
    if fam.kind == "uniform":
        c = 2 * fam.half_width * min(1.0, (2 * p_a - 1) / k)
    else:
        c0 = 1e-2 * fam.scale
        sd = _Term(noise, c0, fam).moments()[1]
        fisher = (sd / c0) ** 2 if sd > 0 else 1.0 / fam.scale ** 2
        c = s / math.sqrt(k * fisher)
    return c if math.isinf(p) else c * k ** (1.0 / p)


def _tv_of(noise, fam, k, p):
    """lambda -> TV(X, X + lambda u_k) bound ``1 - (1 - TV_1)^k`` (the product coupling), or None
    for noise outside the catalogue. For the built-in families (symmetric, density decreasing in
    |x|) TV_1 = P(|X| < c/2), by quadrature on [0, c/2] so that it keeps its relative accuracy
    as c -> 0."""
    if type(noise) not in (Gaussian, Laplace, HyperbolicSecant, GeneralNormal, Uniform, Cauchy,
                           Pareto, LaplaceGaussianMixture, ExponentialMixture):
        return None

    def tv(lam):
        x = 0.5 * _shift(lam, k, p)
        if x <= fam.scale:
            tv1 = x * float(_GL_W @ np.exp(_log_pdf(noise, 0.5 * x * (_GL_X + 1))))
        else:
            tv1 = 1 - 2 * float(_cdf(noise, fam, np.array([-x]))[0])
        tv1 = min(max(tv1, 0.0), 1.0)
        return 1.0 if tv1 >= 1 else -math.expm1(k * math.log1p(-tv1))
    return tv


def _tv_gap(noise, fam, k, p, p_a, p_b):
    """lambda -> (p_a - 1/2) - TV (binary), (p_a - p_b) - 2 TV (multiclass): the lower bound on
    the margin of :func:`_prune`, decreasing in lambda (TV from :func:`_tv_of`); None for noise
    outside the catalogue."""
    tv = _tv_of(noise, fam, k, p)
    if tv is None:
        return None
    if p_b is None:
        return lambda lam: p_a - 0.5 - tv(lam)
    return lambda lam: p_a - p_b - 2 * tv(lam)


def _lam_cap(noise, fam, p_a, p_b, mag: float) -> float:
    """The largest lambda a root search explores along a unit direction whose largest
    coordinate is ``mag``: that coordinate's shift up to 1e4 scales, or twice the reach. The
    half-space {x_1 <= F^-1(p_a)} has X-mass p_a, so P_Y(S_A) <= F(F^-1(p_a) - c)
    (Neyman-Pearson), likewise {x_1 >= F^-1(1 - p_b)} for S_B: the margin is < 0 once the shift
    c of one coordinate is twice the sum of those quantiles."""
    reach = _tail_x(noise, fam, 1 - p_a) + (0.0 if p_b is None else _tail_x(noise, fam, p_b))
    return max(1e4, 2 * reach / fam.scale) * fam.scale / mag


def _tv_root(gap, start: float, rtol: float) -> float:
    """The lambda where the decreasing TV gap crosses 0, bracketed by doubling from ``start``."""
    hi = start
    while gap(hi) > 0:
        hi *= 2
    lo = 0.5 * hi
    while gap(lo) <= 0:
        hi, lo = lo, 0.5 * lo
    return optimize.brentq(gap, lo, hi, xtol=0.5 * rtol * lo, rtol=4 * np.finfo(float).eps)


def _root(m, x0, rtol, cap, floor, growth=1.6, dlog=None):
    """First crossing of m from > 0 to <= 0 near x0: bracketing steps in u = log(lambda) (the
    first one along the slope ``dlog = dm/dlog(lambda)`` when known, then secant steps, each at
    most log(growth) long, always moving towards the crossing; the limit grows by 1.5 per step
    without a crossing, up to log(1.6): a small ``growth`` says where the root should be, not
    where it must be), then Brent's method inside the bracket. Returns (lambda, found):
    (inf, False) if m > 0 up to cap, (0, True) if m <= 0 down to floor."""
    step_max = math.log(growth)
    step_top = max(step_max, math.log(1.6))
    # lambda itself is carried along: exp(log(x)) != x in the last ulp, and near p_a = 1/2 the
    # margin is at the rounding level, so re-evaluating there can flip its sign
    x, f = x0, m(x0)
    u = math.log(x)
    if f == 0:
        return x0, True
    slope = dlog if (dlog is not None and dlog < 0) else None
    for _ in range(200):
        direction = 1.0 if f > 0 else -1.0
        if slope is not None and slope < 0:
            du = -f / slope * 1.05 + direction * 4 * rtol     # aim just past the crossing
            du = direction * min(max(abs(du), 2 * rtol), step_max)
        else:
            du = direction * step_max
        un = u + du
        if un > math.log(cap):
            un = math.log(cap)
            if un <= u:
                return math.inf, False
        if un < math.log(floor):
            un = math.log(floor)       # the floor itself is tried before giving up
            if un >= u:
                return 0.0, True
        xn = math.exp(un)
        fn = m(xn)
        if (f > 0) != (fn > 0):
            xlo, xhi = (x, xn) if f > 0 else (xn, x)
            break
        slope = (fn - f) / (un - u) if un != u else None
        u, x, f = un, xn, fn
        step_max = min(1.5 * step_max, step_top)
        if f > 0 and un >= math.log(cap):
            return math.inf, False
    else:
        raise RuntimeError("no bracket found")
    # disp=False: a margin at the rounding level (p_a one ulp from 1/2) can stall Brent's steps;
    # the last iterate is then as good as the margin resolves
    return optimize.brentq(m, xlo, xhi, xtol=0.5 * rtol * xlo, rtol=4 * np.finfo(float).eps,
                           maxiter=200, disp=False), True


def exact_lambda(noise: Noise, k, p, p_a, p_b=None, rtol: float = 1e-9, *, engine: str = "auto",
                 lam_max: Optional[float] = None, return_details: bool = False,
                 guess: Optional[float] = None, slope: Optional[float] = None):
    """lambda*(u_k): the first lambda > 0 with ``m(lambda u_k) <= 0`` (docs/theory.md §4), bracketed by
    steps in log(lambda) from a CLT guess (or ``guess``; ``slope`` = dm/dlog(lambda) there, if
    known) and refined by Brent's method to a relative tolerance ``rtol`` on lambda. The lattice
    engine first solves on a coarse lattice, then refines on the accurate one in a tight bracket.

    Returns 0.0 where nothing can be certified (p_a <= 1/2 binary, p_a <= p_b) and ``inf`` where
    the margin stays positive up to ``lam_max`` (default: shifts per coordinate of 1e4 sigma or
    twice the bound ``F^-1(p_a) [+ F^-1(1 - p_b)]`` on the crossing, whichever is larger, so that
    heavy tails at p_a -> 1 get their finite radius). Never below the total-variation bound of
    :func:`_tv_gap` (module doc, "Ends of p_a"). ``return_details`` gives an
    :class:`ExactLambda`.
    """
    import time
    t0 = time.perf_counter()
    _check_noise(noise)
    k = check_int(k, "k", 1)
    p = check_norm(p)
    p_a, p_b = _check_probs(p_a, p_b)
    rtol = check_positive(rtol, "rtol")
    if rtol >= 0.1:
        raise ValueError(f"rtol must be < 0.1, got {rtol}")
    _check_engine(engine)
    if lam_max is not None:
        lam_max = check_positive(lam_max, "lam_max")
    if guess is not None:
        guess = check_positive(guess, "guess")
    fam = _family(noise)
    if not _certifiable(p_a, p_b):
        res = ExactLambda(0.0, k, "none", True, 0, 0.0, time.perf_counter() - t0)
        return res if return_details else 0.0
    if (p_a >= 1 or p_b == 0) and fam.kind != "uniform" and not math.isfinite(fam.half_width):
        # Y ~ X for full support: P_Y(S_A) > 0 and P_Y(L = +inf) = 0, so the margin never
        # reaches 0 (p_a = 1: P_Y(S_A) = 1; p_b = 0: P_Y(S_B) = 0)
        res = ExactLambda(math.inf, k, "none", False, 0, 0.0, time.perf_counter() - t0)
        return res if return_details else res.lam
    if lam_max is None:
        lam_max = _lam_cap(noise, fam, p_a, p_b, 1.0 if math.isinf(p) else k ** (-1.0 / p))
    cap = lam_max
    clt = _clt_guess(noise, fam, k, p, p_a, p_b)
    # The margin is >= the TV gap > 0 below the TV bound lam_tv: a crossing there would be an
    # engine's error (the lattice where h cannot resolve l_c: tiny shifts, general normal
    # beta < 1), so the search stops at lam_tv and returns it. Without the bound (other noise),
    # only a margin at the rounding level stays <= 0 far below the CLT scale: 0 is returned.
    gap = _tv_gap(noise, fam, k, p, p_a, p_b)
    lam_tv = 0.0 if gap is None else _tv_root(gap, clt, rtol)
    floor = max(1e-6 * clt, lam_tv)
    g0 = min(max(guess if guess is not None else clt, 1.01 * floor), cap)
    evals = [0]

    def margin_fn(plan, trace):
        cache: Dict[float, float] = {}

        def m(lam):
            if lam not in cache:
                evals[0] += 1
                val, err = _margin_at(noise, fam, k, _shift(lam, k, p), p_a, p_b, plan)
                cache[lam] = val
                trace.append((lam, val, err))
            return cache[lam]
        return m

    def root(plan, x0, tol, growth, dlog, trace):
        return _root(margin_fn(plan, trace), x0, tol, cap, floor, growth, dlog)

    trace: List[tuple] = []
    plan = _plan(noise, fam, k, _shift(g0, k, p), engine, _LATTICE_TOL_COARSE)
    lam, found = math.nan, False
    if plan.engine in ("fourier", "direct", "atoms"):
        try:
            lam, found = root(plan, g0, rtol, 1.6, slope, trace)
        except _Infeasible:
            if engine == "fourier":
                raise ValueError("engine='fourier' cannot reach its tolerance here; use 'auto'") \
                    from None
            plan = _lattice_plan(_Term(noise, _shift(g0, k, p), fam), k, _LATTICE_TOL_COARSE)
            trace.clear()
    err, d1 = 0.0, None
    if plan.engine == "lattice":
        # stage 1: coarse lattice, to ~1e-7; stage 2: accurate lattice from there
        lam1, found = root(plan, g0, max(rtol, 1e-7), 1.6, slope, trace)
        lam = lam1
        if found and 0 < lam1 < math.inf:
            d1 = _slope_from(trace, lam1)
            fine = _lattice_plan(_Term(noise, _shift(lam1, k, p), fam), k, _LATTICE_TOL)
            trace = []
            lam, found = root(fine, lam1, rtol, 1.01, d1, trace)
            plan = fine
            if found and math.isfinite(lam) and lam > 0:
                # the h^2 term removed by Richardson, as a shift of lambda
                near = min(trace, key=lambda r: abs(r[0] - lam))
                d2 = _slope_from(trace, lam) or d1
                err = abs(near[2] / d2) * lam if d2 else math.inf
    if found and lam == 0.0:
        lam = lam_tv
    res = ExactLambda(float(lam), k, plan.engine, bool(found), evals[0], err,
                      time.perf_counter() - t0)
    res.slope = _slope_from(trace, lam) if found and math.isfinite(lam) and lam > 0 else None
    if res.slope is None and plan.engine == "lattice" and found:
        res.slope = d1
    return res if return_details else res.lam


def _slope_from(trace, lam) -> Optional[float]:
    """dm/dlog(lambda) near lam from the two evaluations closest to it."""
    pts = sorted((r for r in trace if r[0] > 0), key=lambda r: abs(math.log(r[0] / lam)))
    if not pts:
        return None
    l0, m0, _ = pts[0]
    # the nearest point far enough from the first one that rounding does not dominate
    far = [r for r in pts[1:] if abs(math.log(r[0] / l0)) > 1e-10 and abs(r[1] - m0) > 1e-12]
    if not far:
        return None
    l1, m1, _ = far[0]
    s = (m1 - m0) / math.log(l1 / l0)
    return s if s < 0 else None


@dataclass
class ExactRadius:
    """What ``exact_radius(..., return_details=True)`` returns."""
    radius: float
    k: int                                   # the k attaining the minimum
    p_a: float
    p_b: Optional[float]
    norm: float
    dim: int
    lambdas: Dict[int, float] = field(default_factory=dict)   # lambda*(u_k) of the k solved
    lower_bounds: Dict[int, float] = field(default_factory=dict)  # pruned k: lambda*(u_k) > bound
    engines: Dict[int, str] = field(default_factory=dict)
    error_estimate: float = 0.0              # of the radius (lattice engine), else ~0
    evaluations: int = 0
    seconds: float = 0.0
    profile: Optional[object] = None         # exact_profile.Profile where one beats every k

    @property
    def key(self):
        """The direction of the minimum: the Profile, else k."""
        return self.profile if self.profile is not None else self.k


def k_grid(dim: int, all_below: int = 32, ratio: float = 1.3) -> List[int]:
    """Every k <= all_below (capped at dim), then a geometric grid up to dim (dim included)."""
    dim = check_int(dim, "dim", 1)
    ks = set(range(1, min(dim, all_below) + 1))
    x = float(min(dim, all_below))
    while x < dim:
        x *= ratio
        ks.add(min(dim, int(round(x))))
    return sorted(ks)


def _prune(noise, fam, k, p, p_a, p_b, lam_best, tie: float) -> bool:
    """True if u_k cannot improve on lam_best by more than the tolerance: its margin at lam_best
    is > -tie (``tie`` = the margin change of a relative step rtol, so a k whose lambda* would lie
    within rtol below lam_best counts as a tie), beyond the error estimate of the margin."""
    c = _shift(lam_best, k, p)
    # Rigorous and cheap first: for any set S, |P_Y(S) - P_X(S)| <= TV(X^k, Y^k) <= 1 - (1 - TV_1)^k
    # with TV_1 = P_X(l < 0) - P_Y(l < 0) = P_X(l < 0) - P_X(l > 0) (symmetry), so the margin is
    # >= (p_a - 1/2) - TV (binary), >= (p_a - p_b) - 2 TV (multiclass).
    tv_of = _tv_of(noise, fam, k, p)
    if tv_of is not None:
        tv = tv_of(lam_best)
    else:
        term = _Term(noise, c, fam)
        tv1 = min(max(term.cdf(0.0, strict=True) - (1.0 - term.cdf(0.0)), 0.0), 1.0)
        tv = 1.0 if tv1 >= 1 else -math.expm1(k * math.log1p(-tv1))
    gap = (p_a - 0.5 - tv) if p_b is None else (p_a - p_b - 2 * tv)
    if gap > 1e-12:
        return True
    # Fourier is tried directly (its law is the feasibility test: _plan would build it twice)
    plan = _plan(noise, fam, k, c, "auto", _LATTICE_TOL_COARSE) if k == 1 else _Plan("fourier")
    try:
        m, err = _margin_at(noise, fam, k, c, p_a, p_b, plan)
    except _Infeasible:
        plan = _lattice_plan(_Term(noise, c, fam), k, _LATTICE_TOL_COARSE)
        m, err = _margin_at(noise, fam, k, c, p_a, p_b, plan)
    if plan.engine != "lattice":
        return m > -tie
    if m > 4 * err + 1e-4:
        return True
    if m < -1e-4:
        return False
    plan = _lattice_plan(_Term(noise, c, fam), k, _LATTICE_TOL)
    m, err = _margin_at(noise, fam, k, c, p_a, p_b, plan)
    return m > 4 * err - tie


def known_worst_k(noise: Noise, p: float, dim: int) -> Optional[int]:
    """The k of the worst direction where docs/theory.md §4 gives it: Gaussian noise, the axis
    for p <= 2 and the diagonal for p >= 2 (lambda*(u_k) ~ k^(1/p - 1/2)); log-concave noise
    for p <= 1, the axis; any product noise in l_inf, the diagonal. None elsewhere."""
    if math.isinf(p):
        return dim
    if isinstance(noise, Gaussian):
        return 1 if p <= 2 else dim
    if p <= 1 and _family(noise).monotone:
        return 1
    return None


def exact_radius(noise: Noise, p_a, p_b=None, norm=2, dim: int = None,
                 ks: Optional[Sequence[int]] = None, return_details: bool = False,
                 rtol: float = 1e-9, *, _first: Optional[int] = None):
    """Certified l_p radius ``min_k lambda*(u_k)`` over the k-sparse equal-magnitude directions,
    from the exact law of L (no sampling; module doc for the accuracy and the scope).

    ``ks``: the k to try. Default: where :func:`known_worst_k` names the worst k, that k, with
    k = 1, 2 and dim as a check (the full search runs if one of them is not pruned); elsewhere
    every k <= 16, then the geometric grid :func:`k_grid` (ratio 1.3), then a local refinement
    between the neighbours of the best k until they are adjacent. A k is solved only if its
    margin at the current best radius is not positive (up to its error estimate and
    the tie tolerance ``rtol``): otherwise its first crossing cannot be smaller, and its bound is
    reported in ``lower_bounds``. This is a minimum over the k-sparse family: an upper bound on
    the radius over all directions, equal to it where the worst direction lies in the family
    (Gaussian in any norm; Laplace and uniform in l1, axis; any noise in l_inf, diagonal).

    Returns 0.0 where nothing can be certified; a float, or :class:`ExactRadius` with
    ``return_details=True``; an ndarray of those if ``p_a`` is an array (one radius per entry).
    """
    import time
    t0 = time.perf_counter()
    _check_noise(noise)
    if not isinstance(p_a, (str, bytes)) and np.ndim(p_a) > 0:
        arr = np.asarray(p_a, dtype=object)
        outs = [exact_radius(noise, x, p_b, norm, dim, ks, return_details, rtol)
                for x in arr.ravel()]
        return np.array(outs, dtype=object if return_details else np.float64).reshape(arr.shape)
    p_a, p_b = _check_probs(p_a, p_b)
    p = check_norm(norm)
    if dim is None:
        raise TypeError("dim is required: the input dimension d")
    dim = check_int(dim, "dim", 1)
    rtol = check_positive(rtol, "rtol")
    if rtol >= 0.1:
        raise ValueError(f"rtol must be < 0.1, got {rtol}")
    if ks is not None:
        if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
            raise TypeError(f"ks must be a sequence of integers, got {type(ks).__name__}")
        ks = sorted({check_int(k, "ks", 1) for k in ks})
        if not ks:
            raise ValueError("ks must not be empty")
        if ks[-1] > dim:
            raise ValueError(f"ks must lie in 1..dim = {dim}, got {ks[-1]}")
    if not _certifiable(p_a, p_b):
        out = ExactRadius(0.0, 0, p_a, p_b, p, dim, seconds=time.perf_counter() - t0)
        return out if return_details else 0.0
    known = known_worst_k(noise, p, dim) if ks is None else None
    if known is not None:
        quick = exact_radius(noise, p_a, p_b, p, dim, sorted({known, 1, min(2, dim), dim}),
                             True, rtol, _first=known)
        if quick.k == known:            # the checks were pruned, or solved no smaller
            quick.seconds = time.perf_counter() - t0
            return quick if return_details else quick.radius
    fam = _family(noise)
    solved: Dict[int, ExactLambda] = {}
    pruned: Dict[int, float] = {}
    evals = [0]

    def best():
        k = min(solved, key=lambda j: solved[j].lam)
        return k, solved[k]

    def visit(k):
        if k in solved or k in pruned:
            return
        if not solved:
            solved[k] = exact_lambda(noise, k, p, p_a, p_b, rtol, return_details=True)
            return
        kb, rb = best()
        lb = rb.lam
        if lb == 0:               # nothing certified along u_kb: no k can do better
            pruned[k] = lb
            return
        if not math.isfinite(lb):
            solved[k] = exact_lambda(noise, k, p, p_a, p_b, rtol, return_details=True)
            return
        slope = rb.slope if rb.slope is not None else -1e-3
        evals[0] += 1
        if _prune(noise, fam, k, p, p_a, p_b, lb, 0.1 * abs(slope) * rtol):
            pruned[k] = lb
            return
        solved[k] = exact_lambda(noise, k, p, p_a, p_b, rtol, return_details=True, guess=lb,
                                 slope=rb.slope)

    grid = ks if ks is not None else k_grid(dim, all_below=16)
    seeds = [_first, *(k for k in (grid[0], grid[-1]) if k != _first)] if _first in grid \
        else [grid[0], grid[-1]]
    for k in seeds:
        visit(k)
    kb, _ = best()
    for k in sorted((k for k in grid if k not in seeds), key=lambda j: abs(math.log(j / kb))):
        visit(k)
    if ks is None:
        for _ in range(64):
            tried = sorted(set(solved) | set(pruned))
            kb, _ = best()
            i = tried.index(kb)
            left = tried[i - 1] if i > 0 else kb
            right = tried[i + 1] if i + 1 < len(tried) else kb
            todo = [j for j in (int(round(math.sqrt(left * kb))), int(round(math.sqrt(kb * right))))
                    if left < j < right and j not in tried]
            if not todo:
                todo = [j for j in (left + 1, right - 1) if left < j < right and j not in tried]
            if not todo:
                break
            for j in todo:
                visit(j)
    kb, rb = best()
    out = ExactRadius(rb.lam, kb, p_a, p_b, p, dim,
                      {j: v.lam for j, v in sorted(solved.items())}, dict(sorted(pruned.items())),
                      {j: v.engine for j, v in sorted(solved.items())},
                      rb.error_estimate,
                      evals[0] + sum(v.evaluations for v in solved.values()),
                      time.perf_counter() - t0)
    return out if return_details else out.radius
