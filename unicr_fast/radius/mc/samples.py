"""The noise sample set of a radius computation (docs/theory.md §5: common random numbers).

Samples are drawn once per (noise, N, d, seed, dtype, device). Compiled families use the
counter-based Philox sampler (eps_ij a pure function of (seed, i, j), identical on CPU and GPU);
Custom and radial noise use torch generators seeded per row chunk. Either way the set is
deterministic per seed and the first n rows are the same whatever N is, so a subsample is a
prefix. The most recent set is cached, since a data-set run calls the radius engine many times
with the same settings.

A Philox set larger than ``MAX_SAMPLE_BYTES`` is never stored: ``samples()`` then returns
``PhiloxRows``, and the kernels regenerate each eps_ij from (seed, i, j) where they need it
(``log_ratio_philox``), with the same numbers, hence the same radii, as the stored set.
"""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import torch

from ...noise import Noise

_ROWS_PER_CHUNK = 8192
#: Largest sample matrix kept in memory (bytes). Beyond it the CPU path refuses with advice.
MAX_SAMPLE_BYTES = 6 * 1024 ** 3


@dataclasses.dataclass(frozen=True)
class PhiloxRows:
    """The first ``rows`` rows of a Philox sample set that is not stored (too large): what a
    kernel's ``log_ratio_philox`` regenerates. Slicing rows gives a prefix, like a tensor."""
    noise: Noise
    seed: int
    rows: int
    dim: int
    dtype: torch.dtype
    device: torch.device

    @property
    def shape(self):
        return (self.rows, self.dim)

    def __getitem__(self, index):
        if not (isinstance(index, slice) and index.start in (None, 0) and index.step in (None, 1)):
            raise TypeError("PhiloxRows supports row prefixes [:n] only")
        stop = self.rows if index.stop is None else max(0, min(self.rows, index.stop))
        return dataclasses.replace(self, rows=stop)


class SampleBank:
    def __init__(self, noise: Noise, num_samples: int, dim: int, seed: int, dtype, device):
        self.noise, self.num_samples, self.dim = noise, num_samples, dim
        self.seed, self.dtype, self.device = seed, dtype, torch.device(device)
        self._eps = None
        nbytes = num_samples * dim * torch.finfo(dtype).bits // 8
        #: True: too large to store; the kernels regenerate the draws (compiled families only).
        self.regenerated = nbytes > MAX_SAMPLE_BYTES
        if self.regenerated and noise.family_id is None:
            raise ValueError(
                f"num_samples x dim = {num_samples} x {dim} needs {nbytes / 2**30:.1f} GiB of noise "
                f"samples (limit {MAX_SAMPLE_BYTES / 2**30:.0f} GiB) and noise '{noise.name}' has "
                f"no Philox sampler to regenerate them; lower num_samples or use float32")

    def samples(self):
        """The N x d sample matrix (contiguous; a column prefix is a valid kernel input), or
        ``PhiloxRows`` standing for it when it is too large to store."""
        if self.regenerated:
            return PhiloxRows(self.noise, self.seed, self.num_samples, self.dim, self.dtype,
                              self.device)
        if self._eps is None:
            self._eps = self._philox() if self.noise.family_id is not None else None
        if self._eps is None:
            self._eps = self._torch_generator()
        return self._eps

    def _philox(self):
        """Compiled counter-based draws (csrc/common/draw.h), the same stream on CPU and GPU;
        None where no compiled sampler serves this device."""
        single = self.dtype == torch.float32
        if self.device.type == "cpu":
            try:
                from ... import _cpu
            except ImportError:
                return None
            arr = _cpu.sample(self.noise.family_id, self.noise.kernel_params, self.seed,
                              self.num_samples, self.dim, single)
            return torch.from_numpy(arr)
        if self.device.type == "cuda":
            from ...backends.cuda import load_cuda_backend
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
