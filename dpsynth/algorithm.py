"""The sequence of DP passes, as pure functions shared by Beam and the local reference.

A run is 2 + T passes over the private rows: the class pass (noisy count and
sum per class), the seeding pass (noisy count and sum per SimHash bucket),
and T Lloyd rounds (noisy count and sum per nearest centre; the last one also
releases second moments and within-component scatter when the covariance
model needs them, and *is* the mixture). Between passes only released values are used. Each pass is
described by a PassSpec (dpsynth.passes); `advance` turns one pass's release
into the next pass's spec, with one function per kind of pass, so that a
pipeline runner only has to aggregate, add noise, and call `advance`.

This module holds the crossing of the privacy boundary: `batch_stats` runs
on private rows (through private_stats), and `release_class_stats`, the
release step, is the one place where exact Stats become ReleasedStats. The
rest (`advance` and what it calls) is post-processing of released values.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np

from dpsynth import finite, gmm, norms
from dpsynth.calibration import ReleasePlan
from dpsynth.noise import NoiseSource, release_gaussian
from dpsynth.params import SynthesisConfig
from dpsynth.passes import (FIRST_ROUND_INDEX, POOLED_KEY, PassKind, PassSpec, ScatterRelease, SecondMomentRelease,
                            pass_kinds)
from dpsynth.private_stats import (NearestCentre, Partitioner, Stats, WholeClass, centred_scatter, packed_size,
                                   partial_stats, scale_packed)
from dpsynth.released import (ClassSummary, ReleasedStats, class_summaries, min_rows_to_keep, require_released,
                              seed_centres, seed_partitioners, signal_to_noise_for, update_centres)
from dpsynth.validation import ValidBatch


@dataclasses.dataclass(frozen=True)
class WholeClassRelease:
    """One pass's release of a class that the pass kept as a single key."""

    stats: ReleasedStats  # count [1], total [1, d]
    count_sigma: float
    sum_sigma: float


@dataclasses.dataclass(frozen=True)
class RunState:
    """Released facts so far, and the next pass to run (None once the mixture is fit).

    whole_class holds, for every class that each pass so far kept whole (one
    key: k = 1), each pass's release of it. Those are independent noisy
    releases of the same count and sum, so the fit combines them all
    (inverse-variance weighting): a one-component class then gets the whole
    budget, not only the final pass's share.
    """

    labels: tuple[Any, ...]
    summaries: dict[int, ClassSummary]
    notes: dict[int, str]
    next_pass: Optional[PassSpec]
    mixture: Optional[gmm.ReleasedMixture] = None
    whole_class: dict[int, tuple[WholeClassRelease, ...]] = dataclasses.field(default_factory=dict)
    norm_histograms: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)  # released, [NUM_BINS]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def for_workers(self) -> "RunState":
        """What a pass's workers need (the pass spec), without the releases kept for the fit.

        Every worker reads the state as a side input in every pass, so the
        releases only the fit needs stay on the driver-side chain that
        advances the run.
        """
        return dataclasses.replace(self, whole_class={}, norm_histograms={})


def num_passes(config: SynthesisConfig) -> int:
    return len(pass_kinds(config.rounds))


def initial_state(labels: tuple[Any, ...], plan: ReleasePlan) -> RunState:
    partitioners: dict[int, Partitioner] = {c: WholeClass() for c in range(len(labels))}
    spec = PassSpec(0, PassKind.CLASS, partitioners, plan.class_pass, None, plan.norm_sigma)
    return RunState(labels, summaries={}, notes={}, next_pass=spec)


def batch_stats(batch: ValidBatch, spec: PassSpec) -> dict[int, Stats]:
    """PRIVATE: one batch's exact per-class stats for this pass (Beam's workers and the local job).

    A pass that releases within-component scatter adds it under POOLED_KEY:
    a Stats with no count or sum, its second moment the batch's packed
    scatter matrices (one pooled, or one per class label).
    """
    bins = batch.norm_bins if spec.norm_sigma is not None else None
    out = partial_stats(batch.class_ids, batch.embeddings, spec.partitioners, spec.second_moment, bins)
    if spec.scatter is not None:
        scatter = centred_scatter(batch.class_ids, batch.embeddings, spec.partitioners, spec.scatter)
        out[POOLED_KEY] = Stats(np.zeros(len(scatter)), np.zeros((len(scatter), 0)), scatter)
    return out


