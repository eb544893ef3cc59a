"""Sampling synthetic rows from the released mixture and writing the released files."""
from __future__ import annotations

import json
from typing import Any, Iterator, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from dpsynth import finite, gmm
from dpsynth.algorithm import RunState


def synthetic_schema(label_type: pa.DataType) -> pa.Schema:
    return pa.schema([("label", label_type), ("embedding", pa.list_(pa.float32())), ("component", pa.int32())])


def synthetic_table(labels: list, X: np.ndarray, component: np.ndarray, label_type: pa.DataType) -> pa.Table:
    """Synthetic rows as a pa.Table, built column-wise (no per-row Python objects)."""
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(X, np.float32).ravel()),
                                                  X.shape[1]).cast(pa.list_(pa.float32()))
    return pa.table({"label": pa.array(labels, label_type), "embedding": embedding,
                     "component": pa.array(component, pa.int32())}, schema=synthetic_schema(label_type))


class SampleSynthetic(beam.PTransform):
    """singleton RunState (with mixture) -> PCollection[pa.Table] of synthetic rows."""

    def __init__(self, num_samples: Optional[int], class_balance: str, label_type: pa.DataType,
                 noise_seed: Optional[int]) -> None:
        super().__init__()
        self._sample = SampleFromMixture(num_samples, class_balance, label_type, noise_seed)

    def expand(self, final_state: beam.PCollection) -> beam.PCollection:
        return (final_state
                # the released mixture
                | "Mixture" >> beam.Map(_released_mixture)
                # pa.Table of at most SAMPLE_CHUNK_ROWS synthetic rows
                | "FromMixture" >> self._sample)


def _released_mixture(state: RunState) -> gmm.ReleasedMixture:
    return state.mixture


def write_json(value: Any, path: str) -> str:
    """Write one JSON document through Beam's filesystems (local or gs://)."""
    with FileSystems.create(path) as handle:
        handle.write(json.dumps(value, indent=2, sort_keys=False).encode())
    return path


def mixture_json(state: RunState) -> dict:
    return state.mixture.to_json()


def _mixture_chunks(mixture: gmm.ReleasedMixture, num_samples: Optional[int],
                    class_balance: str) -> Iterator[tuple[int, int, int]]:
    yield from gmm.sampling_chunks(mixture.samples_per_class(num_samples, class_balance))


def draw_chunk(chunk: tuple[int, int, int], mixture: gmm.ReleasedMixture, label_type: pa.DataType,
               noise_seed: Optional[int]) -> pa.Table:
    """One sampling work item (class_index, chunk_index, rows) as a table of checked synthetic rows.

    Every sampler (Beam, the local job, `dpsynth sample`) draws through this,
    so the same chunk and seed give the same rows everywhere.
    """
    class_index, chunk_index, rows = chunk
    X, component = mixture.sample_class(class_index, rows, gmm.sampling_rng(noise_seed, class_index, chunk_index))
    finite.require_finite_rows(X, mixture.classes[class_index].label)
    return synthetic_table([mixture.classes[class_index].label] * rows, X, component, label_type)


class SampleFromMixture(beam.PTransform):
    """singleton ReleasedMixture -> PCollection[pa.Table] of synthetic rows (`dpsynth sample`).

    Work items of at most SAMPLE_CHUNK_ROWS rows are spread over workers, so
    a worker's memory is one chunk whatever num_samples is (10^9 rows is
    about 15,000 items, just a longer job).
    """

    def __init__(self, num_samples: Optional[int], class_balance: str, label_type: pa.DataType,
                 noise_seed: Optional[int] = None) -> None:
        super().__init__()
        self._num_samples = num_samples
        self._class_balance = class_balance
        self._label_type = label_type
        self._noise_seed = noise_seed

    def expand(self, mixture: beam.PCollection) -> beam.PCollection:
        released = beam.pvalue.AsSingleton(mixture)
        return (mixture
                # (class_index, chunk_index, rows) work items
                | "Chunks" >> beam.FlatMap(_mixture_chunks, self._num_samples, self._class_balance)
                # spread the chunks over workers
                | "Spread" >> beam.Reshuffle()
                # pa.Table of at most SAMPLE_CHUNK_ROWS synthetic rows
                | "Draw" >> beam.Map(draw_chunk, mixture=released, label_type=self._label_type,
                                     noise_seed=self._noise_seed))
