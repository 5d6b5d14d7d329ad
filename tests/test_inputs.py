"""Argument checks of the public entry points: every bad input is a TypeError / ValueError that
names the argument, raised before any sampling.

Only the few cases that must also still work run the engine, in small dimensions."""
import math
import re
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy.stats import gamma as gamma_dist

import unicr_fast as uc
from unicr_fast.noise import (Cauchy, ExponentialMixture, Gaussian, GeneralNormal, Laplace,
                              LaplaceGaussianMixture, Pareto, Radial)
from unicr_fast.radius.cache import RadiusCache
from unicr_fast.radius.table import RadiusTable

# Engine settings for a quick run in small dimension.
FAST = dict(num_samples=1000, search_samples=500, particles=2, iterations=1, method="mc")


def radius(**kwargs):
    kwargs = {"dim": 4, **kwargs}
    return uc.certified_radius(kwargs.pop("noise", Gaussian(0.5)), **kwargs)


class Constant(torch.nn.Module):
    """Always predicts class 0 of 3."""

    def forward(self, x):
        out = torch.zeros(x.shape[0], 3, dtype=x.dtype)
        out[:, 0] = 1.0
        return out


# -- p_a and p_b ------------------------------------------------------------------------------
@pytest.mark.parametrize("p_a, error", [
    (True, TypeError), (np.bool_(True), TypeError), (np.array([True, False]), TypeError),
    ([True, 0.9], TypeError), (torch.tensor([True]), TypeError), (None, TypeError),
    ([0.9, None], TypeError), (0.9 + 0j, TypeError), (np.array([0.9 + 0j]), TypeError),
    ("0.9", TypeError), (["0.9"], TypeError), ([[0.9], [0.8, 0.7]], TypeError),
    (math.nan, ValueError), ([0.9, math.nan], ValueError), (1.5, ValueError), (0.0, ValueError),
])
def test_bad_p_a_is_named(p_a, error):
    with pytest.raises(error, match="p_a"):
        radius(p_a=p_a)


def test_bool_p_a_reads_as_its_type():
    with pytest.raises(TypeError, match="p_a must be a real number.*got bool"):
        radius(p_a=True)
    with pytest.raises(TypeError, match="p_a must be a real number, got NoneType"):
        radius(p_a=None)


@pytest.mark.parametrize("p_b, error", [
    (True, TypeError), (0.1 + 0j, TypeError), ("0.1", TypeError), ([0.1], TypeError),
    (math.nan, ValueError), (-0.1, ValueError), (1.5, ValueError),
])
def test_bad_p_b_is_named(p_b, error):
    with pytest.raises(error, match="p_b"):
        radius(p_a=0.9, p_b=p_b)


def test_real_p_a_of_any_container_is_accepted():
    # Only the argument check: p_a <= 1/2 certifies nothing and returns without sampling.
    assert radius(p_a=Fraction(1, 2), **FAST) == 0.0
    assert radius(p_a=np.float32(0.4), **FAST) == 0.0
    np.testing.assert_array_equal(radius(p_a=[0.3, Fraction(1, 4)], **FAST), [0.0, 0.0])
    np.testing.assert_array_equal(radius(p_a=torch.tensor([0.3, 0.4]), **FAST), [0.0, 0.0])


# -- noise parameters -------------------------------------------------------------------------
def _beta_min(message):
    return float(re.search(r"must be >= ([0-9.e+-]+)", message).group(1))


@pytest.mark.parametrize("sigma", [1.0, 1e-5, 1e5])
def test_general_normal_beta_range_is_stated_and_exact(sigma):
    with pytest.raises(ValueError, match="beta must be >= .* underflows") as info:
        GeneralNormal(sigma, beta=1e-3)
    beta_min = _beta_min(str(info.value))
    assert 1e-3 < beta_min < 0.05
    with pytest.raises(ValueError, match="beta"):
        GeneralNormal(sigma, beta=beta_min * 0.99)
    noise = GeneralNormal(sigma, beta=beta_min * 1.01)   # just inside: usable
    assert np.isfinite(noise.kernel_params).all() and noise.a > 0


