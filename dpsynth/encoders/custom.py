"""A user's own image model: `torchscript:PATH` or `onnx:PATH` (local or gs://).

The model file is loaded (and probed once on a zero batch) when the encoder is
created, so a file that does not load is a one-line error before any data is
read, not a failure inside a worker.

Preprocessing (documented defaults, changeable from the command line):
- channels: 3 (grey replicated; colour as R, G, B) or 1 (BT.601 luma);
- bilinear resize (antialiased when shrinking) to image_size x image_size:
  for ONNX, taken from the model's input shape when it is fixed, else 224;
  for TorchScript, 224 unless image_size says otherwise;
- pixel values scaled to [0, 1]; with normalize="imagenet" also the ImageNet
  per-channel mean/std (3 channels only);
- input NCHW float32.
Output: the model's first output, flattened per image to float32 [b, d]; d is
found by the probe.
"""
from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

from dpsynth.encoders.base import ENCODERS, Encoder, EncoderSpec
from dpsynth.encoders.efficientnet import IMAGENET_MEAN, IMAGENET_STD
from dpsynth.encoders.imaging import resize_stack, to_grey_float, to_rgb_float

NORMALIZATIONS = ("none", "imagenet")


def _read_bytes(path: str) -> bytes:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        return handle.read()


class _UserImageModel(Encoder):
    modality = "image"
    kind = ""

    def __init__(self, path: str, image_size: int | None = None, channels: int | None = None,
                 normalize: str | None = None):
        self.path = path
        self.name = f"{self.kind}:{path}"
        self.normalize = normalize or "none"
        self.threads: int | None = None  # ONNX Runtime threads; set by the embedding stage
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        self._blob: bytes | None = _read_bytes(path)
        fixed_size, fixed_channels = self._input_shape_hint()
        self.channels = int(channels or fixed_channels or 3)
        self.image_size = int(image_size or fixed_size or 224)
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.normalize == "imagenet" and self.channels != 3:
            raise ValueError("imagenet normalisation needs 3 channels")
        probe = self.forward(self.load_model(),
                             self.preprocess([np.zeros((self.image_size, self.image_size), np.uint8)] * 2))
        if probe.ndim != 2 or probe.shape[0] != 2 or probe.shape[1] < 1:
            raise ValueError(f"model output has shape {probe.shape} for a batch of 2; expected [2, d]")
        self._dim = int(probe.shape[1])
        self.preprocessing = (
            f"{'grey (BT.601)' if self.channels == 1 else 'RGB (grey replicated)'}; bilinear resize to "
            f"{self.image_size}x{self.image_size}; [0,1]"
            + ("; ImageNet mean/std" if self.normalize == "imagenet" else "")
            + f"; first output flattened: {self._dim}-d")

    def _input_shape_hint(self) -> tuple[int | None, int | None]:
        return None, None

    def __getstate__(self):
        # Workers re-read the file: a large model must not travel inside every pickled DoFn.
        state = dict(self.__dict__)
        state["_blob"] = None
        return state

    def _model_bytes(self) -> bytes:
        if self._blob is None:
            self._blob = _read_bytes(self.path)
        return self._blob

    @property
    def output_dim(self) -> int:
        return self._dim

    def cache_key(self) -> str:
        return self.name

    def preprocess(self, items: Sequence[np.ndarray]) -> Any:
        import torch

        if self.channels == 1:
            planes = [to_grey_float(im)[None] for im in items]
        else:
            planes = [to_rgb_float(im) for im in items]
        x = resize_stack(planes, self.image_size, antialias=True)
        if self.normalize == "imagenet":
            x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return x


def _first_output(out: Any) -> Any:
    if isinstance(out, dict):
        out = next(iter(out.values()))
    if isinstance(out, (list, tuple)):
        out = out[0]
    return out


class TorchScriptModel(_UserImageModel):
    kind = "torchscript"

    def load_model(self) -> Any:
        import torch

        model = torch.jit.load(io.BytesIO(self._model_bytes()), map_location="cpu")
        model.eval()
        return model

    def forward(self, model: Any, inputs: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = _first_output(model(inputs))
        out = out.reshape(out.shape[0], -1)
        return out.float().numpy().astype(np.float32, copy=False)


class OnnxModel(_UserImageModel):
    kind = "onnx"

    def _input_shape_hint(self) -> tuple[int | None, int | None]:
        session = self.load_model()
        shape = session.get_inputs()[0].shape
        if len(shape) != 4:
            raise ValueError(f"ONNX model input must be NCHW, got shape {shape}")
        channels = shape[1] if isinstance(shape[1], int) else None
        size = shape[2] if isinstance(shape[2], int) and shape[2] == shape[3] else None
        return size, channels

    def load_model(self) -> Any:
        import onnxruntime as ort

        from dpsynth.encoders.base import default_torch_threads

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or default_torch_threads()
        opts.inter_op_num_threads = 1
        return ort.InferenceSession(self._model_bytes(), sess_options=opts, providers=["CPUExecutionProvider"])

    def forward(self, model: Any, inputs: Any) -> np.ndarray:
        name = model.get_inputs()[0].name
        x = inputs.numpy() if hasattr(inputs, "numpy") else np.asarray(inputs)
        out = _first_output(model.run(None, {name: x.astype(np.float32, copy=False)}))
        out = np.asarray(out)
        return out.reshape(out.shape[0], -1).astype(np.float32, copy=False)


for _family, _format in ((TorchScriptModel, "TorchScript"), (OnnxModel, "ONNX")):
    ENCODERS.register(EncoderSpec(
        name=_family.kind, factory=_family, modality=_family.modality, output_dim=None, takes_path=True,
        options=("image_size", "channels", "normalize"), description=f"your {_format} image model"))
del _family, _format
