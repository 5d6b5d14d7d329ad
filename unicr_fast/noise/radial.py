"""Radial noise on R^d: mu(w) ∝ exp(-(||w||_q / a)^beta), q in (0, inf], beta > 0.

Not a product of 1-D densities (unless q = beta, when it is i.i.d. generalised normal), so it
has no per-coordinate density (its ``log_pdf`` is per vector); the log-ratio of a shift needs
only l_q norms:

    L_delta(w) = (||w||_q / a)^beta - (||w - delta||_q / a)^beta.

Sampling is exact (the polar decomposition of a density that depends on ||w||_q only):
w = R * g / ||g||_q, where g has i.i.d. coordinates of density ∝ exp(-|t|^q) (uniform on
[-1, 1] for q = inf), so g / ||g||_q follows the cone measure of the l_q sphere independently of
its norm, and R = ||w||_q has density ∝ r^(d-1) exp(-(r/a)^beta) because the volume of the
l_q ball of radius r grows like r^d; hence (R / a)^beta ~ Gamma(d / beta).

The density lives on R^dim, so a Radial noise is built for one dimension. ``sigma`` is the
per-coordinate standard deviation, as for every other family:
    E[w_j^2] = a^2 Gamma((d+2)/beta) / Gamma(d/beta) * E[theta_j^2],
    E[theta_j^2] = Gamma(3/q) Gamma(d/q) / (Gamma(1/q) Gamma((d+2)/q))   ((d+2)/(3d) for q = inf),
from E[g_j^2] = E[||g||_q^2] E[theta_j^2] (independence) and ||g||_q^q ~ Gamma(d/q).

Range: the kernels keep finite-q statistics as float64 sums of |w_j|^q, so a vector whose
|w_j|^q all leave [1e-308, 1e308] (q in the tens with tiny or huge coordinates, mostly in low d)
loses its norm; for such q the l_inf case (q = inf) is the accurate model.
"""
from __future__ import annotations

import math

import torch

from .._validation import check_int, check_norm, check_positive
from . import Noise, _check_base_scale, _scale_from_log


def _log_unit_scale(q: float, beta: float, dim: int) -> float:
    """log of the per-coordinate std of the radial noise with a = 1 (module doc), in logs: the
    gamma ratios over/underflow alone for small beta or q; NaN where lgamma itself overflows."""
    try:
        radial = math.lgamma((dim + 2) / beta) - math.lgamma(dim / beta)
        if math.isinf(q):
            return 0.5 * (radial + math.log((dim + 2) / (3.0 * dim)))
        angular = (math.lgamma(3 / q) + math.lgamma(dim / q) - math.lgamma(1 / q)
                   - math.lgamma((dim + 2) / q))
    except OverflowError:   # beta or q below ~1e-300
        return math.nan
    return 0.5 * (radial + angular)


def lq_norm(w: torch.Tensor, q: float) -> torch.Tensor:
    """||w||_q over the last axis, scaled by the largest entry so |w|^q cannot under/overflow."""
    big = w.abs().amax(dim=-1, keepdim=True)
    if math.isinf(q):
        return big.squeeze(-1)
    safe = torch.where(big > 0, big, torch.ones_like(big))
    return (w.abs() / safe).pow(q).sum(-1).pow(1.0 / q) * big.squeeze(-1)


