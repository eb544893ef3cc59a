"""The encoder contract shared by every model family.

An Encoder is the public, fixed map from a raw record to a vector (step 1 of
the method). It is deliberately split in three so that Beam can place each
part where it belongs:

- `preprocess(items)` is plain CPU work on a batch of raw items (decoded
  images or strings) and returns the model's input tensor(s);
- `load_model()` is the expensive part, done once per worker process by
  RunInference's shared model handle;
- `forward(model, inputs)` runs the model and returns float32 [b, d].

Encoder objects hold configuration only, never a loaded model, so they pickle
cheaply into Beam's DoFns. Each family registers an EncoderSpec in ENCODERS
(at the end of its module); names, help texts and checks derive from it.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from dpsynth.registry import Registry, Spec

MODALITIES = ("image", "text", "vector")


class Encoder(abc.ABC):
    """A public pretrained encoder: configuration plus three pure steps."""

    #: registry name, e.g. "efficientnet-lite0"
    name: str
    #: "image", "text" or "vector"
    modality: str
    #: one paragraph for users: resize, channels, normalisation, output size
    preprocessing: str

    @property
    @abc.abstractmethod
    def output_dim(self) -> int:
        """Length of every embedding this encoder produces."""

    @abc.abstractmethod
    def preprocess(self, items: Sequence[Any]) -> Any:
        """Turn a batch of raw items into the model's input (tensor or dict)."""

    @abc.abstractmethod
    def load_model(self) -> Any:
        """Load the weights (from files inside an installed package or a user path)."""

    @abc.abstractmethod
    def forward(self, model: Any, inputs: Any) -> np.ndarray:
        """Run the model on preprocessed inputs; float32 [b, output_dim]."""

    def embed(self, items: Sequence[Any], model: Any | None = None) -> np.ndarray:
        """Preprocess and run in one call: the direct, non-Beam path (benchmarks, tests)."""
        if model is None:
            model = self.cached_model()
        return self.forward(model, self.preprocess(items))

    def cached_model(self) -> Any:
        """One loaded model per encoder configuration per process."""
        key = (type(self).__name__, self.cache_key())
        if key not in _MODEL_CACHE:
            _MODEL_CACHE[key] = self.load_model()
        return _MODEL_CACHE[key]

    def cache_key(self) -> str:
        """What the loaded weights depend on: configurations sharing it share one model."""
        return self.name

    def describe(self) -> dict[str, Any]:
        """Public settings, written into the embeddings' metadata so a reader knows how they were made."""
        return {"encoder": self.name, "modality": self.modality,
                "output_dim": self.output_dim, "preprocessing": self.preprocessing}


_MODEL_CACHE: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True, kw_only=True)
class EncoderSpec(Spec):
    """A registered encoder family: what the readers must produce for it and what it returns."""

    #: "image", "text" or "vector": which readers feed it
    modality: str
    #: length of its embeddings, or None where the user's model or input decides it
    output_dim: int | None
    #: why no public decoder inverts it (dpsynth.decoders names it); empty where one does
    no_decoder: str = ""

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"encoder {self.name!r}: modality {self.modality!r} is not one of {MODALITIES}")


ENCODERS: Registry[EncoderSpec] = Registry("encoder", path_noun="model")


def default_torch_threads() -> int:
    """Intra-op threads per worker process: one, unless the caller asks for more.

    torch's OpenMP threads spin-wait for cores that other processes hold, so
    more threads than free cores collapses throughput (the figures:
    BENCHMARKS.md, "Notes moved from code"). Parallelism comes from Beam
    worker processes instead; on a dedicated machine the caller can raise it.
    """
    return 1


def configure_torch_threads(num_threads: int | None) -> int:
    """Set torch's intra-op thread count for this process (idempotent); returns it.

    Inter-op parallelism is pinned to one thread: Beam already runs bundles
    concurrently, and a second pool only adds contention on a small machine.
    """
    import torch

    threads = num_threads if num_threads and num_threads > 0 else default_torch_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set, or parallel work already started in this process
    return threads
