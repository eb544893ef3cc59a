"""DP class means: calibrated ledger, noise of the stated size, usable samples."""
import numpy as np
import pytest

from dpsynth.evaluation import baselines


def test_calibration_meets_target_and_is_tight():
    sigma = baselines.calibrate_class_means(1.0, 1e-5)
    assert baselines.class_means_epsilon(sigma, 1e-5) <= 1.0 + 1e-6
    assert baselines.class_means_epsilon(0.9 * sigma, 1e-5) > 1.0


def test_noise_has_the_ledgers_standard_deviation():
    classes = np.arange(3000)
    x = np.tile(np.eye(4)[0], (3000, 1))           # one unit row per class
    model = baselines.fit_class_means(x, classes, classes, 1.0, 1e-5, rng=np.random.default_rng(5))
    sigma = model.ledger.noise_multiplier
    err = model.counts - 1.0
    # 3000 draws: the sample sd is within 10% of sigma except with probability < 1e-9.
    assert np.std(err) == pytest.approx(sigma, rel=0.1)
    assert model.ledger.spent_epsilon <= 1.0 + 1e-6
    assert len(model.ledger.to_json()["mechanisms"]) == 2


def test_large_epsilon_recovers_means_and_samples_lie_on_the_sphere():
    rng = np.random.default_rng(0)
    d = 16
    centres = np.eye(d)[:2] * 4
    y = np.repeat(np.array(["x", "y"]), 5000)
    x = centres[(y == "y").astype(int)] + rng.normal(size=(10_000, d))
    model = baselines.fit_class_means(x, y, np.array(["x", "y"]), 8.0, 1e-5, rng=rng)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(model.means[0], xn[y == "x"].mean(0), atol=0.01)
    s, sy = model.sample(1000, np.random.default_rng(1))
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, rtol=1e-5)
    assert set(sy) == {"x", "y"} and s.shape == (1000, d)
    # Samples sit nearer their own class mean (deterministic seeds).
    own = np.einsum("ij,ij->i", s, model.means[(sy == "y").astype(int)])
    other = np.einsum("ij,ij->i", s, model.means[(sy == "x").astype(int)])
    assert np.mean(own > other) > 0.9


def test_labels_outside_the_public_set_are_an_error():
    with pytest.raises(ValueError):
        baselines.fit_class_means(np.ones((2, 3)), np.array([0, 5]), np.array([0, 1]), 1.0, 1e-5)
