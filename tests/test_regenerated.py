"""Sample sets too large to store (samples.MAX_SAMPLE_BYTES): the kernels regenerate each eps_ij
from (seed, i, j) (``log_ratio_philox``) instead of reading it. The draws are the stored ones bit
for bit (one compiled row sampler serves both), so kernel outputs and radii must be *equal*, not
close."""
import numpy as np
import pytest
import torch
from conftest import FAMILY_CASES, family_id, make_noise

import unicr_fast as uc
from unicr_fast import radius as radius_mod
from unicr_fast.radius.mc import samples

pytestmark = pytest.mark.skipif("cpu" not in uc.available_backends(),
                                reason="compiled CPU module not built")


def cpu_module():
    from unicr_fast import _cpu
    return _cpu


@pytest.mark.parametrize("case", FAMILY_CASES, ids=family_id)
@pytest.mark.parametrize("single", [True, False])
def test_regenerated_kernel_equals_stored(case, single):
    _cpu, noise = cpu_module(), make_noise(case)
    N, d, k = 257, 40, 25
    eps = _cpu.sample(noise.family_id, noise.kernel_params, 11, N, d, single)
    shifts = np.random.default_rng(1).normal(size=(6, k)) * 0.4
    shifts[1] = 0.0
    shifts[2, 7:] = 0.0
    stored = _cpu.log_ratio(eps[:, :k], shifts, noise.family_id, noise.kernel_params)
    regen = _cpu.log_ratio_philox(noise.family_id, noise.kernel_params, 11, N, k, shifts, single)
    for s, r in zip(stored, regen):
        assert np.array_equal(s, r)


@pytest.mark.parametrize("kwargs, error, word", [
    ({"num_samples": 0}, ValueError, "num_samples"), ({"dim": 2 ** 32}, ValueError, "32-bit"),
    ({"shifts": np.zeros((2, 5))}, ValueError, "coordinates"), ({"family": 99}, ValueError, "family"),
    ({"shifts": np.full((2, 4), np.nan)}, ValueError, "finite"),
    ({"shifts": np.zeros((0, 4))}, ValueError, "at least one"),
])
def test_regenerated_kernel_rejects_bad_arguments(kwargs, error, word):
    noise = uc.noise.Gaussian(1.0)
    args = {"family": noise.family_id, "params": noise.kernel_params, "seed": 0, "num_samples": 3,
            "dim": 4, "shifts": np.zeros((2, 4)), "single": True, **kwargs}
    if kwargs.get("dim") == 2 ** 32:
        args["shifts"] = np.zeros((1, 1))   # checked before the shape
    with pytest.raises(error, match=word):
        cpu_module().log_ratio_philox(**args)


def clear_memos():
    """Forget memoised sample sets and direction sets, so a run starts from scratch."""
    radius_mod._direction_sets.clear()
    samples._cache.clear()


@pytest.fixture
def tiny_cap(monkeypatch):
    """Every sample set counts as too large to store."""
    clear_memos()
    monkeypatch.setattr(samples, "MAX_SAMPLE_BYTES", 1)
    yield
    clear_memos()


def stored_then_regenerated(fn, monkeypatch):
    clear_memos()
    stored = fn()
    clear_memos()
    monkeypatch.setattr(samples, "MAX_SAMPLE_BYTES", 1)
    regen = fn()
    clear_memos()
    return stored, regen


@pytest.mark.parametrize("name, params, norm, p_b, kw", [
    ("laplace", {}, 1, None, {}),
    ("general_normal", {"beta": 1.5}, "inf", 0.05, {}),
    ("uniform", {}, 2, None, {"sound": True}),
    ("hyperbolic_secant", {}, 2, None, {"dtype": torch.float64}),
    ("gaussian", {}, 2, 0.1, {}),
])
def test_radius_from_regenerated_samples_equals_stored(monkeypatch, name, params, norm, p_b, kw):
    noise = uc.noise.make(name, sigma=0.5, **params)
    run = lambda: uc.certified_radius(noise, np.array([0.6, 0.9, 0.99]), p_b, norm, 30,
                                      num_samples=3000, seed=4, device="cpu", search_samples=1000,
                                      **kw)
    stored, regen = stored_then_regenerated(run, monkeypatch)
    assert np.array_equal(stored, regen)
    assert (stored > 0).all()


def test_regeneration_needs_a_compiled_sampler_and_backend(tiny_cap):
    with pytest.raises(ValueError, match="torch"):
        uc.certified_radius(uc.noise.Laplace(0.5), 0.9, None, 1, 10, 100, backend="torch",
                            device="cpu", method="mc")
    with pytest.raises(ValueError, match="Philox"):
        uc.certified_radius(uc.noise.Radial(0.5, 2, 1, 10), 0.9, None, 2, 10, 100, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")
def test_cuda_radius_from_regenerated_samples_equals_stored(monkeypatch):
    noise = uc.noise.make("general_normal", sigma=0.5, beta=1.5)
    run = lambda: uc.certified_radius(noise, np.array([0.7, 0.95]), None, 2, 64, num_samples=4000,
                                      seed=2, device="cuda", search_samples=2000)
    stored, regen = stored_then_regenerated(run, monkeypatch)
    assert np.array_equal(stored, regen)
