"""The noise sample set of a radius computation (THEORY §5: common random numbers).

Samples are drawn once per (noise, N, d, seed, dtype, device). Compiled families use the
counter-based Philox sampler (eps_ij a pure function of (seed, i, j), identical on CPU and GPU);
Custom noise uses torch generators seeded per row chunk. Either way the set is deterministic per
seed and the first n rows are the same whatever N is, so a subsample is a prefix. The most recent set is cached, since a
data-set run calls the radius engine many times with the same settings.
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from .noise import Noise

_ROWS_PER_CHUNK = 8192
#: Largest sample matrix kept in memory (bytes). Beyond it the CPU path refuses with advice.
MAX_SAMPLE_BYTES = 6 * 1024 ** 3


class SampleBank:
    def __init__(self, noise: Noise, num_samples: int, dim: int, seed: int, dtype, device):
        self.noise, self.num_samples, self.dim = noise, num_samples, dim
        self.seed, self.dtype, self.device = seed, dtype, torch.device(device)
        self._eps = None
        nbytes = num_samples * dim * torch.finfo(dtype).bits // 8
        if nbytes > MAX_SAMPLE_BYTES:
            raise ValueError(
                f"num_samples x dim = {num_samples} x {dim} needs {nbytes / 2**30:.1f} GiB of noise "
                f"samples (limit {MAX_SAMPLE_BYTES / 2**30:.0f} GiB); lower num_samples or use float32")

    def samples(self) -> torch.Tensor:
        """The N x d sample matrix (contiguous; a column prefix is a valid kernel input)."""
        if self._eps is None:
            self._eps = self._philox() if self.noise.family_id is not None else None
        if self._eps is None:
            self._eps = self._torch_generator()
        return self._eps

    def _philox(self):
        """Compiled counter-based draws (csrc/cuda/draw.h), the same stream on CPU and GPU;
        None where no compiled sampler serves this device."""
        single = self.dtype == torch.float32
        if self.device.type == "cpu":
            try:
                from . import _cpu
            except ImportError:
                return None
            arr = _cpu.sample(self.noise.family_id, self.noise.kernel_params, self.seed,
                              self.num_samples, self.dim, single)
            return torch.from_numpy(arr)
        if self.device.type == "cuda":
            from .cuda_backend import load_cuda_backend
            cuda = load_cuda_backend()
            if cuda is not None:
                return cuda.sample(self.noise, (self.num_samples, self.dim), self.seed,
                                   dtype=self.dtype, device=self.device)
        return None

    def _torch_generator(self):
        """Draws from torch generators seeded per row chunk (Custom noise, or no compiled module)."""
        eps = torch.empty(self.num_samples, self.dim, dtype=self.dtype, device=self.device)
        gen = torch.Generator(device=self.device)
        for c, lo in enumerate(range(0, self.num_samples, _ROWS_PER_CHUNK)):
            hi = min(self.num_samples, lo + _ROWS_PER_CHUNK)
            gen.manual_seed(int(np.random.SeedSequence([self.seed, c]).generate_state(1)[0]))
            eps[lo:hi] = self.noise.sample((hi - lo, self.dim), generator=gen,
                                           device=self.device, dtype=self.dtype)
        return eps


_cache_lock = threading.Lock()
_cache = {}


def get_sample_bank(noise, num_samples, dim, seed, dtype, device) -> SampleBank:
    """The cached bank for these settings (one kept), or a new one."""
    key = (noise, num_samples, dim, seed, dtype, torch.device(device))
    with _cache_lock:
        bank = _cache.get(key)
        if bank is None:
            _cache.clear()
            bank = _cache[key] = SampleBank(noise, num_samples, dim, seed, dtype, device)
        return bank
