"""The release step: noise scale, noise on empty keys, and the pass sequence."""
import numpy as np
import pytest
from scipy import stats as scipy_stats

from dpsynth import algorithm, private_stats
from dpsynth.calibration import PassNoise, plan_releases
from dpsynth.noise import SecureNoise
from dpsynth.params import SynthesisConfig
from dpsynth.passes import PassKind, PassSpec
from dpsynth.private_stats import Stats, WholeClass
from dpsynth.released import ReleasedStats

FAILURE_PROBABILITY = 1e-7


def _chi2_bounds(n: int) -> tuple[float, float]:
    """Two-sided bounds on sum(z^2)/n for n standard normals, failing with FAILURE_PROBABILITY."""
    lo = scipy_stats.chi2.ppf(FAILURE_PROBABILITY / 2, n) / n
    hi = scipy_stats.chi2.isf(FAILURE_PROBABILITY / 2, n) / n
    return lo, hi


def test_released_noise_has_the_planned_scale_on_every_key_even_empty_ones():
    # A class with no rows at all still gets noise on all of its keys.
    # Failure probability of this test: at most 2 * FAILURE_PROBABILITY = 2e-7.
    noise = PassNoise(count_sigma=3.0, sum_sigma=0.5, count_grid=2.0**-20, sum_grid=2.0**-20)
    spec = PassSpec(0, PassKind.CLASS, {0: WholeClass(num_keys=4000)}, noise)
    released = algorithm.release_class_stats(0, None, spec, dimension=10, source=SecureNoise())
    lo, hi = _chi2_bounds(4000)
    assert lo <= np.mean((released.count / 3.0) ** 2) <= hi
    lo, hi = _chi2_bounds(40000)
    assert lo <= np.mean((released.total / 0.5) ** 2) <= hi


def test_noise_is_added_to_exact_aggregates_not_replacing_them():
    # Failure probability: P(|N(0, 1e-3^2 * 1e6)| > 10) for 2 numbers, about 1e-20.
    noise = PassNoise(count_sigma=1e-3, sum_sigma=1e-3, count_grid=2.0**-30, sum_grid=2.0**-30)
    spec = PassSpec(0, PassKind.CLASS, {0: WholeClass()}, noise)
    exact = Stats(np.array([500.0]), np.array([[100.0, -200.0]]))
    released = algorithm.release_class_stats(0, exact, spec, dimension=2, source=SecureNoise())
    np.testing.assert_allclose(released.count, [500.0], atol=0.01)
    np.testing.assert_allclose(released.total, [[100.0, -200.0]], atol=0.01)


def test_pass_sequence_ends_with_a_mixture():
    config = SynthesisConfig(epsilon=2.0, delta=1e-5, labels=("a", "b"), rounds=3, disable_noise=True)
    plan = plan_releases(config, 4, discover_labels=False)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    class_ids = (X[:, 0] > 0).astype(np.int32)
    state = algorithm.initial_state(config.labels, plan)
    names = []
    from dpsynth.private_stats import partial_stats
    from dpsynth.noise import NoNoise
    while state.next_pass is not None:
        names.append(state.next_pass.name)
        exact = partial_stats(class_ids, X, state.next_pass.partitioners, state.next_pass.second_moment)
        state = algorithm.advance(state, algorithm.release_pass(exact, state.next_pass, 4, NoNoise()), plan, config)
    assert names == ["class", "seed", "round1", "round2", "final"] == ["class", "seed"] + [
        f"round{t}" for t in (1, 2)] + ["final"]
    assert [c.label for c in state.mixture.classes] == ["a", "b"]
    assert sum(c.noisy_count for c in state.mixture.classes) == 400


def test_label_discovery_keeps_common_labels_and_drops_rare_ones():
    config = SynthesisConfig(epsilon=1.0, delta=1e-5)
    plan = plan_releases(config, 4, discover_labels=True)
    # A label held by one record clears the threshold with probability <= delta/10;
    # a label with 10x the threshold fails to with probability about 1e-60.
    kept = algorithm.select_labels({"common": int(10 * plan.label_threshold), "rare": 1}, plan, SecureNoise())
    assert kept == ("common",)


def test_whole_class_releases_are_combined_by_inverse_variance():
    from dpsynth.algorithm import WholeClassRelease, combine_whole_class

    history = (WholeClassRelease(ReleasedStats(np.array([100.0]), np.array([[10.0, 0.0]])), 2.0, 1.0),
               WholeClassRelease(ReleasedStats(np.array([110.0]), np.array([[16.0, 3.0]])), 2.0, 2.0))
    stats, count_sigma, sum_sigma = combine_whole_class(history, None)
    assert stats.count.tolist() == [105.0]  # equal count noise: plain average
    np.testing.assert_allclose(stats.total, [[(4 * 10 + 16) / 5, 3 / 5]])  # weights 1 and 1/4
    assert count_sigma == pytest.approx(2 / np.sqrt(2)) and sum_sigma == pytest.approx((1 + 0.25) ** -0.5)


