"""Empirical DP auditing: a statistical lower bound on a mechanism's epsilon.

Why: the ledger says what epsilon a run *should* spend; an audit checks what
the code *does* spend. Run the mechanism many times on two adjacent datasets
D and D' (D plus one record at the clip radius, the worst case), reduce each
output to one number with a statistic fixed before looking at any sample
(here a projection onto the added record's direction), and test events
S = {statistic > t} and {statistic < t}. (epsilon, delta)-DP demands
P[M(D') in S] <= e^eps P[M(D) in S] + delta for every S, so Clopper-Pearson
bounds on both probabilities give, with confidence 1 - alpha,

    eps >= log((p_low - delta) / q_high).

This is the threshold form of the histogram method of Gilbert and McMillan
(as used by Google's dp_auditorium). The threshold itself must not be tuned
on the samples that estimate p and q, or the bound loses its confidence: the
first `selection_fraction` of each sample set picks the event, the rest
estimates it. A bound above the claimed epsilon proves a bug (with the stated
confidence); a bound below it proves nothing beyond "no bug this test could see".
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
from scipy import stats

# Candidate thresholds are these quantiles of the pooled selection samples.
_CANDIDATE_QUANTILES = np.concatenate([np.linspace(0.5, 0.99, 50), 1 - np.logspace(-2, -4, 21)[1:]])


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """The audited lower bound and the event that achieved it."""

    epsilon_lower_bound: float
    threshold: float
    direction: str  # "above": S = {stat > t} favours D'; "below": S = {stat < t} favours D
    p_low: float  # Clopper-Pearson lower bound of P[M(favoured) in S]
    q_high: float  # Clopper-Pearson upper bound of P[M(other) in S]
    confidence: float
    samples: int  # per dataset, used for estimation (after the selection split)


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided (1 - alpha) lower bound of a binomial proportion."""
    if successes <= 0:
        return 0.0
    return float(stats.beta.ppf(alpha, successes, trials - successes + 1))


def clopper_pearson_upper(successes: int, trials: int, alpha: float) -> float:
    """One-sided (1 - alpha) upper bound of a binomial proportion."""
    if successes >= trials:
        return 1.0
    return float(stats.beta.ppf(1 - alpha, successes + 1, trials - successes))


def _event_bound(favoured: np.ndarray, other: np.ndarray, threshold: float, direction: str, delta: float,
                 alpha: float) -> tuple[float, float, float]:
    """(eps bound, p_low, q_high) for one event, alpha split between the two binomials."""
    if direction == "above":
        hits_p, hits_q = int(np.count_nonzero(favoured > threshold)), int(np.count_nonzero(other > threshold))
    else:
        hits_p, hits_q = int(np.count_nonzero(favoured < threshold)), int(np.count_nonzero(other < threshold))
    p_low = clopper_pearson_lower(hits_p, len(favoured), alpha / 2)
    q_high = clopper_pearson_upper(hits_q, len(other), alpha / 2)
    if p_low - delta <= 0:
        return 0.0, p_low, q_high
    return max(0.0, math.log((p_low - delta) / q_high)), p_low, q_high


def epsilon_lower_bound(stat_d: np.ndarray, stat_d_prime: np.ndarray, delta: float, alpha: float = 0.05,
                        selection_fraction: float = 1 / 3) -> AuditResult:
    """Lower bound on epsilon at confidence 1 - alpha from statistic samples on D and D'.

    stat_d, stat_d_prime: one statistic value per run of the mechanism on D
    and on D' (the dataset with the added record); the runs must be
    independent. The statistic should grow when the added record is present.
    """
    stat_d = np.asarray(stat_d, dtype=np.float64)
    stat_d_prime = np.asarray(stat_d_prime, dtype=np.float64)
    if not (0 < alpha < 1) or not (0 < selection_fraction < 1):
        raise ValueError("alpha and selection_fraction must lie in (0, 1)")
    split_d, split_p = int(len(stat_d) * selection_fraction), int(len(stat_d_prime) * selection_fraction)
    select_d, test_d = stat_d[:split_d], stat_d[split_d:]
    select_p, test_p = stat_d_prime[:split_p], stat_d_prime[split_p:]
    if min(len(select_d), len(select_p), len(test_d), len(test_p)) < 10:
        raise ValueError("too few samples to audit")
    # Event selection: the best bound on the selection part, both directions.
    pooled = np.concatenate([select_d, select_p])
    thresholds = np.quantile(pooled, np.concatenate([_CANDIDATE_QUANTILES, 1 - _CANDIDATE_QUANTILES]))
    best = (-1.0, 0.0, "above")
    for threshold in thresholds:
        for direction, favoured, other in (("above", select_p, select_d), ("below", select_d, select_p)):
            bound = _event_bound(favoured, other, float(threshold), direction, delta, alpha)[0]
            if bound > best[0]:
                best = (bound, float(threshold), direction)
    _, threshold, direction = best
    favoured, other = (test_p, test_d) if direction == "above" else (test_d, test_p)
    bound, p_low, q_high = _event_bound(favoured, other, threshold, direction, delta, alpha)
    return AuditResult(bound, threshold, direction, p_low, q_high, 1 - alpha, min(len(test_d), len(test_p)))


