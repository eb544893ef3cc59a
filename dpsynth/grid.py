"""Bounded rows on a power-of-two grid, so that every aggregate is an exact float64 sum.

Why. The sensitivities in the ledger (1 for a count, R for a sum, R^2 for a
second moment) are proven for exact sums. Float sums of arbitrary rows are
not exact: their rounding depends on the order of the additions, which
depends on the runner's bundling, and a row's rounded contribution is not
bounded by R in general. Here every bounded row is snapped to multiples of a
power of two g (the *row grid*), keeping ||x|| <= R exactly. Then

- a coordinate sum is a multiple of g, and a product x_i x_j a multiple of
  g^2, with |x_i x_j| <= R^2;
- over at most N rows every partial sum of products is a multiple of g^2 of
  magnitude at most N R^2; when N R^2 <= 2^53 g^2 it is an exact float64
  value, so *every* summation order (numpy's pairwise sums, BLAS blocking and
  FMA, Beam's combiner tree) gives the same, exact result.

N is a public bound on the number of rows (`SynthesisConfig.max_rows`,
`--max-rows`, default 2^31), never the private n: the grid is fixed before
any row is read. g = 2^(floor(log2 R) - bits) with bits = (51 - ceil(log2 N)) // 2
(R / g < 2^(bits + 1)), capped at 22 so a grid value fits a float32 exactly.

Rounding keeps the bound: each row is rounded to the nearest grid point; a
row that would then exceed R is shrunk by about the rounding's expected
inflation and rounded again, and in the rare case that still exceeds R it is
rounded toward zero and grown back coordinate by coordinate (largest
remainder first). The test ||x||^2 <= R^2 is exact, in integer units of g.
So the ledger's sensitivities hold for the computed aggregates with no
correction. A normalised row loses a little of its norm, never more than
3 g: the largest margin shrinks sum m^2 by d/12 + 8 sqrt(B/3) out of
B = (R/g)^2 >= 2^20 (docs/trust.md, which gives the measured loss).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

# Public default bound on the number of rows of one run (--max-rows).
DEFAULT_MAX_ROWS = 2**31
MAX_ROWS_LIMIT = 2**45
# A grid value m * g with |m| <= 2^(bits + 1) must be an exact float32.
MAX_GRID_BITS = 22
# Safety margins (in spreads of the rounding's inflation of sum m^2) tried in turn.
SHRINK_MARGINS = (-1.0, 0.0, 1.0, 2.0, 4.0, 8.0)
# Radii whose grid is a normal float32 (and whose squares stay finite).
MIN_RADIUS, MAX_RADIUS = 2.0**-64, 2.0**64


def grid_bits(max_rows: int) -> int:
    """Bits of the row grid below R's binade, from the public row bound."""
    if not (isinstance(max_rows, (int, np.integer)) and 1 <= max_rows <= MAX_ROWS_LIMIT):
        raise ValueError(f"max_rows must be an integer in [1, 2^45], got {max_rows!r}")
    log_rows = max(0, math.ceil(math.log2(max_rows)))
    return min(MAX_GRID_BITS, (51 - log_rows) // 2)


def row_grid(radius: float, max_rows: int = DEFAULT_MAX_ROWS) -> float:
    """The power-of-two grid g of bounded rows (see module docstring)."""
    return 2.0 ** (math.floor(math.log2(radius)) - grid_bits(max_rows))


def _budget(radius: float, grid: float) -> float:
    """floor((R / g)^2), exactly: the largest sum of m_i^2 a grid row may have."""
    return float(math.floor(Fraction(radius / grid) ** 2))


def snap_rows(X: np.ndarray, radius: float, grid: float) -> np.ndarray:
    """Rows of norm about <= R (float64) -> grid rows of norm <= R exactly, float32.

    Deterministic per row (no dependence on the batch), and -0.0 becomes +0.0
    so that sums agree in every bit whatever the order.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.size == 0:
        return np.zeros(X.shape, np.float32)
    budget = _budget(radius, grid)
    units = X / grid  # exact: power-of-two scaling of values far from the float range's ends
    m = np.rint(units)
    sq = np.einsum("ij,ij->i", m, m)  # integers below 2^53: exact, whatever the summation order
    over = sq > budget
    # Nearest rounding adds about d/12 to sum m^2 on average, with a spread of sqrt(budget/3):
    # shrink an over-long row by just enough and round again; rare leftovers take the exact
    # greedy path. Every step is a function of the row alone (and of exact integer sums).
    for margin in SHRINK_MARGINS:
        if not over.any():
            break
        rows = np.flatnonzero(over)
        target = max(budget - X.shape[1] / 12.0 - margin * math.sqrt(budget / 3.0), 0.0)
        factor = np.minimum(1.0, np.sqrt(target / sq[rows]))
        candidate = np.rint(units[rows] * factor[:, None])
        fits = np.einsum("ij,ij->i", candidate, candidate) <= budget
        m[rows[fits]] = candidate[fits]
        over[rows[fits]] = False
    if over.any():
        m[over] = _largest_within(units[over], budget)
    return (m * grid).astype(np.float32) + np.float32(0.0)


def _largest_within(units: np.ndarray, budget: float) -> np.ndarray:
    """Round toward zero, then round up by largest remainder while sum m^2 <= budget."""
    magnitude = np.abs(units)
    base = np.floor(magnitude)
    # A row longer than R by a float rounding: shorten its largest coordinates.
    for _ in range(8):
        excess = np.einsum("ij,ij->i", base, base) > budget
        if not excess.any():
            break
        rows = np.flatnonzero(excess)
        cols = np.argmax(base[rows], axis=1)
        base[rows, cols] -= 1.0
    else:
        excess = np.einsum("ij,ij->i", base, base) > budget
        base[excess] = 0.0
    remainder = magnitude - base
    order = np.argsort(-remainder, axis=1, kind="stable")
    step = np.take_along_axis(2.0 * base + 1.0, order, axis=1) * (np.take_along_axis(remainder, order, axis=1) > 0)
    room = budget - np.einsum("ij,ij->i", base, base)
    # Grow a prefix of the remainder order: each step is exact (integers < 2^53).
    take = np.cumsum(step, axis=1) <= room[:, None]
    grow = np.zeros_like(base)
    np.put_along_axis(grow, order, take & (step > 0), axis=1)
    return np.copysign(base + grow, units)


def is_on_grid(X: np.ndarray, radius: float, grid: float) -> bool:
    """Whether rows are grid multiples of squared norm <= R^2 (checked exactly)."""
    units = np.asarray(X, dtype=np.float64) / grid
    return bool(np.all(units == np.rint(units)) and np.all(np.einsum("ij,ij->i", units, units)
                                                            <= _budget(radius, grid)))


def snap_public(V: np.ndarray, bits: int = 20) -> np.ndarray:
    """Public vectors (centres, directions) on a grid 2^-bits below their largest entry, float64.

    A grid row's dot product with such a vector is then a sum of exact products
    whose partial sums fit 53 bits (d up to 2^16), so partition keys are the
    same for a row in every batch and on every runner.
    """
    V = np.asarray(V, dtype=np.float64)
    top = float(np.max(np.abs(V))) if V.size else 0.0
    if top == 0.0 or not math.isfinite(top):
        return V + 0.0
    step = 2.0 ** (math.ceil(math.log2(top)) - bits)
    return np.rint(V / step) * step + 0.0
