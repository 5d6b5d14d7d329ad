"""Soundness, tested statistically (docs/theory.md §10): false certificates of Smooth.certify on
classifiers whose true radius is known, counted against a binomial bound at alpha.

The base classifier f(x) = [x_1 > 0] on R^d. Under product noise with 1-D CDF F, the smoothed
classifier's top-class probability at x is p_A = F(x_1), and g's decision boundary is f's
hyperplane (the noise is symmetric), so the true radius is x_1 in every l_p norm (the dual norm of
e_1 is 1). A certificate is false when it names class 1 with a radius above x_1. That happens only
if the Clopper-Pearson bound exceeds p_A (probability <= alpha) or the radius engine overstates:
the Neyman-Pearson radius at p_a is at most the half-space classifier's, F^-1(p_a) (equal for
log-concave noise in l1). So over T independent trials the count of false certificates is
stochastically below Binomial(T, alpha); the test fails when it exceeds that law's
(1 - 1e-4)-quantile (a correct library fails it with probability < 1e-4 per case). The engine
overstatement this guards against gave 43 of 300 false certificates at alpha = 0.001.
"""
import numpy as np
import pytest
import torch
from scipy.special import expit, logit
from scipy.stats import binom

import unicr_fast as uc

ALPHA = 0.01
TEST_LEVEL = 1e-4
DIM = 2
N_DRAWS = 20_000   # the guarantee holds for any n; fewer draws keep hundreds of trials quick


class HalfSpace(torch.nn.Module):
    """Logits (-x_1, x_1): class 1 iff x_1 > 0."""

    def forward(self, x):
        return torch.stack([-x[:, 0], x[:, 0]], dim=1)


def _at_probability(noise, p_top):
    """The input whose class-1 probability under the noise is p_top, and its true radius."""
    x1 = float(noise.icdf(torch.tensor([p_top], dtype=torch.float64))[0])
    x = torch.zeros(DIM)
    x[0] = x1
    return x, x1


def _false_certificates(smooth, x, truth, trials, n):
    false = 0
    for t in range(trials):
        smooth.seed = 1000 + t        # independent noise draws per trial
        label, radius = smooth.certify(x, n0=100, n=n, alpha=ALPHA, batch_size=n)
        false += label == 1 and radius > truth
    return false


def _bound(trials):
    return int(binom.ppf(1 - TEST_LEVEL, trials, ALPHA))


@pytest.mark.slow
@pytest.mark.parametrize("family,params", [("laplace", {}), ("uniform", {}),
                                           ("general_normal", {"beta": 0.5}),
                                           ("general_normal", {"beta": 3.0}), ("cauchy", {})])
@pytest.mark.parametrize("p_top", [0.99, 0.999, 0.9999])
def test_default_engine_keeps_alpha(family, params, p_top):
    noise = uc.noise.make(family, sigma=0.5, **params)
    smooth = uc.Smooth(HalfSpace(), 2, noise=noise, norm=1)
    x, truth = _at_probability(noise, p_top)
    trials = 200
    false = _false_certificates(smooth, x, truth, trials, n=N_DRAWS)
    assert false <= _bound(trials), (family, params, p_top, false)


@pytest.mark.slow
@pytest.mark.parametrize("p_top", [0.999, 0.9999])
def test_monte_carlo_engine_keeps_alpha(p_top):
    """Monte-Carlo radii (asked for, with few samples) inside Smooth: sound mode with its
    failure probability folded into alpha."""
    noise = uc.noise.Laplace(0.5)
    smooth = uc.Smooth(HalfSpace(), 2, noise=noise, norm=1, radius_samples=20_000,
                       radius_kwargs={"method": "mc"})
    x, truth = _at_probability(noise, p_top)
    trials = 150
    false = _false_certificates(smooth, x, truth, trials, n=N_DRAWS)
    assert false <= _bound(trials), (p_top, false)


def test_certificates_are_not_vacuous():
    """The guard above would pass for a certifier returning 0: at p_A = 0.999 the default
    engine's radius is within the Clopper-Pearson slack of the truth (log-concave, l1: the
    radius is F^-1(p_a), so radius >= F^-1 of a p_a a few standard errors below p_A)."""
    noise = uc.noise.Laplace(0.5)
    smooth = uc.Smooth(HalfSpace(), 2, noise=noise, norm=1)
    x, truth = _at_probability(noise, 0.999)
    label, radius = smooth.certify(x, n0=100, n=100_000, alpha=ALPHA, batch_size=100_000)
    assert label == 1
    # p_a >= p_A - 6 sd of the count (sd = sqrt(p (1 - p) / n)) but for a 1e-9 chance, and the
    # radius cache rounds it down by at most one logit step (0.01); the radius is F^-1 of that.
    sd = np.sqrt(0.999 * 0.001 / 100_000)
    lowest = expit(logit(0.999 - 6 * sd) - 0.01)
    floor = float(noise.icdf(torch.tensor([lowest], dtype=torch.float64))[0])
    assert floor <= radius <= truth
