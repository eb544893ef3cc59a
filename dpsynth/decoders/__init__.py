"""Public decoders: synthetic embeddings back to images (the method's second result).

`get_decoder(name)` is the only entry point the pipeline uses. The names are
those registered in DECODERS, one DecoderSpec at the end of each family's
module (DECODER_NAMES lists them; docs/decode.md tabulates them, checked
against the registry by tests/test_registries.py). An encoder without a
decoder says why in its EncoderSpec.no_decoder: asking for one is a one-line
error that gives the reason. A decoder sees synthetic embeddings only, never
private data.
"""
from __future__ import annotations

import os
from typing import Any

# Importing a family's module registers it; the order here is the order users see.
from dpsynth.decoders import scatternet, custom  # noqa: F401
from dpsynth.decoders.base import DECODERS, Decoder, DecoderSpec, as_image_batch, to_uint8
from dpsynth.encoders import ENCODERS
from dpsynth.errors import UserError, join_words

DECODER_NAMES = DECODERS.names()
# Encoders (dpsynth.encoders) for which no public decoder exists, and why.
WITHOUT_DECODER = {spec.name: spec.no_decoder for spec in ENCODERS
                   if not spec.takes_path and DECODERS.resolve(spec.name) is None}

__all__ = ["Decoder", "DecoderSpec", "DECODERS", "DECODER_NAMES", "WITHOUT_DECODER", "get_decoder",
           "as_image_batch", "to_uint8"]


def get_decoder(name: str, **options: Any) -> Decoder:
    """The decoder called `name` (user model files are loaded here); UserError with one line otherwise.

    options go to the families that register them (the scatternet inversion's
    steps, lr, tv_weight, scale, stretch); user models take none. None values
    count as not given.
    """
    name = (name or "").strip()
    found = DECODERS.resolve(name)
    if found is None:
        if name in WITHOUT_DECODER:
            yours = join_words([spec.display for spec in DECODERS if spec.takes_path], "or")
            raise UserError(f"encoder {name!r} has no decoder ({WITHOUT_DECODER[name] or 'none is registered'}); "
                            f"pass your own decoder as {yours}")
        raise DECODERS.unknown(name)
    spec, path = found
    options = {key: value for key, value in options.items() if value is not None}
    DECODERS.check_options(spec, name, options)
    if path is not None and not os.path.isfile(path):
        raise UserError(f"{spec.name} decoder file not found: {path}")
    return DECODERS.create(spec, name, path, options)
