"""Small base classifiers and the checkpoint format read by ``unicr certify``.

A checkpoint is a plain dict saved with ``torch.save`` and read with
``torch.load(path, weights_only=True)`` (no pickled code is ever executed)::

    {"format": "unicr_fast.checkpoint/1",
     "arch": "mlp",                              # a key of ARCHITECTURES
     "arch_kwargs": {"in_features": 64, ...},    # ints, floats, lists: the constructor's arguments
     "num_classes": 10,
     "input_shape": [1, 8, 8],                   # shape of one input, no batch dimension
     "state_dict": model.state_dict(),
     "meta": {...}}                              # free-form: training noise, accuracy, ...

Models take inputs already scaled as the data set provides them (digits: [0, 1]) and return
logits of shape (batch, num_classes).
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

CHECKPOINT_FORMAT = "unicr_fast.checkpoint/1"


class MLP(nn.Module):
    """Flatten -> [Linear -> ReLU] * len(hidden) -> Linear."""

    def __init__(self, in_features: int = 64, hidden: Sequence[int] = (256, 256),
                 num_classes: int = 10):
        super().__init__()
        layers, width = [nn.Flatten()], int(in_features)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, int(num_classes)))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks (conv -> ReLU -> 2x2 max-pool), then an MLP head."""

    def __init__(self, in_channels: int = 1, image_size: int = 8, channels: Sequence[int] = (16, 32),
                 hidden: int = 64, num_classes: int = 10):
        super().__init__()
        layers, c, side = [], int(in_channels), int(image_size)
        for out in channels:
            layers += [nn.Conv2d(c, int(out), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c, side = int(out), side // 2
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {len(channels)} pooling "
                             f"stages; use image_size >= {2 ** len(channels)} or fewer channels")
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, int(hidden)), nn.ReLU(),
                                  nn.Linear(int(hidden), int(num_classes)))

    def forward(self, x):
        return self.head(self.features(x))


ARCHITECTURES = {"mlp": MLP, "cnn": SmallCNN}


def build_model(arch: str, **arch_kwargs) -> nn.Module:
    """An untrained model of a registered architecture."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture '{arch}'; choose one of {sorted(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[arch](**arch_kwargs)
    except TypeError as exc:
        raise ValueError(f"bad arch_kwargs for '{arch}': {exc}") from None


def save_checkpoint(path, model: nn.Module, arch: str, arch_kwargs: Dict, num_classes: int,
                    input_shape: Sequence[int], meta: Optional[Dict] = None) -> None:
    """Write ``model`` in the checkpoint format above (atomically: temp file + rename)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture '{arch}'; choose one of {sorted(ARCHITECTURES)}")
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "arch": arch,
        "arch_kwargs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in arch_kwargs.items()},
        "num_classes": int(num_classes),
        "input_shape": [int(s) for s in input_shape],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, device="cpu") -> Tuple[nn.Module, Dict]:
    """(model in eval mode on ``device``, the checkpoint dict without its state_dict)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model checkpoint '{path}' does not exist; give the path of a "
                                f"file written by unicr_fast.models.save_checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or corrupt files
        raise ValueError(f"cannot read model checkpoint '{path}' with torch.load(weights_only=True) "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                         f"it must be a dict saved by unicr_fast.models.save_checkpoint") from None
    required = ("arch", "arch_kwargs", "num_classes", "input_shape", "state_dict")
    missing = [k for k in required if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"model checkpoint '{path}' lacks {missing}; expected a dict with keys "
                         f"{list(required)} (see unicr_fast.models)")
    model = build_model(ckpt["arch"], **ckpt["arch_kwargs"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"model checkpoint '{path}': state_dict does not fit architecture "
                         f"'{ckpt['arch']}' with {ckpt['arch_kwargs']}: {exc}") from None
    model.to(device).eval()
    info = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model, info
