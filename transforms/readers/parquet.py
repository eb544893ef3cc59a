"""Parquet records: one column of image bytes, text or vectors, a label column and an optional id column.

Every file's footer is read on the driver: the columns must exist in the
first file and every later file of a glob must hold them, of the same kinds.
The vector length is a public fact of the schema (a fixed-size list or
dpsynth.dimension metadata) or --dimension, never a row's.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import apache_beam as beam
import pyarrow as pa

from dpsynth.errors import UserError
from dpsynth.validation import declared_dimension, resolve_dimension
from transforms.readers.base import INT64, REJECTED, STRING, BatchBuilder, Columns, InputInfo, Reader, register
from transforms.readers.files import match_paths, parquet_schema

# Kinds of column whose values a reader treats alike; a later file may change the width, not the kind.
_KINDS = (pa.types.is_integer, pa.types.is_floating,
          lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
          lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t),
          lambda t: pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t),
          pa.types.is_struct)


def check_same_kinds(first: str, schema: pa.Schema, path: str, other: pa.Schema, columns: Sequence[str]) -> None:
    """Every file of a Parquet glob holds the read columns, of the first file's kinds (checked on the driver)."""
    for column in columns:
        if column not in other.names:
            raise UserError(f"{path} differs from {first}: it has no column {column!r}")
        a, b = schema.field(column).type, other.field(column).type
        if [k(a) for k in _KINDS] != [k(b) for k in _KINDS]:
            raise UserError(f"{path} differs from {first}: its column {column!r} is {b}, the first file's {a}")


class _TableToBatchesFn(beam.DoFn):
    """pyarrow.Table (a Parquet row group) -> RecordBatches + rejections."""

    def __init__(self, info: InputInfo, batch_size: int):
        self.info, self.batch_size = info, batch_size

    def process(self, table: pa.Table) -> Iterator[Any]:
        info = self.info
        builder = BatchBuilder(info.path, self.batch_size, info.has_ids, info.label_type)
        content = table.column(info.columns.content(info.modality)).to_pylist()
        labels = table.column(info.columns.label).to_pylist()
        ids = table.column(info.columns.id).to_pylist() if info.has_ids else [None] * len(labels)
        for row, (item, label, record_id) in enumerate(zip(content, labels, ids)):
            position = record_id if record_id is not None else f"row-group-row {row}"
            yield from builder.check_and_add(position, item, label, record_id, info.modality, info.vector_dim)
        yield from builder.finish()


@register
class ParquetReader(Reader):
    name = "parquet"
    modalities = ("image", "text", "vector")

    def claims(self, name: str) -> bool:
        return name.endswith((".parquet", ".pq"))

    def inspect(self, path: str, modality: str, columns: Columns, vector_dim: int | None,
                idx_labels: str | None) -> InputInfo:
        files = match_paths(path)
        first, schema = files[0], parquet_schema(files[0])
        content = columns.content(modality)
        for column in (content, columns.label):
            if column not in schema.names:
                raise UserError(f"{first} has no column {column!r} (columns: {', '.join(schema.names)})")
        for later in files[1:]:  # every footer: a drifted or corrupt file stops the driver, not a worker
            check_same_kinds(first, schema, later, parquet_schema(later), (content, columns.label))
        if modality == "vector" and (vector_dim is not None or declared_dimension(schema, content) is not None):
            vector_dim = resolve_dimension(schema, content, vector_dim)
        label_type = INT64 if pa.types.is_integer(schema.field(columns.label).type) else STRING
        return InputInfo(path, self.name, modality, columns, tuple(files), label_type,
                         has_ids=columns.id in schema.names, vector_dim=vector_dim)

    def expand(self, pipeline: beam.Pipeline, info: InputInfo, batch_size: int) -> tuple[Any, Any]:
        columns = info.columns
        read = [columns.content(info.modality), columns.label] + ([columns.id] if info.has_ids else [])
        tagged = (
            pipeline
            # element: pyarrow.Table, one Parquet row group
            | "ReadParquet" >> beam.io.ReadFromParquetBatched(info.path, columns=read)
            | "TableToBatches" >> beam.ParDo(_TableToBatchesFn(info, batch_size)).with_outputs(
                REJECTED, main="records"))
        return tagged.records, tagged[REJECTED]
