"""A public subspace: the synthesis works on k + 1 coordinates of a row instead of its d.

Why. The noise on a released mean grows with sqrt(d) and on a second-moment
matrix with d, while what a classifier needs of an encoder's output often
lies in far fewer directions. A user who has PUBLIC rows from the same
encoder (`--public-rows`) can spend them, at no privacy cost, on finding
those directions; the private rows then only pay for k + 1 coordinates.

The map. B holds the top k principal directions of the bounded public rows
(uncentred, so the first one carries the mean), as rows [k, d] on a public
grid (grid.snap_public). A bounded private row x becomes

    y = (B x, |x - B^T B x|)          (k + 1 coordinates)

so |y| = |x|: rows on the R-sphere stay on the R-sphere, the ledger's
sensitivities hold unchanged, and every model and fit works on y as it would
on x. B x of a grid row is an exact float64 sum (grid.snap_public), so the
same row maps to the same y in every batch and on every runner.

The way back. A synthetic y = (z, r) becomes x = B^T z + r u with u a
uniform unit vector orthogonal to B's rows: probabilistic PCA's isotropic
residual, its size released per component (the last coordinate of y is
modelled like any other). |x| = |y| again, so synthetic rows keep the norm
the release gave them, in the encoder's own d coordinates.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Optional

import numpy as np

from dpsynth.errors import UserError
from dpsynth.grid import snap_public

# Directions kept by default: the full covariance of k + 1 coordinates then
# costs (k + 1)(k + 2) / 2 values per class (BENCHMARKS.md, "Public rows, and centred class matrices").
DEFAULT_PUBLIC_DIM = 64
# At least this many public rows per kept direction, else fewer directions are kept.
MIN_PUBLIC_ROWS_PER_DIRECTION = 2
# Above this many rows and coordinates both, the directions come from ARPACK, not a Gram matrix.
GRAM_LIMIT = 8192


@dataclasses.dataclass(frozen=True, eq=False)
class PublicSubspace:
    """The public directions and where they came from; compared and hashed by content."""

    basis: np.ndarray  # [k, d] float64, orthonormal rows on a public grid
    source: str        # where the public rows came from (e.g. the --public-rows path)
    num_public_rows: int

    @property
    def input_dimension(self) -> int:
        return int(self.basis.shape[1])

    @property
    def num_directions(self) -> int:
        return int(self.basis.shape[0])

    @property
    def model_dimension(self) -> int:
        """k directions and one residual coordinate."""
        return self.num_directions + 1

    @property
    def digest(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.basis, dtype=np.float64).tobytes()).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicSubspace) and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    # -- the map and its inverse ---------------------------------------------

    def encode(self, X: np.ndarray) -> np.ndarray:
        """Bounded rows [n, d] -> [n, k + 1] float64 of the same norms (before the row grid)."""
        X = np.asarray(X, dtype=np.float64)
        Z = X @ self.basis.T
        residual_sq = np.einsum("ij,ij->i", X, X) - np.einsum("ij,ij->i", Z, Z)
        return np.concatenate([Z, np.sqrt(np.maximum(residual_sq, 0.0))[:, None]], axis=1)

    def lift(self, Y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Synthetic rows [m, k + 1] -> [m, d] float64 of the same norms, the residual in a random direction."""
        Y = np.asarray(Y, dtype=np.float64)
        Z, r = Y[:, :-1], Y[:, -1]
        g = rng.standard_normal((len(Y), self.input_dimension))
        g -= (g @ self.basis.T) @ self.basis
        u = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)
        return Z @ self.basis + np.abs(r)[:, None] * u

    # -- gmm.json ------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "num_public_rows": self.num_public_rows,
                "input_dimension": self.input_dimension, "num_directions": self.num_directions,
                "residual": "isotropic: the last model coordinate is |x - B^T B x|, drawn in a uniform "
                            "direction orthogonal to the basis",
                "sha256": self.digest, "basis": self.basis.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PublicSubspace":
        basis = np.asarray(data["basis"], dtype=np.float64).reshape(int(data["num_directions"]),
                                                                    int(data["input_dimension"]))
        return cls(basis, str(data["source"]), int(data["num_public_rows"]))

    def describe(self) -> str:
        return (f"{self.num_directions} public directions (+1 residual) of {self.input_dimension}-d rows, "
                f"from {self.num_public_rows} public rows ({self.source})")


def fit_public_subspace(public_rows: np.ndarray, num_directions: Optional[int], *, radius: float,
                        clip_mode: str, source: str) -> PublicSubspace:
    """The top directions of the public rows, bounded as private rows are (no privacy cost: public data).

    num_directions None is DEFAULT_PUBLIC_DIM; fewer are kept when there are
    not MIN_PUBLIC_ROWS_PER_DIRECTION public rows per direction, and always
    fewer than d, so a residual direction is left. All of it is public.
    """
    from dpsynth.private_stats import bound_rows  # the bound the private rows get

    X = np.asarray(public_rows, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 2:
        raise UserError(f"public rows must be a 2-d array of at least 2 columns, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise UserError("public rows hold non-finite values")
    requested = DEFAULT_PUBLIC_DIM if num_directions is None else num_directions
    if requested < 1:
        raise UserError(f"the number of public directions must be positive, got {requested}")
    bounded, ok, _ = bound_rows(X, radius, clip_mode)
    bounded = bounded[ok].astype(np.float64)
    k = min(requested, X.shape[1] - 1, len(bounded) // MIN_PUBLIC_ROWS_PER_DIRECTION)
    if k < 1:
        raise UserError(f"{len(bounded)} usable public rows are too few to fit a subspace "
                        f"(at least {MIN_PUBLIC_ROWS_PER_DIRECTION} are needed per direction)")
    basis = _top_directions(bounded, k)
    # Orthonormal again after the public grid (exact products, see module docstring).
    basis = snap_public(_orthonormal_rows(basis))
    return PublicSubspace(basis, source, int(len(bounded)))


def _top_directions(X: np.ndarray, k: int) -> np.ndarray:
    """The top-k right singular vectors of X (uncentred) as rows [k, d], signs fixed: deterministic.

    The smaller Gram matrix (d x d, or n x n for fewer rows than
    coordinates) while it fits GRAM_LIMIT, else ARPACK from a fixed start.
    """
    import scipy.linalg

    n, d = X.shape
    if min(n, d) > GRAM_LIMIT:
        from scipy.sparse.linalg import svds

        _, values, rows = svds(X, k=k, random_state=0)
        rows = rows[np.argsort(-values)]
    elif d <= n:
        _, vectors = scipy.linalg.eigh(X.T @ X, subset_by_index=[d - k, d - 1])
        rows = vectors[:, ::-1].T
    else:
        values, vectors = scipy.linalg.eigh(X @ X.T, subset_by_index=[n - k, n - 1])
        rows = (X.T @ vectors[:, ::-1] / np.sqrt(np.maximum(values[::-1], 1e-300))).T
    signs = np.sign(rows[np.arange(k), np.argmax(np.abs(rows), axis=1)])
    return rows * np.where(signs == 0, 1.0, signs)[:, None]


def _orthonormal_rows(V: np.ndarray) -> np.ndarray:
    q, r = np.linalg.qr(V.T)
    return (q * np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))).T


def check_dimension(subspace: PublicSubspace, dimension: int) -> None:
    """The public rows' width must be the private input's (both public facts)."""
    if subspace.input_dimension != dimension:
        raise UserError(f"the public rows are {subspace.input_dimension}-d but the input is {dimension}-d: "
                        "they must come from the same encoder")

