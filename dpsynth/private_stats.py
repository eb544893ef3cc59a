"""The private side of the privacy boundary: everything here may read private rows.

Bounding (`safe_norms`, `bound_rows`), the partitioners' `keys` (which key of
its class a row feeds) and the exact aggregation (`key_stats`,
`partial_stats`) produce `Stats`: exact sums, which workers may combine but
nothing may publish. The only way out is the release step
(algorithm.release_class_stats), which adds the noise that calibration.py
planned, with noise.py's mechanism, and returns a released.ReleasedStats;
everything after it (dpsynth.released, dpsynth.gmm, algorithm.advance)
accepts only that type and refuses Stats. So a privacy review needs to read
only this module (how much one record can move an aggregate: the
sensitivities, with the row helpers it calls, dpsynth.grid's snapping and
dpsynth.norms' binning), noise.py, calibration.py and the release step;
whatever runs after the release is post-processing and cannot weaken it.

The partitioners are built from released values (released.seed_partitioners,
Lloyd's released centres) but assign private rows, so they live here: a row's
key must depend on that row and on public or released values alone. The
packed format of symmetric matrices lives here too, because the matrix
release's sensitivity rests on it (pack_outer).
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Optional, Protocol

import numpy as np
from scipy import sparse

from dpsynth.norms import NUM_BINS as NORM_BINS, histogram as norm_histogram
from dpsynth.geometry import into_ball
from dpsynth.grid import row_grid, snap_public, snap_rows

if TYPE_CHECKING:  # passes describes what this module aggregates
    from dpsynth.passes import ScatterRelease

# Seed of the public (data-independent) SimHash directions.
SIMHASH_SEED = 20250616

# None, "scalar" (sum ||x||^2) or "diagonal" (sum x*x); the scatter matrices are centred_scatter's
SecondMoment = Optional[str]


@dataclasses.dataclass
class Stats:
    """Exact per-key aggregates of one class: private, released only through the release step.

    count: [K]; total: [K, d] (sum of rows); second: None, [K] (sum of squared
    norms), [K, d] (sum of squares per coordinate) or [K, d (d + 1) / 2] (sum
    of outer products: the upper triangle of upper_gram, unscaled; the release
    step packs it as by pack_outer). float64 throughout; for grid rows
    (dpsynth.grid) every entry is an exact float64 sum. Mutable, so that the
    combiner can add partial sums in place.
    """

    count: np.ndarray
    total: np.ndarray
    second: Optional[np.ndarray] = None
    norms: Optional[np.ndarray] = None  # [K, norms.NUM_BINS] counts of log2 row norms (class pass only)

    @classmethod
    def zeros(cls, num_keys: int, dimension: int, second_moment: SecondMoment, with_norms: bool = False
              ) -> "Stats":
        second = None
        if second_moment == "scalar":
            second = np.zeros(num_keys)
        elif second_moment == "diagonal":
            second = np.zeros((num_keys, dimension))
        hist = np.zeros((num_keys, NORM_BINS)) if with_norms else None
        return cls(np.zeros(num_keys), np.zeros((num_keys, dimension)), second, hist)

    def copy(self) -> "Stats":
        return Stats(self.count.copy(), self.total.copy(), None if self.second is None else self.second.copy(),
                     None if self.norms is None else self.norms.copy())

    def add(self, other: "Stats") -> "Stats":
        """In-place sum (the combiner's merge); returns self."""
        self.count += other.count
        self.total += other.total
        if self.second is not None:
            self.second += other.second
        if self.norms is not None:
            self.norms += other.norms
        return self


# --- Bounding -----------------------------------------------------------------

def safe_norms(X: np.ndarray) -> np.ndarray:
    """Row L2 norms that neither overflow (huge entries) nor underflow (denormal rows).

    A norm beyond the float range comes back as inf, never as NaN.
    """
    scale, inner = _scaled_norms(np.asarray(X, dtype=np.float64))
    with np.errstate(over="ignore"):
        return scale * inner


def _scaled_norms(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max |x_i|, ||x / max |x_i|||) per row: both finite for every finite row."""
    scale = np.max(np.abs(X), axis=1) if X.shape[1] else np.zeros(len(X))
    safe = np.where(scale > 0, scale, 1.0)
    return scale, np.linalg.norm(X / safe[:, None], axis=1)


def bound_rows(X: np.ndarray, radius: float, clip_mode: str, grid: Optional[float] = None
               ) -> tuple[np.ndarray, np.ndarray, int]:
    """Bound every finite row to norm <= radius, on the row grid (dpsynth.grid).

    Returns (bounded rows as float32, mask of rows that could be bounded,
    number of rows that were clipped). With "normalize" a zero row has no
    direction and is rejected (mask False); with "clip" every finite row is
    kept. The direction is taken from the row divided by its largest entry,
    so a row of denormals (norm below 1e-308) or of entries near the float
    maximum is bounded like any other, never to NaN or inf.
    """
    X = np.asarray(X, dtype=np.float64)
    scale, inner = _scaled_norms(X)
    ok = scale > 0
    safe_scale = np.where(ok, scale, 1.0)
    direction = X / safe_scale[:, None] / np.where(ok, inner, 1.0)[:, None]  # unit rows (zero rows stay 0)
    # scale > R already implies ||x|| > R: no product that could overflow.
    over = (scale > radius) | (np.minimum(scale, radius) * inner > radius)
    if clip_mode == "normalize":
        bounded = direction * radius
        clipped = int(np.count_nonzero(over & ok))
    else:
        ok = np.ones(len(X), dtype=bool)
        bounded = np.where(over[:, None], direction * radius, X)
        clipped = int(np.count_nonzero(over))
    grid = row_grid(radius) if grid is None else grid
    return snap_rows(bounded, radius, grid), ok, clipped


# --- Partitioners: which key of its class a row feeds ------------------------------

class Partitioner(Protocol):
    num_keys: int

    def keys(self, X: np.ndarray) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class WholeClass:
    """One key per class: the class pass."""

    num_keys: int = 1

    def keys(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(len(X), dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class SimHash:
    """Sign pattern of public random directions, through the class's released mean.

    Hyperplanes through the class mean (rather than the origin) cut the class
    itself: encoder embeddings of one class usually sit in a narrow cone that
    hyperplanes through the origin would rarely split.
    """

    centre: np.ndarray  # [d], released class mean
    directions: np.ndarray  # [bits, d], public

    @property
    def num_keys(self) -> int:
        return 1 << len(self.directions)

    def keys(self, X: np.ndarray) -> np.ndarray:
        # x . v > c . v with v on a public grid: exact for grid rows (dpsynth.grid.snap_public), so a
        # row's key does not depend on its batch or runner.
        directions = snap_public(self.directions)
        bits = (np.asarray(X, dtype=np.float64) @ directions.T) > (self.centre.astype(np.float64) @ directions.T)
        return bits.astype(np.int64) @ (1 << np.arange(len(self.directions), dtype=np.int64))


@dataclasses.dataclass(frozen=True)
class NearestCentre:
    """Lloyd assignment: the nearest released centre of the row's own class."""

    centres: np.ndarray  # [K, d]

    @property
    def num_keys(self) -> int:
        return len(self.centres)

    def keys(self, X: np.ndarray) -> np.ndarray:
        # Centres on a public grid: x . c is exact for grid rows, so ties and near-ties break the
        # same way in every batch and on every runner.
        centres = snap_public(self.centres)
        distances = np.sum(centres**2, axis=1)[None, :] - 2.0 * (np.asarray(X, dtype=np.float64) @ centres.T)
        return np.argmin(distances, axis=1)


def simhash_directions(dimension: int, bits: int) -> np.ndarray:
    """Public random directions; a fixed seed keeps Beam and local identical."""
    rng = np.random.default_rng([SIMHASH_SEED, dimension])
    return rng.standard_normal((bits, dimension))


# --- Packed symmetric matrices ----------------------------------------------------

def packed_size(dimension: int) -> int:
    return dimension * (dimension + 1) // 2


def upper_gram(X: np.ndarray) -> np.ndarray:
    """sum_i x_i x_i^T as its upper triangle, unscaled: what key_stats aggregates.

    For grid rows (dpsynth.grid) every entry is an exact float64 sum, so
    partial results add up exactly in any order; the sqrt(2) scaling of
    pack_outer, which would leave the grid, is applied once to the combined
    total (scale_packed) just before the noise.
    """
    d = X.shape[1]
    gram = X.T @ X
    rows, cols = np.triu_indices(d)
    return gram[rows, cols]


def scale_packed(upper: np.ndarray, dimension: int) -> np.ndarray:
    """upper_gram's entries -> pack_outer's (off-diagonal entries times sqrt(2))."""
    rows, cols = np.triu_indices(dimension)
    return upper * np.where(rows == cols, 1.0, math.sqrt(2.0))


def pack_outer(X: np.ndarray) -> np.ndarray:
    """sum_i x_i x_i^T as its upper triangle, off-diagonal entries times sqrt(2).

    The scaling makes the packed vector's L2 norm equal the matrix's Frobenius
    norm, so one row's contribution ||x x^T||_F = ||x||^2 <= R^2 is an L2
    sensitivity like any other, and isotropic noise on the packed vector is
    the usual symmetric Gaussian noise on the matrix.
    """
    return scale_packed(upper_gram(X), X.shape[1])


def unpack_symmetric(packed: np.ndarray, dimension: int) -> np.ndarray:
    """Inverse of pack_outer: the [d, d] symmetric matrix."""
    rows, cols = np.triu_indices(dimension)
    values = packed / np.where(rows == cols, 1.0, math.sqrt(2.0))
    out = np.zeros((dimension, dimension))
    out[rows, cols] = values
    out[cols, rows] = values
    return out


# --- Private aggregation -------------------------------------------------------

def key_stats(keys: np.ndarray, X: np.ndarray, num_keys: int, second_moment: SecondMoment,
              norm_bins: Optional[np.ndarray] = None) -> Stats:
    """Exact per-key count, sum (and second moment, and histogram of row-norm bins) of one class's rows."""
    n = len(keys)
    X64 = X.astype(np.float64, copy=False)
    indicator = sparse.csr_matrix((np.ones(n), (keys, np.arange(n))), shape=(num_keys, n))
    stats = Stats(np.bincount(keys, minlength=num_keys).astype(np.float64), np.asarray(indicator @ X64))
    if second_moment == "scalar":
        stats.second = np.bincount(keys, weights=np.einsum("ij,ij->i", X64, X64), minlength=num_keys)
    elif second_moment == "diagonal":
        stats.second = np.asarray(indicator @ (X64 * X64))
    if norm_bins is not None:
        stats.norms = norm_histogram(keys, norm_bins, num_keys)
    return stats


def centred_scatter(class_ids: np.ndarray, X: np.ndarray, partitioners: dict[int, "NearestCentre"],
                    scatter: "ScatterRelease") -> np.ndarray:
    """PRIVATE: sums of u u^T over one batch (upper_gram, unscaled), [num_matrices, d (d + 1) / 2].

    u is a row minus its nearest released centre, divided by its class's
    public scale and clipped into the unit ball, then snapped to the grid:
    one record adds at most 1 to the packed matrices' Frobenius norm, and
    every partial sum is exact, so batches and runners add up to the same
    bits. Pooled, every class adds to the one matrix; per class, to its own
    row. Rows of classes without a partitioner add nothing.
    """
    X64 = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    out = np.zeros((scatter.num_matrices, packed_size(d)))
    for class_id, partitioner in partitioners.items():
        rows = X64[class_ids == class_id]
        if len(rows):
            centres = snap_public(partitioner.centres)
            # Grid rows minus public centres over a scale >= 0.05 R: moderate finite values, so
            # into_ball needs none of bound_rows' guards against extreme entries.
            units = snap_rows(into_ball((rows - centres[partitioner.keys(rows)]) / scatter.scale_of(class_id), 1.0),
                              1.0, scatter.row_grid)
            out[scatter.row_of(class_id)] += upper_gram(units.astype(np.float64))
    return out


def partial_stats(class_ids: np.ndarray, X: np.ndarray, partitioners: dict[int, Partitioner],
                  second_moment: SecondMoment = None, norm_bins: Optional[np.ndarray] = None) -> dict[int, Stats]:
    """Per-class stats of one batch; classes without a partitioner are not released.

    norm_bins: each row's bin of its norm before bounding (given in the class pass only).
    """
    out: dict[int, Stats] = {}
    order = np.argsort(class_ids, kind="stable")
    sorted_ids = class_ids[order]
    present, starts = np.unique(sorted_ids, return_index=True)
    bounds = list(starts) + [len(order)]
    for i, class_id in enumerate(present):
        partitioner = partitioners.get(int(class_id))
        if partitioner is None:
            continue
        index = order[bounds[i]:bounds[i + 1]]
        rows = X[index]
        out[int(class_id)] = key_stats(partitioner.keys(rows), rows, partitioner.num_keys, second_moment,
                                       None if norm_bins is None else norm_bins[index])
    return out
