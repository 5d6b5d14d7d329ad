"""Per-input certification of a CIFAR-shaped model (3x32x32, small random-weight ResNet) at
n = 10,000 on CPU with Laplace noise in l1 (non-Gaussian, so the radius engine runs). Splits the
time into sampling + forward and radius, cold (first input: engine search) and warm (radius
from the RadiusCache). Run with
    python -m pytest bench/test_bench_smooth.py --benchmark-only
Target: with a warm cache the radius is <= 5% of the per-input time."""
import time

import torch
from torch import nn

import unicr_fast as uc

N0, N, ALPHA, BATCH = 100, 10_000, 0.001, 500


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (nn.Sequential() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.skip(x))


def small_resnet(num_classes=10):
    """ResNet-8 style: 16-32-64 channels, one block per stage."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


class TimedCache:
    """Wraps a RadiusCache and adds up the seconds spent in radius lookups."""

    def __init__(self, cache):
        self.cache, self.seconds = cache, 0.0

    def radius(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.cache.radius(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0


def test_certify_cifar_laplace_l1(benchmark):
    torch.manual_seed(0)
    model = small_resnet()
    with torch.no_grad():
        model[-1].bias[3] += 5.0   # random weights: make one class dominate so the input certifies
    x = torch.rand(3, 32, 32)
    smooth = uc.Smooth(model, 10, noise=uc.noise.Laplace(0.25), norm=1)
    timer = smooth.radius_cache = TimedCache(smooth.radius_cache)

    t0 = time.perf_counter()
    label, radius = smooth.certify(x, N0, N, ALPHA, BATCH)
    cold_total, cold_radius = time.perf_counter() - t0, timer.seconds
    assert label != uc.Smooth.ABSTAIN and radius > 0, "the radius engine must run"

    timer.seconds = 0.0
    rounds = 3
    assert benchmark.pedantic(smooth.certify, args=(x, N0, N, ALPHA, BATCH),
                              rounds=rounds, iterations=1) == (label, radius)
    warm_total = benchmark.stats.stats.mean
    warm_radius = timer.seconds / rounds
    info = dict(n=N, dim=x.numel(), label=label, radius=radius,
                sampling_forward_s=warm_total - warm_radius,
                radius_warm_s=warm_radius, radius_warm_fraction=warm_radius / warm_total,
                radius_cold_s=cold_radius, radius_cold_fraction=cold_radius / cold_total)
    benchmark.extra_info.update(info)
    print(f"\nsampling+forward {info['sampling_forward_s']:.2f}s/input | radius warm "
          f"{warm_radius * 1e3:.3f}ms ({info['radius_warm_fraction']:.2%}) | radius cold "
          f"{cold_radius:.1f}s ({info['radius_cold_fraction']:.0%} of {cold_total:.1f}s)")
    assert info["radius_warm_fraction"] <= 0.05