def release_keys(spec: PassSpec) -> list[int]:
    """Every key a pass releases, rows or none: each class it partitions, and POOLED_KEY for the scatter."""
    return list(spec.partitioners) + ([POOLED_KEY] if spec.scatter is not None else [])


def release_class_stats(class_id: int, exact: Optional[Stats], spec: PassSpec, dimension: int,
                        source: NoiseSource) -> ReleasedStats:
    """THE RELEASE STEP: noise, once, on one class's combined stats; a class with no rows gets noise too.

    The only function that turns exact Stats into ReleasedStats.
    """
    if class_id == POOLED_KEY:
        return _release_pooled_scatter(exact, spec, dimension, source)
    num_keys = spec.partitioners[class_id].num_keys
    if exact is None:
        exact = Stats.zeros(num_keys, dimension, spec.second_moment, spec.norm_sigma is not None)
    stream = (spec.name, class_id)
    noise = spec.noise
    count = release_gaussian(exact.count, noise.count_sigma, noise.count_grid, source, stream + ("count",))
    total = release_gaussian(exact.total, noise.sum_sigma, noise.sum_grid, source, stream + ("sum",))
    second = hist = None
    if spec.second is not None:
        second = release_gaussian(exact.second, spec.second.sigma, spec.second.grid, source, stream + ("second",))
    if spec.norm_sigma is not None:
        exact_hist = exact.norms if exact.norms is not None else np.zeros((num_keys, norms.NUM_BINS))
        hist = release_gaussian(exact_hist, spec.norm_sigma, noise.count_grid, source, stream + ("norms",))
    return ReleasedStats(count, total, second, hist)


def _release_pooled_scatter(exact: Optional[Stats], spec: PassSpec, dimension: int, source: NoiseSource
                            ) -> ReleasedStats:
    """The scatter matrices' release (part of the release step): packed as by pack_outer, noise once."""
    assert spec.scatter is not None, f"{spec.name} releases no scatter"
    upper = np.zeros((spec.scatter.num_matrices, packed_size(dimension))) if exact is None else exact.second
    noisy = release_gaussian(scale_packed(upper, dimension), spec.scatter.sigma, spec.scatter.grid, source,
                             (spec.name, "pooled", "scatter"))
    return ReleasedStats(np.zeros(len(noisy)), np.zeros((len(noisy), 0)), noisy)


def release_pass(exact: dict[int, Stats], spec: PassSpec, dimension: int, source: NoiseSource
                 ) -> dict[int, ReleasedStats]:
    return {c: release_class_stats(c, exact.get(c), spec, dimension, source) for c in release_keys(spec)}


def _round_spec(index: int, centres: dict[int, np.ndarray], plan: ReleasePlan, config: SynthesisConfig,
                summaries: dict[int, ClassSummary]) -> PassSpec:
    """The round at this index: a Lloyd round, or the final one, which also releases second moments if needed."""
    kind = pass_kinds(config.rounds)[index]
    noise = plan.round_passes[index - FIRST_ROUND_INDEX]
    partitioners = {c: NearestCentre(v) for c, v in centres.items()}
    second = scatter = None
    if kind is PassKind.FINAL and plan.second_moment_sigma is not None:
        second = SecondMomentRelease("diagonal" if plan.covariance in ("diagonal", "lowrank") else "scalar",
                                     plan.second_moment_sigma, plan.second_moment_grid)
    if kind is PassKind.FINAL and plan.scatter_sigma is not None:
        if plan.covariance == "full":  # one matrix per class, each at its own class's scale
            scales = tuple(gmm.class_scatter_scale(summaries[c], plan.radius) for c in range(len(summaries)))
        else:
            scales = (gmm.scatter_scale(summaries, plan.radius),)
        scatter = ScatterRelease(scales, plan.scatter_sigma, plan.scatter_grid, plan.scatter_row_grid,
                                 per_class=plan.covariance == "full")
    return PassSpec(index, kind, partitioners, noise, second, scatter=scatter)


