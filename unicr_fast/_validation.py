"""Argument checks shared by the public functions: every error names the argument."""
from __future__ import annotations

import math
import numbers
import sys

import numpy as np

#: Seeds key the Philox samplers (csrc/common/philox.h) and torch generators: unsigned 64-bit.
MAX_SEED = 2 ** 64 - 1
#: -log of the smallest normal float64 (about 708), less a margin for the sums built on it.
_LOG_TINY = -math.log(sys.float_info.min) - 8.0


def _as_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return value


def check_real_array(value, name: str) -> np.ndarray:
    """A real number or an array of them (list, ndarray, tensor) as float64; bool, complex,
    strings and None are rejected rather than converted (True is not 1.0, None is not NaN)."""
    # Lists element by element: numpy would turn [True, 0.5] into [1.0, 0.5].
    arr = np.asarray(value, dtype=object if isinstance(value, (list, tuple)) else None)
    if arr.dtype == object:   # a list, None, Fraction, ...
        arr = np.array([_as_real(v, name) for v in arr.reshape(-1)]).reshape(arr.shape)
    if arr.dtype.kind not in "fiu":
        got = type(value).__name__ if arr.ndim == 0 else f"an array of dtype {arr.dtype}"
        raise TypeError(f"{name} must be a real number or an array of real numbers, got {got}")
    arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not be NaN")
    return arr


def check_positive(value, name: str) -> float:
    value = _as_real(value, name)
    if not (0 < value < math.inf):
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def check_probability_open(value, name: str, allow_edges: bool = False) -> float:
    value = _as_real(value, name)
    ok = (0 <= value <= 1) if allow_edges else (0 < value < 1)
    if not ok:
        interval = "[0, 1]" if allow_edges else "(0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


def check_norm(norm) -> float:
    """An l_p exponent in (0, inf]; accepts 'inf'."""
    if isinstance(norm, str):
        if norm.strip().lower() in ("inf", "infinity", "linf"):
            return math.inf
        try:
            norm = float(norm)
        except ValueError:
            raise ValueError(f"norm must be a number in (0, inf] or 'inf', got '{norm}'") from None
    norm = _as_real(norm, "norm")
    if not norm > 0:
        raise ValueError(f"norm must be > 0 (any p in (0, inf]), got {norm}")
    return norm


def check_norm_in_dim(p: float, dim: int) -> float:
    """An l_p exponent (from ``check_norm``) usable in dimension ``dim``: the entries k^(-1/p)
    of a unit k-sparse direction, k <= dim, and their squares must stay normal float64 numbers
    (below that the directions underflow to zero and the radii overflow)."""
    p_min = 2.0 * math.log(dim) / _LOG_TINY
    if p < p_min:
        raise ValueError(f"norm must be >= {p_min:.3g} in dimension {dim} (dim^(2/p) must stay "
                         f"within float64), got {p:g}")
    return p


def check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_seed(value, name: str = "seed") -> int:
    """A sampler seed: an integer in [0, 2**64 - 1]."""
    value = check_int(value, name, 0)
    if value > MAX_SEED:
        raise ValueError(f"{name} must lie in [0, 2**64 - 1] (the samplers take a 64-bit key), "
                         f"got {value}")
    return value
