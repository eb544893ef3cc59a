"""Assembly of the synthesis pipeline graph.

The T Lloyd rounds are unrolled while the graph is built: pass i+1 reads the
state released by pass i as a side input. Every pass re-reads the validated
batches; nothing but released values crosses from one pass to the next.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import apache_beam as beam
import pyarrow as pa

from dpsynth import algorithm
from dpsynth.calibration import ReleasePlan
from dpsynth.params import SynthesisConfig
from dpsynth.passes import pass_names
from dpsynth.validation import REJECT_REASON_COLUMN
from transforms.labels import DiscoverLabels
from transforms.privacy_units import BoundPrivacyUnits
from transforms.release import ReleasePass
from transforms.sample import SampleSynthetic, mixture_json, synthetic_schema, write_json
from transforms.validate import DIAGNOSTICS_TAG, REJECTED_TAG, SumCountsFn, ValidateAndBoundFn

SYNTHETIC_PREFIX = "synthetic"
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"


@dataclasses.dataclass(frozen=True)
class JobPaths:
    """Where the pipeline writes (all inside staging directories)."""

    synthetic_prefix: str
    gmm_json: str
    diagnostics_json: str
    rejected_prefix: Optional[str]


def rejected_schema(input_schema: pa.Schema) -> pa.Schema:
    """The input's schema plus reject_reason; fixed-size lists become lists (a rejected row may be short)."""
    fields = [pa.field(f.name, pa.list_(f.type.value_type), metadata=f.metadata)
              if pa.types.is_fixed_size_list(f.type) else f for f in input_schema]
    return pa.schema(fields).append(pa.field(REJECT_REASON_COLUMN, pa.string()))


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Rejected rows in the dead-letter schema; a column that cannot be cast is nulled, the row kept."""
    columns = []
    for field in schema:
        column = table.column(field.name) if field.name in table.column_names else pa.nulls(table.num_rows)
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def build_synthesis(tables: beam.PCollection, config: SynthesisConfig, plan: ReleasePlan, *,
                    embedding_column: str, label_column: str, label_type: pa.DataType,
                    input_schema: Optional[pa.Schema], paths: JobPaths,
                    reread_input: Optional[Callable[[str], beam.PCollection]] = None) -> None:
    """Attach the whole DP synthesis to a PCollection[pa.Table] of private rows.

    reread_input(pass_name), when given, is a fresh read of the same input:
    each later pass then reads and validates the input again instead of
    re-reading one materialised copy of every validated row. That keeps a
    worker's memory at one batch plus O(k d) state whatever n is (a runner
    otherwise holds the validated rows, pickled, for all passes). It suits
    inputs that are cheap to read again (Parquet), not ones that must be
    embedded again (`generate`), and is not used with a privacy-unit column,
    whose one-record-per-unit sample must be the same in every pass.
    """
    pipeline = tables.pipeline
    # User-level privacy: one random record per unit, before any aggregation.
    unit_streams = None
    if config.privacy_unit_column:
        # {"tables": pa.Table of kept rows, "rejected": pa.Table, "diagnostics": {counter: n}}
        unit_streams = tables | "BoundPrivacyUnits" >> BoundPrivacyUnits(
            config.privacy_unit_column, input_schema, config.noise_seed)
        tables = unit_streams["tables"]
    if config.labels is not None:
        # (label, ...): the public label set, one element
        labels = pipeline | "PublicLabels" >> beam.Create([tuple(config.labels)])
    else:
        labels = tables | "DiscoverLabels" >> DiscoverLabels(label_column, plan, config)
    def validate(counted: bool) -> ValidateAndBoundFn:
        input_dimension = plan.dimension if config.subspace is None else config.subspace.input_dimension
        return ValidateAndBoundFn(embedding_column, label_column, input_dimension, config.radius, config.clip_mode,
                                  count_metrics=counted, max_rows=config.max_rows, subspace=config.subspace)

    label_set = beam.pvalue.AsSingleton(labels)
    # ValidBatch of [rows, plan.dimension] (main), rejected pa.Table, {counter: n}
    validated = tables | "ValidateAndBound" >> beam.ParDo(validate(True), labels=label_set).with_outputs(
        REJECTED_TAG, DIAGNOSTICS_TAG, main="valid")
    batches = validated.valid
    reread = reread_input if reread_input is not None and not config.privacy_unit_column else None
    # RunState: released facts so far and the next pass's partition of each class
    state = labels | "InitialState" >> beam.Map(algorithm.initial_state, plan=plan)
    for index, name in enumerate(pass_names(config.rounds)):
        if reread is not None and index > 0:
            # ValidBatch from this pass's own read of the input (counted once, above)
            pass_batches = (reread(name) | f"Validate[{name}]" >> beam.ParDo(validate(False), labels=label_set)
                            .with_outputs(REJECTED_TAG, DIAGNOSTICS_TAG, main="valid")).valid
        elif reread is not None:
            pass_batches = batches
        else:
            # A fusion break per pass: without it Beam's FnApiRunner fuses the
            # passes' readers of `batches` into one stage whose side inputs depend
            # on that same stage, and stalls ("watermark-pending bundles").
            pass_batches = batches | f"Reread[{name}]" >> beam.Reshuffle()
        state = pass_batches | f"Pass[{name}]" >> ReleasePass(state, plan, config)
    # gmm.json: the released mixture
    _ = (state | "MixtureJson" >> beam.Map(mixture_json)
         | "WriteMixture" >> beam.Map(write_json, paths.gmm_json))
    # pa.Table chunks of synthetic rows -> synthetic-SSSSS-of-NNNNN.parquet
    _ = (state | "Sample" >> SampleSynthetic(config.num_samples, config.class_balance, label_type,
                                              config.noise_seed)
         | "WriteSynthetic" >> beam.io.WriteToParquetBatched(
             paths.synthetic_prefix, synthetic_schema(label_type), file_name_suffix=".parquet",
             shard_name_template=SHARD_TEMPLATE))
    diagnostics, rejected = validated[DIAGNOSTICS_TAG], validated[REJECTED_TAG]
    if unit_streams is not None:
        diagnostics = (diagnostics, unit_streams["diagnostics"]) | "AllDiagnostics" >> beam.Flatten()
        rejected = (rejected, unit_streams["rejected"]) | "AllRejected" >> beam.Flatten()
    # {counter: n} exact diagnostics for the data owner's report
    _ = (diagnostics | "SumDiagnostics" >> beam.CombineGlobally(SumCountsFn())
         | "WriteDiagnostics" >> beam.Map(write_json, paths.diagnostics_json))
    if paths.rejected_prefix is not None and input_schema is not None:
        schema = rejected_schema(input_schema)
        _ = (rejected | "ConformRejected" >> beam.Map(conform, schema)
             | "WriteRejected" >> beam.io.WriteToParquetBatched(
                 paths.rejected_prefix, schema, file_name_suffix=".parquet", shard_name_template=SHARD_TEMPLATE))
