"""Rows onto the sphere and into the ball: norms, zero rows, dtypes, and the clipped-factor identity."""
import numpy as np
import pytest

from dpsynth.geometry import NORM_FLOOR, into_ball, onto_sphere


def _rows():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 5)) * np.exp(rng.uniform(-8, 8, (50, 1)))
    X[0] = 0.0
    X[1] = 1e-200
    X[2] = [np.inf, 0, 0, 0, 0]
    X[3, 0] = np.nan
    return X


@pytest.mark.parametrize("radius", [None, 1.0, 2.5])
def test_onto_sphere_gives_every_row_the_radius_and_keeps_zero_rows(radius):
    X = _rows()[4:]
    X[0] = 0.0
    out = onto_sphere(X, radius)
    norms = np.linalg.norm(out, axis=1)
    np.testing.assert_allclose(norms[1:], 1.0 if radius is None else radius, rtol=1e-12)
    assert norms[0] == 0.0


def test_onto_sphere_keeps_the_dtype_and_the_floor():
    X = np.array([[3.0, 4.0], [1e-13, 0.0]], np.float32)
    out = onto_sphere(X, 2.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [1.2, 1.6], rtol=1e-6)
    np.testing.assert_allclose(out[1], [2.0 * 1e-13 / NORM_FLOOR, 0.0], rtol=1e-5)  # below the floor: stays short
    np.testing.assert_allclose(onto_sphere(np.array([[1e-13, 0.0]]), floor=1e-300), [[1.0, 0.0]])


def test_onto_sphere_unit_divides_and_radius_multiplies():
    X = _rows()[4:]
    norms = np.maximum(np.linalg.norm(X, axis=1, keepdims=True), NORM_FLOOR)
    np.testing.assert_array_equal(onto_sphere(X), X / norms)
    np.testing.assert_array_equal(onto_sphere(X, 1.0), X * (1.0 / norms))


@pytest.mark.parametrize("radius", [1.0, 0.7, 3.0])
@pytest.mark.parametrize("floor", [1e-300, 1e-12])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_into_ball_equals_the_clipped_factor_for_any_floor_below_the_radius(radius, floor, dtype):
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # float32 floors round to 0
        X = _rows().astype(dtype)
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        clipped = X * np.minimum(1.0, radius / np.maximum(norms, floor))
        out = into_ball(X, radius)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, clipped)


def test_into_ball_leaves_short_rows_and_shortens_long_ones():
    X = np.array([[0.3, 0.4], [3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(into_ball(X, 1.0), [[0.3, 0.4], [0.6, 0.8], [0.0, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(into_ball(X, 10.0), X, rtol=0)
    np.testing.assert_array_equal(into_ball(X), X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1.0))