class Radial(Noise):
    """Radial noise ``exp(-(||w||_q / a)^beta)`` on R^``dim``, given by its per-coordinate std
    ``sigma`` (as every family) or by its scale ``a`` (keyword; ``Radial.from_scale``).

    ``q`` is any exponent in (0, inf] (``"inf"`` accepted); ``q == beta`` is i.i.d.
    generalised normal (q = beta = 2 Gaussian, 1 Laplace). Built without ``dim``, the noise is
    bound to the input's dimension where one is known (``certified_radius(dim=...)``, ``Smooth``
    inputs, ``sample`` shapes); ``bound(dim)`` does it explicitly. With sigma given, the scale
    depends on dim (module doc), so an unbound noise has ``a = None`` (and an unbound noise given
    by ``a`` has ``sigma = None``).
    """

    name = "radial"
    family_id = None
    iid = False

    def __init__(self, sigma=None, q=2.0, beta=2.0, dim=None, *, a=None):
        if (sigma is None) == (a is None):
            raise TypeError("give exactly one of sigma (the per-coordinate standard deviation) and "
                            "a (the scale in exp(-(||w||_q / a)^beta))")
        self.q = check_norm(q)
        self.beta = check_positive(beta, "beta")
        if isinstance(dim, float) and dim.is_integer():   # e.g. from a KEY=VALUE parser
            dim = int(dim)
        self.dim = None if dim is None else check_int(dim, "dim", 1)
        self._by_sigma = sigma is not None
        self.sigma = _check_base_scale(sigma) if self._by_sigma else None
        self.a = None if self._by_sigma else _check_base_scale(a, "a")
        if self.dim is not None:
            log_unit = _log_unit_scale(self.q, self.beta, self.dim)
            name, value = ("sigma", self.sigma) if self._by_sigma else ("a", self.a)
            given = f"{name} = {value:g}, q = {self.q:g}, beta = {self.beta:g}, dim = {self.dim}"
            if self._by_sigma:
                self.a = _scale_from_log(math.log(self.sigma) - log_unit, "a", given)
            else:
                self.sigma = _scale_from_log(math.log(self.a) + log_unit, "sigma", given)

    @classmethod
    def from_scale(cls, a, q=2.0, beta=2.0, dim=None) -> "Radial":
        """The radial noise with scale ``a`` (the formula's a) rather than a per-coordinate std."""
        return cls(q=q, beta=beta, dim=dim, a=a)

    def bound(self, dim) -> "Radial":
        """This noise on R^dim: itself when built for dim, a copy for dim when built without
        one; ValueError when built for another dimension."""
        dim = check_int(dim, "dim", 1)
        if self.dim is not None:
            if self.dim != dim:
                raise ValueError(f"the radial noise was built for dim {self.dim} but inputs of "
                                 f"dimension {dim} were given; build it with dim={dim} (or "
                                 f"without dim)")
            return self
        if self._by_sigma:
            return Radial(self.sigma, self.q, self.beta, dim)
        return Radial(q=self.q, beta=self.beta, dim=dim, a=self.a)

    @property
    def params(self):
        first = {"sigma": self.sigma} if self._by_sigma else {"a": self.a}
        out = {**first, "q": self.q, "beta": self.beta}
        if self.dim is not None:
            out["dim"] = self.dim
        return out

    @property
    def has_compiled_kernel(self) -> bool:
        return True

    # -- i.i.d.-only parts of the Noise interface do not exist here -----------------------------
    def log_pdf(self, x):
        """Radial noise has no 1-D factor: the log-density of whole vectors (``log_density``)."""
        return self.log_density(x)

    def _kernel_values(self):
        raise TypeError("radial noise has its own kernel (backends.log_ratio_radial)")

    # -- density --------------------------------------------------------------------------------
    def _require_dim(self, what: str) -> None:
        if self.dim is None:
            raise ValueError(f"{what} needs the dimension: use noise.bound(dim) first")

    def log_normalizer(self) -> float:
        """log of the integral of exp(-(||w||_q / a)^beta) over R^dim:
        vol(l_q unit ball) a^d Gamma(1 + d/beta), vol = (2 Gamma(1 + 1/q))^d / Gamma(1 + d/q)."""
        self._require_dim("log_normalizer")
        d = self.dim
        ball = d * math.log(2.0) if math.isinf(self.q) else (
            d * math.log(2.0 * math.gamma(1.0 + 1.0 / self.q)) - math.lgamma(1.0 + d / self.q))
        return ball + d * math.log(self.a) + math.lgamma(1.0 + d / self.beta)

    def log_density(self, w: torch.Tensor) -> torch.Tensor:
        """log mu(w) for vectors along the trailing axes (their sizes multiply to ``dim``; the
        last axis alone for a noise built without dim)."""
        w = torch.as_tensor(w, dtype=torch.float64) if not torch.is_tensor(w) else w
        if self.dim is None:
            return self.bound(w.shape[-1]).log_density(w)
        flat = w.reshape(*w.shape[:w.dim() - self._vector_axes(w.shape)], self.dim)
        return -(lq_norm(flat.to(torch.float64), self.q) / self.a).pow(self.beta) - self.log_normalizer()

    def _vector_axes(self, shape) -> int:
        """How many trailing axes of ``shape`` make one vector of ``dim`` entries."""
        size = 1
        for k in range(1, len(shape) + 1):
            size *= int(shape[-k])
            if size == self.dim:
                return k
            if size > self.dim:
                break
        raise ValueError(f"radial noise of dim {self.dim} needs trailing axes whose sizes "
                         f"multiply to {self.dim}, got shape {tuple(shape)}")

    # -- sampling -------------------------------------------------------------------------------
    def _sample64(self, shape, generator, device):
        return self._sample(shape, generator, device, torch.float64)

    def _sample(self, shape, generator, device, dtype):
        """Exact draws (module doc); the first axis counts vectors, the rest form one vector.
        The direction is drawn in ``dtype`` (float32 draws need no float64 pass over N x d), its
        norm accumulated and the radius drawn in float64."""
        if self.dim is None and len(shape) >= 2:
            return self.bound(math.prod(shape[1:]))._sample(shape, generator, device, dtype)
        if len(shape) < 2 or math.prod(shape[1:]) != self.dim:
            raise ValueError(f"radial noise draws vectors: shape must be (n, *vector_shape) with "
                             f"the vector's sizes multiplying to dim = {self.dim}, got {shape}")
        n = shape[0]
        g = self._angular(n, generator, device, dtype)
        conc = torch.full((n,), self.dim / self.beta, dtype=torch.float64, device=device)
        # in logs: G^(1/beta) alone overflows for small beta, where a is tiny
        radius = torch.exp(torch._standard_gamma(conc, generator=generator).log() / self.beta
                           + math.log(self.a))
        if self.q in (1.0, 2.0):   # no under/overflow to guard against: one fused pass
            norm = torch.linalg.vector_norm(g, ord=self.q, dim=1, dtype=torch.float64)
        else:
            norm = lq_norm(g.to(torch.float64), self.q)
        return g.mul_((radius / norm).to(dtype).unsqueeze(1)).reshape(shape)

    def _angular(self, n, generator, device, dtype) -> torch.Tensor:
        """n x dim i.i.d. draws of density ∝ exp(-|t/c|^q) for some scale c (the direction
        g / ||g||_q does not see c): normal for q = 2, Laplace for q = 1, uniform on [-1, 1]
        for q = inf, in ``dtype``; otherwise |t| = Gamma(1 + 1/q)^(1/q) * U in float64, the
        Gamma(1/q)^(1/q) magnitude without underflow for large q (G U^(1/alpha),
        G ~ Gamma(alpha + 1), is Gamma(alpha))."""
        shape = (n, self.dim)
        if self.q == 2.0:   # the common cases skip the (slow) gamma draws
            return torch.randn(shape, generator=generator, device=device, dtype=dtype)
        general = not (math.isinf(self.q) or self.q == 1.0)
        work = torch.float64 if general else dtype
        tiny = torch.finfo(work).tiny
        mag = torch.rand(shape, generator=generator, device=device, dtype=work).clamp_min_(tiny)
        if self.q == 1.0:
            mag = mag.log_().neg_()   # Exp(1)
        sign = torch.randint(0, 2, shape, generator=generator, device=device).to(work)
        if general:
            conc = torch.full(shape, 1.0 + 1.0 / self.q, dtype=torch.float64, device=device)
            mag = mag * torch._standard_gamma(conc, generator=generator).pow(1.0 / self.q)
        return (mag * sign.mul_(2).sub_(1)).to(dtype)

    # -- the log-ratio in pieces (docs/theory.md §2 with mu radial) ----------------------------------------
    def kernel_scalars(self):
        """(q, beta, a) as the compiled kernels take them (q = inf passed as inf)."""
        self._require_dim("the radial log-ratio")
        return float(self.q), float(self.beta), float(self.a)


