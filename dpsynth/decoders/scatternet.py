"""ScatterNet inversion: the image whose scattering transform matches an embedding.

The scattering transform (kymatio 0.3.0, J=2, L=8, 28x28 grey in [0, 1] ->
81x7x7 -> 3969-d; the contract of dpsynth/encoders/scatternet.py) is fixed,
public and nearly invertible, so no decoder has to be learnt: we search for
pixels x in [0, 1]^(28x28) minimising

    || S(x) - r * e / ||e|| ||^2  +  tv_weight * TV(x)

by Adam on a whole batch at once (x = sigmoid(z) keeps the pixel box).
Nothing here touches private data: the input is a synthetic embedding and
every constant comes from the transform or from public images.

Scale. Synthesis L2-normalises rows, so a synthetic embedding is a direction
e only. Scattering is positively homogeneous (S(c x) = c S(x) for c > 0), so
the direction fixes the image up to its brightness, which we restore by two
public rules: the target norm r is the median scattering norm of
scikit-learn's bundled digits (PUBLIC_SCALE, recomputed by public_scale()),
and afterwards each image is stretched so its brightest pixel is 1 (an
intensity prior: objects photographed on a dark background use the full
range), unless stretch=False.

Initialisation. Channel 0 of the transform is the image blurred by the
scattering low-pass filter and subsampled to 7x7, so the upsampled channel 0
of the target is already a coarse guess of the image; starting there saves
most of the optimisation steps.
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np

from dpsynth.decoders.base import DECODERS, Decoder, DecoderSpec, to_uint8
from dpsynth.geometry import onto_sphere

SIZE = 28
J = 2
CHANNELS = 81
SPATIAL = SIZE // 2 ** J
DIMENSION = CHANNELS * SPATIAL * SPATIAL

# Median ||S(x)|| over the 1,797 scikit-learn digits (8x8, /16, bilinear to
# 28x28); public_scale() recomputes it and a test checks the two agree.
PUBLIC_SCALE = 3.0348

DEFAULT_STEPS = 30
DEFAULT_LR = 0.3
DEFAULT_TV_WEIGHT = 1e-3


def scattering():
    """A fresh instance of the encoder's transform (building its filters takes a moment).

    kymatio's top-level import fails with current SciPy; the torch frontend imports cleanly.
    """
    from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D

    return ScatteringTorch2D(J=J, shape=(SIZE, SIZE))


@functools.lru_cache(maxsize=1)
def _differentiable_transform():
    """The decoder's own instance, built and first run with autograd on.

    Not shared: an instance first run under torch.inference_mode caches
    inference tensors that autograd then refuses.
    """
    import torch

    with torch.enable_grad(), torch.inference_mode(False):
        transform = scattering()
        transform(torch.zeros(1, SIZE, SIZE, requires_grad=True))
    return transform


def public_scale() -> float:
    """Median scattering norm of scikit-learn's digits: a public brightness reference."""
    import torch
    from sklearn.datasets import load_digits

    digits = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0)[:, None]
    images = torch.nn.functional.interpolate(digits, size=(SIZE, SIZE), mode="bilinear",
                                             align_corners=False)[:, 0]
    with torch.no_grad():
        norms = scattering()(images).reshape(len(images), -1).norm(dim=1)
    return float(norms.median())


