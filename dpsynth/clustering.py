"""The math of DP clustering, shared by the Beam transforms and the local reference.

Two kinds of function live here, and the split is the privacy boundary:
- functions of private rows (`bound_rows`, `partial_stats`, the partitioners'
  `keys`) produce *aggregates* that are released only through noise;
- functions of released aggregates (`class_summaries`, `seed_centres`,
  `update_centres`, `choose_num_clusters`) are post-processing and may do
  anything, deterministically, so that Beam and the local reference agree.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Protocol

import numpy as np
from scipy import sparse

from dpsynth.norms import NUM_BINS as NORM_BINS, histogram as norm_histogram
from dpsynth.grid import row_grid, snap_public, snap_rows

# A cluster needs at least this many (noisy) rows to be kept at all.
MIN_CLUSTER_ROWS = 10
# Default cap on components per class when k comes from released counts.
DEFAULT_MAX_CLUSTERS = 10
# k from counts: each cluster should hold enough rows that the noise on its
# mean is at most 1/MEAN_SIGNAL_TO_NOISE of the class's spread. Components of
# one class sit about half a spread apart, and a split must beat a single
# component that pools every pass's release (algorithm.combine_whole_class),
# hence a quarter of the spread.
MEAN_SIGNAL_TO_NOISE = 4.0
# With a full covariance the single component already has the class's shape
# (its first two moments), so a split only pays for multimodality and must
# clear a higher bar: a sixteenth of the spread (chosen on the benchmarks'
# public rows among 4, 8 and 16; BENCHMARKS.md, third round).
FULL_COVARIANCE_MEAN_SIGNAL_TO_NOISE = 16.0
# Kept clusters must have a noisy count above this many count-noise sigmas.
COUNT_SIGMAS_TO_KEEP = 3.0
# Seeding hashes each class into about this many buckets per cluster.
BUCKETS_PER_CLUSTER = 4
MAX_HASH_BITS = 12
# Seed of the public (data-independent) SimHash directions.
SIMHASH_SEED = 20250616
# Lloyd iterations of the non-private k-means on the released coreset.
CORESET_ITERATIONS = 25

# None, "scalar" (sum ||x||^2), "diagonal" (sum x*x) or "matrix" (sum x x^T, packed: see pack_outer)
SecondMoment = Optional[str]


@dataclasses.dataclass
class Stats:
    """Per-key aggregates of one class: exact while private, noisy once released.

    count: [K]; total: [K, d] (sum of rows); second: None, [K] (sum of squared
    norms), [K, d] (sum of squares per coordinate) or [K, d (d + 1) / 2] (sum
    of outer products: while exact, the upper triangle of upper_gram; once
    released, packed as by pack_outer). float64 throughout; for grid rows
    (dpsynth.grid) every exact entry is an exact float64 sum.
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
        elif second_moment == "matrix":
            second = np.zeros((num_keys, packed_size(dimension)))
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
    elif second_moment == "matrix":
        # Unscaled upper triangle while private: release_class_stats scales the combined total.
        stats.second = np.stack([upper_gram(X64[keys == key]) for key in range(num_keys)])
    if norm_bins is not None:
        stats.norms = norm_histogram(keys, norm_bins, num_keys)
    return stats


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


# --- Post-processing of released aggregates -----------------------------------------

def project_to_ball(V: np.ndarray, radius: float) -> np.ndarray:
    norms = np.linalg.norm(V, axis=-1, keepdims=True)
    return V * np.minimum(1.0, radius / np.maximum(norms, 1e-300))


def noisy_means(stats: Stats, radius: float) -> np.ndarray:
    """Released sum / released count, in the R-ball (counts below 1 count as 1)."""
    return project_to_ball(stats.total / np.maximum(stats.count, 1.0)[:, None], radius)


def corrected_sq_norm(stats: Stats, sum_sigma: float) -> np.ndarray:
    """Unbiased ||mu||^2 from a released mean: E||S~/n||^2 = ||mu||^2 + d sigma^2 / n^2."""
    n = np.maximum(stats.count, 1.0)
    d = stats.total.shape[1]
    raw = np.sum((stats.total / n[:, None]) ** 2, axis=1)
    return np.maximum(raw - d * sum_sigma**2 / n**2, 0.0)


@dataclasses.dataclass(frozen=True)
class ClassSummary:
    """What the class pass released about one class, and the plan derived from it."""

    noisy_count: float
    mean: np.ndarray  # [d]
    spread: float  # RMS distance of a row to the class mean (estimate)
    num_clusters: int  # 0 = too few rows to fit anything


def min_rows_to_keep(count_sigma: float) -> float:
    return max(float(MIN_CLUSTER_ROWS), COUNT_SIGMAS_TO_KEEP * count_sigma)


def signal_to_noise_for(covariance: str) -> float:
    return FULL_COVARIANCE_MEAN_SIGNAL_TO_NOISE if covariance == "full" else MEAN_SIGNAL_TO_NOISE


