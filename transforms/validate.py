"""Validation and bounding of input batches, with a dead-letter output."""
from __future__ import annotations

from typing import Any, Iterator, Optional

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from dpsynth.grid import DEFAULT_MAX_ROWS
from dpsynth.subspace import PublicSubspace
from dpsynth.validation import InputSpec, validate_table, validation_counts

REJECTED_TAG = "rejected"
DIAGNOSTICS_TAG = "diagnostics"
METRICS_NAMESPACE = "dpsynth"


class ValidateAndBoundFn(beam.DoFn):
    """pa.Table -> ValidBatch (main), rejected pa.Table, and per-batch exact counts.

    `dimension` is the input rows' d; with a public subspace the valid
    batches carry its k + 1 coordinates instead (dpsynth.subspace).

    The counts feed Beam metrics and the data owner's report; they are exact,
    not DP, which is why they never reach a released file other than the
    report's clearly marked diagnostics section.
    """

    def __init__(self, embedding_column: str, label_column: str, dimension: int, radius: float,
                 clip_mode: str, count_metrics: bool = True, max_rows: int = DEFAULT_MAX_ROWS,
                 subspace: Optional[PublicSubspace] = None) -> None:
        self._max_rows = max_rows
        self._subspace = subspace
        self._count_metrics = count_metrics  # False for a pass's re-validation of rows counted already
        self._columns = (embedding_column, label_column)
        self._dimension = dimension
        self._radius = radius
        self._clip_mode = clip_mode

    def setup(self) -> None:
        self._counters: dict[str, Any] = {}

    def _inc(self, name: str, value: int) -> None:
        if value and self._count_metrics:
            if name not in self._counters:
                self._counters[name] = Metrics.counter(METRICS_NAMESPACE, name)
            self._counters[name].inc(value)

    def process(self, table: pa.Table, labels: tuple) -> Iterator[Any]:
        spec = InputSpec(self._columns[0], self._columns[1], self._dimension, tuple(labels), self._radius,
                         self._clip_mode, self._max_rows, self._subspace)
        result = validate_table(table, spec)
        counts = validation_counts(result.reason_counts, table.num_rows, len(result.valid), result.clipped)
        for name, value in counts.items():
            self._inc(name, value)
        yield beam.pvalue.TaggedOutput(DIAGNOSTICS_TAG, counts)
        if len(result.valid):
            yield result.valid
        if result.rejected is not None:
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, result.rejected)


class SumCountsFn(beam.CombineFn):
    """Sums dicts of counters (the diagnostics)."""

    def create_accumulator(self) -> dict[str, int]:
        return {}

    def add_input(self, accumulator: dict[str, int], counts: dict[str, int]) -> dict[str, int]:
        for name, value in counts.items():
            accumulator[name] = accumulator.get(name, 0) + value
        return accumulator

    def merge_accumulators(self, accumulators) -> dict[str, int]:
        merged: dict[str, int] = {}
        for accumulator in accumulators:
            self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator: dict[str, int]) -> dict[str, int]:
        return accumulator
