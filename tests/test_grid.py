"""Row grid: bounding is safe for every finite row, and aggregates are exact in any order."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dpsynth import private_stats
from dpsynth.grid import DEFAULT_MAX_ROWS, grid_bits, is_on_grid, row_grid, snap_public, snap_rows
from dpsynth.private_stats import NearestCentre, SimHash

TINY = np.nextafter(0.0, 1.0)  # 5e-324, the smallest denormal
HUGE = np.finfo(np.float64).max

# Finite rows that once changed the *form* of the output (NaN, inf, a zero row) rather than its noise.
EXTREME_ROWS = {
    "denormal": [1e-310, 2e-310, 0.0, -3e-310],
    "smallest_denormal": [TINY, 0.0, 0.0, 0.0],
    "mixed_denormal": [TINY, -TINY, TINY, 1e-320],
    "near_float_max": [HUGE, -HUGE, HUGE, HUGE],
    "overflowing_square": [1e200, 1e200, -1e200, 1e-200],
    "float32_max": [3.4e38, 3.4e38, 0.0, 0.0],
    "negative_zero": [-0.0, -0.0, 0.5, -0.0],
    "one_coordinate": [0.0, 0.0, 0.0, 7.0],
    "exactly_radius": [1.0, 0.0, 0.0, 0.0],
    "just_above_radius": [np.nextafter(1.0, 2.0), 0.0, 0.0, 0.0],
    "equal_coordinates": [0.5, 0.5, 0.5, 0.5],
}


@pytest.mark.parametrize("clip_mode", ["normalize", "clip"])
@pytest.mark.parametrize("radius", [1.0, 0.7, 3.0, 2.0**-40, 2.0**40])
def test_every_finite_row_is_bounded_on_the_grid_never_nan(clip_mode, radius):
    X = np.array(list(EXTREME_ROWS.values()), dtype=np.float64)
    # No overflow, division by zero or invalid operation (NaN) on the way; underflow of an entry
    # far below its row's largest to 0 is harmless.
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        bounded, ok, _ = private_stats.bound_rows(X, radius, clip_mode)
    assert ok.all() and np.isfinite(bounded).all()
    g = row_grid(radius)
    assert is_on_grid(bounded, radius, g)
    norms = np.linalg.norm(bounded.astype(np.float64), axis=1)
    if clip_mode == "normalize":  # every row keeps its direction and lands within 3 g of the sphere (dpsynth.grid: at most (d/12 + 8 sqrt(B/3)) / 2B of R)
        assert np.all(norms >= radius - 3 * g), dict(zip(EXTREME_ROWS, norms))
    assert not np.signbit(bounded[bounded == 0]).any()  # -0.0 normalised to +0.0


def test_denormal_row_keeps_its_direction():
    bounded, ok, _ = private_stats.bound_rows(np.array([[1e-310, 2e-310, 0.0]]), 1.0, "normalize")
    np.testing.assert_allclose(bounded[0], np.array([1, 2, 0]) / math.sqrt(5), atol=2 * row_grid(1.0))


def test_zero_row_is_rejected_when_normalising_and_kept_when_clipping():
    X = np.zeros((2, 4))
    assert not private_stats.bound_rows(X, 1.0, "normalize")[1].any()
    bounded, ok, _ = private_stats.bound_rows(X, 1.0, "clip")
    assert ok.all() and not bounded.any()


def test_grid_comes_from_the_public_row_bound_only():
    assert grid_bits(DEFAULT_MAX_ROWS) == 10 and row_grid(1.0) == 2.0**-10
    assert grid_bits(2**41) == 5  # more rows: a coarser grid
    assert grid_bits(1) == 22  # capped so that grid values are exact float32s
    with pytest.raises(ValueError):
        grid_bits(0)


@pytest.mark.parametrize("d", [3, 64, 4096])
def test_snapping_keeps_the_norm_bound_and_shrinks_normalised_rows_negligibly(d):
    rng = np.random.default_rng(d)
    X = rng.standard_normal((200, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    snapped = snap_rows(X, 1.0, row_grid(1.0)).astype(np.float64)
    norms = np.linalg.norm(snapped, axis=1)
    assert norms.max() <= 1.0 and norms.min() >= 1.0 - 3 * row_grid(1.0)
    # A row moves by at most about one grid step per coordinate.
    assert np.max(np.abs(snapped - X)) <= 2 * row_grid(1.0)


def _worst_case_sums(n: int, d: int, second_moment: str, seed: int) -> list:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[: n // 2] *= 1e-30  # tiny and large magnitudes together: the classic order-dependent float sum
    bounded, ok, _ = private_stats.bound_rows(X, 1.0, "clip")
    keys = rng.integers(0, 3, n)
    return [bounded[ok], keys[ok]]


@pytest.mark.parametrize("second_moment", ["scalar", "diagonal", "gram"])
def test_aggregates_are_exact_and_order_independent(second_moment):
    # "gram": the scatter matrices' unscaled upper triangles (private_stats.upper_gram), per key
    X, keys = _worst_case_sums(3000, 6, second_moment, 1)
    moment = None if second_moment == "gram" else second_moment
    whole = private_stats.key_stats(keys, X, 3, moment)
    if second_moment == "gram":
        whole.second = np.stack([private_stats.upper_gram(X[keys == k].astype(np.float64)) for k in range(3)])
    rng = np.random.default_rng(2)
    for _ in range(3):
        order = rng.permutation(len(X))
        parts = np.array_split(order, rng.integers(2, 9))
        total = private_stats.Stats.zeros(3, X.shape[1], moment)
        if second_moment == "gram":
            total.second = np.zeros_like(whole.second)
        for part in reversed(parts):
            piece = private_stats.key_stats(keys[part], X[part], 3, moment)
            if second_moment == "gram":
                piece.second = np.stack([private_stats.upper_gram(X[part][keys[part] == k].astype(np.float64))
                                         for k in range(3)])
            total.add(piece)
        assert np.array_equal(total.count, whole.count)
        assert np.array_equal(total.total, whole.total)
        assert np.array_equal(total.second, whole.second)
    # Exact: equal to the sum in exact rational arithmetic (integers in units of the grid).
    g = row_grid(1.0)
    units = np.rint(X.astype(np.float64) / g).astype(np.int64)
    for key in range(3):
        rows = units[keys == key]
        assert whole.total[key].tolist() == [float(v) * g for v in rows.sum(0)]
        if second_moment == "diagonal":
            assert whole.second[key].tolist() == [float(v) * g * g for v in (rows * rows).sum(0)]
        if second_moment == "gram":
            exact = (rows.T.astype(object) @ rows.astype(object))[np.triu_indices(X.shape[1])]
            assert whole.second[key].tolist() == [float(v) * g * g for v in exact]


def test_partition_keys_do_not_depend_on_the_batch():
    rng = np.random.default_rng(4)
    X = private_stats.bound_rows(rng.standard_normal((2000, 32)), 1.0, "normalize")[0]
    centres = rng.standard_normal((7, 32)) * 0.1
    # A row exactly between two centres, and rows at 1 ulp of a SimHash hyperplane.
    for partitioner in (NearestCentre(centres), SimHash(centres[0], rng.standard_normal((6, 32)))):
        whole = partitioner.keys(X)
        for size in (1, 3, 17, 999):
            parts = np.concatenate([partitioner.keys(X[i:i + size]) for i in range(0, len(X), size)])
            assert np.array_equal(parts, whole)
        assert np.array_equal(partitioner.keys(X[::-1]), whole[::-1])


def test_public_vectors_on_their_grid_are_close_to_the_originals():
    V = np.random.default_rng(5).standard_normal((4, 100))
    np.testing.assert_allclose(snap_public(V), V, atol=np.abs(V).max() * 2.0**-19)
    assert not np.signbit(snap_public(-np.zeros(3))).any()
