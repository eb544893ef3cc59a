"""The row-norm model: released histograms of row norms, and the one norm synthetic rows get.

With clip_mode "normalize" the mixture is fitted to directions (rows on the
R-sphere), but an encoder's rows have norms of their own that may differ by
class (BENCHMARKS.md, "Row norms"). Synthetic rows of norm R then sit at
another scale than the real rows a downstream model is applied to, and a
model that standardises its inputs by the synthetic rows' spread misreads
every real row. So the class pass also releases, per class, a histogram of
log2 row norms on a fixed public grid, and each synthetic direction is scaled
by the median norm of all classes' histograms pooled.

Private side: `norm_bins` (a row's bin; used in the aggregation only).
Released side: `fit_norm_model` and `NormModel`, post-processing of the noisy
histograms alone. One record adds 1 to one bin of one class: L2 sensitivity 1.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

# The public grid: log2 norms from LOG2_LOW in NUM_BINS bins of LOG2_WIDTH (2^-16 to 2^16,
# half an octave, a factor sqrt(2) in norm, per bin). Norms outside are counted in the edge bins.
LOG2_LOW = -16.0
LOG2_WIDTH = 0.5
NUM_BINS = 64
# A bin is kept when its noisy count clears this many noise sigmas: an empty bin then passes
# with probability 1.3e-3, and the kept mass of such spurious bins is small next to a class.
KEEP_SIGMAS = 3.0


def norm_bins(norms: np.ndarray) -> np.ndarray:
    """PRIVATE: each row's bin on the public log2 grid ([n] int16; zero norms go to bin 0)."""
    norms = np.asarray(norms, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logs = np.log2(np.where(norms > 0, norms, 0.0))
    index = np.floor((logs - LOG2_LOW) / LOG2_WIDTH)
    return np.clip(np.nan_to_num(index, nan=0.0, neginf=0.0, posinf=NUM_BINS - 1), 0, NUM_BINS - 1
                   ).astype(np.int16)


def histogram(keys: np.ndarray, bins: np.ndarray, num_keys: int) -> np.ndarray:
    """PRIVATE: exact counts per (key, bin), [num_keys, NUM_BINS] float64."""
    flat = np.asarray(keys, dtype=np.int64) * NUM_BINS + np.asarray(bins, dtype=np.int64)
    return np.bincount(flat, minlength=num_keys * NUM_BINS).astype(np.float64).reshape(num_keys, NUM_BINS)


@dataclasses.dataclass(frozen=True)
class NormModel:
    """Released: one norm for every synthetic row, the median of the pooled norm histogram.

    bins and weights are the pooled histogram's kept bins (weights sum to 1);
    norm is their median, taken in log2 with rows uniform within a bin.
    """

    norm: float
    bins: np.ndarray  # [b] int
    weights: np.ndarray  # [b] float64
    sigma: float  # the noise on each class's released bin counts

    def to_json(self) -> dict[str, Any]:
        return {"model": "median of the pooled log2 histogram", "norm": self.norm, "log2_low": LOG2_LOW,
                "log2_width": LOG2_WIDTH, "num_bins": NUM_BINS, "keep_sigmas": KEEP_SIGMAS, "sigma": self.sigma,
                "bins": self.bins.tolist(), "weights": self.weights.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NormModel":
        return cls(float(data["norm"]), np.asarray(data["bins"], dtype=np.int64),
                   np.asarray(data["weights"], dtype=np.float64), float(data["sigma"]))


def median_norm(bins: np.ndarray, weights: np.ndarray) -> float:
    """The median of a histogram on the log2 grid, rows spread uniformly within each bin."""
    cumulative = np.cumsum(weights)
    i = int(np.searchsorted(cumulative, 0.5))
    before = cumulative[i - 1] if i else 0.0
    within = (0.5 - before) / weights[i]
    return float(np.exp2(LOG2_LOW + (bins[i] + within) * LOG2_WIDTH))


def fit_norm_model(released: dict[int, np.ndarray], num_classes: int, sigma: float) -> Optional[NormModel]:
    """The pooled histogram's bins above KEEP_SIGMAS of its noise, and their median.

    One norm for all rows rather than a draw per row or per class: a norm
    drawn independently of the direction spreads synthetic rows along their
    class's mean direction, and a per-class norm is a cue the real rows only
    weakly share (the alternatives' results: BENCHMARKS.md, "Row norms").
    The median rather than the mean, since a spurious bin far out moves the
    mean. None when no bin clears the noise: rows keep norm R.
    Post-processing of released values only.
    """
    hists = [np.asarray(released[c], dtype=np.float64).reshape(NUM_BINS) for c in range(num_classes)
             if c in released]
    if not hists:
        return None
    pooled = np.sum(hists, axis=0)
    keep = np.flatnonzero(pooled > KEEP_SIGMAS * sigma * np.sqrt(len(hists)))
    if not len(keep):
        return None
    weights = pooled[keep] / pooled[keep].sum()
    return NormModel(median_norm(keep, weights), keep, weights, float(sigma))