def lq_tail(eps: torch.Tensor, k: int, q: float) -> torch.Tensor:
    """Per-row l_q statistic of the coordinates ``k..d-1``, the part a k-sparse shift leaves
    unchanged: sum |w_j|^q (finite q) or max |w_j| (q = inf), float64, 0 when k = d."""
    N, d = eps.shape
    out = torch.zeros(N, dtype=torch.float64, device=eps.device)
    if k >= d:
        return out
    rows = max(1, (1 << 24) // max(1, d - k))     # bounds the float64 temporary
    for lo in range(0, N, rows):
        part = eps[lo:lo + rows, k:].to(torch.float64).abs()
        out[lo:lo + rows] = part.amax(1) if math.isinf(q) else part.pow(q).sum(1)
    return out


class LqTails:
    """``lq_tail`` of one sample matrix memoised per k: a search asks for the same few prefix
    lengths (the k-sparse levels) many times. Owned by one radius computation, so it never
    outlives (or confuses) its sample matrix."""

    def __init__(self, eps: torch.Tensor, q: float):
        self.eps, self.q, self._by_k = eps, q, {}

    def __call__(self, k: int) -> torch.Tensor:
        tail = self._by_k.get(k)
        if tail is None:
            tail = self._by_k[k] = lq_tail(self.eps, k, self.q)
        return tail
