"""A user's own decoder: a TorchScript or ONNX model file.

Contract (documented in docs/decode.md): the model takes one float32 input
[b, d] (the synthetic embeddings, as stored) and returns float images in
[0, 1], shaped [b, H, W], [b, 1, H, W] or [b, 3, H, W] (NCHW), or
[b, H, W, 3] (NHWC). A diffusion model conditioned on image embeddings fits
this contract when wrapped so that its sampling loop runs inside the model
(its noise is the model's own business: it sees only synthetic embeddings).
The file is the user's; nothing is downloaded.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from dpsynth.decoders.base import DECODERS, Decoder, DecoderSpec, to_uint8
from dpsynth.errors import UserError


def to_image_layout(output: np.ndarray, count: int, name: str) -> np.ndarray:
    """Model output -> float [b, H, W] or [b, H, W, 3], whatever of the accepted layouts it used."""
    arr = np.asarray(output, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[3] not in (1, 3):
        arr = arr[:, 0] if arr.shape[1] == 1 else arr.transpose(0, 2, 3, 1)
    elif arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (3, 4) or arr.shape[0] != count or (arr.ndim == 4 and arr.shape[3] != 3):
        raise UserError(f"decoder {name!r} returned shape {tuple(np.shape(output))}; expected "
                        f"[{count}, H, W], [{count}, 1|3, H, W] or [{count}, H, W, 3]")
    return arr


class TorchScriptDecoder(Decoder):
    def __init__(self, path: str, device: Optional[str] = None) -> None:
        import torch

        # A GPU worker decodes on its GPU; elsewhere the CPU.
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.path, self.device = path, device
        self.name = f"torchscript:{path}"
        self.model = torch.jit.load(path, map_location=device).eval()

    def describe(self) -> dict:
        return {"decoder": "torchscript", "path": os.path.abspath(self.path), "device": self.device}

    def decode(self, embeddings: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.array(embeddings, dtype=np.float32, order="C")).to(self.device)  # a writable copy
        with torch.inference_mode():
            out = self.model(x)
        return to_uint8(to_image_layout(out.float().cpu().numpy(), len(embeddings), self.name))


class OnnxDecoder(Decoder):
    def __init__(self, path: str, providers: Optional[list[str]] = None) -> None:
        import onnxruntime as ort

        self.path = path
        self.name = f"onnx:{path}"
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=providers or ort.get_available_providers())
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"the model must take one input (the embeddings), it takes {len(inputs)}")
        self.input_name = inputs[0].name
        shape = inputs[0].shape
        if len(shape) != 2:
            raise ValueError(f"the model's input must be [batch, dimension], it is {shape}")
        self.input_dim = shape[1] if isinstance(shape[1], int) else None

    def describe(self) -> dict:
        return {"decoder": "onnx", "path": os.path.abspath(self.path),
                "providers": self.session.get_providers()}

    def decode(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        out = self.session.run(None, {self.input_name: x})[0]
        return to_uint8(to_image_layout(out, len(embeddings), self.name))


for _family, _name, _format in ((TorchScriptDecoder, "torchscript", "TorchScript"),
                                (OnnxDecoder, "onnx", "ONNX")):
    DECODERS.register(DecoderSpec(name=_name, factory=_family, takes_path=True, embeddings_of="any encoder",
                                  description=f"your {_format} model"))
del _family, _name, _format
