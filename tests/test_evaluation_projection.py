"""The public projection: unit-norm output, fitted only on the rows it is given."""
import numpy as np
import pytest

from dpsynth.evaluation.projection import PublicProjection


def test_projection_keeps_the_public_principal_subspace():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(200, 3)))[0]           # signal in a 3-d subspace
    public = rng.normal(size=(400, 3)) * [5, 3, 2] @ basis.T + rng.normal(size=(400, 200)) * 0.01 + 1.0
    for whiten in (True, False):
        proj = PublicProjection.fit(public, 3, whiten=whiten)
        z = proj(public)
        assert z.shape == (400, 3) and z.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
        # The recovered directions span the planted subspace (after the per-row normalisation).
        overlap = np.linalg.svd(basis.T @ proj.components, compute_uv=False)
        assert overlap.min() > 0.95


def test_randomized_and_exact_paths_agree():
    rng = np.random.default_rng(1)
    public = rng.normal(size=(300, 120)) * np.linspace(3, 0.1, 120)
    fast = PublicProjection.fit(public, 8)            # 8 < 120 // 4: randomized SVD
    exact = PublicProjection.fit(public, 40)          # exact SVD; its first 8 directions
    cos = np.abs(np.sum(fast.components * exact.components[:, :8], axis=0))
    assert cos.min() > 0.99


def test_bad_dimension():
    with pytest.raises(ValueError):
        PublicProjection.fit(np.ones((5, 3)), 4)
