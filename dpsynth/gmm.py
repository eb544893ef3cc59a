"""The released Gaussian mixture: fitted from noisy final-pass stats, then sampled.

Everything here is post-processing of released aggregates, so it may run
anywhere (driver or worker) and be shown to anyone.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Iterator, Optional

import numpy as np
import scipy.linalg

from dpsynth.geometry import into_ball, onto_sphere
from dpsynth.norms import NormModel
from dpsynth.private_stats import packed_size, unpack_symmetric
from dpsynth.subspace import PublicSubspace
from dpsynth.released import ReleasedStats, corrected_sq_norm, min_rows_to_keep, noisy_means, require_released

# Variances are floored at this fraction of R^2 / d (a "small positive value").
VARIANCE_FLOOR = 1e-4
# A diagonal variance is floored at this fraction of its component's mean variance,
# so that a coordinate whose noisy second moment came out tiny cannot collapse.
DIAGONAL_FLOOR_FRACTION = 0.05
# A full covariance's eigenvalues are floored at this fraction of their mean.
SHAPE_FLOOR_FRACTION = 0.05
# Rows per sampling shard: bounds a worker's memory whatever num_samples is.
SAMPLE_CHUNK_ROWS = 65536
# Scatter matrices (lowrank's pooled one, full's per class) clip centred rows at this many RMS class
# spreads (a centred row beyond it is rare, and a larger scale adds noise in proportion to its square).
SCATTER_CLIP_SPREADS = 1.5
# At most this many directions; one is kept only when its eigenvalue clears the noise's
# spectral edge by this factor.
MAX_LOW_RANK = 64
LOW_RANK_EDGE_MARGIN = 1.1


@dataclasses.dataclass
class ClassMixture:
    """One class's released mixture; no components when it could not be fitted."""

    label: Any
    noisy_count: float
    weights: np.ndarray  # [K]
    means: np.ndarray  # [K, d]
    variances: np.ndarray  # [K] spherical or [K, d] diagonal
    note: str = ""
    # Full covariance only: component j's covariance is variances[j] * shape.
    # shape [d, d] is symmetric positive definite with trace d (mean eigenvalue 1);
    # shrinkage is how far it was pulled towards the pooled within-class shape of all
    # fitted classes (1: the pooled shape).
    shape: Optional[np.ndarray] = None
    shrinkage: Optional[float] = None
    scatter_scale: Optional[float] = None  # the public scale its released scatter's rows were divided by

    @property
    def num_components(self) -> int:
        return len(self.weights)

    def to_json(self) -> dict[str, Any]:
        out = {"label": _json_label(self.label), "noisy_count": self.noisy_count,
               "num_components": self.num_components, "note": self.note,
               "weights": self.weights.tolist(), "means": self.means.tolist(),
               "variances": self.variances.tolist()}
        if self.shape is not None:
            out.update(shrinkage=self.shrinkage, scatter_scale=self.scatter_scale, shape=self.shape.tolist())
        return out

    @functools.cached_property
    def shape_factor(self) -> Optional[np.ndarray]:
        """L with L L^T = shape (from its eigendecomposition; shape is positive definite).

        Cached: sampling asks for it once per chunk, and at d = 1024 the
        decomposition costs far more than a chunk's draws.
        """
        if self.shape is None:
            return None
        eigenvalues, vectors = np.linalg.eigh(self.shape)
        return vectors * np.sqrt(np.maximum(eigenvalues, 0.0))


