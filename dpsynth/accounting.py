"""The privacy ledger and its composition with dp-accounting.

The ledger lists every mechanism a run applies: name, kind, sensitivity,
noise scale and how many times it is applied sequentially. Releases over
disjoint partitions (classes, clusters) are one application (parallel
composition). The spent epsilon is recomputed from this list alone, so anyone
holding privacy.json can check it.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import platform
from typing import Any, Iterable, Optional

import dp_accounting
from dp_accounting.pld import pld_privacy_accountant

ACCOUNTANT = "pld"
ADJACENCY = "add_remove"
# PLD discretisation: coarse enough to keep calibration fast. PLD accounting
# stays pessimistic at any discretisation, so the reported epsilon is still an
# upper bound (the figures: BENCHMARKS.md, "Notes moved from code").
PLD_DISCRETIZATION = 1e-3


@dataclasses.dataclass(frozen=True)
class Mechanism:
    """One mechanism of the ledger.

    kind "gaussian": Gaussian noise of scale `sigma` on an aggregate of L2
    sensitivity `l2_sensitivity`, applied `count` times in sequence.
    kind "gaussian_thresholding": the same on per-partition counts, with only
    partitions whose noisy count exceeds `threshold` released; a partition
    that exists in one neighbour only is released with probability at most
    `threshold_delta`, which adds to delta (Gaussian partition selection).
    """

    name: str
    kind: str
    l2_sensitivity: float
    sigma: float
    count: int = 1
    threshold: Optional[float] = None
    threshold_delta: Optional[float] = None

    @property
    def noise_multiplier(self) -> float:
        return self.sigma / self.l2_sensitivity

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "kind": self.kind,
                                 "l2_sensitivity": self.l2_sensitivity, "sigma": self.sigma,
                                 "count": self.count}
        if self.kind == "gaussian_thresholding":
            entry["threshold"] = self.threshold
            entry["threshold_delta"] = self.threshold_delta
        return entry

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> "Mechanism":
        return cls(name=entry["name"], kind=entry["kind"], l2_sensitivity=float(entry["l2_sensitivity"]),
                   sigma=float(entry["sigma"]), count=int(entry["count"]),
                   threshold=entry.get("threshold"), threshold_delta=entry.get("threshold_delta"))


def thresholding_delta(mechanisms: Iterable[Mechanism]) -> float:
    """Delta spent outright by partition selection (added, not composed)."""
    return sum(m.threshold_delta * m.count for m in mechanisms if m.kind == "gaussian_thresholding")


def composed_epsilon(mechanisms: Iterable[Mechanism], delta: float) -> float:
    """Epsilon of the sequential composition at total `delta`, by PLD accounting.

    Returns inf when some mechanism adds no noise (test-only runs) or when the
    thresholding delta alone uses up `delta`.
    """
    mechanisms = list(mechanisms)
    gaussian_delta = delta - thresholding_delta(mechanisms)
    if gaussian_delta <= 0 or any(m.sigma <= 0 for m in mechanisms):
        return math.inf
    accountant = pld_privacy_accountant.PLDAccountant(dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
                                                      value_discretization_interval=PLD_DISCRETIZATION)
    for mechanism in mechanisms:
        if mechanism.kind not in ("gaussian", "gaussian_thresholding"):
            raise ValueError(f"unknown mechanism kind {mechanism.kind!r}")
        accountant.compose(dp_accounting.GaussianDpEvent(mechanism.noise_multiplier), mechanism.count)
    return float(accountant.get_epsilon(gaussian_delta))


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("dpsynth", "apache-beam", "dp-accounting", "numpy", "pyarrow"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


@dataclasses.dataclass(frozen=True)
class PrivacyLedger:
    """Target, mechanisms and the composed spend of one run."""

    target_epsilon: float
    target_delta: float
    mechanisms: tuple[Mechanism, ...]
    spent_epsilon: float
    # Public inputs that shaped the release at no privacy cost (e.g. a subspace fitted on public rows).
    public_inputs: tuple[dict[str, Any], ...] = ()

    @classmethod
    def compose(cls, target_epsilon: float, target_delta: float,
                mechanisms: Iterable[Mechanism]) -> "PrivacyLedger":
        mechanisms = tuple(mechanisms)
        return cls(target_epsilon, target_delta, mechanisms, composed_epsilon(mechanisms, target_delta))

    def to_json(self) -> dict[str, Any]:
        spent = None if math.isinf(self.spent_epsilon) else self.spent_epsilon
        return {
            "target": {"epsilon": self.target_epsilon, "delta": self.target_delta},
            "spent": {"epsilon": spent, "delta": self.target_delta},
            "accountant": ACCOUNTANT,
            "adjacency": ADJACENCY,
            "mechanisms": [m.to_json() for m in self.mechanisms],
            **({"public_inputs": list(self.public_inputs)} if self.public_inputs else {}),
            "versions": package_versions(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PrivacyLedger":
        spent = data["spent"]["epsilon"]
        return cls(float(data["target"]["epsilon"]), float(data["target"]["delta"]),
                   tuple(Mechanism.from_json(m) for m in data["mechanisms"]),
                   math.inf if spent is None else float(spent), tuple(data.get("public_inputs", ())))
