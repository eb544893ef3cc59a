"""Public encoders: the method's step 1, a fixed map from record to vector.

`get_encoder(name)` is the only entry point the pipeline uses. The names are
those registered in ENCODERS, one EncoderSpec at the end of each family's
module (ENCODER_NAMES lists them; docs/encoders.md tabulates them, checked
against the registry by tests/test_registries.py). Each family's module
docstring gives its exact preprocessing. Every weight file comes from an
installed package or the user's path: nothing is downloaded.
"""
from __future__ import annotations

# Importing a family's module registers it; the order here is the order users see.
from dpsynth.encoders import efficientnet, scatternet, minilm, custom, vector  # noqa: F401
from dpsynth.encoders.base import (ENCODERS, MODALITIES, Encoder, EncoderSpec, configure_torch_threads,
                                   default_torch_threads)
from dpsynth.errors import OptionError
from dpsynth.registry import one_line

ENCODER_NAMES = ENCODERS.names()

__all__ = ["Encoder", "EncoderSpec", "ENCODERS", "ENCODER_NAMES", "MODALITIES", "get_encoder",
           "configure_torch_threads", "default_torch_threads"]


def get_encoder(name: str, *, image_size: int | None = None, channels: int | None = None,
                normalize: str | None = None, project_dim: int | None = None) -> Encoder:
    """The encoder called `name`, validated (user model files are loaded and probed here).

    image_size, channels and normalize go to the families that register them
    (EncoderSpec.options); project_dim (any encoder) appends the public random
    projection of dpsynth.encoders.projection. Raises UserError with one line
    otherwise (an OptionError, naming settings as parameters, when a setting
    does not apply: a command line renders it with its flags).
    """
    encoder = ENCODERS.build(name, {"image_size": image_size, "channels": channels, "normalize": normalize})
    if project_dim is None:
        return encoder
    from dpsynth.encoders.projection import RandomProjection

    try:
        return RandomProjection(encoder, project_dim)
    except ValueError as exc:
        raise OptionError("{options}: {reason}", ["project_dim"], reason=one_line(exc)) from exc