@dataclasses.dataclass(frozen=True)
class LowRank:
    """The directions shared by every component of a "lowrank" mixture, from the pooled scatter.

    Component j of class c has covariance V^T diag(variances) V + diag(its
    residual variances): the residuals are what the released per-coordinate
    variances leave after the shared directions.
    """

    vectors: np.ndarray  # [q, d], orthonormal rows
    variances: np.ndarray  # [q], each direction's variance, debiased for the noise
    scale: float  # the public scale the rows were clipped at
    noise_edge: float  # the noise's spectral edge in covariance units: a direction must clear it

    def to_json(self) -> dict[str, Any]:
        return {"rank": len(self.variances), "variances": self.variances.tolist(),
                "vectors": self.vectors.tolist(), "scale": self.scale, "noise_edge": self.noise_edge}

    @classmethod
    def from_json(cls, data: dict[str, Any], dimension: int) -> "LowRank":
        q = int(data["rank"])
        return cls(np.asarray(data["vectors"], dtype=np.float64).reshape(q, dimension),
                   np.asarray(data["variances"], dtype=np.float64).reshape(q), float(data["scale"]),
                   float(data["noise_edge"]))

    @property
    def diagonal(self) -> np.ndarray:
        """Each coordinate's variance along the shared directions, [d]."""
        return self.variances @ self.vectors**2