def _whole_class_history(state: RunState, released: dict[int, ReleasedStats], spec: PassSpec
                         ) -> dict[int, tuple[WholeClassRelease, ...]]:
    """Extend the per-class history of single-key releases; a class split once leaves it."""
    history = {}
    for class_id, partitioner in spec.partitioners.items():
        previous = state.whole_class.get(class_id, ())
        if partitioner.num_keys == 1 and len(previous) == spec.index and class_id in released:
            stats = released[class_id]  # the count and sum only
            history[class_id] = previous + (
                WholeClassRelease(ReleasedStats(stats.count, stats.total), spec.noise.count_sigma,
                                  spec.noise.sum_sigma),)
    return history


def combine_whole_class(history: tuple[WholeClassRelease, ...], second: Optional[np.ndarray]
                        ) -> tuple[ReleasedStats, float, float]:
    """Inverse-variance average of independent releases of one class's count and sum.

    Returns the combined stats and their noise scales (count, sum). Pure
    post-processing of released values.
    """
    count_w = np.array([1.0 / h.count_sigma**2 for h in history])
    sum_w = np.array([1.0 / h.sum_sigma**2 for h in history])
    count = sum(w * h.stats.count for w, h in zip(count_w, history)) / count_w.sum()
    total = sum(w * h.stats.total for w, h in zip(sum_w, history)) / sum_w.sum()
    return ReleasedStats(count, total, second), float(count_w.sum() ** -0.5), float(sum_w.sum() ** -0.5)


def advance(state: RunState, released: dict[int, ReleasedStats], plan: ReleasePlan, config: SynthesisConfig
            ) -> RunState:
    """Post-process one pass's release into the next pass (or the mixture).

    TypeError on exact Stats: advance's output reaches every worker and, in
    the end, the published mixture, so only the release step's output may
    enter it.
    """
    spec = state.next_pass
    assert spec is not None, "the run is already finished"
    require_released(released, "advance")
    state = dataclasses.replace(state, whole_class=_whole_class_history(state, released, spec))
    return _AFTER_PASS[spec.kind](state, spec, released, plan, config)


def _after_class_pass(state: RunState, spec: PassSpec, released: dict[int, ReleasedStats], plan: ReleasePlan,
                      config: SynthesisConfig) -> RunState:
    """k per class from its released count and spread; the seeding pass hashes each class into buckets."""
    summaries = class_summaries(
        released, state.num_classes, plan.radius, config.clip_mode, plan.class_pass.sum_sigma,
        plan.final_pass.sum_sigma, plan.final_pass.count_sigma, config.max_clusters,
        signal_to_noise_for(plan.covariance))
    notes = dict(state.notes)
    for c, summary in summaries.items():
        if summary.num_clusters == 0:
            notes[c] = (f"noisy count {summary.noisy_count:.0f} is below the "
                        f"{min_rows_to_keep(plan.final_pass.count_sigma):.0f} rows needed to fit")
    partitioners = seed_partitioners(summaries, plan.seed_pass.count_sigma, plan.dimension)
    norm_histograms = {c: s.norms[0] for c, s in released.items() if s.norms is not None}
    return dataclasses.replace(state, summaries=summaries, notes=notes,
                               next_pass=PassSpec(spec.index + 1, PassKind.SEED, partitioners, plan.seed_pass),
                               norm_histograms=norm_histograms)


def _after_seed_pass(state: RunState, spec: PassSpec, released: dict[int, ReleasedStats], plan: ReleasePlan,
                     config: SynthesisConfig) -> RunState:
    """The first centres: weighted k-means on each class's released buckets."""
    centres = seed_centres(released, state.summaries, plan.radius, plan.seed_pass.count_sigma)
    return dataclasses.replace(state, next_pass=_round_spec(spec.index + 1, centres, plan, config,
                                                            state.summaries))


