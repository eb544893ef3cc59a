"""`none`: the records already are embeddings (precomputed vectors).

Preprocessing: none. Each item is a 1-d array of finite floats; a batch is
stacked to float32 [b, d]. The output size is the input's; inconsistent
lengths inside a batch are an error of the reader's making, never silent.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dpsynth.encoders.base import ENCODERS, Encoder, EncoderSpec


class Precomputed(Encoder):
    name = "none"
    modality = "vector"
    preprocessing = "none: the input column already holds the vectors (float32, output size = input size)"

    def __init__(self, dim: int | None = None):
        self._dim = dim

    @property
    def output_dim(self) -> int:
        return int(self._dim or 0)  # 0: whatever the input holds

    def preprocess(self, items: Sequence[Any]) -> Any:
        return np.stack([np.asarray(v, dtype=np.float32) for v in items]) if len(items) else \
            np.zeros((0, self.output_dim), np.float32)

    def load_model(self) -> Any:
        return None

    def forward(self, model: Any, inputs: Any) -> np.ndarray:
        return np.asarray(inputs, dtype=np.float32)


ENCODERS.register(EncoderSpec(
    name=Precomputed.name, factory=Precomputed, modality=Precomputed.modality, output_dim=None,
    description="the input already holds the vectors",
    no_decoder="the embeddings were precomputed by an unknown encoder"))
