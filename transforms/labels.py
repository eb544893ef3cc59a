"""Public label set: given by the user, or discovered under DP."""
from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
import pyarrow as pa

from dpsynth import algorithm
from dpsynth.calibration import ReleasePlan
from dpsynth.noise import noise_source
from dpsynth.params import SynthesisConfig
from dpsynth.validation import label_counts


def _batch_label_counts(table: pa.Table, label_column: str) -> Iterator[tuple[Any, int]]:
    return iter(label_counts(table, label_column).items())


def _select(counts: dict[Any, int], plan: ReleasePlan, config: SynthesisConfig) -> tuple[Any, ...]:
    return algorithm.select_labels(counts, plan, noise_source(config.noise_seed, config.disable_noise))


class DiscoverLabels(beam.PTransform):
    """PCollection[pa.Table] -> singleton tuple of labels chosen by Gaussian partition selection."""

    def __init__(self, label_column: str, plan: ReleasePlan, config: SynthesisConfig) -> None:
        super().__init__()
        self._label_column = label_column
        self._plan = plan
        self._config = config

    def expand(self, tables: beam.PCollection) -> beam.PCollection:
        return (tables
                # (label, count in one batch)
                | "CountPerBatch" >> beam.FlatMap(_batch_label_counts, self._label_column)
                # (label, exact count)
                | "Sum" >> beam.CombinePerKey(sum)
                # {label: exact count}, one element
                | "Collect" >> beam.combiners.ToDict()
                # (label, ...) kept by noisy threshold
                | "NoisyThreshold" >> beam.Map(_select, plan=self._plan, config=self._config))
