"""Rows put onto the sphere or into the ball of radius R: public, per-row maps.

Both work on the last axis and keep the input's dtype, so float32 rows stay
float32 (callers that want float64 arithmetic convert first).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

# The norm below which a row is treated as having this norm: it keeps a zero
# row at zero instead of dividing by zero.
NORM_FLOOR = 1e-12


def onto_sphere(X: np.ndarray, radius: Optional[float] = None, *, floor: float = NORM_FLOOR) -> np.ndarray:
    """Every row scaled to norm `radius` (None: the unit sphere); rows shorter than floor stay short.

    The unit sphere divides each row by its norm (one rounding); a radius
    multiplies each row by radius / norm. The two differ in the last bit, so
    each caller keeps the form its bit-for-bit outputs depend on.
    """
    norms = np.maximum(np.linalg.norm(X, axis=-1, keepdims=True), floor)
    if radius is None:
        return X / norms
    return X * (radius / norms)


def into_ball(X: np.ndarray, radius: Optional[float] = None) -> np.ndarray:
    """Rows longer than `radius` (None: 1, dividing) scaled back to it; shorter rows unchanged.

    With a radius the factor is radius / max(norm, radius): exactly 1 for a
    row inside the ball, zero rows included, so no floor is needed. It equals
    min(1, radius / max(norm, f)) for every floor f <= radius.
    """
    norms = np.linalg.norm(X, axis=-1, keepdims=True)
    if radius is None:
        return X / np.maximum(norms, 1.0)
    return X * (radius / np.maximum(norms, radius))