def audit_mechanism(mechanism: Callable[[bool, int], np.ndarray], runs: int, delta: float, alpha: float = 0.05,
                    selection_fraction: float = 1 / 3) -> AuditResult:
    """Run `mechanism(with_record, runs)` (-> `runs` statistic values) on D and D', then bound epsilon."""
    stat_d = np.asarray(mechanism(False, runs))
    stat_d_prime = np.asarray(mechanism(True, runs))
    return epsilon_lower_bound(stat_d, stat_d_prime, delta, alpha, selection_fraction)


class ScaledNoise:
    """AUDIT ONLY: a deliberately broken noise source (e.g. factor 0.5: noise halved).

    Wraps another source so that the release code runs unchanged while its
    noise is off by `factor`; the audit must catch it.
    """

    def __init__(self, inner, factor: float) -> None:
        self.inner = inner
        self.factor = float(factor)

    def standard_normal(self, shape, stream=()) -> np.ndarray:
        return self.factor * self.inner.standard_normal(shape, stream)


# --- Harnesses: the real release code on adjacent datasets -----------------------

def claimed_epsilon(ledger, prefix: str | tuple[str, ...], delta: float) -> float:
    """Epsilon the ledger claims for the mechanisms whose names start with `prefix` (or one of them) alone."""
    from dpsynth.accounting import composed_epsilon

    mechanisms = [m for m in ledger.mechanisms if m.name.startswith(prefix)]
    if not mechanisms:
        raise ValueError(f"no mechanism named {prefix}* in the ledger")
    return composed_epsilon(mechanisms, delta)


@dataclasses.dataclass(frozen=True)
class RoundAudit:
    """One Lloyd round's release (class 0, k centres) on D and D' = D + one record.

    D's exact per-centre stats are fixed; D' adds `record` (norm R, or
    `record_scale` * R to model a bound step that lets a too-long row through)
    to its nearest centre. The statistic is the log-likelihood-ratio direction
    of the *claimed* noise, fixed in advance: count change / sigma_c^2 plus the
    sum's projection onto the record / sigma_s^2, scaled to unit variance.
    """

    plan: object  # calibration.ReleasePlan
    centres: np.ndarray  # [k, d]
    base_count: np.ndarray  # [k]
    base_total: np.ndarray  # [k, d]
    record: np.ndarray  # [d], norm R
    record_scale: float = 1.0

    def spec(self):
        from dpsynth.passes import FIRST_ROUND_INDEX, PassKind, PassSpec
        from dpsynth.private_stats import NearestCentre

        return PassSpec(FIRST_ROUND_INDEX, PassKind.FINAL, {0: NearestCentre(self.centres)}, self.plan.final_pass)

    def statistic(self, with_record: bool, runs: int, source) -> np.ndarray:
        """`runs` independent releases in one vectorised call of algorithm.release_class_stats."""
        from dpsynth.algorithm import release_class_stats
        from dpsynth.private_stats import Stats

        spec = self.spec()
        k, d = self.base_total.shape
        key = int(spec.partitioners[0].keys(self.record[None, :])[0])
        count, total = self.base_count.astype(np.float64).copy(), self.base_total.astype(np.float64).copy()
        if with_record:
            count[key] += 1
            total[key] += self.record_scale * self.record
        exact = Stats(np.tile(count, runs), np.tile(total, (runs, 1)))
        released = release_class_stats(0, exact, spec, d, source)
        noisy_count = released.count.reshape(runs, k)[:, key]
        noisy_total = released.total.reshape(runs, k, d)[:, key, :]
        noise = spec.noise
        radius = float(np.linalg.norm(self.record))
        unit = self.record / radius
        llr = ((noisy_count - self.base_count[key]) / noise.count_sigma**2
               + radius * ((noisy_total - self.base_total[key]) @ unit) / noise.sum_sigma**2)
        scale = math.sqrt(1 / noise.count_sigma**2 + radius**2 / noise.sum_sigma**2)
        return llr / scale


