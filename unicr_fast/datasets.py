"""Data sets for ``unicr certify`` and ``unicr demo``: (x, y) tensors, one input per row of x.

Accepted specifications:

* ``digits`` (= ``digits:test``) and ``digits:train``: scikit-learn's ``load_digits`` (1797 8x8
  grey images, 10 classes), pixels scaled to [0, 1], shape (N, 1, 8, 8). The split is fixed:
  a stratified 75 / 25 split with ``random_state=0`` (1347 train, 450 held-out test points).
* a ``.pt`` / ``.pth`` file: a dict ``{"x": tensor, "y": tensor}`` (or a tuple ``(x, y)``) read
  with ``torch.load(weights_only=True)``;
* a ``.npz`` file with arrays ``x`` and ``y``.

``x`` is converted to float32 with shape (N, ...) and ``y`` to int64 with shape (N,).
"""
from __future__ import annotations

import os
from typing import Tuple

import numpy as np
import torch

BUILTIN = ("digits", "digits:train", "digits:test")
#: Test fraction and seed of the fixed digits split.
DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED = 0.25, 0


#: Entries of one digits point (1 x 8 x 8).
DIGITS_DIM = 64


def digits(split: str = "test") -> Tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits, pixels in [0, 1], shape (N, 1, 8, 8); ``split`` 'train' or 'test'."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got '{split}'")
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ImportError("the digits data set needs scikit-learn: pip install scikit-learn "
                          "(or unicr_fast[demo])") from None
    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=DIGITS_TEST_FRACTION,
                                              random_state=DIGITS_SPLIT_SEED, stratify=y)
    xs, ys = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    return torch.from_numpy(np.ascontiguousarray(xs)), torch.from_numpy(np.ascontiguousarray(ys))


def load_dataset(spec: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(x float32 (N, ...), y int64 (N,)) from a built-in name or a .pt/.pth/.npz file."""
    spec = os.fspath(spec)
    key = spec.strip().lower()
    if key in BUILTIN:
        return digits("train" if key.endswith(":train") else "test")
    ext = os.path.splitext(spec)[1].lower()
    if ext not in (".pt", ".pth", ".npz"):
        raise ValueError(f"data '{spec}' is neither a built-in data set {list(BUILTIN)} nor a "
                         f".pt/.pth/.npz file holding x and y")
    if not os.path.isfile(spec):
        raise FileNotFoundError(f"data file '{spec}' does not exist; give an existing .pt/.npz "
                                f"file or one of {list(BUILTIN)}")
    if ext == ".npz":
        with np.load(spec, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise ValueError(f"data file '{spec}' must hold arrays 'x' and 'y', "
                                 f"found {sorted(z.files)}")
            x, y = torch.from_numpy(z["x"]), torch.from_numpy(z["y"])
    else:
        try:
            obj = torch.load(spec, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"cannot read data file '{spec}' with torch.load(weights_only=True) "
                             f"({type(exc).__name__}); save a dict {{'x': tensor, 'y': tensor}} "
                             f"with torch.save") from None
        if isinstance(obj, dict) and "x" in obj and "y" in obj:
            x, y = obj["x"], obj["y"]
        elif isinstance(obj, (tuple, list)) and len(obj) == 2:
            x, y = obj
        else:
            raise ValueError(f"data file '{spec}' must hold a dict with keys 'x' and 'y' "
                             f"(or a pair (x, y)), got {type(obj).__name__}")
        x, y = torch.as_tensor(x), torch.as_tensor(y)
    return _check_xy(x, y, spec)


def _check_xy(x: torch.Tensor, y: torch.Tensor, spec: str):
    if x.ndim < 2:
        raise ValueError(f"data '{spec}': x must have shape (N, ...) with one input per row, "
                         f"got shape {tuple(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"data '{spec}': y must have shape (N,) = ({x.shape[0]},), "
                         f"got {tuple(y.shape)}")
    whole = y.is_floating_point() and torch.equal(y, y.round())
    if y.dtype == torch.bool or y.is_complex() or (y.is_floating_point() and not whole):
        raise ValueError(f"data '{spec}': y must hold integer class labels, got dtype {y.dtype}")
    if not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int8, torch.int16,
                                                  torch.int32, torch.int64)):
        raise ValueError(f"data '{spec}': x must be numeric, got dtype {x.dtype}")
    x = x.to(torch.float32).contiguous()
    if not torch.isfinite(x).all():
        raise ValueError(f"data '{spec}': x must be finite (no NaN or inf)")
    y = y.to(torch.int64)
    if (y < 0).any():
        raise ValueError(f"data '{spec}': labels must be >= 0, got {int(y.min())}")
    return x, y
