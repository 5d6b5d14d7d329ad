"""Cohen et al.'s checkpoints: ``{'arch': ..., 'state_dict': ...}`` of ``Sequential(normalise,
network)`` as their train.py saves them, loadable with ``torch.load(weights_only=True)``.

The architectures are written here with the parameter names their state dicts use:

* ``cifar_resnet20`` / ``cifar_resnet110``: the CIFAR ResNet of depth 6n + 2 with basic blocks
  (3x3-3x3, widths 16/32/64, 1x1 projection where the shape changes, 8x8 average pool);
* ``resnet50``: the ImageNet ResNet-50 (bottleneck blocks, stride in the 3x3 convolution), saved
  from inside DataParallel, so its keys read ``1.module.<name>``.

The normalisation layer holds no saved state (its means and deviations are fixed per data set),
so noise is added in pixel space and radii are in pixel units, as in their paper.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import nn

#: Channel means and deviations of Cohen et al.'s normalisation layers.
NORMALISATION = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
                 "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}
#: arch -> (data set, number of classes, input shape).
ARCHITECTURES = {"cifar_resnet20": ("cifar10", 10, (3, 32, 32)),
                 "cifar_resnet110": ("cifar10", 10, (3, 32, 32)),
                 "resnet50": ("imagenet", 1000, (3, 224, 224))}


class NormalizeLayer(nn.Module):
    """(x - mean) / sd per channel; the constants are buffers left out of the state dict."""

    def __init__(self, means, sds):
        super().__init__()
        self.register_buffer("means", torch.tensor(means).view(-1, 1, 1), persistent=False)
        self.register_buffer("sds", torch.tensor(sds).view(-1, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.means) / self.sds


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _projection(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                         nn.BatchNorm2d(cout))


class _Basic(nn.Module):
    """Two 3x3 convolutions and a shortcut (projected when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(cin, cout, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class _Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, and a shortcut."""

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = 4 * width
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = _conv3x3(width, width, stride), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(cin, cout, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs with 3 stages of ``(depth - 2) / 6`` basic blocks."""

    def __init__(self, depth: int, num_classes: int = 10):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got {depth}")
        blocks = (depth - 2) // 6
        self.conv1, self.bn1 = _conv3x3(3, 16), nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        widths, cin = (16, 32, 64), 16
        for stage, width in enumerate(widths, start=1):
            layers = [_Basic(cin if i == 0 else width, width, 2 if i == 0 and stage > 1 else 1)
                      for i in range(blocks)]
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
            cin = width
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ResNet50(nn.Module):
    """ImageNet ResNet-50: 7x7 stem, max pool, stages of 3/4/6/3 bottlenecks, global pool."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        cin = 64
        for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
            layers = []
            for i in range(blocks):
                layers.append(_Bottleneck(cin, width, 2 if i == 0 and stage > 1 else 1))
                cin = 4 * width
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_cohen_model(arch: str) -> nn.Sequential:
    """Sequential(NormalizeLayer, network) with random weights, as Cohen et al. build it."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown Cohen et al. architecture '{arch}'; known: "
                         f"{sorted(ARCHITECTURES)}")
    dataset, classes, _ = ARCHITECTURES[arch]
    net = ResNet50(classes) if arch == "resnet50" else CifarResNet(int(arch[len("cifar_resnet"):]),
                                                                   classes)
    return nn.Sequential(NormalizeLayer(*NORMALISATION[dataset]), net)


def is_cohen_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("arch"), str) and "state_dict" in obj


def load_cohen_state(obj: Dict, source: str) -> Tuple[nn.Module, Dict]:
    """The model of a loaded Cohen checkpoint dict and a description (arch, classes, shape)."""
    arch = obj["arch"]
    if arch not in ARCHITECTURES:
        raise ValueError(f"model '{source}': unknown architecture '{arch}' in a Cohen et al. "
                         f"checkpoint; known: {sorted(ARCHITECTURES)}")
    model = build_cohen_model(arch)
    # DataParallel saved its network as `module`: drop that level of the names.
    state = {k.replace("1.module.", "1.", 1) if k.startswith("1.module.") else k: v
             for k, v in obj["state_dict"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"model '{source}': the state dict does not fit {arch} "
                         f"(missing {list(missing)[:3]}..., unexpected {list(unexpected)[:3]}...)"
                         if missing and unexpected else
                         f"model '{source}': the state dict does not fit {arch} "
                         f"({'missing' if missing else 'unexpected'} keys "
                         f"{list(missing or unexpected)[:5]})")
    dataset, classes, shape = ARCHITECTURES[arch]
    return model.eval(), {"arch": arch, "dataset": dataset, "num_classes": classes,
                          "input_shape": shape, "format": "cohen"}
