"""A public random projection after any encoder (get_encoder's project_dim).

Why: the DP noise on a released mean grows with sqrt(d), and the budget split
gives each pass's count a share that shrinks as 1/(1 + sqrt(d)) (README.md,
"The method and its privacy"). Small private datasets (a few hundred rows per
class) lose whole classes to that noise in 1280-d; a data-independent
projection to K dimensions keeps pairwise distances to within a factor
1 +- O(sqrt(log n / K)) (Johnson-Lindenstrauss) and costs no privacy.

The matrix is public: entries N(0, 1/K), float32, drawn by numpy's PCG64
seeded with PROJECTION_SEED and the input size, so every worker, every run
and every later user (decoders, downstream models) gets the same map.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from dpsynth.encoders.base import Encoder

PROJECTION_SEED = 20250620  # public constant; never derived from data


@functools.lru_cache(maxsize=8)
def projection_matrix(input_dim: int, output_dim: int, seed: int = PROJECTION_SEED) -> np.ndarray:
    """The [input_dim, output_dim] Gaussian matrix, N(0, 1/output_dim) entries."""
    rng = np.random.default_rng([seed, input_dim, output_dim])
    matrix = rng.standard_normal((input_dim, output_dim)) / np.sqrt(output_dim)
    matrix = matrix.astype(np.float32)
    matrix.setflags(write=False)
    return matrix


class RandomProjection(Encoder):
    """base encoder, then x -> x P with the public matrix P."""

    def __init__(self, base: Encoder, output_dim: int):
        if output_dim < 1:
            raise ValueError(f"the output dimension must be at least 1, got {output_dim}")
        if base.output_dim and output_dim >= base.output_dim:
            raise ValueError(f"the output dimension {output_dim} is not below {base.name}'s "
                             f"{base.output_dim} dimensions")
        self.base, self._dim = base, int(output_dim)
        self.name = f"{base.name}+rp{output_dim}"
        self.modality = base.modality
        self.preprocessing = (f"{base.preprocessing}; then a public Gaussian random projection to "
                              f"{output_dim}-d (N(0, 1/{output_dim}) entries, seed {PROJECTION_SEED})")

    @property
    def output_dim(self) -> int:
        return self._dim

    def cache_key(self) -> str:
        return self.base.cache_key()

    def preprocess(self, items: Sequence[Any]) -> Any:
        return self.base.preprocess(items)

    def load_model(self) -> Any:
        return self.base.load_model()

    def forward(self, model: Any, inputs: Any) -> np.ndarray:
        features = self.base.forward(model, inputs)
        return features @ projection_matrix(features.shape[1], self._dim)

    def __getattr__(self, name: str) -> Any:
        # threads, image_size, ... of the base (only reached for attributes not set here)
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "threads" and "base" in self.__dict__ and hasattr(self.base, "threads"):
            setattr(self.base, name, value)
        else:
            super().__setattr__(name, value)