class ScatterNetInversion(Decoder):
    name = "scatternet"
    input_dim = DIMENSION

    def __init__(self, steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR,
                 tv_weight: float = DEFAULT_TV_WEIGHT, scale: float = PUBLIC_SCALE, stretch: bool = True) -> None:
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"learning rate must be positive, got {lr}")
        if not (tv_weight >= 0 and math.isfinite(tv_weight)):
            raise ValueError(f"tv weight must be >= 0, got {tv_weight}")
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be positive, got {scale}")
        self.steps, self.lr, self.tv_weight, self.scale, self.stretch = steps, lr, tv_weight, scale, stretch

    def describe(self) -> dict:
        return {"decoder": self.name, "method": "Adam on sigmoid pixels, L2 scattering match + TV prior",
                "steps": self.steps, "lr": self.lr, "tv_weight": self.tv_weight, "scale": self.scale,
                "scale_rule": "median scattering norm of scikit-learn digits",
                "stretch": "brightest pixel to 1" if self.stretch else "none",
                "transform": "kymatio 0.3.0 ScatteringTorch2D(J=2, shape=(28, 28)), L=8, 3969-d"}

    def check(self, dimension: int) -> None:
        """Only the size can be wrong: the transform is fixed (no probe run, it costs seconds)."""
        from dpsynth.errors import UserError

        if dimension != DIMENSION:
            raise UserError(f"decoder 'scatternet' inverts the scatternet encoder's {DIMENSION}-d embeddings; "
                            f"the synthetic rows have {dimension}")

    def targets(self, embeddings: np.ndarray) -> np.ndarray:
        """r * e / ||e|| per row; an all-zero row stays zero (it decodes to a dark image)."""
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim != 2 or e.shape[1] != DIMENSION:
            raise ValueError(f"expected embeddings [b, {DIMENSION}], got {e.shape}")
        e = np.nan_to_num(e, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float64)
        return (onto_sphere(e, floor=1e-300) * self.scale).astype(np.float32)

    def invert(self, embeddings: np.ndarray) -> np.ndarray:
        """Float images [b, 28, 28] in [0, 1] (before stretching); works inside no_grad callers too."""
        import torch

        target = torch.from_numpy(self.targets(embeddings))  # [b, 3969]
        if target.shape[0] == 0:
            return np.zeros((0, SIZE, SIZE), np.float32)
        with torch.inference_mode(False), torch.enable_grad():
            return self._optimise(_differentiable_transform(), target)

    def _optimise(self, transform, target):
        import torch

        b = target.shape[0]
        # Upsampled low-pass channel, divided by the brightness a constant image
        # gets from it, is the starting guess (already [b, 28, 28]).
        lowpass = target.reshape(b, CHANNELS, SPATIAL, SPATIAL)[:, :1]
        with torch.no_grad():
            unit = transform(torch.ones(1, SIZE, SIZE))[0, 0].mean()
        guess = torch.nn.functional.interpolate(lowpass / unit, size=(SIZE, SIZE), mode="bilinear",
                                                align_corners=False)[:, 0]
        z = torch.logit(guess.clamp(0.02, 0.98)).detach().requires_grad_(True)
        optimiser = torch.optim.Adam([z], lr=self.lr)
        for _ in range(self.steps):
            x = torch.sigmoid(z)  # [b, 28, 28] pixels in (0, 1)
            fit = (transform(x).reshape(b, -1) - target).pow(2).sum()
            tv = (x[:, 1:, :] - x[:, :-1, :]).abs().sum() + (x[:, :, 1:] - x[:, :, :-1]).abs().sum()
            loss = fit + self.tv_weight * tv
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        return torch.sigmoid(z).detach().numpy()

    def decode(self, embeddings: np.ndarray) -> np.ndarray:
        """uint8 [b, 28, 28]; a row with no direction (all zero or non-finite) decodes to black."""
        images = self.invert(embeddings)
        if self.stretch and len(images):
            peak = images.reshape(len(images), -1).max(axis=1)[:, None, None]
            images = np.where(peak > 1e-3, images / np.maximum(peak, 1e-3), images)
        empty = ~np.any(self.targets(embeddings) != 0, axis=1)
        images[empty] = 0.0
        return to_uint8(images)


DECODERS.register(DecoderSpec(
    name=ScatterNetInversion.name, factory=ScatterNetInversion,
    options=("steps", "lr", "tv_weight", "scale", "stretch"),
    embeddings_of=f"the scatternet encoder ({DIMENSION}-d)", description="inversion by optimisation, no weights"))
