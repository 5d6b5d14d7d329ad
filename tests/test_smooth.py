"""Smooth (Cohen-compatible predict/certify) and RadiusCache.

Small dimensions and sample counts keep the file fast; every tolerance says where it comes from."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom
from scipy.stats import norm as normal

import unicr_fast as uc
from unicr_fast.confidence import clopper_pearson_lower, clopper_pearson_upper
from unicr_fast.radius.cache import RadiusCache

# Radius engine settings for small d: cheaper direction search (d = 3 has only 3 block levels).
FAST = dict(search_samples=5_000, particles=4, iterations=2)
RADIUS_SAMPLES = 20_000
DUAL = {1: math.inf, 2: 2.0, "inf": 1.0}   # ||.||_q dual to each l_p norm


class Constant(torch.nn.Module):
    """Always predicts ``label``."""

    def __init__(self, num_classes, label):
        super().__init__()
        self.num_classes, self.label = num_classes, label

    def forward(self, x):
        out = torch.zeros(x.shape[0], self.num_classes, dtype=x.dtype)
        out[:, self.label] = 1.0
        return out


class Pattern(torch.nn.Module):
    """Predicts pattern[i % len(pattern)] for row i of a batch, whatever the noise: exact counts."""

    def __init__(self, num_classes, pattern):
        super().__init__()
        self.num_classes, self.pattern = num_classes, torch.tensor(pattern)

    def forward(self, x):
        idx = self.pattern[torch.arange(x.shape[0]) % len(self.pattern)]
        return torch.nn.functional.one_hot(idx, self.num_classes).to(x.dtype)


class Linear(torch.nn.Module):
    """f(x) = [w.x + b > 0]. Records its predictions so tests can recount them."""

    def __init__(self, w, b=0.0):
        super().__init__()
        self.w, self.b = torch.as_tensor(w, dtype=torch.float64), float(b)
        self.seen = []

    def forward(self, x):
        z = x.flatten(1).to(torch.float64) @ self.w + self.b
        out = torch.stack([-z, z], dim=1)
        self.seen.append(out.argmax(1))
        return out


def cp_estimate(model, n0, label, alpha):
    """p_a lower bound from the estimation draws a Linear model saw (after the n0 selection)."""
    preds = torch.cat(model.seen)[n0:]
    return clopper_pearson_lower(int((preds == label).sum()), len(preds), alpha)


# -- Cohen semantics ----------------------------------------------------------------------------

def test_constant_model_certifies_with_pa_alpha_root():
    n, alpha, sigma = 1000, 0.001, 0.5
    smooth = uc.Smooth(Constant(4, 2), num_classes=4, sigma=sigma)
    label, radius = smooth.certify(torch.zeros(3, 4, 4), n0=100, n=n, alpha=alpha, batch_size=300)
    # All n draws hit class 2: the one-sided Clopper–Pearson bound is alpha^(1/n).
    assert label == 2
    assert radius == pytest.approx(sigma * normal.ppf(alpha ** (1 / n)), rel=1e-12)
    assert smooth.predict(torch.zeros(3, 4, 4), n=n, alpha=alpha, batch_size=300) == 2


def test_fifty_fifty_abstains():
    smooth = uc.Smooth(Pattern(3, [0, 1]), num_classes=3, sigma=0.25)
    x = torch.zeros(5)
    assert smooth.predict(x, n=1000, alpha=0.001, batch_size=100) == uc.Smooth.ABSTAIN
    assert smooth.certify(x, n0=100, n=1000, alpha=0.001, batch_size=100) == (uc.Smooth.ABSTAIN, 0.0)


def test_certify_abstains_below_half_and_norms_report_zero():
    smooth = uc.Smooth(Pattern(3, [0, 0, 1, 2]), 3, noise=uc.noise.Laplace(0.5))
    label, radii = smooth.certify_norms(torch.zeros(4), 100, 1000, 0.001, 100)
    assert label == uc.Smooth.ABSTAIN and radii == {1: 0.0, 2: 0.0, "inf": 0.0}


def test_gaussian_l2_radius_equals_closed_form_of_the_same_counts():
    sigma, n0, n, alpha, d = 0.5, 100, 2000, 0.001, 4
    model = Linear(np.ones(d), b=0.3)
    smooth = uc.Smooth(model, 2, sigma=sigma)
    label, radius = smooth.certify(torch.full((d,), 0.1, dtype=torch.float64), n0, n, alpha, 100)
    p_a = cp_estimate(model, n0, label, alpha)
    assert label == 1 and p_a > 0.5
    assert radius == sigma * normal.ppf(p_a)
    model.seen.clear()
    _, radii = smooth.certify_norms(torch.full((d,), 0.1, dtype=torch.float64), n0, n, alpha, 100)
    # Same seed -> same counts; l1 = l2 radius, l_inf = R_2 / sqrt(d) (docs/theory.md §8).
    assert radii[2] == radius and radii[1] == radius
    assert radii["inf"] == pytest.approx(radius / math.sqrt(d), rel=1e-14)


def test_gaussian_multiclass_uses_bonferroni_bounds():
    n, alpha, sigma = 1000, 0.01, 0.25
    pattern = [0] * 7 + [1] * 2 + [2]             # counts 700 / 200 / 100 exactly
    smooth = uc.Smooth(Pattern(3, pattern), 3, sigma=sigma, multiclass=True)
    label, radius = smooth.certify(torch.zeros(2), 100, n, alpha, 100)
    p_a = clopper_pearson_lower(700, n, alpha / 2)
    p_b = clopper_pearson_upper(200, n, alpha / 2)
    assert label == 0
    assert radius == pytest.approx(0.5 * sigma * (normal.ppf(p_a) - normal.ppf(p_b)), rel=1e-12)


# -- soundness on a classifier whose robust radius is known --------------------------------------

NOISES = [
    ("gaussian", {}, False),
    ("laplace", {}, False),
    ("laplace", {}, True),
    ("uniform", {}, False),
    ("general_normal", {"beta": 1.5}, False),
    ("radial", {"q": math.inf, "beta": 2.0, "dim": 3}, False),   # not i.i.d.: its own kernel
    ("radial", {"q": 1.5, "beta": 0.8, "dim": 3}, True),
]


@pytest.mark.parametrize("name, params, multiclass", NOISES,
                         ids=[f"{c[0]}{'-multiclass' if c[2] else ''}" for c in NOISES])
def test_linear_classifier_radius_is_not_overstated(name, params, multiclass):
    """f(x) = [w.x + b > 0] smooths to itself under symmetric noise (w.eps is symmetric), so its
    true l_p robust radius at x is |w.x + b| / ||w||_q. A certified radius above it (or a wrong
    label) needs the Clopper–Pearson bound to fail, which happens with probability <= alpha per
    input. The engine estimates probabilities from N samples, an error of sqrt(n / N) CP
    standard errors per engine standard error; granting it 3 of them (fails w.p. 0.00135)
    moves the CP failure probability to alpha_eff = sf(z_alpha - 3 sqrt(n / N)) + 0.00135.
    Inputs use independent seeds, so violations are Binomial(inputs, <= alpha_eff); the test
    allows its 1 - 1e-6 quantile. w cycles through the axis (the worst l1 direction of
    log-concave noise: tight there), the diagonal and random directions."""
    d, n0, n, alpha, sigma, inputs = 3, 100, 2000, 0.001, 0.5, 30
    rng = np.random.default_rng(7)
    noise = uc.noise.make(name, sigma=sigma, **params)
    smooth = uc.Smooth(Linear(np.ones(d)), 2, noise=noise, multiclass=multiclass,
                       radius_samples=RADIUS_SAMPLES, radius_kwargs=FAST)
    directions = [np.eye(d)[0], np.ones(d)]
    violations = certified = 0
    for i in range(inputs):
        w = directions[i] if i < len(directions) else rng.normal(size=d)
        smooth.model, smooth.seed = Linear(w, b=0.1), 1000 + i
        x = torch.from_numpy(rng.normal(scale=sigma, size=d))
        label, radii = smooth.certify_norms(x, n0, n, alpha, batch_size=500)
        s = float(x @ torch.from_numpy(w)) + 0.1
        true = {q: abs(s) / np.linalg.norm(w, DUAL[q]) for q in DUAL}
        if label != uc.Smooth.ABSTAIN:
            certified += 1
            violations += label != int(s > 0) or any(radii[q] > true[q] for q in DUAL)
    alpha_eff = normal.sf(normal.isf(alpha) - 3 * math.sqrt(n / RADIUS_SAMPLES)) + normal.sf(3)
    assert certified >= inputs // 2          # the check must have something to check
    assert violations <= binom.ppf(1 - 1e-6, inputs, alpha_eff)


# -- determinism ---------------------------------------------------------------------------------

def test_same_seed_same_result_other_seed_other_draws():
    noise = uc.noise.Laplace(0.5)
    x = torch.tensor([0.05, -0.02, 0.01], dtype=torch.float64)

    def run(seed):
        model = Linear([1.0, 1.0, 1.0])
        smooth = uc.Smooth(model, 2, noise=noise, seed=seed, radius_samples=RADIUS_SAMPLES,
                           radius_kwargs=FAST)
        out = smooth.certify(x, 100, 1000, 0.01, 250)
        return out, torch.cat(model.seen)

    (a, seen_a), (b, seen_b), (_, seen_c) = run(3), run(3), run(4)
    assert a == b and torch.equal(seen_a, seen_b)
    assert not torch.equal(seen_a, seen_c)


# -- radius cache --------------------------------------------------------------------------------

def test_grid_rounding_is_one_sided_and_idempotent():
    cache = RadiusCache(uc.noise.Laplace(0.5), step=0.01)
    for p in [1e-9, 0.3, 0.5, 0.5000001, 0.9, 0.99931, 1 - 1e-9]:
        lo, hi = cache.round_down(p), cache.round_up(p)
        assert lo <= p <= hi
        assert cache.round_down(lo) == lo and cache.round_up(hi) == hi
        # Adjacent grid points are one logit step apart.
        assert math.log(hi / (1 - hi)) - math.log(lo / (1 - lo)) <= 0.01 * (1 + 1e-9)
    assert cache.round_down(1.0) == 1.0 and cache.round_up(0.0) == 0.0


@pytest.mark.parametrize("norm", [1, 2, "inf"])
def test_cache_never_overstates_the_direct_radius(norm):
    """The cache evaluates the engine at q = round_down(p_a) <= p_a with the same samples (same
    seed and N). Along a fixed direction the empirical margin is non-decreasing in p_a, so
    lambda*(q) <= lambda*(p_a); both are bisected to the largest certified scale within
    rtol, so cached <= direct * (1 + rtol). For Laplace l1 the radius is -b log(2 (1 - p)),
    which changes by at most b per unit of logit, so the grid costs at most b * step (+ rtol)."""
    noise, d, rtol, step = uc.noise.Laplace(0.5), 3, 1e-4, 0.05
    cache = RadiusCache(noise, step=step, num_samples=RADIUS_SAMPLES, radius_kwargs=FAST)
    p_a = np.array([0.55, 0.7, 0.8374, 0.9, 0.97, 0.995])
    cached = cache.radii(p_a, None, norm, d)
    direct = uc.certified_radius(noise, p_a, None, norm, d, RADIUS_SAMPLES, **FAST)
    assert np.all(cached <= direct * (1 + rtol))
    if norm == 1:
        assert np.all(direct - cached <= noise.b * step + rtol * direct)
    # Multiclass: p_b is rounded up, which also only lowers the radius.
    assert cache.radius(0.9, 0.031, norm, d) <= uc.certified_radius(
        noise, 0.9, 0.031, norm, d, RADIUS_SAMPLES, **FAST) * (1 + rtol)


def test_cache_is_reused_across_inputs():
    smooth = uc.Smooth(Constant(3, 1), 3, noise=uc.noise.Uniform(0.5), norm=1,
                       radius_samples=RADIUS_SAMPLES, radius_kwargs=FAST)
    first = smooth.certify(torch.zeros(3), 50, 500, 0.01, 250)
    second = smooth.certify(torch.ones(3), 50, 500, 0.01, 250)
    assert first == second and first[1] > 0
    assert (smooth.radius_cache.misses, smooth.radius_cache.hits) == (1, 1)


# -- bad input -----------------------------------------------------------------------------------

def good_smooth():
    return uc.Smooth(Constant(3, 0), 3, sigma=0.5)


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(x=[0.0, 1.0]), TypeError, "x"),
    (dict(x=torch.zeros(3, dtype=torch.int64)), TypeError, "x"),
    (dict(x=torch.tensor([0.0, math.nan])), ValueError, "x"),
    (dict(n0=200, n=100), ValueError, "n0"),
    (dict(n=0, n0=0), ValueError, "n must"),
    (dict(alpha=0.0), ValueError, "alpha"),
    (dict(alpha=1.0), ValueError, "alpha"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(n=10.5), TypeError, "n must"),
])
def test_bad_call_arguments(kwargs, error, word):
    args = dict(x=torch.zeros(3), n0=10, n=100, alpha=0.01, batch_size=50) | kwargs
    with pytest.raises(error, match=word):
        good_smooth().certify(**args)
    if "n0" not in kwargs:
        args.pop("n0")
        with pytest.raises(error, match=word):
            good_smooth().predict(**args)


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(num_classes=1), ValueError, "num_classes"),
    (dict(sigma=None), ValueError, "sigma"),
    (dict(noise=uc.noise.Laplace(0.5)), ValueError, "sigma"),
    (dict(sigma=None, noise="laplace"), TypeError, "noise"),
    (dict(sigma=-1.0), ValueError, "sigma"),
    (dict(model=lambda x: x), TypeError, "model"),
    (dict(norm=0), ValueError, "norm"),
    (dict(radius_kwargs={"dim": 3}), ValueError, "radius_kwargs"),
])
def test_bad_constructor_arguments(kwargs, error, word):
    args = dict(model=Constant(3, 0), num_classes=3, sigma=0.5) | kwargs
    with pytest.raises(error, match=word):
        uc.Smooth(**args)


def test_model_on_another_device_is_named():
    model = torch.nn.Linear(3, 3, device="meta")
    with pytest.raises(ValueError, match="meta.*cpu"):
        uc.Smooth(model, 3, sigma=0.5).certify(torch.zeros(3), 10, 100, 0.01, 50)


@pytest.mark.parametrize("model", [Constant(4, 0), torch.nn.Flatten(0)], ids=["classes", "rank"])
def test_model_output_shape_is_checked(model):
    with pytest.raises(ValueError, match="model output"):
        uc.Smooth(model, 3, sigma=0.5).predict(torch.zeros(3), 100, 0.01, 50)


class Broken(torch.nn.Module):
    """Constant(3, 2), but rows i % every == 0 of a batch get ``value`` (NaN, inf) in class 1."""

    def __init__(self, value, every):
        super().__init__()
        self.value, self.every = value, every

    def forward(self, x):
        out = Constant(3, 2)(x)
        out[::self.every, 1] = self.value
        return out


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_model_outputs_are_refused(value):
    """argmax of a NaN row is 0: without the check such a model would be certified. Batches of
    50, every 10th row bad: 5 of 50 selection draws (certify stops there), 10 of 100 (predict)."""
    smooth = uc.Smooth(Broken(value, 10), 3, sigma=0.5)
    with pytest.raises(ValueError, match=r"non-finite outputs \(NaN/inf\) for 5 of 50 noisy"):
        smooth.certify(torch.zeros(3), 50, 100, 0.01, 50)
    with pytest.raises(ValueError, match=r"for 10 of 100 noisy inputs"):
        smooth.predict(torch.zeros(3), 100, 0.01, 50)
    assert uc.Smooth(Broken(5.0, 10), 3, sigma=0.5).certify(torch.zeros(3), 50, 100, 0.01, 50)[0] \
        == 2                                     # finite logits: counted as before


def test_bad_norms():
    with pytest.raises(TypeError, match="norms"):
        good_smooth().certify_norms(torch.zeros(3), 10, 100, 0.01, 50, norms=2)
    with pytest.raises(ValueError, match="norms"):
        good_smooth().certify_norms(torch.zeros(3), 10, 100, 0.01, 50, norms=())
    with pytest.raises(ValueError, match="norm"):
        good_smooth().certify_norms(torch.zeros(3), 10, 100, 0.01, 50, norms=(1, -2))
