"""The row-norm model: binning, release, the fitted norm, and synthetic rows at the real rows' scale."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from dpsynth import algorithm, norms
from dpsynth.calibration import plan_releases
from dpsynth.private_stats import Stats
from dpsynth.gmm import ReleasedMixture
from dpsynth.local import synthesize_arrays
from dpsynth.noise import SecureNoise
from dpsynth.params import SynthesisConfig
from tests.conftest import make_mixture_data


def test_bins_follow_the_public_log2_grid_and_clamp_at_the_edges():
    values = np.array([0.0, 2.0**-30, 1.0, 1.4, 1.5, 2.0**40, np.inf])
    bins = norms.norm_bins(values)
    one = int((0 - norms.LOG2_LOW) / norms.LOG2_WIDTH)
    assert bins.tolist() == [0, 0, one, one, one + 1, norms.NUM_BINS - 1, norms.NUM_BINS - 1]


def test_histogram_counts_each_row_once_in_its_key_and_bin():
    hist = norms.histogram(np.array([0, 0, 1, 1, 1]), np.array([3, 3, 3, 5, 5]), 2)
    assert hist.shape == (2, norms.NUM_BINS) and hist.sum() == 5
    assert hist[0, 3] == 2 and hist[1, 3] == 1 and hist[1, 5] == 2


def test_fitted_norm_is_the_pooled_median_within_a_bin():
    rng = np.random.default_rng(0)
    released = {}
    all_norms = []
    for c, centre in enumerate((2.0, 4.0)):
        values = centre * np.exp(0.2 * rng.standard_normal(5000))
        all_norms.append(values)
        released[c] = norms.histogram(np.zeros(len(values), int), norms.norm_bins(values), 1)[0]
    model = norms.fit_norm_model(released, 2, sigma=0.0)
    true_median = np.median(np.concatenate(all_norms))
    assert abs(np.log2(model.norm) - np.log2(true_median)) <= norms.LOG2_WIDTH
    assert model.weights.sum() == pytest.approx(1.0)
    again = norms.NormModel.from_json(json.loads(json.dumps(model.to_json())))
    assert again.norm == model.norm and again.bins.tolist() == model.bins.tolist()


def test_no_bin_above_the_noise_gives_no_norm_model():
    assert norms.fit_norm_model({0: np.zeros(norms.NUM_BINS), 1: np.zeros(norms.NUM_BINS)}, 2, sigma=5.0) is None
    assert norms.fit_norm_model({}, 2, sigma=5.0) is None


def test_histogram_noise_has_the_planned_scale():
    """Released bin counts minus exact counts are N(0, sigma^2): a two-sided chi-square test on
    64 x 200 draws. Failure probability 1e-7 under the claimed scale."""
    config = SynthesisConfig(epsilon=1.0, delta=1e-5, labels=(0,), covariance="spherical")
    plan = plan_releases(config, 4, discover_labels=False)
    spec = algorithm.initial_state(config.labels, plan).next_pass
    assert spec.norm_sigma == plan.norm_sigma and plan.norm_sigma > 0
    exact = Stats(np.array([7.0]), np.zeros((1, 4)), norms=np.arange(norms.NUM_BINS, dtype=float)[None])
    source = SecureNoise()
    residuals = np.stack([algorithm.release_class_stats(0, exact, spec, 4, source).norms - exact.norms
                          for _ in range(200)]).ravel()
    k = residuals.size
    chi2 = np.sum(residuals**2) / plan.norm_sigma**2
    assert stats.chi2.ppf(5e-8, k) < chi2 < stats.chi2.isf(5e-8, k)


def test_norm_histogram_is_in_the_ledger_only_when_rows_are_normalised():
    def names(**kw) -> set[str]:
        config = SynthesisConfig(epsilon=1.0, delta=1e-5, labels=(0, 1), **kw)
        return {m.name for m in plan_releases(config, 8, discover_labels=False).ledger.mechanisms}

    assert "class_norm_histogram" in names()
    assert "class_norm_histogram" not in names(clip_mode="clip")
    assert "class_norm_histogram" not in names(row_norms="radius")


def test_synthetic_rows_sit_at_the_real_rows_scale():
    X, y = make_mixture_data(num_classes=2, dimension=6, rows=4000, components=1)
    X = X / np.linalg.norm(X, axis=1, keepdims=True) * np.exp(np.random.default_rng(1).normal(1.5, 0.1, len(X)))[:, None]
    result = synthesize_arrays(X, y, SynthesisConfig(epsilon=4.0, delta=1e-5, labels=(0, 1), noise_seed=5))
    synthetic = np.linalg.norm(result.synthetic_embeddings, axis=1)
    real = np.median(np.linalg.norm(X, axis=1))
    assert np.allclose(synthetic, result.mixture.norms.norm, rtol=1e-5)
    assert abs(np.log2(result.mixture.norms.norm / real)) <= norms.LOG2_WIDTH
    mixture = ReleasedMixture.from_json(json.loads(json.dumps(result.mixture.to_json())))
    assert mixture.norms.norm == result.mixture.norms.norm
    unit = synthesize_arrays(X, y, SynthesisConfig(epsilon=4.0, delta=1e-5, labels=(0, 1), noise_seed=5,
                                                   row_norms="radius"))
    assert unit.mixture.norms is None
    assert np.allclose(np.linalg.norm(unit.synthetic_embeddings, axis=1), 1.0, rtol=1e-5)
