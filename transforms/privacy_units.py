"""Beam side of user-level privacy: one random record per privacy unit, before any aggregation."""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional

import apache_beam as beam
import pyarrow as pa

from dpsynth import privacy_units
from dpsynth.validation import rejected_key
from transforms.validate import DIAGNOSTICS_TAG, REJECTED_TAG

# Rows per re-batched table after the per-unit combine.
REBATCH_ROWS = 4096


class PreselectPerBatchFn(beam.DoFn):
    """pa.Table -> (unit id, (priority, row dict)) for the best row of each unit in the batch.

    Reducing within the batch first (vectorised) sends one element per unit
    per batch to the shuffle instead of one per row. Also emits the rows with
    no unit id (REJECTED_TAG) and exact counters (DIAGNOSTICS_TAG).
    """

    def __init__(self, column: str, noise_seed: Optional[int]) -> None:
        self._column = column
        self._noise_seed = noise_seed

    def process(self, table: pa.Table) -> Iterator[Any]:
        with_id, rejected = privacy_units.split_missing(table, self._column)
        kept, priorities = privacy_units.keep_best_per_unit(
            with_id, self._column, privacy_units.row_priorities(with_id, self._noise_seed))
        counts = {privacy_units.ROWS_BEFORE: table.num_rows}
        if rejected is not None:
            counts[rejected_key(privacy_units.MISSING_UNIT_REASON)] = rejected.num_rows
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, rejected)
        yield beam.pvalue.TaggedOutput(DIAGNOSTICS_TAG, counts)
        for row, priority in zip(kept.to_pylist(), priorities.tolist()):
            yield row[self._column], (priority, row)


def _best(candidates: Iterable[tuple[int, dict]]) -> Optional[tuple[int, dict]]:
    """The highest priority (a uniform choice of the unit's rows); order-free, so a valid combiner."""
    return max(candidates, key=lambda candidate: candidate[0], default=None)


def _kept_row(unit_and_best: tuple[Any, tuple[int, dict]]) -> dict:
    return unit_and_best[1][1]


def _kept_count(table: pa.Table) -> dict[str, int]:
    return {privacy_units.ROWS_KEPT: table.num_rows}


def _to_table(rows: list[dict], schema: Optional[pa.Schema]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


class BoundPrivacyUnits(beam.PTransform):
    """PCollection[pa.Table] -> {"tables": kept rows as pa.Table, "rejected": pa.Table, "diagnostics": dict}.

    Every unit keeps exactly one of its rows; the extra rows are counted
    (unit_extra_rows_dropped) by difference, since the combine only sees units.
    """

    def __init__(self, column: str, schema: Optional[pa.Schema], noise_seed: Optional[int]) -> None:
        super().__init__()
        self._column = column
        self._schema = schema
        self._noise_seed = noise_seed

    def expand(self, tables: beam.PCollection) -> dict[str, beam.PCollection]:
        pre = tables | "PreselectPerBatch" >> beam.ParDo(
            PreselectPerBatchFn(self._column, self._noise_seed)).with_outputs(REJECTED_TAG, DIAGNOSTICS_TAG,
                                                                              main="candidates")
        # (unit id, (priority, row dict)): the unit's single kept row
        best = pre.candidates | "BestPerUnit" >> beam.CombinePerKey(_best)
        # row dict
        rows = best | "DropKey" >> beam.Map(_kept_row)
        # pa.Table of up to REBATCH_ROWS kept rows
        kept = (rows | "Rebatch" >> beam.BatchElements(min_batch_size=1, max_batch_size=REBATCH_ROWS)
                | "ToTable" >> beam.Map(_to_table, self._schema))
        # {unit_rows_kept: n} per kept table, to count dropped rows by difference
        kept_counts = kept | "CountKept" >> beam.Map(_kept_count)
        diagnostics = ((pre[DIAGNOSTICS_TAG], kept_counts) | "UnitCounts" >> beam.Flatten())
        return {"tables": kept, "rejected": pre[REJECTED_TAG], "diagnostics": diagnostics}
