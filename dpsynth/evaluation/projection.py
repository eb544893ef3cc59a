"""A public projection of embeddings to fewer dimensions, fitted on public rows only.

Noise on a DP mean grows with sqrt(d), so a projection to p << d dimensions
fitted on PUBLIC rows (never the private ones) costs no privacy and trades a
little signal for much less noise. Every method in a comparison sees the same
projected rows, so the comparison stays like for like.

Map: x -> x / |x| (per row), minus the public mean, onto the top-p public
principal directions, optionally divided by their public standard deviations
(whitening: each kept direction gets equal weight, which suits a spherical
mixture), then x / |x| again so rows lie on the unit sphere that the synthesis
and the baselines bound to.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpsynth.geometry import onto_sphere


@dataclass(frozen=True)
class PublicProjection:
    mean: np.ndarray        # [d]
    components: np.ndarray  # [d, p]
    scale: np.ndarray       # [p]; ones unless whitened

    @classmethod
    def fit(cls, public_rows: np.ndarray, dim: int, whiten: bool = True) -> "PublicProjection":
        x = onto_sphere(np.asarray(public_rows, dtype=np.float64))
        if not 1 <= dim <= min(x.shape):
            raise ValueError(f"projection dimension {dim} must be in [1, {min(x.shape)}]")
        mean = x.mean(axis=0)
        if dim < min(x.shape) // 4:
            # A seeded randomized SVD (Halko et al.) of the top components:
            # deterministic, and far faster than a full SVD of wide public sets.
            from sklearn.utils.extmath import randomized_svd

            _, s, vt = randomized_svd(x - mean, dim, n_oversamples=20, n_iter=7, random_state=0)
        else:
            _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        std = s[:dim] / np.sqrt(max(len(x) - 1, 1))
        scale = np.where(std > 1e-12, std, 1.0) if whiten else np.ones(dim)
        return cls(mean, vt[:dim].T, scale)

    def __call__(self, x: np.ndarray, batch: int = 20_000) -> np.ndarray:
        out = [onto_sphere(((onto_sphere(np.asarray(x[i:i + batch], dtype=np.float64)) - self.mean)
                            @ self.components) / self.scale)
               for i in range(0, len(x), batch)]
        return np.concatenate(out).astype(np.float32)
