"""Public encoders: the method's step 1, a fixed map from record to vector.

`get_encoder(name)` is the only entry point the pipeline uses. Names:

| name | modality | output |
|---|---|---|
| efficientnet-lite0 | image | 1280 |
| scatternet | image (small, grey) | 3969 |
| minilm | text | 384 (unit norm) |
| torchscript:PATH | image | the model's |
| onnx:PATH | image | the model's |
| none | vector (precomputed) | the input's |

Each family's module docstring gives its exact preprocessing. Every weight file
comes from an installed package or the user's path: nothing is downloaded.
"""
from __future__ import annotations

from dpsynth.encoders.base import (MODALITIES, Encoder, configure_torch_threads,
                                   default_torch_threads)
from dpsynth.errors import UserError

ENCODER_NAMES = ("efficientnet-lite0", "scatternet", "minilm", "torchscript:PATH", "onnx:PATH", "none")

__all__ = ["Encoder", "ENCODER_NAMES", "MODALITIES", "get_encoder", "configure_torch_threads",
           "default_torch_threads"]


def get_encoder(name: str, *, image_size: int | None = None, channels: int | None = None,
                normalize: str | None = None, project_dim: int | None = None) -> Encoder:
    """The encoder called `name`, validated (user model files are loaded and probed here).

    image_size applies to efficientnet-lite0 and user models; channels and
    normalize to user models only; project_dim (any encoder) appends the
    public random projection of dpsynth.encoders.projection. Raises UserError
    with one line otherwise.
    """
    encoder = _base_encoder(name, image_size=image_size, channels=channels, normalize=normalize)
    if project_dim is None:
        return encoder
    from dpsynth.encoders.projection import RandomProjection

    try:
        return RandomProjection(encoder, project_dim)
    except ValueError as exc:
        raise UserError(_one_line(exc)) from exc


def _base_encoder(name: str, *, image_size: int | None, channels: int | None, normalize: str | None) -> Encoder:
    name = (name or "").strip()
    kind, _, path = name.partition(":")
    if (channels is not None or normalize is not None) and kind not in ("torchscript", "onnx"):
        raise UserError(f"--channels and --normalize apply to torchscript: and onnx: models only, not {name!r}")
    try:
        if name == "efficientnet-lite0":
            from dpsynth.encoders.efficientnet import EfficientNetLite0

            return EfficientNetLite0(image_size)
        if image_size is not None and kind not in ("torchscript", "onnx"):
            raise UserError(f"--image-size applies to efficientnet-lite0, torchscript: and onnx: only, "
                            f"not {name!r}")
        if name == "scatternet":
            from dpsynth.encoders.scatternet import ScatterNet

            return ScatterNet()
        if name == "minilm":
            from dpsynth.encoders.minilm import MiniLM

            return MiniLM()
        if name == "none":
            from dpsynth.encoders.vector import Precomputed

            return Precomputed()
        if kind in ("torchscript", "onnx") and path:
            from dpsynth.encoders.custom import OnnxModel, TorchScriptModel

            cls = TorchScriptModel if kind == "torchscript" else OnnxModel
            try:
                return cls(path, image_size=image_size, channels=channels, normalize=normalize)
            except (UserError, ValueError) as exc:
                raise UserError(f"{kind} model {path}: {_one_line(exc)}") from exc
            except Exception as exc:  # torch/onnxruntime raise many types for a bad file
                raise UserError(f"{kind} model {path} does not load: {type(exc).__name__}: "
                                f"{_one_line(exc)}") from exc
    except ValueError as exc:
        raise UserError(f"encoder {name!r}: {_one_line(exc)}") from exc
    raise UserError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODER_NAMES)}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
