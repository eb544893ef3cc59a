"""Image decoding and the resize/channel conversions the image encoders share.

Images travel through the pipeline as uint8 numpy arrays, HxW (grey) or HxWxC
(C = 3, colour), whatever their source (PNG/JPEG files, Parquet bytes, IDX).
Decoding happens once, in the reader, so an unreadable image is rejected there
with a reason instead of failing inside a model call.
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np

# ITU-R BT.601 luma weights, the usual colour-to-grey conversion (PIL's "L").
LUMA_601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class ImageDecodeError(ValueError):
    """The bytes are not an image we can read; the message is the rejection reason."""


# The most pixels one record may decode to. Encoders look at a few hundred
# pixels a side; a small file that claims more (a decompression bomb) would
# take gigabytes per batch, so it is a counted rejection, never a decode.
MAX_IMAGE_PIXELS = 8192 * 8192


def decode_image(data: bytes) -> np.ndarray:
    """Decode PNG/JPEG/... bytes to uint8 HxW (grey) or HxWx3 (colour)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageDecodeError("empty image bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageDecodeError(f"image too large: {width}x{height} pixels is above {MAX_IMAGE_PIXELS} "
                                       "(decompression bomb?)")
            img.load()
            return pil_to_array(img)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:  # PIL's own limit, hit inside open()
        raise ImageDecodeError("image too large: decompression bomb") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("unreadable image: not a recognised image format") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"unreadable image: {type(exc).__name__}: {exc}".splitlines()[0]) from exc


def pil_to_array(img) -> np.ndarray:
    """PIL image of any mode -> uint8 HxW or HxWx3 (alpha dropped, 16-bit scaled)."""
    if img.mode in ("L", "RGB"):
        return np.asarray(img, dtype=np.uint8)
    if img.mode == "1":
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
    if img.mode == "LA":
        return np.asarray(img.convert("L"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def as_uint8_image(image: np.ndarray) -> np.ndarray:
    """Validate one in-memory image: uint8, HxW, HxWx1, HxWx3 or HxWx4."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8 arrays, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or min(arr.shape[:2]) < 1:
        raise ValueError(f"images must be HxW or HxWx3, got shape {arr.shape}")
    return arr


def to_grey_float(image: np.ndarray) -> np.ndarray:
    """uint8 image -> float32 HxW in [0, 1]; colour by BT.601 luma."""
    arr = as_uint8_image(image).astype(np.float32) / 255.0
    if arr.ndim == 3:
        arr = arr @ LUMA_601
    return arr


def to_rgb_float(image: np.ndarray) -> np.ndarray:
    """uint8 image -> float32 3xHxW in [0, 1]; grey replicated to three channels."""
    arr = as_uint8_image(image).astype(np.float32) / 255.0
    if arr.ndim == 2:
        return np.broadcast_to(arr, (3,) + arr.shape).copy()
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def resize_stack(planes: Sequence[np.ndarray], size: int, antialias: bool) -> "torch.Tensor":
    """Resize C x H x W float arrays (any H, W) to one N x C x size x size tensor.

    Bilinear, align_corners=False. Images of equal shape are resized together,
    so a batch from one dataset costs one interpolate call.
    """
    import torch
    import torch.nn.functional as F

    out = torch.empty((len(planes), planes[0].shape[0], size, size), dtype=torch.float32)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(planes):
        groups.setdefault(p.shape, []).append(i)
    for shape, idx in groups.items():
        x = torch.from_numpy(np.stack([planes[i] for i in idx]))
        if shape[1:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=antialias)
        out[idx] = x
    return out