def test_small_beta_general_normal_is_usable():
    # beta = 0.01 used to build a = 0 and fail later with "math domain error".
    noise = GeneralNormal(1.0, beta=0.01)
    assert noise.a == pytest.approx(math.exp(0.5 * (math.lgamma(100) - math.lgamma(300))),
                                    rel=1e-12)
    assert np.isfinite(noise.kernel_params).all()
    x = noise.sample((2000,), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.isfinite(x).all() and torch.isfinite(noise.log_pdf(x)).all()
    # log|X| = log a + log(G) / beta, G ~ Gamma(1/beta): its median, with 5 standard errors
    # (sd of log|X| is ~ 10, of the sample median ~ 1.25 * 10 / sqrt(2000) = 0.28).
    median = math.log(noise.a) + 100 * math.log(gamma_dist.ppf(0.5, 100))
    assert float(x.abs().log().median()) == pytest.approx(median, abs=1.4)


def test_general_normal_large_beta_is_uniform_like():
    noise = GeneralNormal(1.0, beta=1e6)
    assert noise.a == pytest.approx(math.sqrt(3.0), rel=1e-5)
    assert np.isfinite(noise.kernel_params).all()


@pytest.mark.parametrize("make, match", [
    (lambda: Gaussian(1e301), "sigma must lie in"),
    (lambda: Gaussian(1e-301), "sigma must lie in"),
    (lambda: Laplace(5e-324), "sigma must lie in"),
    (lambda: GeneralNormal(1e300, beta=5.0), "sigma = 1e\\+300, beta = 5 give the scale a"),
    (lambda: Pareto(1.0, a=1e200), "a = 1e\\+200 give the scale s"),
    (lambda: Pareto(1.0, a=2.0), "a must be > 2"),
    (lambda: Cauchy(1e140), "sigma must lie in .* cauchy"),
    (lambda: Cauchy(1e-160), "sigma must lie in .* cauchy"),
    (lambda: LaplaceGaussianMixture(1.0, weight=1.5), "weight must lie in \\[0, 1\\]"),
    (lambda: LaplaceGaussianMixture(1.0, weight=-0.1), "weight must lie in \\[0, 1\\]"),
    (lambda: LaplaceGaussianMixture(1.0, weight=math.nan), "weight must not be NaN"),
    (lambda: ExponentialMixture(1.0, 0.5, beta1=1e-3), "beta1 must be >= "),
    (lambda: ExponentialMixture(1.0, 0.5, beta2=1e-3), "beta2 must be >= "),
    (lambda: ExponentialMixture(1.0, 0.5, beta2=-1.0), "beta2 must be finite and > 0"),
    (lambda: ExponentialMixture(1.0, 2.0), "weight must lie in"),
    (lambda: Radial(1.0, q=2.0, beta=0.01, dim=3072), "dim = 3072 give the scale a"),
    (lambda: Radial(1.0, q=0.01, beta=2.0, dim=3072), "q = 0.01.* give the scale a"),
    (lambda: Radial(1.0, q=1e-300, beta=2.0, dim=8), "give the scale a"),
    (lambda: Radial(1e-301, dim=4), "sigma must lie in"),
    (lambda: Radial(a=1e301, dim=4), "a must lie in"),
    (lambda: Radial(1.0, beta=0.01).bound(3072), "give the scale a"),
])
def test_noise_scales_stay_representable(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bool_noise_parameters_are_type_errors():
    with pytest.raises(TypeError, match="a must be a real number, got bool"):
        Pareto(1.0, a=True)
    with pytest.raises(TypeError, match="weight must be a real number, got bool"):
        LaplaceGaussianMixture(1.0, weight=True)
    with pytest.raises(TypeError, match="beta must be a real number, got bool"):
        GeneralNormal(1.0, beta=True)


@pytest.mark.parametrize("noise", [
    Gaussian(1e300), Gaussian(1e-300), Cauchy(1e130), Cauchy(1e-150), Pareto(1.0, a=1e100),
    GeneralNormal(1e-300, beta=2.0), ExponentialMixture(1.0, 0.0, beta1=0.05, beta2=20.0),
    LaplaceGaussianMixture(1.0, weight=1.0),
], ids=repr)
def test_extreme_but_valid_parameters_give_finite_kernel_values(noise):
    assert np.isfinite(noise.kernel_params).all()


def test_radial_small_beta_in_its_range_samples_finite_vectors():
    noise = Radial(1.0, q=2.0, beta=0.05, dim=3072)
    w = noise.sample((3, 3072), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.isfinite(w).all() and 0.5 < w.std().item() < 2.0


# -- norm ----------------------------------------------------------------------------------------
def test_tiny_norm_is_rejected_for_the_dimension():
    with pytest.raises(ValueError, match="norm must be >= 0.0229 in dimension 3072"):
        radius(p_a=0.9, norm=1e-9, dim=3072)
    with pytest.raises(ValueError, match="norm"):
        radius(p_a=0.9, norm=1e-9, dim=3072, method="exact")
    with pytest.raises(ValueError, match="norm"):
        radius(p_a=0.9, norm=0.005, dim=16)


def test_small_norm_inside_the_range_works():
    # dim = 1: every norm is the same; dim = 16: 16^(2/0.02) is still a float64.
    assert radius(p_a=0.9, norm=1e-9, dim=1, **FAST) == pytest.approx(
        radius(p_a=0.9, norm=2, dim=1, **FAST))
    assert 0 < radius(p_a=0.9, norm=0.02, dim=16, **FAST) < math.inf


# -- seeds ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed, error, match", [
    (2 ** 70, ValueError, "seed must lie in \\[0, 2\\*\\*64 - 1\\]"),
    (2 ** 64, ValueError, "seed must lie in"),
    (-1, ValueError, "seed must be >= 0"),
    (1.5, TypeError, "seed must be an integer"),
    (True, TypeError, "seed must be an integer"),
    ("0", TypeError, "seed"),
])
def test_bad_seed_is_named_everywhere(seed, error, match):
    with pytest.raises(error, match=match):
        radius(p_a=0.9, seed=seed)
    with pytest.raises(error, match=match):
        uc.Smooth(Constant(), 3, sigma=0.5, seed=seed)
    # RadiusCache and RadiusTable hand the seed to certified_radius, which names it.
    with pytest.raises(error, match=match):
        RadiusCache(Laplace(0.5), num_samples=1000, seed=seed).radius(0.9, None, 1, 4)
    with pytest.raises(error, match="seed"):
        RadiusTable.build(Laplace(0.5), 1, 4, step=0.5, p_max=0.9, num_samples=1000, seed=seed,
                          progress=False)


def test_largest_seed_is_accepted():
    top = uc.certified_radius(Laplace(0.5), 0.9, norm=1, dim=4, seed=2 ** 64 - 1, **FAST)
    assert top == uc.certified_radius(Laplace(0.5), 0.9, norm=1, dim=4,
                                      seed=np.uint64(2 ** 64 - 1), **FAST) > 0
    assert uc.Smooth(Constant(), 3, sigma=0.5, seed=2 ** 64 - 1).predict(
        torch.zeros(3), 20, 0.01, 20) == 0


# -- num_samples ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 99])
def test_too_few_monte_carlo_samples(n):
    with pytest.raises(ValueError, match="num_samples must be >= 100"):
        radius(p_a=0.9, num_samples=n, method="mc")


def test_exact_method_takes_no_samples():
    assert radius(p_a=0.9, num_samples=2, method="exact") > 0


# -- Smooth.certify_norms ------------------------------------------------------------------------
@pytest.mark.parametrize("norms", [(2, 2.0), (2, "2"), ("inf", math.inf), (1, 1), (1, "inf", "Inf")])
def test_duplicate_norms_are_rejected(norms):
    smooth = uc.Smooth(Constant(), 3, sigma=0.5)
    with pytest.raises(ValueError, match="norms must be distinct"):
        smooth.certify_norms(torch.zeros(3), 10, 100, 0.01, 50, norms=norms)


def test_distinct_norms_keep_their_keys():
    label, radii = uc.Smooth(Constant(), 3, sigma=0.5).certify_norms(
        torch.zeros(3), 10, 100, 0.01, 50, norms=(1, 2.0, "inf"))
    assert label == 0 and list(radii) == [1, 2.0, "inf"]


# -- dim and the Monte-Carlo memory ---------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(dim=10 ** 8), "dim = 100000000 is too large for Monte Carlo"),
    (dict(dim=2 ** 40), "too large for Monte Carlo"),
    (dict(dim=10 ** 6, particles=1000), "1000 directions"),
])
def test_monte_carlo_dimension_limit(kwargs, match):
    kwargs = {"p_a": 0.9, "method": "mc", **kwargs}
    with pytest.raises(ValueError, match=match):
        radius(**kwargs)


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(dim=3072.0), TypeError, "dim must be an integer, got float"),
    (dict(dim=True), TypeError, "dim must be an integer, got bool"),
    (dict(dim=None), TypeError, "dim is required"),
    (dict(dim=0), ValueError, "dim must be >= 1"),
    (dict(cap=0.0), ValueError, "cap"), (dict(cap=-1.0), ValueError, "cap"),
    (dict(cap=math.inf), ValueError, "cap"), (dict(cap=math.nan), ValueError, "cap"),
    (dict(cap="10"), TypeError, "cap"),
    (dict(rtol=0.0), ValueError, "rtol"), (dict(rtol=1e-20), ValueError, "rtol must lie in"),
    (dict(rtol=1.0), ValueError, "rtol must lie in"), (dict(rtol=True), TypeError, "rtol"),
    (dict(beta=0.0), ValueError, "beta must lie in \\(0, 1\\)"),
    (dict(beta=1.0), ValueError, "beta"), (dict(beta=math.nan), ValueError, "beta"),
    (dict(beta="0.01"), TypeError, "beta"),
    (dict(sound="yes"), TypeError, "sound must be a bool"),
    (dict(dtype=torch.float16), TypeError, "dtype"), (dict(dtype="float32"), TypeError, "dtype"),
    (dict(dtype=np.float32), TypeError, "dtype"),
    (dict(device="tpu"), ValueError, "device"), (dict(device=3), TypeError, "device"),
    (dict(device="meta"), ValueError, "device"),
    (dict(method="bogus"), ValueError, "method"),
    (dict(particles=-1), ValueError, "particles"), (dict(iterations=1.0), TypeError, "iterations"),
    (dict(search_samples=0), ValueError, "search_samples"),
    (dict(num_samples=1e5), TypeError, "num_samples"),
])
def test_engine_arguments_are_named(kwargs, error, word):
    kwargs = {"p_a": 0.9, **kwargs}
    with pytest.raises(error, match=word):
        radius(**kwargs)
