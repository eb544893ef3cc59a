import numpy as np
import pytest

from dpsynth import gmm
from dpsynth.clustering import Stats


def _fit(stats, covariance="spherical", clip_mode="normalize", sum_sigma=0.0):
    return gmm.fit_mixture({0: stats}, ["x"], {}, dimension=stats.total.shape[1], radius=1.0, clip_mode=clip_mode,
                           covariance=covariance, count_sigma=1.0, sum_sigma=sum_sigma,
                           noisy_class_counts={0: float(stats.count.sum())}, private=True)


def test_spherical_variance_on_the_sphere_follows_the_mean_norm():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 16)) * 0.2 + np.eye(16)[0]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    stats = Stats(np.array([len(X)], float), X.sum(0, keepdims=True))
    mixture = _fit(stats).classes[0]
    expected = np.mean(np.sum((X - X.mean(0)) ** 2, axis=1)) / 16
    assert mixture.variances[0] == pytest.approx(expected, rel=1e-6)


def test_diagonal_variance_from_second_moments():
    rng = np.random.default_rng(0)
    scales = np.array([0.05, 0.1, 0.2])
    X = rng.standard_normal((50000, 3)) * scales
    stats = Stats(np.array([len(X)], float), X.sum(0, keepdims=True), (X**2).sum(0, keepdims=True))
    variances = _fit(stats, covariance="diagonal", clip_mode="clip").classes[0].variances[0]
    np.testing.assert_allclose(variances, scales**2, rtol=0.05)


def test_components_below_the_noise_are_dropped_and_classes_noted():
    stats = Stats(np.array([1000.0, 3.0]), np.array([[500.0, 0.0], [0.0, 3.0]]))
    mixture = _fit(stats)
    assert mixture.classes[0].num_components == 1
    empty = _fit(Stats(np.array([2.0]), np.array([[1.0, 1.0]]))).classes[0]
    assert empty.num_components == 0 and empty.note


def test_samples_per_class_proportional_and_balanced():
    mixture = gmm.ReleasedMixture(
        [gmm.ClassMixture(c, n, np.ones(1), np.zeros((1, 2)), np.ones(1) * 0.01) for c, n in (("a", 300.0), ("b", 100.0))]
        + [gmm.ClassMixture("c", 50.0, np.zeros(0), np.zeros((0, 2)), np.zeros(0), "too small")],
        2, 1.0, "normalize", "spherical", True)
    assert mixture.samples_per_class(None, "proportional") == [300, 100, 0]
    assert mixture.samples_per_class(101, "balanced") == [51, 50, 0]
    X, component = mixture.sample_class(0, 10, np.random.default_rng(0))
    assert X.shape == (10, 2) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-5)


def test_mixture_json_round_trip():
    mixture = gmm.ReleasedMixture([gmm.ClassMixture(3, 10.0, np.array([0.4, 0.6]), np.ones((2, 4)) * 0.1,
                                                    np.ones((2, 4)) * 0.01)], 4, 1.0, "clip", "diagonal", False)
    back = gmm.ReleasedMixture.from_json(mixture.to_json())
    assert back.classes[0].label == 3 and back.covariance == "diagonal" and not back.private
    np.testing.assert_allclose(back.classes[0].variances, mixture.classes[0].variances)
    assert "NOT PRIVATE" in mixture.to_json()["warning"]
