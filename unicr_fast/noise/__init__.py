"""Noise families (docs/theory.md §7): parameters, seeded sampling and log-densities in torch.

Every family is parametrised by ``sigma``, the per-coordinate standard deviation (Cauchy has no
variance: there ``sigma`` is the scale). ``family_id`` and ``kernel_params`` are what the compiled
kernels read; their layout must match ``csrc/common/families.h``. Radial noise (unicr_fast.noise.radial) joins the
catalogue at the end of this module.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional

import numpy as np
import torch

from .._validation import check_positive, check_probability_open

#: Length of the parameter array passed to the kernels (csrc/common/families.h: kMaxParams).
KERNEL_PARAMS = 8

__all__ = [
    "Noise", "Gaussian", "Laplace", "HyperbolicSecant", "GeneralNormal", "Uniform", "Cauchy",
    "Pareto", "LaplaceGaussianMixture", "ExponentialMixture", "Radial", "Custom", "make",
    "FAMILIES",
]


def _uniform_open(shape, generator, device, dtype):
    """Uniform(0, 1) draws that are never exactly 0 (safe inside log)."""
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    return u.clamp_min_(tiny)


def _random_sign(shape, generator, device, dtype):
    return torch.randint(0, 2, shape, generator=generator, device=device).to(dtype).mul_(2).sub_(1)


def _sample_general_normal(shape, a, beta, generator, device, dtype):
    # |X|/a ~ Gamma(1/beta, 1)^(1/beta): draw the gamma in float64 for accuracy, then cast.
    conc = torch.full(shape, 1.0 / beta, dtype=torch.float64, device=device)
    g = torch._standard_gamma(conc, generator=generator)
    mag = torch.exp(g.log() / beta + math.log(a))   # g^(1/beta) alone overflows for small beta
    return (mag * _random_sign(shape, generator, device, torch.float64)).to(dtype)


def _general_normal_lognorm(a: float, beta: float) -> float:
    return math.log(beta) - math.log(2.0 * a) - math.lgamma(1.0 / beta)


#: Range of sigma and of every scale derived from it: the kernels divide by a scale and take
#: logs of small multiples of it (2a, sigma sqrt(2 pi)), so it must stay well inside float64.
SCALE_RANGE = (1e-300, 1e300)


def _check_base_scale(value, name: str = "sigma") -> float:
    """sigma (or radial noise's a) as given: a number in SCALE_RANGE."""
    value = check_positive(value, name)
    lo, hi = SCALE_RANGE
    if not lo <= value <= hi:
        raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}], got {value:g}")
    return value


def _check_scale(scale: float, symbol: str, given: str) -> float:
    """A scale derived from the parameters in ``given`` (e.g. "sigma = 1, a = 3")."""
    lo, hi = SCALE_RANGE
    if not lo <= scale <= hi:
        raise ValueError(f"{given} give the scale {symbol} = {scale:g}, outside the range "
                         f"[{lo:g}, {hi:g}] the kernels compute in")
    return scale


def _scale_from_log(log_scale: float, symbol: str, given: str) -> float:
    """``_check_scale`` of exp(log_scale), for scales whose factors over/underflow alone."""
    lo, hi = SCALE_RANGE
    if not math.log(lo) <= log_scale <= math.log(hi):   # False for NaN too
        raise ValueError(f"{given} give the scale {symbol} = 10^{log_scale / math.log(10):.1f}, "
                         f"outside the range [{lo:g}, {hi:g}] the kernels compute in")
    return math.exp(log_scale)


def _general_normal_log_unit(beta: float) -> float:
    """log(a / sigma) = log sqrt(Gamma(1/beta) / Gamma(3/beta)) of the unit-variance general
    normal, in logs: the gamma ratio underflows (beta < 0.013) before a does (beta < 0.008 at sigma 1)."""
    try:
        return 0.5 * (math.lgamma(1.0 / beta) - math.lgamma(3.0 / beta))
    except OverflowError:   # beta below ~1e-305
        return -math.inf


