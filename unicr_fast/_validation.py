"""Argument checks shared by the public functions: every error names the argument."""
from __future__ import annotations

import math
import numbers

import numpy as np


def _as_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return value


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


def check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value
