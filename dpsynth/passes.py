"""The kinds of DP pass, and the one place their names come from.

A run with T rounds is the class pass, the seeding pass, T - 1 Lloyd rounds
and the final round. A pass's kind decides what it aggregates and what
algorithm.advance does with its release. Its name labels its noise streams,
its Beam steps and its progress lines, and the kind's value prefixes its
ledger mechanisms; the audits match every noise draw to a ledger mechanism
by these names (auditing.ledger_name), so all of them are derived here from
the kind rather than spelled out where they are used.

This module only describes passes: it reads no rows and releases nothing.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Optional

from dpsynth.private_stats import Partitioner, SecondMoment

if TYPE_CHECKING:  # calibration names its mechanisms from this module
    from dpsynth.calibration import PassNoise


class PassKind(enum.Enum):
    """What a pass partitions each class by; the value is its ledger prefix."""

    CLASS = "class"  # one key per class
    SEED = "seed"  # SimHash buckets through the released class mean
    LLOYD = "lloyd"  # nearest released centre, every round but the last
    FINAL = "final"  # nearest released centre; its release is the mixture


# The key of a pass's one release over all classes (the within-component scatter): no class has it.
POOLED_KEY = -1
# Passes 0 and 1 are the class and seeding passes; the rounds start here.
FIRST_ROUND_INDEX = 2


def pass_kinds(rounds: int) -> tuple[PassKind, ...]:
    """Every pass of a run with `rounds` rounds, in order."""
    return (PassKind.CLASS, PassKind.SEED) + (PassKind.LLOYD,) * (rounds - 1) + (PassKind.FINAL,)


def pass_name(kind: PassKind, index: int) -> str:
    """A pass's name: a Lloyd round is numbered (round1, round2, ...), the other kinds are unique."""
    if kind is PassKind.LLOYD:
        return f"round{index - FIRST_ROUND_INDEX + 1}"
    return kind.value


def pass_names(rounds: int) -> list[str]:
    return [pass_name(kind, index) for index, kind in enumerate(pass_kinds(rounds))]


def kind_of_name(name: str) -> Optional[PassKind]:
    """The kind of the pass with this name (a noise stream's first part); None for any other name."""
    if name.startswith("round"):
        return PassKind.LLOYD
    return {kind.value: kind for kind in PassKind if kind is not PassKind.LLOYD}.get(name)


def mechanism_name(kind: PassKind, field: str) -> str:
    """The ledger mechanism of one release of a pass: field is count, sum, second, norms or scatter.

    KeyError for a release no pass of that kind makes (no ledger entry
    accounts for it).
    """
    if field in ("count", "sum"):
        return f"{kind.value}_{field}"
    if field == "second" and kind is PassKind.FINAL:
        return "final_second_moment"
    if field == "norms" and kind is PassKind.CLASS:
        return "class_norm_histogram"
    if field == "scatter" and kind is PassKind.FINAL:
        return "final_within_scatter"
    raise KeyError(f"a {kind.value} pass releases no {field!r}")


@dataclasses.dataclass(frozen=True)
class SecondMomentRelease:
    """A pass's release of per-key second moments: which moment, and the plan's noise on it."""

    moment: str  # "scalar" or "diagonal" (private_stats.SecondMoment)
    sigma: float
    grid: float


@dataclasses.dataclass(frozen=True)
class ScatterRelease:
    """The final pass's release of within-component scatter ("lowrank": pooled; "full": one per class).

    Every row is centred on its nearest released centre, scaled by 1 / scale
    and clipped into the unit ball, so one record adds at most 1 to the
    packed matrices' L2 norm whatever the data (a record is in one class, so
    it changes one class's matrix): the scales are public values (derived
    from the class pass's release), the sensitivity a constant. Pooled, one
    scale serves every class and the release is one matrix; per class, the
    release holds one matrix per class label, scaled by its own class's.
    """

    scales: tuple[float, ...]  # one per class id (per_class), or the one pooled scale
    sigma: float
    grid: float  # the release grid of the packed sum
    row_grid: float  # the grid the scaled rows are snapped to, so that their sums are exact
    per_class: bool = False

    @property
    def num_matrices(self) -> int:
        return len(self.scales) if self.per_class else 1

    def scale_of(self, class_id: int) -> float:
        return self.scales[class_id] if self.per_class else self.scales[0]

    def row_of(self, class_id: int) -> int:
        """Which released matrix a class's rows add to."""
        return class_id if self.per_class else 0


@dataclasses.dataclass(frozen=True)
class PassSpec:
    """What one pass aggregates per class, and the noise on its release."""

    index: int  # position in the run, from 0
    kind: PassKind
    partitioners: dict[int, Partitioner]  # classes absent here release nothing
    noise: PassNoise
    second: Optional[SecondMomentRelease] = None
    norm_sigma: Optional[float] = None  # the class pass's row-norm histograms (dpsynth.norms)
    scatter: Optional[ScatterRelease] = None  # the final pass's within-component scatter (lowrank, full)

    @property
    def name(self) -> str:
        return pass_name(self.kind, self.index)

    @property
    def second_moment(self) -> SecondMoment:
        """What the aggregation sums per key besides count and sum (private_stats.key_stats)."""
        return None if self.second is None else self.second.moment
