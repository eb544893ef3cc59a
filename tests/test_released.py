"""The released side: the k rule and the centres, from released stats only."""
import numpy as np
import pytest

from dpsynth import released
from dpsynth.private_stats import Stats
from dpsynth.released import ReleasedStats


def test_choose_num_clusters_follows_released_count_and_noise():
    args = dict(spread=0.5, dimension=64, radius=1.0, final_count_sigma=5.0, max_clusters=None)
    few = released.choose_num_clusters(1000, final_sum_sigma=5.0, **args)
    many = released.choose_num_clusters(100000, final_sum_sigma=0.5, **args)
    assert 1 <= few < many <= released.DEFAULT_MAX_CLUSTERS
    assert released.choose_num_clusters(5, final_sum_sigma=5.0, **args) == 0  # below the noise
    assert released.choose_num_clusters(5000, final_sum_sigma=5.0, **{**args, "max_clusters": 3}) == 3


def test_seed_centres_recover_separated_buckets():
    # Released buckets: two tight groups of mass; k-means on them finds both.
    means = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    counts = np.array([100.0, 100.0, 100.0, 100.0])
    stats = {0: ReleasedStats(counts, means * counts[:, None])}
    summary = {0: released.ClassSummary(400.0, np.array([0.5, 0.5]), 0.7, 2)}
    centres = released.seed_centres(stats, summary, radius=1.0, seed_count_sigma=1.0)[0]
    assert len(centres) == 2
    assert sorted(np.round(centres[:, 0], 2).tolist()) == [0.05, 0.95]


def test_update_centres_drops_clusters_below_the_noise():
    stats = {0: ReleasedStats(np.array([500.0, 2.0]), np.array([[250.0, 0.0], [1.0, 1.0]]))}
    centres = released.update_centres(stats, radius=1.0, count_sigma=3.0)
    np.testing.assert_allclose(centres[0], [[0.5, 0.0]])


def test_corrected_sq_norm_removes_noise_bias():
    rng = np.random.default_rng(0)
    d, n, sigma = 400, 100.0, 2.0
    mu = np.full(d, 0.03)
    noisy = n * mu + sigma * rng.standard_normal((2000, d))
    stats = ReleasedStats(np.full(2000, n), noisy)
    corrected = released.corrected_sq_norm(stats, sigma)
    # mean of 2000 estimates: its standard error is far below the bias (d sigma^2 / n^2 = 0.16)
    assert abs(corrected.mean() - np.sum(mu**2)) < 0.02


def test_a_full_covariance_asks_more_of_a_split():
    args = dict(spread=0.5, dimension=64, radius=1.0, final_count_sigma=5.0, max_clusters=None, final_sum_sigma=2.0)
    spherical = released.choose_num_clusters(20000, **args,
                                             signal_to_noise=released.signal_to_noise_for("spherical"))
    full = released.choose_num_clusters(20000, **args, signal_to_noise=released.signal_to_noise_for("full"))
    # rows per cluster: 4 (resp. 16) * 2 * 8 / 0.5 = 128 (resp. 512)
    assert (spherical, full) == (10, 10)  # both capped with this much data
    spherical_few = released.choose_num_clusters(2000, **args,
                                                 signal_to_noise=released.signal_to_noise_for("spherical"))
    assert spherical_few == 10  # 2000 // 128 = 15, capped
    few = released.choose_num_clusters(2000, **args, signal_to_noise=released.signal_to_noise_for("full"))
    assert few == 2000 // 512 == 3


@pytest.mark.parametrize("post_process", [
    lambda stats: released.class_summaries(stats, 1, 1.0, "normalize", 1.0, 1.0, 1.0, None),
    lambda stats: released.seed_centres(stats, {0: released.ClassSummary(500.0, np.zeros(2), 0.5, 1)}, 1.0, 1.0),
    lambda stats: released.update_centres(stats, 1.0, 1.0),
], ids=["class_summaries", "seed_centres", "update_centres"])
def test_post_processing_refuses_exact_stats(post_process):
    exact = {0: Stats(np.array([500.0]), np.array([[100.0, -200.0]]))}
    with pytest.raises(TypeError, match="released stats only"):
        post_process(exact)