def pipeline_statistic(tables_d: list, record_table, config, plan, source, runs: int,
                       with_record: bool) -> np.ndarray:
    """`runs` whole local-reference fits (every DP pass) on D or D' = D + record_table.

    The statistic, fixed in advance, is the released class-0 mixture's
    noisy count times its weighted mean, projected onto the added record's
    direction (an estimate of the released sum along the record).
    """
    import pyarrow as pa

    from dpsynth.local import fit_local
    from dpsynth.validation import InputSpec, validate_table

    tables = list(tables_d) + ([record_table] if with_record else [])
    table = pa.concat_tables(tables)
    spec = InputSpec("embedding", "label", plan.dimension, tuple(config.labels), config.radius, config.clip_mode,
                     config.max_rows)
    batch = validate_table(table, spec).valid
    record = validate_table(record_table, spec).valid.embeddings[0].astype(np.float64)
    unit = record / np.linalg.norm(record)
    out = np.empty(runs)
    for i in range(runs):
        mixture = fit_local([batch], spec.labels, plan, config, source)
        cls = mixture.classes[0]
        out[i] = cls.noisy_count * float(cls.weights @ (cls.means @ unit)) if cls.num_components else 0.0
    return out


# --- White-box instrumentation: every draw, matched against the ledger -----------------

@dataclasses.dataclass(frozen=True)
class Draw:
    """One call of noise.release_gaussian: what was released, and with which noise."""

    stream: tuple
    sigma: float
    grid: float
    value: np.ndarray  # the exact aggregate
    released: np.ndarray

    @property
    def mechanism(self) -> str:
        return ledger_name(self.stream)

    @property
    def pass_name(self) -> str:
        return str(self.stream[0])


