"""The release plan: which aggregates a run releases and the noise on each.

The plan is fixed before any private row is read. It depends only on public
inputs: (epsilon, delta), the dimension d, the radius R, the number of rounds,
the covariance model and whether labels must be discovered.

All mechanisms are Gaussian, and a sequence of Gaussian mechanisms with noise
multipliers z_i composes exactly like one Gaussian mechanism with
1/z^2 = sum_i 1/z_i^2. The budget is therefore split by *weights*: mechanism i
gets z_i = z_base / sqrt(w_i). The single free scale z_base is calibrated
against the target with the analytic Gaussian formula, then confirmed (and
nudged) with dp-accounting's PLD accountant, which is what the ledger reports.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import dp_accounting
from scipy import stats

from dpsynth.accounting import Mechanism, PrivacyLedger, composed_epsilon
from dpsynth.errors import OptionError, PrivacyBudgetError
from dpsynth.noise import effective_sensitivity, grid_for
from dpsynth.norms import NUM_BINS as NORM_BINS
from dpsynth.grid import row_grid
from dpsynth.params import (MAX_AUTO_FULL_COVARIANCE_VALUES, MAX_DIMENSION, MAX_FULL_COVARIANCE_DIMENSION,
                            SynthesisConfig)
from dpsynth.passes import PassKind, mechanism_name
from dpsynth.private_stats import packed_size

# The spent epsilon must land in [SPEND_FLOOR * target, target].
SPEND_FLOOR = 0.9
# Share of delta reserved for partition selection when labels are discovered.
LABEL_DISCOVERY_DELTA_SHARE = 0.1


@dataclasses.dataclass(frozen=True)
class BudgetWeights:
    """Relative privacy weights (proportional to 1/z^2) of each release.

    Public constants, chosen on synthetic data and theory, never on private
    rows. The final round gets the largest share since its release *is* the
    mixture; earlier passes only need centres good enough to start from.
    Within a pass the count/sum split minimises the error of the released
    mean ||mu|| * z_count / n + sqrt(d) * z_sum / n, which puts about
    1 / (1 + sqrt(d)) of the pass's weight on the count; but counts also
    decide which clusters survive (a noisy count must clear 3 sigmas), so the
    count never gets less than 10%: in high dimension the optimum alone leaves
    small classes' counts too noisy to fit (BENCHMARKS.md, "Notes moved from
    code"). The
    class pass exists mostly for its counts (k and the fit decision per
    class), so it splits its weight evenly. The within-component scatter (a
    full covariance's one matrix per class, a low-rank covariance's one
    pooled matrix) is weighted like the final round's sums: a full
    covariance's noise is shrunk away in the fit (gmm.shrink_covariance),
    and a low-rank one keeps only the directions above it (gmm.fit_low_rank),
    so a weak release costs accuracy only through the budget it takes.
    The row-norm histogram only has to place each class's bulk of norms on
    a half-octave grid, so it gets a count-sized share.
    """

    labels: float = 0.25
    class_pass: float = 0.5
    seed_pass: float = 0.75
    middle_round: float = 0.75
    final_round: float = 1.5
    second_moment: float = 0.5
    norm_histogram: float = 0.25
    within_scatter: float = 1.0
    class_count_fraction: float = 0.5

    @staticmethod
    def count_fraction(dimension: int) -> float:
        return min(0.5, max(0.1, 1.0 / (1.0 + math.sqrt(dimension))))


@dataclasses.dataclass(frozen=True)
class PassNoise:
    """Noise of one pass over the data: per-key count and vector sum."""

    count_sigma: float
    sum_sigma: float
    count_grid: float
    sum_grid: float


@dataclasses.dataclass(frozen=True)
class ReleasePlan:
    """Everything the pipeline needs to know about noise, fixed up front."""

    dimension: int
    radius: float
    rounds: int
    covariance: str  # the model fitted: "auto" resolved for this dimension
    class_pass: PassNoise
    seed_pass: PassNoise
    round_passes: tuple[PassNoise, ...]
    second_moment_sigma: Optional[float]  # None when the final pass releases none
    second_moment_grid: Optional[float]
    norm_sigma: Optional[float]  # None unless the class pass releases row-norm histograms
    scatter_sigma: Optional[float]  # None unless covariance is "lowrank" or "full" (the final pass's scatter)
    scatter_grid: Optional[float]
    scatter_row_grid: Optional[float]
    label_sigma: Optional[float]  # None when labels are public
    label_threshold: Optional[float]
    ledger: PrivacyLedger

    @property
    def final_pass(self) -> PassNoise:
        return self.round_passes[-1]


def needs_second_moment(config: SynthesisConfig) -> bool:
    """Whether the final pass releases second moments per component.

    Normalised rows have ||x|| = R, so spherical variances need no extra
    release; clipped rows' scale needs one (a scalar per component), and
    diagonal and low-rank covariances one per coordinate.
    """
    return config.covariance in ("diagonal", "lowrank") or config.clip_mode == "clip"


def needs_within_scatter(config: SynthesisConfig) -> bool:
    """Whether the final pass also releases within-component scatter: pooled (lowrank) or per class (full)."""
    return config.covariance in ("lowrank", "full")


def needs_norm_histogram(config: SynthesisConfig) -> bool:
    """Whether the class pass releases each class's row-norm histogram (dpsynth.norms)."""
    return config.row_norms == "released" and config.clip_mode == "normalize"