def choose_num_clusters(noisy_count: float, spread: float, dimension: int, radius: float,
                        final_sum_sigma: float, final_count_sigma: float,
                        max_clusters: Optional[int], signal_to_noise: float = MEAN_SIGNAL_TO_NOISE) -> int:
    """k for one class, from its released count and the planned noise only.

    A fixed max_clusters is used as given. Otherwise each cluster must hold
    enough rows that the noise on its mean, sigma * sqrt(d) / n, is at most
    1 / signal_to_noise of the class spread, capped at DEFAULT_MAX_CLUSTERS.
    """
    keep = min_rows_to_keep(final_count_sigma)
    if noisy_count < keep:
        return 0
    if max_clusters is not None:
        return max(1, min(max_clusters, int(noisy_count // keep)))
    spread = max(spread, 0.05 * radius)
    rows_per_cluster = max(keep, signal_to_noise * final_sum_sigma * math.sqrt(dimension) / spread)
    return int(min(DEFAULT_MAX_CLUSTERS, max(1, noisy_count // rows_per_cluster)))


def class_summaries(released: dict[int, Stats], num_classes: int, radius: float, clip_mode: str,
                    class_sum_sigma: float, final_sum_sigma: float, final_count_sigma: float,
                    max_clusters: Optional[int], signal_to_noise: float = MEAN_SIGNAL_TO_NOISE
                    ) -> dict[int, ClassSummary]:
    out = {}
    for class_id in range(num_classes):
        stats = released[class_id]
        mean = noisy_means(stats, radius)[0]
        # On the sphere E||x - mu||^2 = R^2 - ||mu||^2; in the ball R^2 bounds it.
        spread = math.sqrt(max(radius**2 - float(corrected_sq_norm(stats, class_sum_sigma)[0]), 0.0))
        d = stats.total.shape[1]
        k = choose_num_clusters(float(stats.count[0]), spread, d, radius, final_sum_sigma,
                                final_count_sigma, max_clusters, signal_to_noise)
        out[class_id] = ClassSummary(float(stats.count[0]), mean, spread, k)
    return out


def hash_bits(summary: ClassSummary, seed_count_sigma: float) -> int:
    """Buckets for seeding: about BUCKETS_PER_CLUSTER per cluster, each big enough to survive noise."""
    if summary.num_clusters <= 1:
        return 0
    wanted = BUCKETS_PER_CLUSTER * summary.num_clusters
    affordable = summary.noisy_count / (2.0 * min_rows_to_keep(seed_count_sigma))
    buckets = max(summary.num_clusters, min(wanted, affordable))
    return int(min(MAX_HASH_BITS, max(1, math.ceil(math.log2(buckets)))))


def seed_partitioners(summaries: dict[int, ClassSummary], seed_count_sigma: float,
                      dimension: int) -> dict[int, Partitioner]:
    out: dict[int, Partitioner] = {}
    for class_id, summary in summaries.items():
        if summary.num_clusters == 0:
            continue
        bits = hash_bits(summary, seed_count_sigma)
        out[class_id] = (SimHash(summary.mean, simhash_directions(dimension, bits)) if bits
                         else WholeClass())
    return out


def weighted_kmeans(points: np.ndarray, weights: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Non-private weighted k-means++ and Lloyd on a released coreset."""
    k = min(k, len(points))
    rng = np.random.default_rng(seed)
    weights = np.maximum(weights, 0.0)
    probabilities = weights / weights.sum() if weights.sum() > 0 else np.full(len(points), 1 / len(points))
    centres = [points[rng.choice(len(points), p=probabilities)]]
    for _ in range(1, k):
        d2 = np.min(((points[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1) * weights
        if d2.sum() <= 0:
            break
        centres.append(points[rng.choice(len(points), p=d2 / d2.sum())])
    centres = np.asarray(centres)
    for _ in range(CORESET_ITERATIONS):
        assign = NearestCentre(centres).keys(points)
        mass = np.bincount(assign, weights=weights, minlength=len(centres))
        moved = np.zeros_like(centres)
        np.add.at(moved, assign, points * weights[:, None])
        alive = mass > 0
        centres = np.where(alive[:, None], moved / np.maximum(mass, 1e-300)[:, None], centres)
    return centres


def seed_centres(released: dict[int, Stats], summaries: dict[int, ClassSummary], radius: float,
                 seed_count_sigma: float) -> dict[int, np.ndarray]:
    """Initial centres per class from the released SimHash buckets."""
    out = {}
    keep = min_rows_to_keep(seed_count_sigma)
    for class_id, stats in released.items():
        summary = summaries[class_id]
        means = noisy_means(stats, radius)
        alive = stats.count >= keep
        if not alive.any():
            out[class_id] = summary.mean[None, :]
            continue
        out[class_id] = project_to_ball(
            weighted_kmeans(means[alive], stats.count[alive], summary.num_clusters, seed=class_id), radius)
    return out


def update_centres(released: dict[int, Stats], radius: float, count_sigma: float) -> dict[int, np.ndarray]:
    """A Lloyd step on released stats; clusters too small to trust are dropped."""
    out = {}
    keep = min_rows_to_keep(count_sigma)
    for class_id, stats in released.items():
        alive = stats.count >= keep
        if alive.any():
            out[class_id] = noisy_means(stats, radius)[alive]
    return out