def test_a_one_component_class_uses_every_pass_not_only_the_final_one():
    # k = 1 everywhere, so all four passes release the same class sum; the fit
    # combines them. The combined noise variance is 1/2.25 of the final pass's
    # alone. Over 200 seeded runs (800 coordinates) the mean squared error of
    # the released mean must stay below 0.75x the final-pass-only expectation:
    # exceeding it needs a 70% upward deviation of a chi-square with 800
    # degrees of freedom, probability far below 1e-6.
    from dpsynth.private_stats import partial_stats
    from dpsynth.noise import SeededNoise

    d, n = 4, 3000
    config = SynthesisConfig(epsilon=1.0, delta=1e-5, labels=("a",), max_clusters=1, rounds=2)
    plan = plan_releases(config, d, discover_labels=False)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)) * 0.5 + 3.0
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    exact_mean = X.mean(0)
    ids = np.zeros(n, np.int32)
    squared_errors = []
    for seed in range(200):
        state = algorithm.initial_state(config.labels, plan)
        source = SeededNoise(seed)
        while state.next_pass is not None:
            spec = state.next_pass
            exact = partial_stats(ids, X, spec.partitioners, spec.second_moment)
            state = algorithm.advance(state, algorithm.release_pass(exact, spec, d, source), plan, config)
        mixture = state.mixture.classes[0]
        assert mixture.num_components == 1
        squared_errors.append(np.sum((mixture.means[0] - exact_mean) ** 2))
    final_only = d * plan.final_pass.sum_sigma**2 / n**2
    assert np.mean(squared_errors) < 0.75 * final_only


def test_class_scatter_release_has_the_planned_scale_on_every_packed_coordinate():
    # Failure probability: 2 * FAILURE_PROBABILITY = 2e-7 (one chi-square bound, two-sided).
    from dpsynth.passes import FIRST_ROUND_INDEX, POOLED_KEY, ScatterRelease
    from dpsynth.private_stats import NearestCentre

    plan = plan_releases(SynthesisConfig(epsilon=1.0, delta=1e-5, covariance="full"), 40, discover_labels=False)
    scatter = ScatterRelease((0.3,) * 5, plan.scatter_sigma, plan.scatter_grid, plan.scatter_row_grid, per_class=True)
    spec = PassSpec(FIRST_ROUND_INDEX, PassKind.FINAL, {c: NearestCentre(np.zeros((1, 40))) for c in range(5)},
                    plan.final_pass, scatter=scatter)
    released = algorithm.release_pass({}, spec, 40, SecureNoise())  # no rows: the release is pure noise
    noise = released[POOLED_KEY].second / plan.scatter_sigma
    assert noise.shape == (5, 40 * 41 // 2)  # one matrix per class, every class released
    lo, hi = _chi2_bounds(noise.size)
    assert lo <= np.mean(noise**2) <= hi


def test_full_covariance_run_fits_each_class_shape_from_its_own_centred_scatter():
    # Noise off and a large epsilon (the fit's shrinkage uses the planned noise): the shape is the
    # rows' own covariance. Clip mode with R = 2: rows (norm about 1) are kept as they are, their
    # scale is R (1.5 released spreads would exceed it), so no centred row (norm about 0.1) is clipped.
    rng = np.random.default_rng(0)
    d, n = 3, 4000
    cov = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, 0.0], [0.0, 0.0, 0.2]]) * 0.01
    other = np.array([[0.2, 0.0, 0.0], [0.0, 1.0, -0.6], [0.0, -0.6, 1.0]]) * 0.01  # classes differ in shape
    X = np.concatenate([rng.multivariate_normal([1.0, 0, 0], cov, n), rng.multivariate_normal([0, 1.0, 0], other, n)])
    y = np.repeat([0, 1], n)
    config = SynthesisConfig(epsilon=100.0, delta=1e-5, labels=(0, 1), covariance="full", clip_mode="clip",
                             radius=2.0, max_clusters=1, disable_noise=True, noise_seed=1)
    from dpsynth.local import synthesize_arrays

    result = synthesize_arrays(X, y, config)
    for c, cls in enumerate(result.mixture.classes):
        assert cls.scatter_scale == 2.0 and cls.shrinkage < 0.01
        own = np.cov(X[y == c].T)
        np.testing.assert_allclose(cls.shape, own * d / np.trace(own), atol=0.02)
    assert "final_within_scatter" in {m.name for m in result.ledger.mechanisms}
    assert "class_second_moment_matrix" not in {m.name for m in result.ledger.mechanisms}


def test_advance_refuses_exact_stats():
    # Exact sums handed straight to post-processing would reach the published mixture un-noised.
    config = SynthesisConfig(epsilon=2.0, delta=1e-5, labels=("a",), disable_noise=True)
    plan = plan_releases(config, 2, discover_labels=False)
    state = algorithm.initial_state(config.labels, plan)
    X = np.random.default_rng(0).standard_normal((500, 2))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    exact = private_stats.partial_stats(np.zeros(500, np.int32), X, state.next_pass.partitioners,
                                        state.next_pass.second_moment)
    with pytest.raises(TypeError, match="released stats only"):
        algorithm.advance(state, exact, plan, config)
    released = algorithm.release_pass(exact, state.next_pass, 2, SecureNoise())
    assert isinstance(released[0], ReleasedStats)
    assert algorithm.advance(state, released, plan, config).next_pass is not None
