"""The private side: bounding, partitioning and exact aggregation of rows."""
import numpy as np
import pytest

from dpsynth import private_stats
from dpsynth.grid import row_grid
from dpsynth.private_stats import NearestCentre, SimHash, WholeClass


def test_bound_rows_normalises_and_rejects_zero_rows():
    X = np.array([[3.0, 4.0], [0.0, 0.0], [0.3, 0.4], [1e300, 1e300]])
    bounded, ok, clipped = private_stats.bound_rows(X, 2.0, "normalize")
    assert ok.tolist() == [True, False, True, True]
    # On the row grid g (dpsynth.grid): never above R, at most 3 g below it.
    norms = np.linalg.norm(bounded[ok].astype(np.float64), axis=1)
    g = row_grid(2.0)
    assert np.all(norms <= 2.0) and np.all(norms >= 2.0 - 3 * g)
    assert clipped == 2  # rows 0 and 3 had norm above R


def test_bound_rows_clip_keeps_short_rows():
    X = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    bounded, ok, clipped = private_stats.bound_rows(X, 1.0, "clip")
    assert ok.all() and clipped == 1
    np.testing.assert_allclose(bounded, [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]], atol=row_grid(1.0))
    assert np.all(np.linalg.norm(bounded.astype(np.float64), axis=1) <= 1.0)


def test_key_stats_matches_a_python_loop():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 3))
    keys = rng.integers(0, 4, 50)
    stats = private_stats.key_stats(keys, X, 5, "diagonal")
    for k in range(5):
        rows = X[keys == k]
        assert stats.count[k] == len(rows)
        np.testing.assert_allclose(stats.total[k], rows.sum(0), atol=1e-12)
        np.testing.assert_allclose(stats.second[k], (rows**2).sum(0), atol=1e-12)
    scalar = private_stats.key_stats(keys, X, 5, "scalar")
    np.testing.assert_allclose(scalar.second, [np.sum(X[keys == k] ** 2) for k in range(5)])


def test_partial_stats_releases_only_classes_with_a_partitioner():
    X = np.eye(3)
    out = private_stats.partial_stats(np.array([0, 1, 1]), X, {1: WholeClass()})
    assert list(out) == [1] and out[1].count.tolist() == [2.0]


def test_nearest_centre_and_simhash_keys():
    centres = np.array([[1.0, 0.0], [0.0, 1.0]])
    X = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert NearestCentre(centres).keys(X).tolist() == [0, 1]
    hashed = SimHash(np.zeros(2), np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert hashed.num_keys == 4
    assert hashed.keys(np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])).tolist() == [3, 2, 1, 0]


def test_packed_outer_products_keep_the_frobenius_norm_and_unpack_exactly():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 5))
    packed = private_stats.pack_outer(X)
    assert packed.shape == (private_stats.packed_size(5),) == (15,)
    gram = X.T @ X
    # the L2 norm of the packed vector is the Frobenius norm: one row's is ||x||^2
    assert np.linalg.norm(packed) == pytest.approx(np.linalg.norm(gram), rel=1e-12)
    assert np.linalg.norm(private_stats.pack_outer(X[:1])) == pytest.approx(np.sum(X[0] ** 2), rel=1e-12)
    np.testing.assert_allclose(private_stats.unpack_symmetric(packed, 5), gram, atol=1e-12)
    np.testing.assert_allclose(private_stats.scale_packed(private_stats.upper_gram(X)[None], 5)[0], packed,
                               atol=1e-12)  # the unscaled private sum, packed once before the noise


def test_centred_scatter_is_exact_in_any_order_and_one_row_adds_at_most_one():
    # Deterministic: grid rows centred on released centres, scaled, clipped and snapped.
    from dpsynth.passes import ScatterRelease
    from dpsynth.private_stats import bound_rows, centred_scatter, scale_packed
    rng = np.random.default_rng(5)
    X = bound_rows(rng.normal(size=(500, 6)) + 2.0, 1.0, "normalize")[0]
    ids = rng.integers(0, 2, size=500).astype(np.int32)
    parts = {0: NearestCentre(X[:3].astype(np.float64)), 1: NearestCentre(X[3:4].astype(np.float64))}
    grid = row_grid(1.0)
    for scatter in (ScatterRelease((0.3,), 1.0, 1.0, grid), ScatterRelease((0.3, 0.2), 1.0, 1.0, grid, True)):
        whole = centred_scatter(ids, X, parts, scatter)
        assert whole.shape == (scatter.num_matrices, 21)
        order = rng.permutation(500)
        pieces = sum(centred_scatter(ids[i], X[i], parts, scatter) for i in np.array_split(order, 7))
        np.testing.assert_array_equal(whole, pieces)  # every bit, whatever the batching
        single = [np.linalg.norm(scale_packed(centred_scatter(ids[i:i + 1], X[i:i + 1], parts, scatter), 6))
                  for i in range(500)]
        assert max(single) <= 1.0 and max(single) > 0.9  # clipped into the unit ball: the ledger's sensitivity
        assert not centred_scatter(ids, X, {}, scatter).any()  # classes without a partitioner add nothing
    # per class, each class's rows add to its own matrix only, at its own scale
    per_class = centred_scatter(ids, X, parts, ScatterRelease((0.3, 0.2), 1.0, 1.0, grid, True))
    only_0 = centred_scatter(ids, X, {0: parts[0]}, ScatterRelease((0.3,), 1.0, 1.0, grid))
    np.testing.assert_array_equal(per_class[0], only_0[0])
    assert per_class[1].any()