def _build(config: SynthesisConfig, dimension: int, discover_labels: bool, z_base: float
           ) -> tuple[list[Mechanism], dict]:
    weights = BudgetWeights()
    radius = config.radius
    fraction = BudgetWeights.count_fraction(dimension)
    count_sens = effective_sensitivity(1.0, 1)
    sum_sens = effective_sensitivity(radius, dimension)
    moment_coords = dimension if config.covariance in ("diagonal", "lowrank") else 1
    moment_sens = effective_sensitivity(radius**2, moment_coords)

    def pass_noise(weight: float, count_fraction: float = fraction) -> PassNoise:
        return PassNoise(count_sigma=z_base / math.sqrt(weight * count_fraction) * count_sens,
                         sum_sigma=z_base / math.sqrt(weight * (1 - count_fraction)) * sum_sens,
                         count_grid=grid_for(1.0), sum_grid=grid_for(radius))

    mechanisms: list[Mechanism] = []
    parts: dict = {}
    if discover_labels:
        label_sigma = z_base / math.sqrt(weights.labels) * count_sens
        threshold_delta = LABEL_DISCOVERY_DELTA_SHARE * config.delta
        # A label held by one record alone is released with probability
        # P[1 + N(0, sigma^2) > threshold] = threshold_delta.
        threshold = 1.0 + label_sigma * float(stats.norm.isf(threshold_delta))
        mechanisms.append(Mechanism("label_selection", "gaussian_thresholding", count_sens, label_sigma, 1,
                                    threshold=threshold, threshold_delta=threshold_delta))
        parts.update(label_sigma=label_sigma, label_threshold=threshold)
    else:
        parts.update(label_sigma=None, label_threshold=None)

    class_pass = pass_noise(weights.class_pass, weights.class_count_fraction)
    seed_pass = pass_noise(weights.seed_pass)
    middle = pass_noise(weights.middle_round)
    final = pass_noise(weights.final_round)
    round_passes = tuple([middle] * (config.rounds - 1) + [final])
    for kind, noise, count in ((PassKind.CLASS, class_pass, 1), (PassKind.SEED, seed_pass, 1),
                               (PassKind.LLOYD, middle, config.rounds - 1), (PassKind.FINAL, final, 1)):
        if count:
            mechanisms.append(Mechanism(mechanism_name(kind, "count"), "gaussian", count_sens, noise.count_sigma,
                                        count))
            mechanisms.append(Mechanism(mechanism_name(kind, "sum"), "gaussian", sum_sens, noise.sum_sigma, count))
    moment_sigma = moment_grid = None
    if needs_second_moment(config):
        moment_sigma = z_base / math.sqrt(weights.second_moment) * moment_sens
        moment_grid = grid_for(radius**2)
        mechanisms.append(Mechanism(mechanism_name(PassKind.FINAL, "second"), "gaussian", moment_sens,
                                    moment_sigma, 1))
    scatter_sigma = scatter_grid = scatter_row_grid = None
    if needs_within_scatter(config):
        # Rows centred, scaled by a public scale and clipped into the unit ball: sensitivity 1 (a
        # record is in one class, so per class it changes one class's matrix).
        scatter_sens = effective_sensitivity(1.0, packed_size(dimension))
        scatter_sigma = z_base / math.sqrt(weights.within_scatter) * scatter_sens
        scatter_grid = grid_for(1.0)
        scatter_row_grid = row_grid(1.0, config.max_rows)
        mechanisms.append(Mechanism(mechanism_name(PassKind.FINAL, "scatter"), "gaussian", scatter_sens,
                                    scatter_sigma, 1))
    norm_sigma = None
    if needs_norm_histogram(config):
        norm_sens = effective_sensitivity(1.0, NORM_BINS)  # one record: +1 in one bin of one class
        norm_sigma = z_base / math.sqrt(weights.norm_histogram) * norm_sens
        mechanisms.append(Mechanism(mechanism_name(PassKind.CLASS, "norms"), "gaussian", norm_sens, norm_sigma, 1))
    parts.update(scatter_sigma=scatter_sigma, scatter_grid=scatter_grid, scatter_row_grid=scatter_row_grid)
    parts.update(norm_sigma=norm_sigma, class_pass=class_pass, seed_pass=seed_pass, round_passes=round_passes,
                 second_moment_sigma=moment_sigma, second_moment_grid=moment_grid)
    return mechanisms, parts


