"""Adaptive certification's stopping logic (unicr_fast.adaptive, docs/theory.md §12) on synthetic
draws whose class probabilities are known, so the true radius is known too.

Binary Gaussian smoothing in l2 has radius sigma Phi^-1(p) at p_A = p: a certificate overstates
exactly when the reported p_a exceeds the true p_A, whatever the stopping rule did before.
"""
import numpy as np
import pytest
from scipy.stats import binom, norm

from unicr_fast import adaptive
from unicr_fast.adaptive import AdaptiveResult, StoppingRule, certify_adaptive
from unicr_fast.confidence import clopper_pearson_lower, clopper_pearson_upper

SIGMA = 0.5
ALPHA = 0.01
TRIALS = 600
N, BATCH = 20_000, 200
#: Allowed false certificates: the binomial (TRIALS, ALPHA) quantile at 1 - 1e-4 (a sound
#: procedure fails the test with probability < 1e-4).
MAX_FALSE = int(binom.ppf(1 - 1e-4, TRIALS, ALPHA))


def gaussian_radius(p_a, p_b=None):
    if p_b is None:
        return SIGMA * norm.ppf(p_a)
    return SIGMA / 2 * (norm.ppf(p_a) - norm.ppf(p_b))


def drawer(probs, rng):
    probs = np.asarray(probs)
    return lambda m: rng.multinomial(m, probs)


def false_certificates(p_true, rule, seed):
    """Streams of TRIALS inputs with P(class 0) = p_true; the count of certificates whose
    radius exceeds the true one."""
    rng = np.random.default_rng(seed)
    true_radius = gaussian_radius(p_true)
    false = 0
    for _ in range(TRIALS):
        res = certify_adaptive(drawer([p_true, 1 - p_true], rng), 0, N, BATCH, ALPHA, False,
                               gaussian_radius, rule)
        false += res.label == 0 and res.radius > true_radius * (1 + 1e-12)
    return false


# The target is the true radius itself: each stream stops the first time its bound says the
# true radius is certified, the stopping rule that exploits a bound valid at one n only.
@pytest.mark.slow
@pytest.mark.parametrize("p_true", [0.9, 0.99, 0.999])
def test_false_certificates_within_binomial_bound(p_true):
    rule = StoppingRule(target_radius=gaussian_radius(p_true))
    false = false_certificates(p_true, rule, seed=int(p_true * 1e3))
    assert false <= MAX_FALSE, (false, MAX_FALSE)


@pytest.mark.slow
def test_tolerance_rule_at_very_high_p_a():
    false = false_certificates(0.99999, StoppingRule(rtol=0.05), seed=99)
    assert false <= MAX_FALSE, (false, MAX_FALSE)


@pytest.mark.slow
def test_peeking_clopper_pearson_is_caught(monkeypatch):
    """Power: the same check on Clopper–Pearson bounds recomputed after every batch (valid at
    one fixed n only) finds more false certificates than the bound allows."""
    monkeypatch.setattr(adaptive, "lower_bound",
                        lambda k, t, a: clopper_pearson_lower(k, t, a) if k else 0.0)
    monkeypatch.setattr(adaptive, "upper_bound",
                        lambda k, t, a: clopper_pearson_upper(k, t, a) if k < t else 1.0)
    p_true = 0.9
    false = false_certificates(p_true, StoppingRule(target_radius=gaussian_radius(p_true)), 9)
    assert false > MAX_FALSE, (false, MAX_FALSE)


@pytest.mark.slow
def test_multiclass_false_certificates_within_bound():
    probs = [0.995, 0.004, 0.001]
    true_radius = gaussian_radius(probs[0], probs[1])
    rng = np.random.default_rng(5)
    false = 0
    for _ in range(TRIALS):
        res = certify_adaptive(drawer(probs, rng), 0, N, BATCH, ALPHA, True, gaussian_radius,
                               StoppingRule(target_radius=true_radius))
        false += res.label == 0 and res.radius > true_radius * (1 + 1e-12)
    assert false <= MAX_FALSE, (false, MAX_FALSE)


def test_confident_input_stops_at_the_target():
    rng = np.random.default_rng(1)
    res = certify_adaptive(drawer([0.9999, 0.0001], rng), 0, 100_000, 500, 0.001, False,
                           gaussian_radius, StoppingRule(target_radius=1.0))
    assert res.reason == "target" and res.label == 0 and res.radius >= 1.0
    assert res.draws <= 2_000   # Phi^-1 needs p_a ~ 0.977: a few hundred all-A draws


def test_hopeless_input_abstains_early():
    rng = np.random.default_rng(2)
    res = certify_adaptive(drawer([0.3, 0.7], rng), 0, 100_000, 500, 0.001, False,
                           gaussian_radius, StoppingRule(target_radius=1.0))
    assert (res.label, res.radius, res.reason) == (-1, 0.0, "abstain")
    assert res.draws <= 2_000


def test_budget_end_uses_the_better_of_sequence_and_clopper_pearson():
    """A target out of reach: the run reaches n, and p_a is the fixed-n bound at alpha / 2
    (tighter than the sequence there)."""
    n, alpha = 10_000, 0.001

    def draw(m):   # deterministic: exactly 70% of class 0 in every batch
        return np.array([m * 7 // 10, m - m * 7 // 10])

    res = certify_adaptive(draw, 0, n, 1_000, alpha, False, gaussian_radius,
                           StoppingRule(target_radius=10.0))
    assert res.reason == "budget" and res.draws == n
    assert res.p_a == pytest.approx(clopper_pearson_lower(7_000, n, alpha / 2), rel=1e-12)
    assert res.radius == pytest.approx(gaussian_radius(res.p_a), rel=1e-12)


def test_tolerance_rule_stops_before_the_budget_on_confident_inputs():
    rng = np.random.default_rng(3)
    res = certify_adaptive(drawer([0.99999, 0.00001], rng), 0, 100_000, 1_000, 0.001, False,
                           gaussian_radius, StoppingRule(rtol=0.1))
    assert res.reason == "tolerance" and res.draws < 100_000


@pytest.mark.parametrize("kw,err", [(dict(target_radius=0.0), ValueError),
                                    (dict(target_radius=float("nan")), ValueError),
                                    (dict(rtol=1.5), ValueError), (dict(rtol="a"), TypeError)])
def test_bad_rules(kw, err):
    with pytest.raises(err):
        StoppingRule(**kw)


def test_default_rule_is_the_tolerance():
    assert StoppingRule().rtol == 0.05 and StoppingRule().target_radius is None
    assert isinstance(certify_adaptive(lambda m: np.array([m, 0]), 0, 100, 10, 0.01, False,
                                       gaussian_radius), AdaptiveResult)
