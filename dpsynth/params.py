"""Validated parameters of one synthesis run.

Every field here is public in the DP sense: it is fixed before any private
row is read, or derived only from released (noisy) values. Validation happens
once, when the dataclass is built, so that a bad value is a one-line error on
the driver rather than a failure deep inside a worker.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from dpsynth.errors import OptionError
from dpsynth.grid import DEFAULT_MAX_ROWS, MAX_ROWS_LIMIT
from dpsynth.subspace import PublicSubspace

CLIP_MODES = ("normalize", "clip")
COVARIANCES = ("auto", "spherical", "diagonal", "lowrank", "full")
# A full covariance releases d (d + 1) / 2 values per class and holds a d x d
# matrix per class on every worker; above this d it is refused, and "auto"
# falls back to lowrank.
MAX_FULL_COVARIANCE_DIMENSION = 1024
# "auto" also bounds the matrices held in all (classes x d (d + 1) / 2 values,
# 2^25 = 256 MB of float64): every worker sums them per bundle and the fit
# holds them all. With discovered labels the class count is unknown when the
# plan is made, so "auto" then keeps full covariances to d <= 128 (8,256
# values a class: 4,000 classes fit the bound).
MAX_AUTO_FULL_COVARIANCE_VALUES = 2**25
AUTO_FULL_DIMENSION_WITH_DISCOVERED_LABELS = 128
CLASS_BALANCES = ("proportional", "balanced")
ROW_NORMS = ("released", "radius")

# Above this epsilon the guarantee is weak enough that users deserve a warning.
LARGE_EPSILON = 10.0
# Public bounds on the parameters, so that no value makes calibration, bounding
# or sampling run away (time, memory, float range). Beyond MAX_EPSILON a DP
# guarantee means nothing and calibration time and memory grow without bound;
# below MIN_DELTA dp-accounting's Gaussian calibration fails; RADIUS_RANGE keeps
# R^2 and the noise scales normal float64 numbers; MAX_NUM_SAMPLES and
# MAX_DIMENSION bound what one run may write and hold per component.
MAX_EPSILON = 100.0
MIN_DELTA = 1e-12
RADIUS_RANGE = (2.0**-40, 2.0**40)
MAX_NUM_SAMPLES = 10**9
MAX_DIMENSION = 65536


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
    """What the user asked for; all of it public.

    epsilon, delta: the whole run's (epsilon, delta) target under add/remove
      adjacency (one record; one privacy unit when a unit column is given).
    labels: the public label set. None asks for DP label discovery, which
      spends part of the budget (see calibration.plan_releases).
    radius: R, the L2 bound on every embedding after the bound step.
    clip_mode: "normalize" puts every row on the sphere of radius R (the
      default: encoders' cosine geometry, and the variance of a cluster then
      follows from its released mean alone); "clip" scales rows into the R-ball.
    max_clusters: k per class. None derives k per class from the released
      class counts and the planned noise (released.choose_num_clusters).
    rounds: T, the number of DP Lloyd rounds after seeding; the last one's
      release is the fitted mixture.
    covariance: "spherical" (one variance per component), "diagonal"
      (one per coordinate; costs a release of per-coordinate second moments)
      or "full" (each class's components share the shape of one released
      d x d within-component covariance, shrunk towards the pooled within-class shape as far as
      its noise demands, each component keeping its own scale; costs one
      centred, clipped scatter matrix per class in the final pass, d <= 1024). "lowrank" is "diagonal"
      plus the top directions of one pooled within-component scatter matrix
      (rows centred on their released centre, clipped, released once for the
      whole run in the final pass; the directions kept are those above its
      noise). "auto" (the default) is "full" up to d = 1024 (while all
      classes' matrices stay within 2^25 values; up to d = 128 when labels
      are discovered), "lowrank" above while its one d x d matrix stays within
      2^25 values, and "diagonal" beyond (BENCHMARKS.md, "Third round" and
      "Low rank where a full covariance does not fit").
    row_norms: "released" (the default) also releases, in the class pass,
      a histogram of each class's row norms before bounding, and puts every
      synthetic row at the median norm of those histograms pooled, so that
      synthetic rows sit at the real rows' scale (dpsynth.norms); "radius"
      keeps every synthetic row at norm R. Only with clip_mode "normalize":
      clipped rows keep their norms.
    num_samples: synthetic rows in all; None is about as many as the noisy
      count of private rows.
    class_balance: split num_samples proportionally to the noisy class counts,
      or evenly over the classes that could be fitted.
    privacy_unit_column: when set, every privacy unit keeps one record
      (chosen at random) before any aggregation: user-level DP.
    allow_large_delta: accept delta >= 1/n (normally refused: such a delta
      permits releasing a record outright).
    max_rows: a PUBLIC upper bound on the number of rows (default 2^31). It
      fixes the grid that bounded rows are snapped to so that every
      aggregate is an exact, order-independent float64 sum (dpsynth.grid);
      never derived from the private n. More rows than this are not refused
      (that would be a decision on an exact fact), but their second-moment
      sums are then no longer guaranteed exact.
    subspace: a PublicSubspace fitted on public rows (`--public-rows`): the
      private rows are then bounded in d and modelled in its k + 1
      coordinates, and synthetic rows are lifted back to d (dpsynth.subspace).
      None (the default) models all d coordinates.
    noise_seed, disable_noise: TEST ONLY. Either makes the output not private
      and every output file says so.
    """

    epsilon: float
    delta: float
    labels: Optional[tuple[Any, ...]] = None
    radius: float = 1.0
    clip_mode: str = "normalize"
    max_clusters: Optional[int] = None
    rounds: int = 1
    covariance: str = "auto"
    num_samples: Optional[int] = None
    class_balance: str = "proportional"
    privacy_unit_column: Optional[str] = None
    allow_large_delta: bool = False
    noise_seed: Optional[int] = None
    disable_noise: bool = False
    max_rows: int = DEFAULT_MAX_ROWS
    row_norms: str = "released"
    subspace: Optional[PublicSubspace] = None

    def __post_init__(self) -> None:
        # Messages name the fields; a command line renders them as its flags (OptionError).
        _require(_finite(self.epsilon) and self.epsilon > 0,
                 "{options} must be a positive finite number, got {value!r}", "epsilon", value=self.epsilon)
        _require(self.epsilon <= MAX_EPSILON,
                 "{options} {value:g} is above {limit:g}, where a DP guarantee means nothing; "
                 "choose at most {limit:g}", "epsilon", value=self.epsilon, limit=MAX_EPSILON)
        _require(_finite(self.delta) and 0 < self.delta < 1,
                 "{options} must lie strictly between 0 and 1, got {value!r}", "delta", value=self.delta)
        _require(self.delta >= MIN_DELTA, "{options} {value:g} is below {limit:g}, the smallest delta "
                                          "dpsynth calibrates; choose a delta in [1e-12, 1)",
                 "delta", value=self.delta, limit=MIN_DELTA)
        _require(_finite(self.radius) and self.radius > 0,
                 "{options} must be a positive finite number, got {value!r}", "radius", value=self.radius)
        _require(RADIUS_RANGE[0] <= self.radius <= RADIUS_RANGE[1],
                 "{options} {value:g} is outside [2^-40, 2^40]; rescale the embeddings instead",
                 "radius", value=self.radius)
        _require(isinstance(self.max_rows, int) and not isinstance(self.max_rows, bool)
                 and 1 <= self.max_rows <= MAX_ROWS_LIMIT,
                 "{options} must be an integer in [1, 2^45], got {value!r}", "max_rows", value=self.max_rows)
        for field, choices in (("clip_mode", CLIP_MODES), ("covariance", COVARIANCES), ("row_norms", ROW_NORMS),
                               ("class_balance", CLASS_BALANCES)):
            _require(getattr(self, field) in choices, "{options} must be one of {choices}, got {value!r}",
                     field, choices=", ".join(choices), value=getattr(self, field))
        _require(isinstance(self.rounds, int) and 1 <= self.rounds <= 50,
                 "{options} must be an integer in [1, 50], got {value!r}", "rounds", value=self.rounds)
        _require(self.max_clusters is None or (isinstance(self.max_clusters, int) and 1 <= self.max_clusters <= 4096),
                 "{options} must be an integer in [1, 4096], got {value!r}", "max_clusters", value=self.max_clusters)
        _require(self.num_samples is None or (isinstance(self.num_samples, int) and self.num_samples >= 0),
                 "{options} must be a non-negative integer, got {value!r}", "num_samples", value=self.num_samples)
        _require(self.num_samples is None or self.num_samples <= MAX_NUM_SAMPLES,
                 "{options} {value} is above {limit:,}, the most one run writes; ask for fewer rows",
                 "num_samples", value=self.num_samples, limit=MAX_NUM_SAMPLES)
        _require(self.subspace is None or isinstance(self.subspace, PublicSubspace),
                 "{options} must be a PublicSubspace, got {value!r}", "public_rows", value=type(self.subspace))
        if self.labels is not None:
            _require(len(self.labels) > 0, "{options} must name at least one label", "labels")
            _require(len(set(self.labels)) == len(self.labels), "{options} contains a duplicate label", "labels")

    @property
    def is_private(self) -> bool:
        """False for the test-only switches: the output then carries no guarantee."""
        return self.noise_seed is None and not self.disable_noise

    def model_dimension(self, dimension: int) -> int:
        """The coordinates the mixture is fitted in, for d-dimensional input rows (public facts only)."""
        if self.subspace is None:
            return dimension
        from dpsynth.subspace import check_dimension

        check_dimension(self.subspace, dimension)
        return self.subspace.model_dimension

    def for_dimension(self, dimension: int) -> "SynthesisConfig":
        """This config with "auto" resolved for embeddings of this (public) dimension.

        Full when the dimension and the matrices' total size allow it (see
        MAX_AUTO_FULL_COVARIANCE_VALUES), else lowrank while its one pooled
        matrix fits the same bound, else diagonal: one variance per
        coordinate and component costs one more d-vector release, and encoders'
        coordinates differ in scale by orders of magnitude, which a spherical
        model misstates and a downstream model that standardises its inputs
        then misreads (BENCHMARKS.md, "Default path"); the pooled matrix adds
        the within-component directions strong enough to clear its noise.
        Only public facts decide: d and the public label set's size.
        """
        if self.covariance != "auto":
            return self
        packed = dimension * (dimension + 1) // 2
        if self.labels is None:
            full = dimension <= AUTO_FULL_DIMENSION_WITH_DISCOVERED_LABELS
        else:
            full = (dimension <= MAX_FULL_COVARIANCE_DIMENSION
                    and len(self.labels) * packed <= MAX_AUTO_FULL_COVARIANCE_VALUES)
        if full:
            return self.replace(covariance="full")
        return self.replace(covariance="lowrank" if packed <= MAX_AUTO_FULL_COVARIANCE_VALUES else "diagonal")

    def replace(self, **changes: Any) -> "SynthesisConfig":
        return dataclasses.replace(self, **changes)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_label_list(text: str, as_int: bool) -> tuple[Any, ...]:
    """Parse a comma-separated public label list, typed like the label column."""
    return typed_labels([item.strip() for item in text.split(",") if item.strip()], as_int, "labels", text)


def typed_labels(items: list[str], as_int: bool, setting: str = "labels", text: str = "") -> tuple[Any, ...]:
    """Labels typed like the label column; an integer label must fit the column's int64.

    setting names where the labels came from in errors (an OptionError: a
    command line renders it as its flag).
    """
    if not as_int:
        return tuple(items)
    try:
        labels = tuple(int(item) for item in items)
    except ValueError:
        raise OptionError("the label column holds integers but {options} has a non-integer in {sample!r}",
                          [setting], sample=(text or ", ".join(items))[:200]) from None
    for label in labels:
        if not INT64_MIN <= label <= INT64_MAX:
            raise OptionError("{options}: label {label} does not fit a 64-bit integer label column", [setting],
                              label=str(label)[:40])
    return labels


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require(condition: bool, template: str, field: str, **values: Any) -> None:
    if not condition:
        raise OptionError(template, [field], **values)

