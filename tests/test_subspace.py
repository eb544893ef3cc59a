"""dpsynth.subspace: the public subspace's map, its inverse, its fit and its JSON."""
import json

import numpy as np
import pytest

from dpsynth.errors import UserError
from dpsynth.grid import row_grid, snap_rows
from dpsynth.private_stats import bound_rows
from dpsynth.subspace import MIN_PUBLIC_ROWS_PER_DIRECTION, PublicSubspace, fit_public_subspace


def planted_rows(n: int, d: int = 40, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows near a k-dimensional subspace (returned as orthonormal rows [k, d])."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, k)))[0].T
    X = (rng.standard_normal((n, k)) * np.linspace(3, 1, k)) @ basis + 0.01 * rng.standard_normal((n, d))
    return X, basis


def grid_rows(n: int, d: int, seed: int) -> np.ndarray:
    rows, _, _ = bound_rows(np.random.default_rng(seed).standard_normal((n, d)), 1.0, "normalize")
    return rows


def test_fit_finds_the_planted_subspace_and_is_deterministic():
    X, basis = planted_rows(300)
    sub = fit_public_subspace(X, 5, radius=1.0, clip_mode="normalize", source="test")
    assert sub.basis.shape == (5, 40) and sub.model_dimension == 6
    # the planted directions lie in the fitted span (principal angles near 0)
    assert np.linalg.svd(sub.basis @ basis.T, compute_uv=False).min() > 0.999
    assert np.abs(sub.basis @ sub.basis.T - np.eye(5)).max() < 1e-5  # orthonormal after the public grid
    again = fit_public_subspace(X[::-1].copy(), 5, radius=1.0, clip_mode="normalize", source="test")
    assert again == sub and hash(again) == hash(sub)  # same public rows, same directions


def test_fit_keeps_fewer_directions_than_d_and_than_half_the_rows():
    X, _ = planted_rows(20, d=40)
    assert fit_public_subspace(X, 64, radius=1.0, clip_mode="normalize", source="t").num_directions == \
        20 // MIN_PUBLIC_ROWS_PER_DIRECTION
    X, _ = planted_rows(500, d=6)
    assert fit_public_subspace(X, 64, radius=1.0, clip_mode="normalize", source="t").num_directions == 5
    with pytest.raises(UserError, match="too few"):
        fit_public_subspace(X[:1], 4, radius=1.0, clip_mode="normalize", source="t")
    with pytest.raises(UserError, match="positive"):
        fit_public_subspace(X, 0, radius=1.0, clip_mode="normalize", source="t")


def test_the_fewer_rows_than_coordinates_path_gives_the_same_span():
    X, _ = planted_rows(30, d=5000, k=3)
    sub = fit_public_subspace(X, 3, radius=1.0, clip_mode="clip", source="t")
    direct = np.linalg.svd(X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1.0), full_matrices=False)[2][:3]
    assert np.linalg.svd(sub.basis @ direct.T, compute_uv=False).min() > 0.9999


def test_encode_keeps_every_norm_and_is_the_same_in_any_batch():
    sub = fit_public_subspace(planted_rows(300)[0], 5, radius=1.0, clip_mode="normalize", source="t")
    X = grid_rows(1000, 40, seed=1)
    Y = sub.encode(X)
    assert Y.shape == (1000, 6) and (Y[:, -1] >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(Y, axis=1), np.linalg.norm(X, axis=1), rtol=1e-6)
    # B x of a grid row is an exact sum: a row's image does not depend on the rows beside it
    parts = np.concatenate([sub.encode(X[i:i + 7]) for i in range(0, 1000, 7)])
    assert np.array_equal(parts[:, :-1], Y[:, :-1])
    snapped = snap_rows(Y, 1.0, row_grid(1.0))
    assert (np.einsum("ij,ij->i", snapped.astype(np.float64), snapped.astype(np.float64)) <= 1.0).all()


def test_lift_keeps_the_norm_and_the_subspace_coordinates():
    sub = fit_public_subspace(planted_rows(300)[0], 5, radius=1.0, clip_mode="normalize", source="t")
    Y = sub.encode(grid_rows(500, 40, seed=2))
    X = sub.lift(Y, np.random.default_rng(0))
    assert X.shape == (500, 40)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), np.linalg.norm(Y, axis=1), rtol=1e-5)
    np.testing.assert_allclose(X @ sub.basis.T, Y[:, :-1], atol=1e-5)  # the modelled part comes back as is
    # a negative residual draw is a length, like its absolute value
    flipped = Y.copy()
    flipped[:, -1] *= -1
    np.testing.assert_allclose(np.linalg.norm(sub.lift(flipped, np.random.default_rng(0)), axis=1),
                               np.linalg.norm(Y, axis=1), rtol=1e-5)


def test_the_residual_direction_is_isotropic_in_the_complement():
    # u = P g / |P g| with P the projector onto the 35-d complement: E[u u^T] = P / 35. Each entry of the
    # mean of m = 20,000 outer products has sd <= 1 / sqrt(m) (|u_i u_j| <= 1); the bound 6.5 / sqrt(m)
    # fails with probability < 1e-6 per entry (Hoeffding: 2 exp(-6.5^2 / 2) = 1.4e-9, 1,600 entries).
    sub = fit_public_subspace(planted_rows(300)[0], 5, radius=1.0, clip_mode="normalize", source="t")
    m = 20_000
    Y = np.zeros((m, 6))
    Y[:, -1] = 1.0
    U = sub.lift(Y, np.random.default_rng(3))
    complement = np.eye(40) - sub.basis.T @ sub.basis
    assert np.abs(U.T @ U / m - complement / 35).max() < 6.5 / np.sqrt(m)


def test_json_round_trip_and_content_equality():
    sub = fit_public_subspace(planted_rows(300)[0], 5, radius=1.0, clip_mode="normalize", source="pub.parquet")
    data = json.loads(json.dumps(sub.to_json()))
    back = PublicSubspace.from_json(data)
    assert back == sub and np.array_equal(back.basis, sub.basis)
    assert data["sha256"] == sub.digest and data["num_directions"] == 5 and data["input_dimension"] == 40
    assert "pub.parquet" in sub.describe() and "300 public rows" in sub.describe()
    other = fit_public_subspace(planted_rows(300, seed=1)[0], 5, radius=1.0, clip_mode="normalize", source="x")
    assert other != sub
