"""Public decoders: synthetic embeddings back to images (the method's second result).

`get_decoder(name)` is the only entry point the pipeline uses. Names:

| name | for embeddings of | how |
|---|---|---|
| scatternet | the scatternet encoder (3969-d) | inversion by optimisation (no weights) |
| torchscript:PATH | any | the user's TorchScript model |
| onnx:PATH | any | the user's ONNX model |

The other encoders (efficientnet-lite0, minilm, none) have no public decoder:
asking for one is a one-line error that says so. A decoder sees synthetic
embeddings only, never private data.
"""
from __future__ import annotations

from typing import Any

from dpsynth.decoders.base import Decoder, as_image_batch, to_uint8
from dpsynth.errors import UserError

DECODER_NAMES = ("scatternet", "torchscript:PATH", "onnx:PATH")
# Encoders (dpsynth.encoders) for which no public decoder exists.
WITHOUT_DECODER = {
    "efficientnet-lite0": "its ImageNet features discard too much to invert without a learnt generator",
    "minilm": "it embeds text; no public text decoder is bundled",
    "none": "the embeddings were precomputed by an unknown encoder",
}

__all__ = ["Decoder", "DECODER_NAMES", "WITHOUT_DECODER", "get_decoder", "as_image_batch", "to_uint8"]


def get_decoder(name: str, **options: Any) -> Decoder:
    """The decoder called `name` (user model files are loaded here); UserError with one line otherwise.

    options go to the scatternet inversion (steps, lr, tv_weight, scale,
    stretch); user models take none.
    """
    name = (name or "").strip()
    kind, _, path = name.partition(":")
    options = {key: value for key, value in options.items() if value is not None}
    if name == "scatternet":
        from dpsynth.decoders.scatternet import ScatterNetInversion

        try:
            return ScatterNetInversion(**options)
        except ValueError as exc:
            raise UserError(f"decoder 'scatternet': {_one_line(exc)}") from exc
    if name in WITHOUT_DECODER:
        raise UserError(f"encoder {name!r} has no decoder ({WITHOUT_DECODER[name]}); "
                        "pass your own as --decoder torchscript:PATH or onnx:PATH")
    if kind in ("torchscript", "onnx") and path:
        from dpsynth.decoders.custom import OnnxDecoder, TorchScriptDecoder

        if options:
            raise UserError(f"decoder options ({', '.join(sorted(options))}) apply to scatternet only")
        import os

        if not os.path.isfile(path):
            raise UserError(f"{kind} decoder file not found: {path}")
        try:
            return TorchScriptDecoder(path) if kind == "torchscript" else OnnxDecoder(path)
        except (UserError, ValueError) as exc:
            raise UserError(f"{kind} decoder {path}: {_one_line(exc)}") from exc
        except Exception as exc:  # torch / onnxruntime raise many types for a bad file
            raise UserError(f"{kind} decoder {path} does not load: {type(exc).__name__}: "
                            f"{_one_line(exc)}") from exc
    raise UserError(f"unknown decoder {name!r}; choose one of: {', '.join(DECODER_NAMES)}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
