"""The last line of defence: a release never holds NaN or inf.

Bounding is safe for every finite row (private_stats.bound_rows) and every
release adds finite noise to finite sums, so a non-finite number in a fitted
mixture or a synthetic row is a bug. Publishing it would change the output's
*form* on one record (a NaN class is visible without any statistics), so the
run stops with one line instead of writing it.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class NonFiniteReleaseError(RuntimeError):
    """A fitted or sampled value is NaN or inf: an internal error, never published."""


def require_finite_mixture(mixture: Any) -> Any:
    """The released mixture, after checking every number it holds (gmm.ReleasedMixture)."""
    for cls in mixture.classes:
        values = [("noisy_count", np.asarray(cls.noisy_count, np.float64)), ("weights", cls.weights),
                  ("means", cls.means), ("variances", cls.variances)]
        if cls.shape is not None:
            values += [("shape", cls.shape), ("shrinkage", np.asarray(cls.shrinkage, np.float64))]
        for name, value in values:
            if not np.all(np.isfinite(value)):
                raise NonFiniteReleaseError(f"internal error: the fitted {name} of class {cls.label!r} is not "
                                            "finite; nothing was written")
    return mixture


def require_finite_rows(X: np.ndarray, label: Any) -> np.ndarray:
    if not np.all(np.isfinite(X)):
        raise NonFiniteReleaseError(f"internal error: a synthetic row of class {label!r} is not finite; "
                                    "nothing was written")
    return X