@dataclasses.dataclass
class ReleasedMixture:
    """Per-class mixtures plus the public facts needed to sample from them."""

    classes: list[ClassMixture]
    dimension: int
    radius: float
    clip_mode: str
    covariance: str
    private: bool
    norms: Optional[NormModel] = None  # None: every row keeps norm R (clip mode, row_norms "radius", all noise)
    low_rank: Optional[LowRank] = None  # covariance "lowrank" only
    # Fitted in a public subspace's k + 1 coordinates (`dimension`); rows are drawn in its input's d.
    subspace: Optional[PublicSubspace] = None

    @property
    def embedding_dimension(self) -> int:
        """The length of a synthetic row: the encoder's d, also when the fit used a public subspace."""
        return self.dimension if self.subspace is None else self.subspace.input_dimension

    def to_json(self) -> dict[str, Any]:
        return {"private": self.private,
                "warning": None if self.private else
                "NOT PRIVATE: made with a test-only switch (fixed noise seed or noise disabled)",
                "dimension": self.dimension, "radius": self.radius, "clip_mode": self.clip_mode,
                "covariance": self.covariance, "classes": [c.to_json() for c in self.classes],
                "row_norms": None if self.norms is None else self.norms.to_json(),
                "low_rank": None if self.low_rank is None else self.low_rank.to_json(),
                "subspace": None if self.subspace is None else self.subspace.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ReleasedMixture":
        d = int(data["dimension"])
        classes = []
        for c in data["classes"]:
            k = int(c["num_components"])
            shape = c.get("shape")
            classes.append(ClassMixture(c["label"], float(c["noisy_count"]),
                                        np.asarray(c["weights"], dtype=np.float64).reshape(k),
                                        np.asarray(c["means"], dtype=np.float64).reshape(k, d),
                                        np.asarray(c["variances"], dtype=np.float64).reshape(
                                            variances_shape(data["covariance"], k, d)),
                                        c.get("note", ""),
                                        None if shape is None else np.asarray(shape, dtype=np.float64).reshape(d, d),
                                        c.get("shrinkage"), c.get("scatter_scale")))
        row_norms, low_rank, subspace = data.get("row_norms"), data.get("low_rank"), data.get("subspace")
        return cls(classes, d, float(data["radius"]), data["clip_mode"], data["covariance"],
                   bool(data["private"]), None if row_norms is None else NormModel.from_json(row_norms),
                   None if low_rank is None else LowRank.from_json(low_rank, d),
                   None if subspace is None else PublicSubspace.from_json(subspace))

    # -- sampling --------------------------------------------------------------

    def samples_per_class(self, num_samples: Optional[int], class_balance: str) -> list[int]:
        """Rows per class; classes without components get none (largest-remainder rounding)."""
        fitted = np.array([c.num_components > 0 for c in self.classes])
        counts = np.array([max(c.noisy_count, 0.0) for c in self.classes]) * fitted
        if num_samples is None:
            num_samples = int(round(counts.sum()))
        if not fitted.any() or num_samples == 0:
            return [0] * len(self.classes)
        shares = counts if class_balance == "proportional" and counts.sum() > 0 else fitted.astype(float)
        exact = num_samples * shares / shares.sum()
        out = np.floor(exact).astype(int)
        remainder = num_samples - out.sum()
        out[np.argsort(-(exact - out), kind="stable")[:remainder]] += 1
        return out.tolist()

    def sample_class(self, class_index: int, num_rows: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
        """num_rows draws from one class: (embeddings float32 [n, embedding_dimension], component int32 [n])."""
        mixture = self.classes[class_index]
        weights = mixture.weights / mixture.weights.sum()
        component = rng.choice(mixture.num_components, size=num_rows, p=weights)
        std = np.sqrt(mixture.variances[component])
        if std.ndim == 1:
            std = std[:, None]
        noise = rng.standard_normal((num_rows, self.dimension))
        factor = mixture.shape_factor
        if factor is not None:
            noise = noise @ factor.T
        X = mixture.means[component] + std * noise
        if self.low_rank is not None:
            shared = rng.standard_normal((num_rows, len(self.low_rank.variances)))
            X += (shared * np.sqrt(self.low_rank.variances)) @ self.low_rank.vectors
        if self.clip_mode == "normalize":  # any draw off the origin has a direction, however short
            X = onto_sphere(X, self.radius, floor=1e-300)
            if self.norms is not None:  # the direction at the released typical norm
                X *= self.norms.norm / self.radius
        else:
            X = into_ball(X, self.radius)
        if self.subspace is not None:  # back to the encoder's d coordinates, norms kept
            X = self.subspace.lift(X, rng)
        return X.astype(np.float32), component.astype(np.int32)

    def sample(self, num_samples: Optional[int] = None, class_balance: str = "proportional",
               noise_seed: Optional[int] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw rows afresh: (embeddings float32 [m, d], labels [m], component int32 [m]).

        Post-processing of the release: any number of draws, any class
        balance, no privacy cost. noise_seed is TEST ONLY (repeatable draws).
        """
        rows = self.samples_per_class(num_samples, class_balance)
        parts = [(class_index, *self.sample_class(class_index, n, sampling_rng(noise_seed, class_index, chunk)))
                 for class_index, chunk, n in sampling_chunks(rows)]
        X = np.concatenate([np.zeros((0, self.embedding_dimension), np.float32)] + [p[1] for p in parts])
        component = np.concatenate([np.zeros(0, np.int32)] + [p[2] for p in parts])
        values = np.asarray([c.label for c in self.classes])
        labels = np.repeat(values[[p[0] for p in parts]] if parts else values[:0], [len(p[1]) for p in parts])
        return X, labels, component


def sampling_chunks(rows_per_class: list[int]) -> Iterator[tuple[int, int, int]]:
    """(class_index, chunk_index, rows) work items of at most SAMPLE_CHUNK_ROWS rows."""
    for class_index, total in enumerate(rows_per_class):
        for chunk_index, start in enumerate(range(0, total, SAMPLE_CHUNK_ROWS)):
            yield class_index, chunk_index, min(SAMPLE_CHUNK_ROWS, total - start)


def sampling_rng(noise_seed: Optional[int], class_index: int, chunk_index: int) -> np.random.Generator:
    """Sampling is post-processing: any generator is private; a seed makes tests repeatable."""
    if noise_seed is None:
        return np.random.default_rng()
    return np.random.default_rng([noise_seed, class_index, chunk_index, 7])


@dataclasses.dataclass(frozen=True)
class ClassScatterRelease:
    """The final pass's release of one class's centred, scaled scatter (full covariance only).

    The packed sum of u u^T, u = (row - its nearest released centre) / scale
    clipped into the unit ball (algorithm._round_spec, private_stats.centred_scatter).
    """

    packed_scatter: np.ndarray  # [d (d + 1) / 2], packed as by private_stats.pack_outer
    noisy_count: float  # the class pass's
    sigma: float  # noise on each packed coordinate
    scale: float  # public: the rows were divided by it


@dataclasses.dataclass(frozen=True)
class ClassRelease:
    """Everything released about one class that its mixture is fitted from.

    count_sigma and sum_sigma are the noise on `stats`: a class kept whole by
    every pass combines several releases and has less (see
    algorithm.combine_whole_class). noisy_count is the class pass's, None
    when it released none; note says why the class could not be fitted.
    """

    label: Any
    stats: Optional[ReleasedStats]  # the final pass's; None when it released nothing for the class
    count_sigma: float
    sum_sigma: float
    noisy_count: Optional[float] = None
    note: str = ""
    class_scatter: Optional[ClassScatterRelease] = None

    def surviving(self) -> Optional[ReleasedStats]:
        """The components whose noisy count clears the keep threshold; None when none does."""
        if self.stats is None:
            return None
        alive = self.stats.count >= min_rows_to_keep(self.count_sigma)
        if not alive.any():
            return None
        second = self.stats.second
        return ReleasedStats(self.stats.count[alive], self.stats.total[alive], None if second is None else second[alive])


@dataclasses.dataclass(frozen=True)
class FitContext:
    """The public facts every covariance model is fitted with."""

    dimension: int
    radius: float
    clip_mode: str
    low_rank: Optional[LowRank] = None  # "lowrank": the shared directions, fitted first

    @property
    def variance_floor(self) -> float:
        return VARIANCE_FLOOR * self.radius**2 / self.dimension


@dataclasses.dataclass(frozen=True)
class Components:
    """One class's surviving components: their released stats and the noisy means taken from them."""

    release: ClassRelease
    stats: ReleasedStats
    means: np.ndarray  # [K, d]

    def mixture(self, covariances: Covariances) -> ClassMixture:
        n = self.stats.count
        noisy_count = float(n.sum()) if self.release.noisy_count is None else self.release.noisy_count
        scatter = self.release.class_scatter
        return ClassMixture(self.release.label, noisy_count, n / n.sum(), self.means, covariances.variances,
                            self.release.note, covariances.shape, covariances.shrinkage,
                            None if scatter is None or covariances.shape is None else scatter.scale)


@dataclasses.dataclass(frozen=True)
class Covariances:
    """One class's fitted covariances: variances [K] or [K, d], and for a full covariance its shape."""

    variances: np.ndarray
    shape: Optional[np.ndarray] = None
    shrinkage: Optional[float] = None


def mean_squared_norms(stats: ReleasedStats, radius: float) -> np.ndarray:
    """E||x||^2 per component: R^2 on the sphere (no second moment released), else the released one."""
    n = stats.count
    if stats.second is None:
        return np.full(len(n), radius**2)
    if stats.second.ndim == 1:
        return np.clip(stats.second / n, 0.0, radius**2)
    return np.clip(stats.second.sum(axis=1) / n, 0.0, radius**2)


def spherical_variances(components: Components, context: FitContext) -> np.ndarray:
    """Per component E||x - mu||^2 / d = (E||x||^2 - ||mu||^2) / d, floored."""
    mean_sq_norm = mean_squared_norms(components.stats, context.radius)
    sq_mean_norm = corrected_sq_norm(components.stats, components.release.sum_sigma)
    return np.maximum((mean_sq_norm - np.minimum(sq_mean_norm, mean_sq_norm)) / context.dimension,
                      context.variance_floor)


def fit_spherical(classes: list[Components], context: FitContext) -> list[Covariances]:
    """One variance per component."""
    return [Covariances(spherical_variances(c, context)) for c in classes]


def fit_lowrank(classes: list[Components], context: FitContext) -> list[Covariances]:
    """The diagonal fit, less each coordinate's variance along the shared directions (context.low_rank).

    So every component keeps its released per-coordinate variances in
    total, and the shared directions add the correlations the diagonal
    model lacks. Residuals are floored as the diagonal fit floors its variances.
    """
    shared = 0.0 if context.low_rank is None else context.low_rank.diagonal
    return [Covariances(per_coordinate_variances(c, context, shared)) for c in classes]


def fit_diagonal(classes: list[Components], context: FitContext) -> list[Covariances]:
    """One variance per component and coordinate, from the released per-coordinate second moments."""
    return [Covariances(per_coordinate_variances(c, context)) for c in classes]


def per_coordinate_variances(components: Components, context: FitContext, shared: Any = 0.0) -> np.ndarray:
    """[K, d] variances from the released per-coordinate second moments, less `shared` ([d] or 0), floored.

    Each noisy mean's own noise (sigma^2 / n^2 per coordinate) is added back
    to its variance, and each variance is floored at a fraction of its
    component's spherical variance.
    """
    n = components.stats.count
    raw_mean = components.stats.total / n[:, None]
    per_coord = (components.stats.second / n[:, None] - raw_mean**2
                 + components.release.sum_sigma**2 / n[:, None] ** 2)
    spherical = spherical_variances(components, context)
    return np.maximum(per_coord - shared, DIAGONAL_FLOOR_FRACTION * spherical[:, None])


def fit_full(classes: list[Components], context: FitContext) -> list[Covariances]:
    """Each component's own scale times its class's shape, shrunk towards the pooled shape of all classes.

    The pooled shape needs every class's within covariance first; a class
    without a released matrix keeps spherical components.
    """
    withins = [class_within(c, context) for c in classes]
    pooled_shape = pooled_within_shape([w for w in withins if w is not None])
    out = []
    for c, within in zip(classes, withins):
        if within is None:
            out.append(Covariances(spherical_variances(c, context)))
            continue
        shape, shrinkage = shrink_covariance(within.covariance, within.noise_fro2, pooled_shape)
        out.append(Covariances(spherical_variances(c, context), shape, shrinkage))
    return out


CovarianceFit = Callable[[list[Components], FitContext], list[Covariances]]
# One fit per covariance model (the plan's resolved name); each returns one Covariances per class given.
COVARIANCE_FITS: dict[str, CovarianceFit] = {"spherical": fit_spherical, "diagonal": fit_diagonal,
                                             "lowrank": fit_lowrank, "full": fit_full}


def variances_shape(covariance: str, num_components: int, dimension: int) -> tuple[int, ...]:
    return (num_components, dimension) if covariance in ("diagonal", "lowrank") else (num_components,)


@dataclasses.dataclass(frozen=True)
class PooledScatterRelease:
    """The final pass's release of the pooled within-component scatter (covariance "lowrank")."""

    packed: np.ndarray  # [d (d + 1) / 2]: sum of u u^T, u = (row - its centre) / scale in the unit ball
    scale: float
    sigma: float  # noise on each packed coordinate


def scatter_scale(summaries: dict[int, Any], radius: float) -> float:
    """The public scale the pooled scatter clips centred rows at, from the class pass's release.

    SCATTER_CLIP_SPREADS times the count-weighted RMS of the released class
    spreads (a class's RMS distance to its mean bounds its rows' distance to
    their nearest centre), within [0.05 R, R] (_clip_scale).
    """
    fitted = [s for s in summaries.values() if s.num_clusters > 0 and s.noisy_count > 0]
    if not fitted:
        return radius
    weights = np.array([s.noisy_count for s in fitted])
    spread = math.sqrt(float(np.sum(weights * np.array([s.spread for s in fitted]) ** 2) / weights.sum()))
    return _clip_scale(SCATTER_CLIP_SPREADS * spread, radius)


def class_scatter_scale(summary: Any, radius: float) -> float:
    """One class's scatter scale: SCATTER_CLIP_SPREADS times its released spread, within [0.05 R, R]."""
    if summary.num_clusters == 0:
        return radius
    return _clip_scale(SCATTER_CLIP_SPREADS * summary.spread, radius)


def _clip_scale(scale: float, radius: float) -> float:
    """Within [0.05 R, R]: above R the noise (in proportion to scale^2) would exceed an uncentred matrix's."""
    return float(min(radius, max(0.05 * radius, scale)))


def fit_low_rank(scatter: PooledScatterRelease, noisy_rows: float, dimension: int) -> LowRank:
    """The shared directions: the pooled scatter's top eigenvectors that clear its noise.

    The released matrix is W + E with E symmetric Gaussian (off-diagonal
    variance sigma^2 / 2 in packed units), whose spectrum ends at 2 nu with
    nu^2 = d sigma^2 / 2 (in covariance units, times (scale^2 / n)^2). A
    direction of variance theta > nu shows as an eigenvalue
    l = theta + nu^2 / theta, with its eigenvector's squared overlap with the
    true one 1 - nu^2 / theta^2 (the spiked Wigner model). Only eigenvalues
    above LOW_RANK_EDGE_MARGIN times the edge are kept, each at theta times
    its overlap: the variance the noisy direction really carries. Pure
    post-processing of released values (noisy_rows: the final pass's
    released counts, summed).
    """
    unit = scatter.scale**2 / max(noisy_rows, 1.0)
    matrix = unpack_symmetric(scatter.packed, dimension) * unit
    nu = math.sqrt(dimension / 2.0) * scatter.sigma * unit
    top = min(MAX_LOW_RANK, dimension)
    eigenvalues, vectors = scipy.linalg.eigh(matrix, subset_by_index=[dimension - top, dimension - 1])
    eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]
    keep = eigenvalues > LOW_RANK_EDGE_MARGIN * 2.0 * nu
    ell = eigenvalues[keep]
    theta = (ell + np.sqrt(np.maximum(ell**2 - 4.0 * nu**2, 0.0))) / 2.0
    overlap = 1.0 - nu**2 / np.maximum(theta, 1e-300) ** 2 if nu > 0 else np.ones_like(theta)
    return LowRank(np.ascontiguousarray(vectors[:, keep].T), theta * np.clip(overlap, 0.0, 1.0), scatter.scale,
                   2.0 * nu)


def fit_releases(releases: list[ClassRelease], *, dimension: int, radius: float, clip_mode: str,
                 covariance: str, private: bool, scatter: Optional[PooledScatterRelease] = None
                 ) -> ReleasedMixture:
    """Weights from noisy counts, means from noisy sums, covariances by the model's fit (COVARIANCE_FITS).

    A class none of whose components clears the noise gets no components.
    "lowrank" fits its shared directions from the pooled scatter first.
    """
    require_released({i: r.stats for i, r in enumerate(releases) if r.stats is not None}, "fit_releases")
    low_rank = None
    if covariance == "lowrank" and scatter is not None:
        noisy_rows = sum(float(np.sum(r.stats.count)) for r in releases if r.stats is not None)
        low_rank = fit_low_rank(scatter, noisy_rows, dimension)
    context = FitContext(dimension, radius, clip_mode, low_rank)
    fitted = {index: Components(release, stats, noisy_means(stats, radius))
              for index, release in enumerate(releases) if (stats := release.surviving()) is not None}
    covariances = dict(zip(fitted, COVARIANCE_FITS[covariance](list(fitted.values()), context)))
    classes = [fitted[index].mixture(covariances[index]) if index in fitted
               else unfitted_class(release, dimension, covariance) for index, release in enumerate(releases)]
    return ReleasedMixture(classes, dimension, radius, clip_mode, covariance, private, low_rank=low_rank)


def unfitted_class(release: ClassRelease, dimension: int, covariance: str) -> ClassMixture:
    noisy_count = 0.0 if release.noisy_count is None else release.noisy_count
    return ClassMixture(release.label, noisy_count, np.zeros(0), np.zeros((0, dimension)),
                        np.zeros(variances_shape(covariance, 0, dimension)),
                        release.note or "no component survived the noise")


@dataclasses.dataclass(frozen=True)
class ClassWithin:
    """One class's within-component covariance, derived once from its released scatter."""

    covariance: np.ndarray  # [d, d]
    noise_fro2: float  # E||noise||_F^2 of covariance
    weight: float  # the class's noisy count
    poolable: bool  # its noisy count clears the keep threshold


def class_within(components: Components, context: FitContext) -> Optional[ClassWithin]:
    """A fitted class's within covariance from its released scatter (post-processing); None without one.

    The rows were centred on their components' centres before they were
    summed, so the scatter is the within-component covariance itself, in
    units of scale^2; its noise is sigma scale^2 / n per packed coordinate.
    Clipping at SCATTER_CLIP_SPREADS spreads shortens the rare far rows,
    which changes the level more than the shape, and only the shape is used.
    """
    scatter = components.release.class_scatter
    if scatter is None:
        return None
    n = max(scatter.noisy_count, 1.0)
    unit = scatter.scale**2 / n
    covariance = unpack_symmetric(scatter.packed_scatter, context.dimension) * unit
    noise_fro2 = packed_size(context.dimension) * (scatter.sigma * unit) ** 2
    return ClassWithin(covariance, noise_fro2, scatter.noisy_count,
                       scatter.noisy_count >= min_rows_to_keep(components.release.count_sigma))


def pooled_within_shape(withins: list[ClassWithin]) -> Optional[np.ndarray]:
    """The shape (trace d) of the count-weighted mean of every fitted class's within covariance.

    It is the shrinkage target of each class's own shape: classes embedded by
    one encoder share most of their covariance structure, and the pooled
    matrix averages C classes' independent noise, so a class whose own
    matrix is swamped falls back on the shared shape (the linear
    discriminant's model) rather than on a sphere. The pooled matrix is
    itself shrunk towards the identity by its own (smaller) noise. Pure
    post-processing of released values; None when no class can be pooled.
    """
    parts = [w for w in withins if w.poolable]
    if not parts:
        return None
    weight_sum = sum(w.weight for w in parts)
    total = sum((w.weight / weight_sum) * w.covariance for w in parts)
    noise_fro2 = sum((w.weight / weight_sum) ** 2 * w.noise_fro2 for w in parts)
    shape, _ = shrink_covariance(total, noise_fro2)
    return shape


def shrink_covariance(noisy: np.ndarray, noise_fro2: float, target_shape: Optional[np.ndarray] = None
                      ) -> tuple[np.ndarray, float]:
    """Shape (trace d) of a noisy covariance, shrunk towards a target shape by its known noise.

    The target is tr(C)/d times target_shape (trace d; the identity when
    None). With C = C0 + E and E's expected squared Frobenius norm known from
    the plan, the mix (1 - a) C + a T closest to C0 has
    a = E||E||^2 / E||C - T||^2, estimated by plugging in the noisy C (the
    shrinkage of Ledoit and Wolf, with the noise known instead of estimated).
    Much noise gives a = 1, the target; none gives the sample covariance.
    Eigenvalues are then floored so the shape stays positive definite.
    Returns (shape, a).
    """
    dimension = len(noisy)
    level = np.trace(noisy) / dimension
    if not np.isfinite(level) or level <= 0:
        return (np.eye(dimension) if target_shape is None else target_shape.copy()), 1.0
    target = level * (np.eye(dimension) if target_shape is None else target_shape)
    deviation = float(np.sum((noisy - target) ** 2))
    shrinkage = 1.0 if deviation <= noise_fro2 else noise_fro2 / deviation
    mixed = (1.0 - shrinkage) * noisy + shrinkage * target
    eigenvalues, vectors = np.linalg.eigh(mixed)
    eigenvalues = np.maximum(eigenvalues, SHAPE_FLOOR_FRACTION * level)
    shape = (vectors * eigenvalues) @ vectors.T
    return shape * dimension / np.trace(shape), float(shrinkage)


def _json_label(label: Any) -> Any:
    if isinstance(label, np.generic):
        return label.item()
    return label
