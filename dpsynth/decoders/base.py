"""What every decoder is: a fixed, public map from embedding batches to images.

A decoder only ever sees synthetic embeddings, which are already a
post-processing of the DP release; it must never be fitted on, or given, the
private records. Its settings are therefore free of privacy cost, and its
output inherits the (epsilon, delta) of the synthetic embeddings it decodes.
Each family registers a DecoderSpec in DECODERS (at the end of its module).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Optional

import numpy as np

from dpsynth.registry import Registry, Spec


class Decoder(abc.ABC):
    """Embeddings [b, d] float32 -> images [b, H, W] (grey) or [b, H, W, 3] (colour) uint8."""

    name: str = "decoder"
    #: the embedding size it accepts, or None where only the model knows it
    input_dim: Optional[int] = None

    @abc.abstractmethod
    def decode(self, embeddings: np.ndarray) -> np.ndarray:
        """Decode one batch; deterministic for a given batch (reruns give the same images)."""

    def describe(self) -> dict:
        """Public settings, written beside the images so a reader knows how they were made."""
        return {"decoder": self.name}

    def check(self, dimension: int) -> None:
        """Raise UserError (one line) when embeddings of `dimension` cannot be decoded.

        Called once in the driver, before any worker starts, so a mismatch is
        a clear error up front rather than a failure inside a bundle.
        """
        from dpsynth.errors import UserError

        if self.input_dim is not None and dimension != self.input_dim:
            raise UserError(f"decoder {self.name!r} takes {self.input_dim}-d embeddings, "
                            f"the synthetic rows have {dimension}")
        probe = self.decode(np.zeros((1, dimension), np.float32))
        as_image_batch(probe, 1, self.name)


@dataclass(frozen=True, kw_only=True)
class DecoderSpec(Spec):
    """A registered decoder family and the embeddings it can decode."""

    #: whose embeddings it inverts, for users: "the scatternet encoder (3969-d)", "any encoder"
    embeddings_of: str


DECODERS: Registry[DecoderSpec] = Registry("decoder", path_noun="decoder")


def as_image_batch(images: np.ndarray, count: int, name: str) -> np.ndarray:
    """Validate a decoder's output: `count` uint8 images, HxW or HxWx3."""
    from dpsynth.errors import UserError

    arr = np.asarray(images)
    if arr.ndim not in (3, 4) or arr.shape[0] != count or (arr.ndim == 4 and arr.shape[3] != 3):
        raise UserError(f"decoder {name!r} returned shape {tuple(arr.shape)}; expected "
                        f"[{count}, H, W] or [{count}, H, W, 3]")
    if arr.dtype != np.uint8:
        raise UserError(f"decoder {name!r} returned {arr.dtype}, expected uint8 images")
    return arr


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] -> uint8 (values outside are clipped; NaN becomes 0)."""
    arr = np.nan_to_num(np.asarray(images, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
