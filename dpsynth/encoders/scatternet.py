"""ScatterNet: a fixed wavelet scattering transform for small grey images.

No learned weights: the strong public feature map for MNIST-like data
(Tramer & Boneh, ICLR 2021). The decoder (another module) inverts exactly this
map, so the specification below is a contract; do not change it silently.

Specification:
- input: one image, grey or colour; colour is converted to grey with ITU-R
  BT.601 luma (0.299 R + 0.587 G + 0.114 B);
- pixel values: uint8 / 255, i.e. in [0, 1];
- resize to 28 x 28, bilinear (align_corners=False, no antialiasing); images
  already 28 x 28 are untouched;
- kymatio 0.3.0 `ScatteringTorch2D(J=2, shape=(28, 28))`, L=8 (default),
  max_order=2: output 81 x 7 x 7 per image (1 + J*L + L^2*J*(J-1)/2 = 81
  channels, spatial size 28 / 2^J = 7);
- flattened in C order (channel, row, column) to 3969-d float32;
- no further normalisation (the synthesis step normalises).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dpsynth.encoders.base import ENCODERS, Encoder, EncoderSpec
from dpsynth.encoders.imaging import resize_stack, to_grey_float

SIZE = 28
J = 2
CHANNELS = 81
SPATIAL = SIZE // 2 ** J
OUTPUT_DIM = CHANNELS * SPATIAL * SPATIAL


class ScatterNet(Encoder):
    name = "scatternet"
    modality = "image"
    image_size = SIZE  # fixed by the specification: every image is resized to it
    preprocessing = ("grey (BT.601 luma), [0,1]; bilinear resize to 28x28; "
                     "wavelet scattering J=2, L=8 -> 81x7x7 flattened to 3969-d; no normalisation")

    @property
    def output_dim(self) -> int:
        return OUTPUT_DIM

    def preprocess(self, items: Sequence[np.ndarray]) -> Any:
        return resize_stack([to_grey_float(im)[None] for im in items], SIZE, antialias=False)[:, 0]

    def load_model(self) -> Any:
        # kymatio's top-level import fails with current SciPy (sph_harm); the
        # torch frontend module imports cleanly.
        from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D

        return ScatteringTorch2D(J=J, shape=(SIZE, SIZE))

    def forward(self, model: Any, inputs: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = model(inputs)  # [b, 81, 7, 7]
        return out.reshape(out.shape[0], -1).numpy().astype(np.float32, copy=False)


ENCODERS.register(EncoderSpec(
    name=ScatterNet.name, factory=ScatterNet, modality=ScatterNet.modality, output_dim=OUTPUT_DIM,
    description="wavelet scattering of small grey images, no learnt weights"))
