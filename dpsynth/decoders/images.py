"""PNG encoding and contact sheets for decoded images (pure functions, no Beam)."""
from __future__ import annotations

import io
import math
import re
from typing import Sequence

import numpy as np


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 HxW (grey) or HxWx3 (colour) -> PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode=None).save(buffer, format="PNG")
    return buffer.getvalue()


def read_png(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img)


def contact_sheet(images: Sequence[np.ndarray], columns: int | None = None, pad: int = 2,
                  zoom: int = 2) -> np.ndarray:
    """A grid of equally sized images, `pad` pixels apart, each enlarged `zoom` times (nearest).

    Images of one decoder share their size; a grey sheet stays grey and a
    sheet with any colour image is colour.
    """
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    colour = any(im.ndim == 3 for im in images)
    tiles = [np.repeat(im[..., None], 3, axis=2) if colour and im.ndim == 2 else im for im in images]
    tiles = [np.kron(t, np.ones((zoom, zoom) + (1,) * (t.ndim - 2), np.uint8)) if zoom > 1 else t for t in tiles]
    h, w = tiles[0].shape[:2]
    if any(t.shape[:2] != (h, w) for t in tiles):
        raise ValueError("contact sheet images must share one size")
    columns = columns or max(1, math.ceil(math.sqrt(len(tiles))))
    rows = math.ceil(len(tiles) / columns)
    shape = (rows * (h + pad) + pad, columns * (w + pad) + pad) + ((3,) if colour else ())
    sheet = np.full(shape, 64, np.uint8)  # a mid-dark frame separates black backgrounds
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = tile
    return sheet


_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def label_folder(label: object) -> str:
    """A file-name-safe folder for a label: unsafe characters become '_'; never empty or a dot name."""
    text = _UNSAFE.sub("_", str(label)).strip("_") or "_"
    return "_" + text if text in (".", "..") or text.startswith(".") else text