def _after_lloyd_round(state: RunState, spec: PassSpec, released: dict[int, ReleasedStats], plan: ReleasePlan,
                       config: SynthesisConfig) -> RunState:
    """A Lloyd step: the released means are the next round's centres."""
    centres = update_centres(released, plan.radius, spec.noise.count_sigma)
    notes = dict(state.notes)
    for c in spec.partitioners:
        if c not in centres:
            notes[c] = f"every cluster fell below the noise in {spec.name}"
    return dataclasses.replace(state, notes=notes, next_pass=_round_spec(spec.index + 1, centres, plan, config,
                                                                         state.summaries))


def _after_final_pass(state: RunState, spec: PassSpec, released: dict[int, ReleasedStats], plan: ReleasePlan,
                      config: SynthesisConfig) -> RunState:
    """The mixture: the final release, with every pass's release of a class that no pass split."""
    final = dict(released)
    within = final.pop(POOLED_KEY, None)
    scatter, class_scatter = None, {}
    if within is not None and spec.scatter.per_class:  # "full": each class's own centred scatter
        class_scatter = {c: gmm.ClassScatterRelease(within.second[c], state.summaries[c].noisy_count,
                                                    spec.scatter.sigma, spec.scatter.scale_of(c))
                         for c in range(state.num_classes)}
    elif within is not None:  # "lowrank": the one pooled scatter
        scatter = gmm.PooledScatterRelease(within.second[0], spec.scatter.scale_of(0), spec.scatter.sigma)
    sigmas = {}
    for class_id, releases in state.whole_class.items():
        if len(releases) > 1:  # kept whole by every pass: all of them estimate the same aggregates
            final[class_id], count_sigma, sum_sigma = combine_whole_class(releases, released[class_id].second)
            sigmas[class_id] = (count_sigma, sum_sigma)
    class_releases = []
    for class_id, label in enumerate(state.labels):
        count_sigma, sum_sigma = sigmas.get(class_id, (spec.noise.count_sigma, spec.noise.sum_sigma))
        summary = state.summaries.get(class_id)
        class_releases.append(gmm.ClassRelease(label, final.get(class_id), count_sigma, sum_sigma,
                                               None if summary is None else summary.noisy_count,
                                               state.notes.get(class_id, ""), class_scatter.get(class_id)))
    mixture = gmm.fit_releases(class_releases, dimension=plan.dimension, radius=plan.radius,
                               clip_mode=config.clip_mode, covariance=plan.covariance, private=config.is_private,
                               scatter=scatter)
    if config.subspace is not None:  # public: synthetic rows are drawn back in the input's d coordinates
        mixture = dataclasses.replace(mixture, subspace=config.subspace)
    if plan.norm_sigma is not None:
        mixture = dataclasses.replace(mixture, norms=norms.fit_norm_model(state.norm_histograms, state.num_classes,
                                                                          plan.norm_sigma))
    # The fit has used the releases kept for it: the finished state holds the mixture instead.
    return dataclasses.replace(state, next_pass=None, mixture=finite.require_finite_mixture(mixture),
                               whole_class={}, norm_histograms={})


_AFTER_PASS: dict[PassKind, Callable[[RunState, PassSpec, dict[int, ReleasedStats], ReleasePlan, SynthesisConfig],
                                     RunState]] = {
    PassKind.CLASS: _after_class_pass,
    PassKind.SEED: _after_seed_pass,
    PassKind.LLOYD: _after_lloyd_round,
    PassKind.FINAL: _after_final_pass,
}


def select_labels(exact_counts: dict[Any, int], plan: ReleasePlan, source: NoiseSource) -> tuple[Any, ...]:
    """DP label discovery: labels whose noisy count clears the threshold, sorted.

    Only used when the user gives no public label set. Each record holds one
    label, so the counts have L2 sensitivity 1; a label held by one record
    alone clears the threshold with probability at most the planned delta share.
    """
    assert plan.label_sigma is not None and plan.label_threshold is not None
    kept = []
    for label, count in exact_counts.items():
        noisy = release_gaussian(np.array([float(count)]), plan.label_sigma, plan.class_pass.count_grid,
                                 source, ("labels", str(label)))[0]
        if noisy > plan.label_threshold:
            kept.append(label)
    return tuple(sorted(kept))
