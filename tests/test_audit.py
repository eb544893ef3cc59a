"""Empirical DP audit of the release code (dpsynth.auditing).

Every bound here is computed at confidence 1 - 1e-7, so a test asserting
"lower bound <= claimed epsilon" on a correct mechanism fails with probability
at most 1e-7 (the Clopper-Pearson bounds are exact, and the event is chosen
on samples disjoint from those that estimate it). The tests on broken
mechanisms assert the opposite; their failure probabilities are stated per test.
"""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from dpsynth.auditing import (RoundAudit, ScaledNoise, audit_mechanism, claimed_epsilon, clopper_pearson_lower,
                              clopper_pearson_upper, epsilon_lower_bound, pipeline_statistic)
from dpsynth.calibration import plan_releases
from dpsynth.noise import SecureNoise
from dpsynth.params import SynthesisConfig

ALPHA = 1e-7
DELTA = 1e-5
DIM = 4
ROUND_RUNS = 150_000


def test_clopper_pearson_matches_exact_binomial_tails():
    # The lower bound p_l solves P[Bin(n, p_l) >= k] = alpha; likewise the upper.
    n, k, alpha = 1000, 37, 0.025
    low, high = clopper_pearson_lower(k, n, alpha), clopper_pearson_upper(k, n, alpha)
    assert stats.binom.sf(k - 1, n, low) == pytest.approx(alpha, rel=1e-6)
    assert stats.binom.cdf(k, n, high) == pytest.approx(alpha, rel=1e-6)
    assert clopper_pearson_lower(0, n, alpha) == 0.0 and clopper_pearson_upper(n, n, alpha) == 1.0


def test_bound_on_textbook_gaussian_is_below_its_true_epsilon():
    # Gaussian mechanism with sensitivity/sigma = 1: its exact epsilon at delta
    # follows from the analytic formula; the audit may not exceed it (p <= 1e-7).
    rng = np.random.default_rng(11)  # the sampler of a reference mechanism, not of dpsynth
    mu = 1.0
    true_eps = _gaussian_epsilon(mu, DELTA)
    result = epsilon_lower_bound(rng.standard_normal(60_000), mu + rng.standard_normal(60_000), DELTA, ALPHA)
    assert 0.5 < result.epsilon_lower_bound <= true_eps
    assert result.confidence == 1 - ALPHA


def _gaussian_epsilon(mu: float, delta: float) -> float:
    def delta_of(eps: float) -> float:
        return stats.norm.cdf(mu / 2 - eps / mu) - math.exp(eps) * stats.norm.cdf(-mu / 2 - eps / mu)
    lo, hi = 0.0, 50.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if delta_of(mid) > delta else (lo, mid)
    return hi


@pytest.fixture(scope="module")
def round_audit() -> tuple[RoundAudit, float]:
    """The final Lloyd round of a run at epsilon 4: its own claimed epsilon is about 2.8."""
    config = SynthesisConfig(epsilon=4.0, delta=DELTA, labels=(0,), max_clusters=2)
    plan = plan_releases(config, DIM, discover_labels=False)
    rng = np.random.default_rng(3)
    centres = np.eye(DIM)[:2]
    audit = RoundAudit(plan, centres, np.array([40.0, 60.0]), rng.normal(size=(2, DIM)), np.eye(DIM)[0])
    return audit, claimed_epsilon(plan.ledger, "final", DELTA)


def test_lloyd_round_release_passes_the_audit(round_audit):
    audit, claim = round_audit
    source = SecureNoise()
    result = audit_mechanism(lambda with_record, n: audit.statistic(with_record, n, source), ROUND_RUNS, DELTA,
                             ALPHA)
    assert result.epsilon_lower_bound <= claim, result
    # A vacuous audit would prove nothing: it must see a good share of the leak.
    assert result.epsilon_lower_bound > 0.3 * claim, result


def test_audit_catches_halved_noise(round_audit):
    # Noise halved: the true epsilon is about twice the claim (2.83). Over
    # repeated runs the bound came out 3.18 on average with a standard
    # deviation of 0.05, so falling to the claim is a deviation of about
    # 7 sigma: probability below 1e-11 (normal approximation).
    audit, claim = round_audit
    source = ScaledNoise(SecureNoise(), 0.5)
    result = audit_mechanism(lambda with_record, n: audit.statistic(with_record, n, source), ROUND_RUNS, DELTA,
                             ALPHA)
    assert result.epsilon_lower_bound > claim, result


def test_audit_catches_sensitivity_off_by_a_factor(round_audit):
    # A bound step that lets a row of norm 3R through: the sum's sensitivity is
    # 3x the ledger's. The bound came out 3.70 on average (standard deviation
    # 0.09) against the claim 2.83: a margin near 10 sigma, failure
    # probability below 1e-20 (normal approximation).
    audit, claim = round_audit
    broken = RoundAudit(audit.plan, audit.centres, audit.base_count, audit.base_total, audit.record,
                        record_scale=3.0)
    source = SecureNoise()
    result = audit_mechanism(lambda with_record, n: broken.statistic(with_record, n, source), ROUND_RUNS, DELTA,
                             ALPHA)
    assert result.epsilon_lower_bound > claim, result


def _table(X: np.ndarray) -> pa.Table:
    return pa.table({"embedding": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1]),
                     "label": pa.array([0] * len(X))})


def test_whole_pipeline_passes_the_audit():
    # Every pass (class, seed, Lloyd, final) of the local reference, which
    # calls the same release functions as the Beam pipeline. The added record
    # sits at the radius, opposite the class's mass (worst case for the mean).
    config = SynthesisConfig(epsilon=4.0, delta=DELTA, labels=(0,), max_clusters=1)
    plan = plan_releases(config, DIM, discover_labels=False)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100, DIM))
    X[:, 0] += 2.0
    record = _table(-np.eye(DIM)[:1])
    runs = 450
    source = SecureNoise()
    stat_d = pipeline_statistic([_table(X)], record, config, plan, source, runs, with_record=False)
    stat_d_prime = pipeline_statistic([_table(X)], record, config, plan, source, runs, with_record=True)
    result = epsilon_lower_bound(stat_d, stat_d_prime, DELTA, ALPHA)
    assert result.epsilon_lower_bound <= config.epsilon, result