def _general_normal_scale(sigma: float, beta: float, name: str) -> float:
    """The scale a of the general normal of std ``sigma`` and shape ``beta`` (named ``name``);
    ValueError naming the smallest valid beta where a would leave SCALE_RANGE."""
    low = math.log(SCALE_RANGE[0]) - math.log(sigma)
    if not _general_normal_log_unit(beta) >= low:
        # log a / sigma rises with beta on (0, 2] to log sqrt(2), so SCALE_RANGE[0] <= sigma
        # is reached by beta = 2: bisect (in log beta) for where it is.
        lo, hi = math.log(beta), math.log(2.0)
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if _general_normal_log_unit(math.exp(mid)) >= low else (mid, hi)
        raise ValueError(f"{name} must be >= {math.exp(hi):.4g} for sigma = {sigma:g}, got "
                         f"{beta:g}: below, the scale a = sigma sqrt(Gamma(1/{name}) / "
                         f"Gamma(3/{name})) underflows {SCALE_RANGE[0]:g}")
    return _scale_from_log(math.log(sigma) + _general_normal_log_unit(beta), "a",
                           f"sigma = {sigma:g}, {name} = {beta:g}")


class Noise:
    """Base class of noise: i.i.d. with a symmetric 1-D density ``phi`` per coordinate, except
    ``Radial`` (``iid = False``), a density of one l_q norm of the whole vector."""

    name: str = ""
    family_id: Optional[int] = None  # None: no compiled i.i.d. kernel
    iid: bool = True                 # False: radial noise (unicr_fast.noise.radial), not a product

    @property
    def has_compiled_kernel(self) -> bool:
        """Whether the cpu/cuda backends have a log-ratio kernel for this noise."""
        return self.family_id is not None

    def bound(self, dim) -> "Noise":
        """This noise for inputs of ``dim`` entries: i.i.d. noise is the same in every
        dimension (radial noise overrides this: its density lives on R^dim)."""
        return self

    def __init__(self, sigma: float):
        self.sigma = _check_base_scale(sigma)

    # -- to be provided by each family ---------------------------------------------------
    def _sample64(self, shape, generator, device) -> torch.Tensor:
        raise NotImplementedError

    def log_pdf(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise log phi(x); -inf outside the support."""
        raise NotImplementedError

    @property
    def params(self) -> Dict[str, float]:
        return {"sigma": self.sigma}

    def _kernel_values(self):
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------
    def sample(self, shape, generator: Optional[torch.Generator] = None, device=None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """I.i.d. draws of the given shape. Deterministic for a seeded ``generator``."""
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list, torch.Size)) else (shape,)))
        if any(s < 0 for s in shape):
            raise ValueError(f"shape must be non-negative, got {shape}")
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        return self._sample(shape, generator, torch.device(device), dtype)

    def _sample(self, shape, generator, device, dtype) -> torch.Tensor:
        """Draws in ``dtype``: float64 draws rounded, unless a family does better."""
        return self._sample64(shape, generator, device).to(dtype)

    @property
    def kernel_params(self) -> np.ndarray:
        """Float64 parameter array in the layout csrc/common/families.h expects."""
        if self.family_id is None:
            raise TypeError(f"noise '{self.name}' has no compiled kernel; use device='torch'")
        vals = [float(v) for v in self._kernel_values()]
        return np.array(vals + [0.0] * (KERNEL_PARAMS - len(vals)), dtype=np.float64)

    def support_bound(self) -> float:
        """Half-width of the support (inf for unbounded families)."""
        return math.inf

    def cdf(self, x):
        raise NotImplementedError(f"{self.name} has no closed-form CDF")

    def icdf(self, q):
        raise NotImplementedError(f"{self.name} has no closed-form inverse CDF")

    def __repr__(self):
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.params == other.params

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.params.items()))))


def _as_tensor(x):
    return x if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float64)


class Gaussian(Noise):
    name = "gaussian"
    family_id = 0

    def _sample64(self, shape, generator, device):
        return torch.randn(shape, generator=generator, device=device, dtype=torch.float64) * self.sigma

    def log_pdf(self, x):
        z = x / self.sigma
        return -0.5 * z * z - math.log(self.sigma * math.sqrt(2 * math.pi))

    def _kernel_values(self):
        return [self.sigma, -math.log(self.sigma * math.sqrt(2 * math.pi))]

    def cdf(self, x):
        return torch.special.ndtr(_as_tensor(x) / self.sigma)

    def icdf(self, q):
        return torch.special.ndtri(_as_tensor(q)) * self.sigma


class Laplace(Noise):
    name = "laplace"
    family_id = 1

    def __init__(self, sigma):
        super().__init__(sigma)
        self.b = self.sigma / math.sqrt(2.0)

    def _sample64(self, shape, generator, device):
        e = -torch.log(_uniform_open(shape, generator, device, torch.float64))
        return e * _random_sign(shape, generator, device, torch.float64) * self.b

    def log_pdf(self, x):
        return -x.abs() / self.b - math.log(2 * self.b)

    def _kernel_values(self):
        return [self.b, -math.log(2 * self.b)]

    def cdf(self, x):
        x = _as_tensor(x)
        half = 0.5 * torch.exp(-x.abs() / self.b)
        return torch.where(x < 0, half, 1 - half)

    def icdf(self, q):
        q = _as_tensor(q)
        return -self.b * torch.sign(q - 0.5) * torch.log1p(-2 * (q - 0.5).abs())


class HyperbolicSecant(Noise):
    name = "hyperbolic_secant"
    family_id = 2

    def _sample64(self, shape, generator, device):
        u = _uniform_open(shape, generator, device, torch.float64)
        return (2 * self.sigma / math.pi) * torch.log(torch.tan(0.5 * math.pi * u))

    def log_pdf(self, x):
        y = x.abs() * (math.pi / (2 * self.sigma))
        # log sech(y) = -y - log1p(exp(-2y)) + log 2
        return -y - torch.log1p(torch.exp(-2 * y)) + math.log(2) - math.log(2 * self.sigma)

    def _kernel_values(self):
        return [self.sigma, math.log(2) - math.log(2 * self.sigma)]

    def cdf(self, x):
        return (2 / math.pi) * torch.atan(torch.exp(_as_tensor(x) * math.pi / (2 * self.sigma)))

    def icdf(self, q):
        return (2 * self.sigma / math.pi) * torch.log(torch.tan(0.5 * math.pi * _as_tensor(q)))


class GeneralNormal(Noise):
    """Generalised normal, exp(-(|x|/a)^beta); beta=1 is Laplace, beta=2 is Gaussian."""

    name = "general_normal"
    family_id = 3

    def __init__(self, sigma, beta):
        super().__init__(sigma)
        self.beta = check_positive(beta, "beta")
        self.a = _general_normal_scale(self.sigma, self.beta, "beta")

    @property
    def params(self):
        return {"sigma": self.sigma, "beta": self.beta}

    def _sample64(self, shape, generator, device):
        return _sample_general_normal(shape, self.a, self.beta, generator, device, torch.float64)

    def log_pdf(self, x):
        return _general_normal_lognorm(self.a, self.beta) - (x.abs() / self.a).pow(self.beta)

    def _kernel_values(self):
        return [self.a, self.beta, _general_normal_lognorm(self.a, self.beta)]

    def cdf(self, x):
        x = _as_tensor(x)
        tail = 0.5 * torch.special.gammaincc(torch.tensor(1 / self.beta, dtype=x.dtype),
                                             (x.abs() / self.a).pow(self.beta))
        return torch.where(x < 0, tail, 1 - tail)

    def icdf(self, q):
        from scipy.special import gammainccinv
        q = np.asarray(q, dtype=np.float64)
        tail = np.minimum(q, 1 - q)
        mag = self.a * gammainccinv(1 / self.beta, 2 * tail) ** (1 / self.beta)
        return torch.as_tensor(np.sign(q - 0.5) * mag)


class Uniform(Noise):
    name = "uniform"
    family_id = 4

    def __init__(self, sigma):
        super().__init__(sigma)
        self.l = self.sigma * math.sqrt(3.0)

    def _sample64(self, shape, generator, device):
        u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
        return (2 * u - 1) * self.l

    def log_pdf(self, x):
        inside = x.abs() <= self.l
        return torch.where(inside, torch.full_like(x, -math.log(2 * self.l)),
                           torch.full_like(x, -math.inf))

    def _kernel_values(self):
        return [self.l, -math.log(2 * self.l)]

    def support_bound(self):
        return self.l

    def cdf(self, x):
        return ((_as_tensor(x) + self.l) / (2 * self.l)).clamp(0, 1)

    def icdf(self, q):
        return (2 * _as_tensor(q) - 1) * self.l


class Cauchy(Noise):
    """Cauchy noise; no variance exists, so sigma is the scale gamma."""

    name = "cauchy"
    family_id = 5
    #: The kernels evaluate log(x^2 + sigma^2), with draws out to ~2^53 sigma: both squares
    #: must stay in SCALE_RANGE.
    SIGMA_RANGE = (math.sqrt(SCALE_RANGE[0]), math.sqrt(SCALE_RANGE[1]) / 2.0 ** 53)

    def __init__(self, sigma):
        super().__init__(sigma)
        lo, hi = self.SIGMA_RANGE
        if not lo <= self.sigma <= hi:
            raise ValueError(f"sigma must lie in [{lo:.3g}, {hi:.3g}] for cauchy noise (the "
                             f"kernels square it and the draws), got {self.sigma:g}")

    def _sample64(self, shape, generator, device):
        u = _uniform_open(shape, generator, device, torch.float64)
        return self.sigma * torch.tan(math.pi * (u - 0.5))

    def log_pdf(self, x):
        return math.log(self.sigma / math.pi) - torch.log(x * x + self.sigma ** 2)

    def _kernel_values(self):
        return [self.sigma, math.log(self.sigma / math.pi)]

    def cdf(self, x):
        return 0.5 + torch.atan(_as_tensor(x) / self.sigma) / math.pi

    def icdf(self, q):
        return self.sigma * torch.tan(math.pi * (_as_tensor(q) - 0.5))


class Pareto(Noise):
    """Symmetric Lomax: a/(2s) (1 + |x|/s)^-(a+1), shape a > 2 so the variance exists."""

    name = "pareto"
    family_id = 6

    def __init__(self, sigma, a=3.0):
        super().__init__(sigma)
        a = check_positive(a, "a")
        if a <= 2:
            raise ValueError(f"a must be > 2 for pareto noise to have a variance, got {a}")
        self.shape_a = a
        self.s = _check_scale(self.sigma * math.sqrt((a - 1) * (a - 2) / 2), "s",
                              f"sigma = {self.sigma:g}, a = {a:g}")

    @property
    def params(self):
        return {"sigma": self.sigma, "a": self.shape_a}

    def _sample64(self, shape, generator, device):
        u = _uniform_open(shape, generator, device, torch.float64)
        mag = self.s * (u.pow(-1.0 / self.shape_a) - 1)
        return mag * _random_sign(shape, generator, device, torch.float64)

    def log_pdf(self, x):
        return (math.log(self.shape_a / (2 * self.s))
                - (self.shape_a + 1) * torch.log1p(x.abs() / self.s))

    def _kernel_values(self):
        return [self.s, self.shape_a, math.log(self.shape_a / (2 * self.s))]

    def cdf(self, x):
        x = _as_tensor(x)
        tail = 0.5 * (1 + x.abs() / self.s).pow(-self.shape_a)
        return torch.where(x < 0, tail, 1 - tail)

    def icdf(self, q):
        q = _as_tensor(q)
        tail = torch.minimum(q, 1 - q)
        return torch.sign(q - 0.5) * self.s * ((2 * tail).pow(-1 / self.shape_a) - 1)


class _Mixture(Noise):
    """w * first + (1 - w) * second, both at the same sigma (so the mixture has variance sigma^2)."""

    def __init__(self, sigma, weight, first: Noise, second: Noise):
        super().__init__(sigma)
        self.weight = check_probability_open(weight, "weight", allow_edges=True)
        self.first, self.second = first, second

    def _sample64(self, shape, generator, device):
        pick = torch.rand(shape, generator=generator, device=device, dtype=torch.float64) < self.weight
        x1 = self.first._sample64(shape, generator, device)
        x2 = self.second._sample64(shape, generator, device)
        return torch.where(pick, x1, x2)

    def log_pdf(self, x):
        lw = math.log(self.weight) if self.weight > 0 else -math.inf
        lv = math.log1p(-self.weight) if self.weight < 1 else -math.inf
        return torch.logaddexp(lw + self.first.log_pdf(x), lv + self.second.log_pdf(x))

    def cdf(self, x):
        return self.weight * self.first.cdf(x) + (1 - self.weight) * self.second.cdf(x)

    def icdf(self, q):
        """Numerical inverse of the CDF (bisection to 1e-12, elementwise)."""
        from scipy.optimize import brentq
        q = np.asarray(q, dtype=np.float64)
        if ((q <= 0) | (q >= 1)).any():
            raise ValueError("q must lie in (0, 1) for a mixture's icdf")
        f = lambda x, t: float(self.cdf(torch.tensor(x, dtype=torch.float64))) - t
        lo = min(float(self.first.icdf(q.min())), float(self.second.icdf(q.min())))
        hi = max(float(self.first.icdf(q.max())), float(self.second.icdf(q.max())))
        out = [brentq(f, lo - 1e-9, hi + 1e-9, args=(t,), xtol=1e-12) for t in q.reshape(-1)]
        return torch.tensor(out, dtype=torch.float64).reshape(q.shape)

    def _log_weights(self):
        lw = math.log(self.weight) if self.weight > 0 else -1e300
        lv = math.log1p(-self.weight) if self.weight < 1 else -1e300
        return lw, lv


class LaplaceGaussianMixture(_Mixture):
    name = "laplace_gaussian_mixture"
    family_id = 7

    def __init__(self, sigma, weight=0.5):
        super().__init__(sigma, weight, Laplace(sigma), Gaussian(sigma))

    @property
    def params(self):
        return {"sigma": self.sigma, "weight": self.weight}

    def _kernel_values(self):
        lw, lv = self._log_weights()
        lap, gau = self.first._kernel_values(), self.second._kernel_values()
        return [lw, lv, lap[0], lap[1], gau[0], gau[1]]


class ExponentialMixture(_Mixture):
    name = "exponential_mixture"
    family_id = 8

    def __init__(self, sigma, weight=0.5, beta1=1.0, beta2=2.0):
        # Checked under their own names first: GeneralNormal would call either of them "beta".
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            _general_normal_scale(_check_base_scale(sigma), check_positive(beta, name), name)
        super().__init__(sigma, weight, GeneralNormal(sigma, beta1), GeneralNormal(sigma, beta2))
        self.beta1, self.beta2 = self.first.beta, self.second.beta

    @property
    def params(self):
        return {"sigma": self.sigma, "weight": self.weight, "beta1": self.beta1, "beta2": self.beta2}

    def _kernel_values(self):
        lw, lv = self._log_weights()
        return [lw, lv, *self.first._kernel_values(), *self.second._kernel_values()]


class Custom(Noise):
    """User-defined i.i.d. noise: ``logpdf(x)`` (elementwise, torch) and ``sampler(shape, generator,
    device)`` returning float64 draws. Runs on the torch backend only (the slow, research path)."""

    name = "custom"
    family_id = None

    def __init__(self, logpdf: Callable, sampler: Callable, sigma: float = 1.0, name: str = "custom"):
        super().__init__(sigma)
        if not callable(logpdf) or not callable(sampler):
            raise TypeError("Custom noise needs callable logpdf and sampler")
        self._logpdf, self._sampler, self.name = logpdf, sampler, str(name)

    def _sample64(self, shape, generator, device):
        x = self._sampler(shape, generator, device)
        if not torch.is_tensor(x) or tuple(x.shape) != tuple(shape):
            raise ValueError(f"Custom sampler must return a tensor of shape {tuple(shape)}")
        return x.to(torch.float64)

    def log_pdf(self, x):
        return self._logpdf(x)

    def __eq__(self, other):
        return self is other

    def __hash__(self):
        return id(self)


# Radial noise is not i.i.d.; it lives in its own module and joins the catalogue here.
from .radial import Radial  # noqa: E402  (needs Noise above)

FAMILIES = {cls.name: cls for cls in (Gaussian, Laplace, HyperbolicSecant, GeneralNormal, Uniform,
                                       Cauchy, Pareto, LaplaceGaussianMixture, ExponentialMixture,
                                       Radial)}


def make(name: str, **params) -> Noise:
    """Build a noise family by name, e.g. ``make("general_normal", sigma=0.5, beta=1.5)``."""
    if not isinstance(name, str):
        raise TypeError(f"noise name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in FAMILIES:
        raise ValueError(f"unknown noise family '{name}'; choose one of {sorted(FAMILIES)}")
    try:
        return FAMILIES[key](**params)
    except TypeError as exc:
        raise TypeError(f"bad parameters for noise '{key}': {exc}") from None
