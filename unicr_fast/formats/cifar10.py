"""CIFAR-10 in its standard python-pickle layout (the directory torchvision downloads).

``ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch}`` (ROOT may also be that folder itself):
each a pickled dict with ``data`` (N x 3072 uint8, rows of 1024 red, 1024 green, 1024 blue
pixels in row-major order) and ``labels`` (N ints). The pickles are read with an unpickler that
only rebuilds numpy arrays and plain containers, so a tampered file cannot run code.
"""
from __future__ import annotations

import os
import pickle
from typing import Tuple

import numpy as np
import torch

FOLDER = "cifar-10-batches-py"
SPLITS = {"test": ["test_batch"], "train": [f"data_batch_{i}" for i in range(1, 6)]}
#: The globals a CIFAR-10 batch pickle needs: numpy's array reconstruction and dtypes (and
#: bytes from latin-1 text, as python 3 writes arrays at protocol 2).
_ALLOWED = {(core, name) for core in ("numpy.core.multiarray", "numpy._core.multiarray",
                                       "numpy.core.numeric", "numpy._core.numeric")
            for name in ("_reconstruct", "_frombuffer")} | {("numpy", "ndarray"), ("numpy", "dtype"),
                                                           ("_codecs", "encode")}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")
        return super().find_class(module, name)


def batch_dir(root: str) -> str:
    """The folder holding the batch files, given torchvision's root or that folder."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"CIFAR-10 root '{root}' is not a directory; give the folder "
                                f"that contains {FOLDER}/ (torchvision's download root)")
    inner = os.path.join(root, FOLDER)
    return inner if os.path.isdir(inner) else root


def _read_batch(path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CIFAR-10 batch file '{path}' is missing (expected the "
                                f"python-pickle layout: {FOLDER}/test_batch, data_batch_1..5)")
    with open(path, "rb") as f:
        try:
            entry = _ArraysOnly(f, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise ValueError(f"'{path}' is not a CIFAR-10 batch pickle: {exc}") from None
    if not isinstance(entry, dict):
        raise ValueError(f"'{path}' holds a {type(entry).__name__}, not a CIFAR-10 batch dict")
    entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
    labels = entry.get("labels", entry.get("fine_labels"))
    data = entry.get("data")
    if data is None or labels is None:
        raise ValueError(f"'{path}' lacks the 'data' / 'labels' entries of a CIFAR-10 batch")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"'{path}': data must be uint8 of shape (N, 3072), got "
                         f"{data.dtype} {data.shape}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (data.shape[0],):
        raise ValueError(f"'{path}': {labels.shape[0]} labels for {data.shape[0]} images")
    return data, labels


def read_cifar10(root: str, split: str = "test") -> Tuple[torch.Tensor, torch.Tensor]:
    """(x float32 (N, 3, 32, 32) in [0, 1], y int64 (N,)): the images as torchvision's ToTensor
    gives them (channel planes, pixel / 255)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got '{split}'")
    folder = batch_dir(root)
    parts = [_read_batch(os.path.join(folder, name)) for name in SPLITS[split]]
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([l for _, l in parts])
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32)).to(torch.float32).div_(255.0)
    return x, torch.from_numpy(labels)
