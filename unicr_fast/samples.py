"""The noise sample set of a radius computation (THEORY §5: common random numbers).

Samples are drawn once per (noise, N, d, seed, dtype, device) in row chunks, each chunk from a
generator seeded by (seed, chunk index): the set is deterministic per seed and the first n rows
are the same whatever N is, so a subsample is a prefix. The most recent set is cached, since a
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
            eps = torch.empty(self.num_samples, self.dim, dtype=self.dtype, device=self.device)
            gen = torch.Generator(device=self.device)
            for c, lo in enumerate(range(0, self.num_samples, _ROWS_PER_CHUNK)):
                hi = min(self.num_samples, lo + _ROWS_PER_CHUNK)
                gen.manual_seed(int(np.random.SeedSequence([self.seed, c]).generate_state(1)[0]))
                eps[lo:hi] = self.noise.sample((hi - lo, self.dim), generator=gen,
                                               device=self.device, dtype=self.dtype)
            self._eps = eps
        return self._eps

    def key(self):
        return (self.noise, self.num_samples, self.dim, self.seed, self.dtype, self.device)


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
