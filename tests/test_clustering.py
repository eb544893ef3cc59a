import numpy as np
import pytest

from dpsynth import clustering
from dpsynth.clustering import NearestCentre, SimHash, Stats, WholeClass
from dpsynth.grid import row_grid


def test_bound_rows_normalises_and_rejects_zero_rows():
    X = np.array([[3.0, 4.0], [0.0, 0.0], [0.3, 0.4], [1e300, 1e300]])
    bounded, ok, clipped = clustering.bound_rows(X, 2.0, "normalize")
    assert ok.tolist() == [True, False, True, True]
    # On the row grid g (dpsynth.grid): never above R, at most 2 g below it.
    norms = np.linalg.norm(bounded[ok].astype(np.float64), axis=1)
    g = row_grid(2.0)
    assert np.all(norms <= 2.0) and np.all(norms >= 2.0 - 2 * g)
    assert clipped == 2  # rows 0 and 3 had norm above R


def test_bound_rows_clip_keeps_short_rows():
    X = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    bounded, ok, clipped = clustering.bound_rows(X, 1.0, "clip")
    assert ok.all() and clipped == 1
    np.testing.assert_allclose(bounded, [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]], atol=row_grid(1.0))
    assert np.all(np.linalg.norm(bounded.astype(np.float64), axis=1) <= 1.0)


def test_key_stats_matches_a_python_loop():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 3))
    keys = rng.integers(0, 4, 50)
    stats = clustering.key_stats(keys, X, 5, "diagonal")
    for k in range(5):
        rows = X[keys == k]
        assert stats.count[k] == len(rows)
        np.testing.assert_allclose(stats.total[k], rows.sum(0), atol=1e-12)
        np.testing.assert_allclose(stats.second[k], (rows**2).sum(0), atol=1e-12)
    scalar = clustering.key_stats(keys, X, 5, "scalar")
    np.testing.assert_allclose(scalar.second, [np.sum(X[keys == k] ** 2) for k in range(5)])


def test_partial_stats_releases_only_classes_with_a_partitioner():
    X = np.eye(3)
    out = clustering.partial_stats(np.array([0, 1, 1]), X, {1: WholeClass()})
    assert list(out) == [1] and out[1].count.tolist() == [2.0]


def test_nearest_centre_and_simhash_keys():
    centres = np.array([[1.0, 0.0], [0.0, 1.0]])
    X = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert NearestCentre(centres).keys(X).tolist() == [0, 1]
    hashed = SimHash(np.zeros(2), np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert hashed.num_keys == 4
    assert hashed.keys(np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])).tolist() == [3, 2, 1, 0]


def test_choose_num_clusters_follows_released_count_and_noise():
    args = dict(spread=0.5, dimension=64, radius=1.0, final_count_sigma=5.0, max_clusters=None)
    few = clustering.choose_num_clusters(1000, final_sum_sigma=5.0, **args)
    many = clustering.choose_num_clusters(100000, final_sum_sigma=0.5, **args)
    assert 1 <= few < many <= clustering.DEFAULT_MAX_CLUSTERS
    assert clustering.choose_num_clusters(5, final_sum_sigma=5.0, **args) == 0  # below the noise
    assert clustering.choose_num_clusters(5000, final_sum_sigma=5.0, **{**args, "max_clusters": 3}) == 3


def test_seed_centres_recover_separated_buckets():
    # Released buckets: two tight groups of mass; k-means on them finds both.
    means = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    counts = np.array([100.0, 100.0, 100.0, 100.0])
    stats = {0: Stats(counts, means * counts[:, None])}
    summary = {0: clustering.ClassSummary(400.0, np.array([0.5, 0.5]), 0.7, 2)}
    centres = clustering.seed_centres(stats, summary, radius=1.0, seed_count_sigma=1.0)[0]
    assert len(centres) == 2
    assert sorted(np.round(centres[:, 0], 2).tolist()) == [0.05, 0.95]


def test_update_centres_drops_clusters_below_the_noise():
    stats = {0: Stats(np.array([500.0, 2.0]), np.array([[250.0, 0.0], [1.0, 1.0]]))}
    centres = clustering.update_centres(stats, radius=1.0, count_sigma=3.0)
    np.testing.assert_allclose(centres[0], [[0.5, 0.0]])


def test_corrected_sq_norm_removes_noise_bias():
    rng = np.random.default_rng(0)
    d, n, sigma = 400, 100.0, 2.0
    mu = np.full(d, 0.03)
    noisy = n * mu + sigma * rng.standard_normal((2000, d))
    stats = Stats(np.full(2000, n), noisy)
    corrected = clustering.corrected_sq_norm(stats, sigma)
    # mean of 2000 estimates: its standard error is far below the bias (d sigma^2 / n^2 = 0.16)
    assert abs(corrected.mean() - np.sum(mu**2)) < 0.02


def test_packed_outer_products_keep_the_frobenius_norm_and_unpack_exactly():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 5))
    packed = clustering.pack_outer(X)
    assert packed.shape == (clustering.packed_size(5),) == (15,)
    gram = X.T @ X
    # the L2 norm of the packed vector is the Frobenius norm: one row's is ||x||^2
    assert np.linalg.norm(packed) == pytest.approx(np.linalg.norm(gram), rel=1e-12)
    assert np.linalg.norm(clustering.pack_outer(X[:1])) == pytest.approx(np.sum(X[0] ** 2), rel=1e-12)
    np.testing.assert_allclose(clustering.unpack_symmetric(packed, 5), gram, atol=1e-12)
    keys = rng.integers(0, 3, 40)
    stats = clustering.key_stats(keys, X, 3, "matrix")
    for k in range(3):
        np.testing.assert_allclose(stats.second[k], clustering.upper_gram(X[keys == k]), atol=1e-12)
    merged = clustering.Stats.zeros(3, 5, "matrix").add(stats)
    np.testing.assert_allclose(merged.second, stats.second)


def test_a_full_covariance_asks_more_of_a_split():
    args = dict(spread=0.5, dimension=64, radius=1.0, final_count_sigma=5.0, max_clusters=None, final_sum_sigma=2.0)
    spherical = clustering.choose_num_clusters(20000, **args,
                                               signal_to_noise=clustering.signal_to_noise_for("spherical"))
    full = clustering.choose_num_clusters(20000, **args, signal_to_noise=clustering.signal_to_noise_for("full"))
    # rows per cluster: 4 (resp. 16) * 2 * 8 / 0.5 = 128 (resp. 512)
    assert (spherical, full) == (10, 10)  # both capped with this much data
    spherical_few = clustering.choose_num_clusters(2000, **args,
                                                   signal_to_noise=clustering.signal_to_noise_for("spherical"))
    assert spherical_few == 10  # 2000 // 128 = 15, capped
    few = clustering.choose_num_clusters(2000, **args, signal_to_noise=clustering.signal_to_noise_for("full"))
    assert few == 2000 // 512 == 3
