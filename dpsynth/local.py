"""The local reference: the whole method in one process with plain numpy.

It calls exactly the functions the Beam transforms call (validation, partial
stats, release, advance, sampling), so with noise switched off the two must
agree on every released statistic; tests and benchmarks lean on that.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pyarrow as pa

from dpsynth import algorithm, finite, gmm, privacy_units
from dpsynth.accounting import PrivacyLedger
from dpsynth.calibration import ReleasePlan, plan_releases
from dpsynth.errors import UserError
from dpsynth.noise import noise_source
from dpsynth.params import SynthesisConfig
from dpsynth.private_stats import Stats
from dpsynth.validation import InputSpec, ValidBatch, check_schema, label_counts, resolve_dimension, validate_table

# Rows validated at once by the local reference: at d = 4,096 one slice's float64 copy is 256 MB.
VALIDATION_CHUNK_ROWS = 8192


@dataclasses.dataclass
class LocalResult:
    synthetic_embeddings: np.ndarray  # [m, d] float32
    synthetic_labels: np.ndarray  # [m], the label values
    synthetic_components: np.ndarray  # [m] int32
    mixture: gmm.ReleasedMixture
    ledger: PrivacyLedger
    reject_counts: dict[str, int]
    clipped_rows: int
    # User-level privacy (privacy_unit_column): counters, rows without a unit
    # id, and the one-row-per-unit tables that were actually used.
    unit_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    unit_rejected: Optional[pa.Table] = None
    bounded_tables: Optional[list[pa.Table]] = None


def synthesize_arrays(embeddings: np.ndarray, labels: Sequence[Any] | np.ndarray,
                      config: SynthesisConfig) -> LocalResult:
    """DP synthetic embeddings from in-memory arrays (the library entry point).

    d is embeddings.shape[1]: the caller's array shape is a public fact the
    caller supplies (as --dimension is on the command line), not read from a
    row. An empty array (shape (0, d)) gives a normal all-noise release.
    """
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2:
        raise UserError(f"embeddings must be a 2-d array, got shape {embeddings.shape}")
    label_array = pa.array(np.asarray(labels).tolist())
    if len(label_array) == 0:  # no rows: the label type is the public label set's (integers by default)
        strings = bool(config.labels) and isinstance(config.labels[0], str)
        label_array = pa.array([], pa.string() if strings else pa.int64())
    table = pa.table({"embedding": pa.FixedSizeListArray.from_arrays(
        pa.array(embeddings.astype(np.float64).ravel()), embeddings.shape[1]), "label": label_array})
    return synthesize_tables([table], config, dimension=int(embeddings.shape[1]))


def synthesize_tables(tables: Iterable[pa.Table], config: SynthesisConfig, embedding_column: str = "embedding",
                      label_column: str = "label", dimension: Optional[int] = None,
                      progress: bool = False) -> LocalResult:
    """The reference on pyarrow Tables. d: `dimension`, else the first table's declared schema size.

    No decision depends on a row: an empty input gives a normal all-noise
    release (its exact emptiness is only in the private diagnostics).
    """
    tables = [t for t in tables]
    if not tables:
        raise UserError("no input tables given (not even an empty one: the schema is unknown)")
    check_schema(tables[0].schema, embedding_column, label_column)
    dimension = resolve_dimension(tables[0].schema, embedding_column, dimension)
    unit_counts: dict[str, int] = {}
    unit_rejected = None
    if config.privacy_unit_column:
        # User-level privacy: one random record per unit, before any aggregation.
        tables, unit_rejected, unit_counts = privacy_units.bound_units(tables, config.privacy_unit_column,
                                                                       config.noise_seed)
    source = noise_source(config.noise_seed, config.disable_noise)
    plan = plan_releases(config, dimension, discover_labels=config.labels is None)
    labels = config.labels
    if labels is None:
        counts: collections.Counter = collections.Counter()
        for t in tables:
            counts.update(label_counts(t, label_column))
        labels = algorithm.select_labels(dict(counts), plan, source)
    spec = InputSpec(embedding_column, label_column, dimension, tuple(labels), config.radius, config.clip_mode,
                     config.max_rows, config.subspace)
    batches: list[ValidBatch] = []
    rejects: collections.Counter = collections.Counter()
    clipped = 0
    for t in tables:
        for piece in table_chunks(t):
            result = validate_table(piece, spec)
            batches.append(result.valid)
            rejects.update(result.reason_counts)
            clipped += result.clipped
    mixture = fit_local(batches, spec.labels, plan, config, source, progress)
    X, y, component = sample_local(mixture, config)
    if unit_rejected is not None:
        rejects[privacy_units.MISSING_UNIT_REASON] += unit_rejected.num_rows
    return LocalResult(X, y, component, mixture, plan.ledger, dict(rejects), clipped, unit_counts, unit_rejected,
                       tables if config.privacy_unit_column else None)


def table_chunks(table: pa.Table, rows: Optional[int] = None) -> Iterable[pa.Table]:
    """A table in slices of at most `rows` (VALIDATION_CHUNK_ROWS) rows, zero-copy: validation's float64
    temporaries stay a few times one slice, not the whole input (the sums are exact, so the slicing
    changes nothing)."""
    rows = VALIDATION_CHUNK_ROWS if rows is None else rows
    if table.num_rows == 0:
        yield table
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


def fit_local(batches: list[ValidBatch], labels: tuple[Any, ...], plan: ReleasePlan, config: SynthesisConfig,
              source, progress: bool = False) -> gmm.ReleasedMixture:
    """The passes in sequence; progress=True shows a bar per pass (pass i of N, rows, rows/s,
    elapsed) on stderr when it is a terminal (tqdm), and nothing otherwise."""
    state = algorithm.initial_state(labels, plan)
    num_passes = algorithm.num_passes(config)
    rows = sum(len(batch.class_ids) for batch in batches)
    while state.next_pass is not None:
        spec = state.next_pass
        exact: dict[int, Stats] = {}
        bar = _pass_bar(progress, spec.index + 1, num_passes, spec.name, rows)
        for batch in batches:
            for class_id, stats in algorithm.batch_stats(batch, spec).items():
                exact[class_id] = exact[class_id].add(stats) if class_id in exact else stats
            if bar is not None:
                bar.update(len(batch.class_ids))
        if bar is not None:
            bar.close()
        released = algorithm.release_pass(exact, spec, plan.dimension, source)
        state = algorithm.advance(state, released, plan, config)
    assert state.mixture is not None
    return state.mixture


def _pass_bar(progress: bool, index: int, num_passes: int, name: str, rows: int):
    if not progress:
        return None
    import sys

    from tqdm.auto import tqdm
    # The bar counts exact private rows: labelled as the operator telemetry it is (docs/trust.md).
    return tqdm(total=rows, desc=f"pass {index} of {num_passes} ({name}; private telemetry)", unit="rows",
                unit_scale=True, disable=not sys.stderr.isatty())


def sample_local(mixture: gmm.ReleasedMixture, config: SynthesisConfig
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows_per_class = mixture.samples_per_class(config.num_samples, config.class_balance)
    parts_X, parts_y, parts_c = [np.zeros((0, mixture.embedding_dimension), np.float32)], [], [np.zeros(0, np.int32)]
    for class_index, chunk_index, rows in gmm.sampling_chunks(rows_per_class):
        X, component = mixture.sample_class(class_index, rows, gmm.sampling_rng(config.noise_seed, class_index,
                                                                                  chunk_index))
        parts_X.append(finite.require_finite_rows(X, mixture.classes[class_index].label))
        parts_c.append(component)
        parts_y.append(np.full(rows, class_index))
    class_index = np.concatenate(parts_y) if parts_y else np.zeros(0, int)
    labels = np.asarray([c.label for c in mixture.classes], dtype=object)
    label_values = np.asarray(labels[class_index].tolist()) if len(class_index) else np.zeros(0)
    return np.concatenate(parts_X), label_values, np.concatenate(parts_c)
