"""Anytime-valid confidence sequences (unicr_fast.sequential, docs/theory.md §12).

The statistical tests look at the bound after every batch of a stream and count the streams
where it *ever* excludes the true p: that is what optional stopping can exploit. The count must
stay within a binomial bound at alpha. The same check applied to repeated Clopper–Pearson bounds
fails, which shows the test can fail.
"""
import math

import numpy as np
import pytest
from scipy.special import betaln
from scipy.stats import binom

from unicr_fast import sequential as seq
from unicr_fast.confidence import clopper_pearson_lower

ALPHA = 0.05
STREAMS = 2000
BATCH = 100
BATCHES = 100
#: Failure count allowed for a procedure whose per-stream failure probability is <= ALPHA: the
#: binomial (STREAMS, ALPHA) quantile at 1 - 1e-4, so a valid procedure fails this test with
#: probability below 1e-4.
MAX_FAILURES = int(binom.ppf(1 - 1e-4, STREAMS, ALPHA))


def _running_counts(p, seed):
    rng = np.random.default_rng(seed)
    hits = rng.binomial(BATCH, p, size=(STREAMS, BATCHES))
    return np.cumsum(hits, axis=1), BATCH * np.arange(1, BATCHES + 1)


def _ever_above(p, counts, trials, bound):
    """Streams whose bound exceeds p after some batch (bound(k, t) -> float)."""
    failed = np.zeros(STREAMS, dtype=bool)
    for j, t in enumerate(trials):
        # The bound is monotone in k, so one evaluation per distinct count suffices.
        for k in np.unique(counts[~failed, j]):
            if bound(int(k), int(t)) > p:
                failed[~failed & (counts[:, j] == k)] = True
    return int(failed.sum())


@pytest.mark.parametrize("p", [0.6, 0.99, 0.999])
def test_lower_bound_holds_under_optional_stopping(p):
    counts, trials = _running_counts(p, seed=int(p * 1e4))
    failures = _ever_above(p, counts, trials, lambda k, t: seq.lower_bound(k, t, ALPHA))
    assert failures <= MAX_FAILURES, (failures, MAX_FAILURES)


def test_upper_bound_holds_under_optional_stopping():
    p = 0.01
    counts, trials = _running_counts(p, seed=7)
    # upper < p fails; mirror it as "1 - upper > 1 - p" on the complementary counts.
    failures = _ever_above(1 - p, trials - counts, trials,
                           lambda k, t: 1 - seq.upper_bound(t - k, t, ALPHA))
    assert failures <= MAX_FAILURES, (failures, MAX_FAILURES)


def test_repeated_clopper_pearson_is_caught():
    """The same check on a bound valid only at a fixed n: peeking after each of 100 batches
    pushes its failure rate well past alpha, so the check above has power."""
    p = 0.6
    counts, trials = _running_counts(p, seed=11)
    failures = _ever_above(p, counts, trials, lambda k, t: clopper_pearson_lower(k, t, ALPHA))
    assert failures > MAX_FAILURES, (failures, MAX_FAILURES)


@pytest.mark.parametrize("k,t", [(1, 1), (5, 5), (600, 1000), (990, 1000), (99_990, 100_000),
                                 (3, 1_000_000), (10**6 - 2, 10**6)])
def test_lower_bound_is_the_end_of_the_interval(k, t):
    """At the bound the mixture equals 1/alpha; just above it, it is smaller (not rejected)."""
    alpha = 1e-3
    low = seq.lower_bound(k, t, alpha)
    level = math.log(1 / alpha)
    assert seq.log_mixture(k, t, low) >= level - 1e-9
    step = 1e-9 * (1 - low)
    assert seq.log_mixture(k, t, low + step) < level + 1e-6
    assert seq.log_mixture(k, t, min(k / t, low + 1e3 * step)) < level


@pytest.mark.parametrize("t", [1, 10, 1000, 100_000, 10**8])
def test_all_successes_closed_form(t):
    """k = t: log M = betaln(a + t, b) - betaln(a, b) - t log p0, solved for p0 directly."""
    alpha = 1e-3
    a, b = seq.LOWER_PRIOR
    expected = -math.expm1((betaln(a + t, b) - betaln(a, b) - math.log(1 / alpha)) / t)  # 1 - p0
    got = 1 - seq.lower_bound(t, t, alpha)
    assert got == pytest.approx(expected, rel=1e-9)
    assert got >= expected * (1 - 1e-12)   # rounded towards the safe side


def test_upper_is_mirror_of_lower():
    assert seq.upper_bound(3, 1000, 0.01) == pytest.approx(1 - seq.lower_bound(997, 1000, 0.01),
                                                           abs=1e-15)
    assert seq.lower_bound(0, 50, 0.01) == 0.0 and seq.upper_bound(50, 50, 0.01) == 1.0


def test_bounds_tighten_with_more_draws():
    lows = [seq.lower_bound(t, t, 1e-3) for t in (100, 1000, 10_000, 100_000)]
    assert all(x < y for x, y in zip(lows, lows[1:]))


@pytest.mark.parametrize("args,err", [((5, 3, 0.1), ValueError), ((-1, 3, 0.1), ValueError),
                                      ((1, 0, 0.1), ValueError), ((1, 3, 0.0), ValueError),
                                      ((1, 3, 1.5), ValueError), ((1.5, 3, 0.1), TypeError),
                                      ((True, 3, 0.1), TypeError)])
def test_bad_inputs(args, err):
    with pytest.raises(err):
        seq.lower_bound(*args)
