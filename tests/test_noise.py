"""Noise catalogue: samplers agree with log-densities and CDFs, variance is sigma^2."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import unicr_fast as uc
from conftest import FAMILY_CASES, family_id, make_noise

KS_LEVEL = 1e-3   # each KS test rejects a correct sampler with probability 1e-3 (fixed seeds)


def cdf_of(noise, x):
    return noise.cdf(torch.as_tensor(x, dtype=torch.float64)).numpy()


def pdf_of(noise, x):
    return float(torch.exp(noise.log_pdf(torch.tensor(x, dtype=torch.float64))))


@pytest.mark.parametrize("case", FAMILY_CASES, ids=family_id)
def test_sampler_matches_cdf_ks(case):
    noise = make_noise(case)
    x = noise.sample((20_000,), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    pvalue = stats.kstest(x.numpy(), lambda t: cdf_of(noise, t)).pvalue
    assert pvalue > KS_LEVEL


@pytest.mark.parametrize("case", FAMILY_CASES, ids=family_id)
def test_log_pdf_is_the_derivative_of_the_cdf(case):
    noise = make_noise(case)
    h = 1e-5
    for x in (-2.1, -0.3, 0.05, 0.4, 1.7):
        if abs(abs(x) - noise.support_bound()) < 1e-3:
            continue
        deriv = (cdf_of(noise, x + h) - cdf_of(noise, x - h)) / (2 * h)
        # central difference: error O(h^2 f''') ~ 1e-10, plus cdf rounding 1e-16 / h ~ 1e-11
        assert abs(float(deriv) - pdf_of(noise, x)) < 1e-6


@pytest.mark.parametrize("case", FAMILY_CASES, ids=family_id)
def test_log_pdf_integrates_to_one(case):
    noise = make_noise(case)
    bound = noise.support_bound()
    lim = bound if math.isfinite(bound) else np.inf
    total, err = integrate.quad(lambda t: pdf_of(noise, t), -lim, lim, limit=200)
    assert abs(total - 1) < max(1e-6, 10 * err)


VARIANCE_CASES = [c for c in FAMILY_CASES if c[0] not in ("cauchy", "pareto")] + [("pareto", {"a": 6.0})]


@pytest.mark.parametrize("case", VARIANCE_CASES, ids=family_id)
def test_variance_is_sigma_squared(case):
    sigma = 0.7
    noise = make_noise(case, sigma)
    n = 200_000
    x = noise.sample((n,), generator=torch.Generator().manual_seed(3), dtype=torch.float64).numpy()
    # Var of the sample second moment is (mu4 - sigma^4)/n; mu4 by quadrature of the density.
    bound = noise.support_bound()
    lim = bound if math.isfinite(bound) else np.inf
    mu4, _ = integrate.quad(lambda t: t ** 4 * pdf_of(noise, t), -lim, lim, limit=400)
    se = math.sqrt((mu4 - sigma ** 4) / n)
    assert abs(np.mean(x ** 2) - sigma ** 2) < 5 * se   # 5 standard errors: false alarm < 1e-6


def test_cauchy_scale_is_sigma():
    noise = uc.noise.Cauchy(sigma=0.7)
    x = noise.sample((100_000,), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    # The interquartile range of Cauchy(g) is 2 g; sample quantile SE via the density.
    q = np.quantile(x.numpy(), [0.25, 0.75])
    se = math.sqrt(0.25 * 0.75 / 100_000) / (1 / (math.pi * 0.7 * 2))
    assert abs((q[1] - q[0]) - 1.4) < 5 * se * math.sqrt(2)


@pytest.mark.parametrize("case", FAMILY_CASES, ids=family_id)
def test_sampling_is_deterministic_per_seed(case):
    noise = make_noise(case)
    a = noise.sample((50, 3), generator=torch.Generator().manual_seed(11))
    b = noise.sample((50, 3), generator=torch.Generator().manual_seed(11))
    assert a.dtype == torch.float32 and torch.equal(a, b)


def test_icdf_inverts_cdf():
    for noise in (uc.noise.Gaussian(0.5), uc.noise.Laplace(0.5), uc.noise.Uniform(0.5),
                  uc.noise.HyperbolicSecant(0.5), uc.noise.Cauchy(0.5), uc.noise.Pareto(0.5, 3.0),
                  uc.noise.GeneralNormal(0.5, 1.5), uc.noise.LaplaceGaussianMixture(0.5, 0.3),
                  uc.noise.ExponentialMixture(0.5, 0.4, 1.0, 3.0)):
        q = np.array([0.01, 0.3, 0.5, 0.77, 0.999])
        back = cdf_of(noise, noise.icdf(q))
        np.testing.assert_allclose(back, q, atol=1e-10)


def test_kernel_params_have_fixed_length():
    for name, params in FAMILY_CASES:
        kp = uc.noise.make(name, sigma=1.0, **params).kernel_params
        assert kp.shape == (uc.noise.KERNEL_PARAMS,) and kp.dtype == np.float64
        assert np.isfinite(kp).all()


def test_custom_noise_runs_on_torch_backend():
    logpdf = lambda x: -0.5 * x * x - 0.5 * math.log(2 * math.pi)
    sampler = lambda shape, generator, device: torch.randn(shape, generator=generator, dtype=torch.float64)
    noise = uc.noise.Custom(logpdf, sampler)
    eps = noise.sample((100, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a, b = uc.backends.log_ratio(noise, eps, torch.ones(1, 4, dtype=torch.float64))
    gauss_a, _ = uc.backends.log_ratio(uc.noise.Gaussian(1.0), eps, torch.ones(1, 4, dtype=torch.float64),
                                       backend="torch")
    torch.testing.assert_close(a, gauss_a, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="no compiled kernel"):
        uc.backends.log_ratio(noise, eps, torch.ones(1, 4, dtype=torch.float64), backend="cpu")


@pytest.mark.parametrize("bad, err, match", [
    (dict(name="gaussian", sigma=0.0), ValueError, "sigma"),
    (dict(name="gaussian", sigma=-1.0), ValueError, "sigma"),
    (dict(name="gaussian", sigma=float("nan")), ValueError, "sigma"),
    (dict(name="gaussian", sigma=float("inf")), ValueError, "sigma"),
    (dict(name="gaussian", sigma="0.5"), TypeError, "sigma"),
    (dict(name="general_normal", sigma=1.0, beta=0.0), ValueError, "beta"),
    (dict(name="general_normal", sigma=1.0, beta=-2.0), ValueError, "beta"),
    (dict(name="pareto", sigma=1.0, a=2.0), ValueError, "a must be > 2"),
    (dict(name="laplace_gaussian_mixture", sigma=1.0, weight=1.5), ValueError, "weight"),
    (dict(name="no_such_noise", sigma=1.0), ValueError, "unknown noise family"),
    (dict(name="gaussian", sigma=1.0, beta=2.0), TypeError, "bad parameters"),
])
def test_bad_noise_parameters(bad, err, match):
    with pytest.raises(err, match=match):
        uc.noise.make(**bad)


def test_sample_rejects_bad_dtype():
    with pytest.raises(TypeError, match="dtype"):
        uc.noise.Gaussian(1.0).sample((3,), dtype=torch.int32)
