"""The released side of the privacy boundary: post-processing of noisy aggregates only.

Nothing here reads a private row. Every aggregate is a ReleasedStats, which
only the release step (algorithm.release_class_stats) makes from exact
sums, and the entry points refuse anything else (require_released); the
other inputs are the release plan and public constants. So whatever is
computed here, however data-dependent it looks, is post-processing and costs
no privacy: a privacy review reads private_stats.py, noise.py,
calibration.py and the release step, not this module. It is deterministic,
so that Beam and the local reference agree: the class summaries and the k
rule, the seeding partitioners, and the centres of the seeding pass and the
Lloyd rounds.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

import numpy as np

from dpsynth.geometry import into_ball
from dpsynth.private_stats import NearestCentre, Partitioner, SimHash, WholeClass, simhash_directions

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
# clear a higher bar: a sixteenth of the spread (BENCHMARKS.md, "Third round").
FULL_COVARIANCE_MEAN_SIGNAL_TO_NOISE = 16.0
# Kept clusters must have a noisy count above this many count-noise sigmas.
COUNT_SIGMAS_TO_KEEP = 3.0
# Seeding hashes each class into about this many buckets per cluster.
BUCKETS_PER_CLUSTER = 4
MAX_HASH_BITS = 12
# Lloyd iterations of the non-private k-means on the released coreset.
CORESET_ITERATIONS = 25


@dataclasses.dataclass(frozen=True)
class ReleasedStats:
    """Per-key aggregates of one class as released: noisy, on the release grid, public.

    Only the release step (algorithm.release_class_stats) makes one from
    exact private_stats.Stats; the others are derived from released ones (a
    subset of keys, several passes combined). A type of its own rather than
    Stats reused, so that exact sums handed to post-processing are refused
    (require_released) instead of silently published.

    count: [K]; total: [K, d]; second: None, [K], [K, d] or [K, d (d + 1) / 2]
    (packed as by private_stats.pack_outer); norms: None or [K, norms.NUM_BINS].
    """

    count: np.ndarray
    total: np.ndarray
    second: Optional[np.ndarray] = None
    norms: Optional[np.ndarray] = None


def require_released(stats: Mapping[int, Any], where: str) -> None:
    """TypeError unless every value is ReleasedStats: exact stats must go through the release step first."""
    for class_id, value in stats.items():
        if not isinstance(value, ReleasedStats):
            raise TypeError(f"{where} takes released stats only, but class {class_id} holds "
                            f"{type(value).__name__}: exact aggregates must pass through the release step "
                            "(algorithm.release_pass) first")


def noisy_means(stats: ReleasedStats, radius: float) -> np.ndarray:
    """Released sum / released count, in the R-ball (counts below 1 count as 1)."""
    return into_ball(stats.total / np.maximum(stats.count, 1.0)[:, None], radius)


def corrected_sq_norm(stats: ReleasedStats, sum_sigma: float) -> np.ndarray:
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


def class_summaries(released: dict[int, ReleasedStats], num_classes: int, radius: float, clip_mode: str,
                    class_sum_sigma: float, final_sum_sigma: float, final_count_sigma: float,
                    max_clusters: Optional[int], signal_to_noise: float = MEAN_SIGNAL_TO_NOISE
                    ) -> dict[int, ClassSummary]:
    require_released(released, "class_summaries")
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


def seed_centres(released: dict[int, ReleasedStats], summaries: dict[int, ClassSummary], radius: float,
                 seed_count_sigma: float) -> dict[int, np.ndarray]:
    """Initial centres per class from the released SimHash buckets."""
    require_released(released, "seed_centres")
    out = {}
    keep = min_rows_to_keep(seed_count_sigma)
    for class_id, stats in released.items():
        summary = summaries[class_id]
        means = noisy_means(stats, radius)
        alive = stats.count >= keep
        if not alive.any():
            out[class_id] = summary.mean[None, :]
            continue
        out[class_id] = into_ball(
            weighted_kmeans(means[alive], stats.count[alive], summary.num_clusters, seed=class_id), radius)
    return out


def update_centres(released: dict[int, ReleasedStats], radius: float, count_sigma: float
                   ) -> dict[int, np.ndarray]:
    """A Lloyd step on released stats; clusters too small to trust are dropped."""
    require_released(released, "update_centres")
    out = {}
    keep = min_rows_to_keep(count_sigma)
    for class_id, stats in released.items():
        alive = stats.count >= keep
        if alive.any():
            out[class_id] = noisy_means(stats, radius)[alive]
    return out