def _weight_total(mechanisms: list[Mechanism], z_base: float) -> float:
    return sum(m.count / m.noise_multiplier**2 for m in mechanisms) * z_base**2


def plan_releases(config: SynthesisConfig, dimension: int, discover_labels: bool) -> ReleasePlan:
    """Calibrate the noise so the whole run spends epsilon in [0.9 E, E] at delta D.

    Raises PrivacyBudgetError when no noise scale meets the target (only
    possible when partition selection alone would need all of delta).
    """
    if dimension < 1:
        raise PrivacyBudgetError(f"embedding dimension must be positive, got {dimension}")
    dimension = config.model_dimension(dimension)  # k + 1 with a public subspace: the rows the fit sees
    # Errors name settings (config fields, the encoders' project_dim); a command line renders its flags.
    if dimension > MAX_DIMENSION:
        raise OptionError("embedding dimension {dimension} is above {limit}; project the embeddings to fewer "
                          "dimensions first ({options})", ["project_dim"], dimension=dimension, limit=MAX_DIMENSION)
    config = config.for_dimension(dimension)
    if config.covariance == "full" and dimension > MAX_FULL_COVARIANCE_DIMENSION:
        raise OptionError("{covariance}=full holds a d x d matrix per class and needs d <= {limit}, got "
                          "d = {dimension}: project the embeddings to fewer dimensions first ({project_dim}) or "
                          "use {covariance}=diagonal", ["covariance", "project_dim"],
                          limit=MAX_FULL_COVARIANCE_DIMENSION, dimension=dimension)
    if config.covariance == "lowrank" and packed_size(dimension) > MAX_AUTO_FULL_COVARIANCE_VALUES:
        raise OptionError("{covariance}=lowrank releases one d x d matrix and needs d (d + 1) / 2 <= 2^25, got "
                          "d = {dimension}: project the embeddings to fewer dimensions first ({project_dim}) or "
                          "use {covariance}=diagonal", ["covariance", "project_dim"], dimension=dimension)
    threshold_share = LABEL_DISCOVERY_DELTA_SHARE if discover_labels else 0.0
    gaussian_delta = config.delta * (1 - threshold_share)
    # Mechanisms at z_base = 1 tell how the weights add up.
    unit_mechanisms, _ = _build(config, dimension, discover_labels, 1.0)
    weight_total = _weight_total(unit_mechanisms, 1.0)
    # One Gaussian of multiplier z_eff meets the target exactly; z_base follows.
    z_eff = dp_accounting.get_sigma_gaussian(config.epsilon, gaussian_delta)
    z_base = z_eff * math.sqrt(weight_total) * 1.0005  # PLD is pessimistic: start a hair above
    for _ in range(60):
        mechanisms, parts = _build(config, dimension, discover_labels, z_base)
        spent = composed_epsilon(mechanisms, config.delta)
        if spent <= config.epsilon:
            break
        z_base *= 1.0 + max(1e-3, (spent - config.epsilon) / config.epsilon)
    else:
        raise PrivacyBudgetError(
            f"cannot meet epsilon={config.epsilon}, delta={config.delta} with this release plan")
    if spent < SPEND_FLOOR * config.epsilon:
        raise PrivacyBudgetError(
            f"calibration spent only {spent:.4g} of epsilon={config.epsilon}; refusing an uncalibrated run")
    if config.disable_noise:
        # The noise-free test mode applies none of the planned noise: say so.
        mechanisms = [dataclasses.replace(m, sigma=0.0) for m in mechanisms]
    public_inputs = () if config.subspace is None else (
        {"name": "public_subspace", "privacy_cost": "none (public rows)", "description": config.subspace.describe(),
         "sha256": config.subspace.digest},)
    ledger = PrivacyLedger(config.epsilon, config.delta, tuple(mechanisms),
                           spent if config.is_private else math.inf, public_inputs)
    return ReleasePlan(dimension=dimension, radius=config.radius, rounds=config.rounds, covariance=config.covariance,
                       ledger=ledger, **parts)