class RecordingNoise:
    """AUDIT ONLY: wraps a noise source and records every release made with it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.draws: list[Draw] = []

    def standard_normal(self, shape, stream=()) -> np.ndarray:
        return self.inner.standard_normal(shape, stream)

    def observe(self, stream: tuple, value: np.ndarray, sigma: float, grid: float, released: np.ndarray) -> None:
        self.draws.append(Draw(stream, sigma, grid, np.array(value, copy=True), np.array(released, copy=True)))


# The scale the pooled-scatter audit centres and clips rows at: any public value does (its
# sensitivity is 1 whatever the scale); a small one puts the record's contribution at the bound.
SCATTER_AUDIT_SCALE = 0.5


def ledger_name(stream: tuple) -> str:
    """Ledger mechanism of a release stream (pass name, class, field).

    A stream this does not know is an unaccounted release: it raises
    KeyError, and the white-box tests fail.
    """
    from dpsynth.passes import kind_of_name, mechanism_name

    name, field = str(stream[0]), str(stream[-1])
    if name == "labels":
        return "label_selection"
    kind = kind_of_name(name)
    if kind is not None:
        try:
            return mechanism_name(kind, field)
        except KeyError:
            pass
    raise KeyError(f"release stream {stream!r} matches no ledger mechanism")


def standardised_noise(draws: list[Draw]) -> np.ndarray:
    """(released - exact on the grid) / sigma of every coordinate of these draws, pooled."""
    parts = [((d.released - np.round(d.value / d.grid) * d.grid) / d.sigma).ravel() for d in draws if d.sigma > 0]
    return np.concatenate(parts) if parts else np.zeros(0)


def variance_interval(samples: int, failure: float) -> tuple[float, float]:
    """Two-sided interval for the mean of `samples` squared N(0, 1) draws, failure prob `failure`.

    Also allows the grid rounding of the noise (variance g^2 / 12 with g ~ 2^-20 sigma).
    """
    lo = stats.chi2.ppf(failure / 2, samples) / samples
    hi = stats.chi2.isf(failure / 2, samples) / samples
    return lo * (1 - 1e-9), hi * (1 + 1e-9) + 2.0**-40


# --- Black-box audit of each release kind ---------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ReleaseKindAudit:
    """One ledger mechanism's release on D and D' = D + one adversarial record, by the real code.

    The record goes through the real bound step (private_stats.bound_rows on the
    grid) and the real aggregation (private_stats.key_stats); the release is
    algorithm.release_class_stats (or algorithm.select_labels for label
    selection). The statistic, fixed in advance, is the released value's
    projection on the record's own contribution, the most powerful test of a
    Gaussian mechanism.
    """

    plan: object  # calibration.ReleasePlan
    config: object  # params.SynthesisConfig
    mechanism: str
    base_rows: np.ndarray  # [n, d], bounded
    record: np.ndarray  # [d], raw (bounded here)
    audit_delta: float = 0.05  # the profile point the bound is taken at (label selection picks c for it)
    alpha: float = 1e-8
    selection_fraction: float = 1 / 3

    def _pass(self):
        from dpsynth.passes import FIRST_ROUND_INDEX, PassKind, PassSpec, ScatterRelease, SecondMomentRelease
        from dpsynth.private_stats import NearestCentre, WholeClass

        plan, name = self.plan, self.mechanism
        whole = {0: WholeClass()}
        noise = {PassKind.CLASS: plan.class_pass, PassKind.SEED: plan.seed_pass, PassKind.LLOYD: plan.round_passes[0],
                 PassKind.FINAL: plan.final_pass}
        if name == "final_within_scatter":  # one centre, the base rows' mean; a public scale
            centre = NearestCentre(np.mean(self.base_rows, axis=0, keepdims=True).astype(np.float64))
            scatter = ScatterRelease((SCATTER_AUDIT_SCALE,), plan.scatter_sigma, plan.scatter_grid,
                                     plan.scatter_row_grid, per_class=plan.covariance == "full")
            return PassSpec(FIRST_ROUND_INDEX, PassKind.FINAL, {0: centre}, plan.final_pass, scatter=scatter), "scatter"
        if name == "class_norm_histogram":
            return PassSpec(0, PassKind.CLASS, whole, plan.class_pass, norm_sigma=plan.norm_sigma), "norms"
        if name == "final_second_moment":
            second = SecondMomentRelease("diagonal" if plan.covariance == "diagonal" else "scalar",
                                         plan.second_moment_sigma, plan.second_moment_grid)
            return PassSpec(FIRST_ROUND_INDEX, PassKind.FINAL, whole, plan.final_pass, second), "second"
        prefix, _, field = name.rpartition("_")
        kinds = {kind.value: kind for kind in PassKind}
        if prefix not in kinds or field not in ("count", "sum"):
            raise KeyError(f"no audit harness for ledger mechanism {name!r}")
        # At the first round's index a Lloyd pass is round1; the other kinds' names do not depend on it.
        return PassSpec(FIRST_ROUND_INDEX, kinds[prefix], whole, noise[kinds[prefix]]), field

    def statistic(self, with_record: bool, runs: int, source) -> np.ndarray:
        from dpsynth.algorithm import release_class_stats
        from dpsynth.private_stats import Stats, bound_rows, key_stats, safe_norms
        from dpsynth.norms import norm_bins

        if self.mechanism == "label_selection":
            return self._label_statistic(with_record, runs, source)
        spec, field = self._pass()
        record = bound_rows(self.record[None, :], self.config.radius, self.config.clip_mode)[0]
        rows = np.concatenate([self.base_rows, record]) if with_record else self.base_rows
        d = rows.shape[1]
        bins = None
        if field == "norms":  # the rows' norms before bounding: the base rows are on the sphere already
            record_bin = int(norm_bins(safe_norms(self.record[None, :]))[0])
            bins = norm_bins(safe_norms(self.base_rows))
            bins = np.append(bins, np.int16(record_bin)) if with_record else bins
        if field == "scatter":  # the scatter release: the record's own centred, clipped outer product
            return self._scatter_statistic(spec, rows, record, runs, source)
        exact = key_stats(np.zeros(len(rows), np.int64), rows, 1, spec.second_moment, bins)
        tiled = Stats(np.tile(exact.count, runs), np.tile(exact.total, (runs, 1)),
                      None if exact.second is None else np.tile(exact.second, (runs, 1)) if exact.second.ndim > 1
                      else np.tile(exact.second, runs),
                      None if exact.norms is None else np.tile(exact.norms, (runs, 1)))
        released = release_class_stats(0, tiled, spec, d, source)
        x = record[0].astype(np.float64)
        if field == "count":
            return released.count
        if field == "sum":
            return released.total @ (x / np.linalg.norm(x))
        if field == "norms":  # the record adds 1 to its own bin
            return released.norms[:, record_bin]
        contribution = key_stats(np.zeros(1, np.int64), record, 1, spec.second_moment).second
        direction = contribution.ravel() / np.linalg.norm(contribution)
        return released.second.reshape(runs, -1) @ direction

    @staticmethod
    def _scatter_statistic(spec, rows: np.ndarray, record: np.ndarray, runs: int, source) -> np.ndarray:
        from dpsynth.algorithm import release_class_stats
        from dpsynth.passes import POOLED_KEY
        from dpsynth.private_stats import Stats, centred_scatter, scale_packed

        d = rows.shape[1]

        def scatter(X: np.ndarray) -> np.ndarray:  # class 0's matrix (the only one, pooled or per class)
            return centred_scatter(np.zeros(len(X), np.int32), X, spec.partitioners, spec.scatter)[0]

        exact = scatter(rows)
        tiled = Stats(np.zeros(runs), np.zeros((runs, 0)), np.tile(exact, (runs, 1)))
        released = release_class_stats(POOLED_KEY, tiled, spec, d, source)
        contribution = scale_packed(scatter(record), d)
        return released.second @ (contribution / np.linalg.norm(contribution))

    def _label_statistic(self, with_record: bool, runs: int, source) -> np.ndarray:
        """Whether a label held by c (D) or c + 1 (D') records is released.

        Only the label set leaves, a binary outcome, so the event {released}
        is fixed by the threshold T; the auditor picks c. It is the count that
        maximises the bound this audit can certify for the claimed noise: the
        Gaussian tail probabilities on both sides, each moved by its
        Clopper-Pearson half-width (normal approximation) at the audit's own
        sample size, `alpha` and `audit_delta`. The choice uses only the
        plan's public parameters, never a sample.
        """
        from dpsynth.algorithm import select_labels

        count = label_audit_count(self.plan.label_threshold, self.plan.label_sigma,
                                  runs - int(runs * self.selection_fraction), self.alpha, self.audit_delta)
        count += 1 if with_record else 0
        return np.array([float(len(select_labels({"x": count}, self.plan, source))) for _ in range(runs)])


def label_audit_count(threshold: float, sigma: float, test_runs: int, alpha: float, delta: float) -> int:
    """The record count c whose neighbour pair (c, c + 1) gives the largest certifiable bound."""
    z = stats.norm.isf(alpha / 2)
    best, best_count = -math.inf, max(0, round(threshold))
    for c in range(max(0, math.floor(threshold - 6 * sigma)), math.ceil(threshold + 6 * sigma) + 1):
        p = stats.norm.sf((threshold - c) / sigma)  # released from D
        q = stats.norm.sf((threshold - c - 1) / sigma)  # released from D'
        q_low = q - z * math.sqrt(q * (1 - q) / test_runs) - delta
        p_high = p + z * math.sqrt(p * (1 - p) / test_runs)
        if q_low > 0 and p_high > 0 and math.log(q_low / p_high) > best:
            best, best_count = math.log(q_low / p_high), c
    return best_count


def mechanism_claim(ledger, name: str, delta: float) -> float:
    """The ledger's epsilon at `delta` for one application of one mechanism alone (its Gaussian part)."""
    from dpsynth.accounting import composed_epsilon

    matches = [m for m in ledger.mechanisms if m.name == name]
    if not matches:
        raise ValueError(f"no mechanism {name!r} in the ledger")
    m = dataclasses.replace(matches[0], count=1)
    if m.kind == "gaussian_thresholding":
        m = dataclasses.replace(m, kind="gaussian", threshold=None, threshold_delta=None)
    return composed_epsilon([m], delta)
