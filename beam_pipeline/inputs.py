"""Driver-side checks of the Parquet input, before any work is launched.

Missing files, unknown columns and unreadable footers are user errors: the
job should stop on the driver with one line, not fail on a worker an hour
later. Only footers are read here, and nothing a row holds decides anything:
the dimension comes from the schema (or --dimension), and an input without
rows is not refused (that refusal would itself reveal an exact fact of the
rows); it gives a normal, all-noise release. A pattern that matches no file
is still an error: that is a fact about paths, not rows.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import pyarrow as pa

from dpsynth.errors import UserError
from dpsynth.params import MAX_DIMENSION
from dpsynth.validation import check_schema, resolve_dimension
from transforms.readers.files import list_files, parquet_schema


@dataclasses.dataclass(frozen=True)
class ParquetInput:
    """The synthesis input as the footers describe it: its files, schema, public dimension and label type."""

    pattern: str
    files: tuple[str, ...]
    schema: pa.Schema
    dimension: int
    label_type: pa.DataType

    @property
    def labels_are_integers(self) -> bool:
        return pa.types.is_integer(self.label_type)


def _label_kind(label_type: pa.DataType) -> str:
    return "integers" if pa.types.is_integer(label_type) else "strings"


def check_same_schema(first: pa.Schema, first_path: str, schema: pa.Schema, path: str,
                      embedding_column: str, label_column: str, extra_columns: tuple[str, ...]) -> None:
    """A later file must hold the columns the job reads, of the first file's kinds.

    Checked on the driver from every footer: a file whose schema drifted would
    otherwise fail a worker, or have every row rejected, hours into the job.
    """
    try:
        check_schema(schema, embedding_column, label_column)
    except UserError as exc:
        raise UserError(f"{path} differs from {first_path}: {exc}") from None
    for column in extra_columns:
        if column not in schema.names:
            raise UserError(f"{path} differs from {first_path}: it has no column {column!r}")
    if _label_kind(schema.field(label_column).type) != _label_kind(first.field(label_column).type):
        raise UserError(f"{path} differs from {first_path}: its labels ({label_column!r}) are "
                        f"{schema.field(label_column).type}, the first file's {first.field(label_column).type}")
    a, b = first.field(embedding_column).type, schema.field(embedding_column).type
    sizes = [getattr(t, "list_size", None) for t in (a, b)]
    if None not in sizes and sizes[0] != sizes[1]:
        raise UserError(f"{path} differs from {first_path}: its embeddings are {b}, the first file's {a}")


def inspect_parquet(pattern: str, embedding_column: str, label_column: str, extra_columns: tuple[str, ...] = (),
                    dimension: Optional[int] = None) -> ParquetInput:
    if dimension is not None and dimension < 1:
        raise UserError(f"--dimension must be a positive integer, got {dimension}")
    if dimension is not None and dimension > MAX_DIMENSION:
        raise UserError(f"--dimension {dimension} is above {MAX_DIMENSION}; project the embeddings to fewer "
                        "dimensions first")
    files = list_files(pattern)
    if not files:
        raise UserError(f"no input file matches {pattern!r}")
    first_path, schema = files[0], parquet_schema(files[0])
    check_schema(schema, embedding_column, label_column)
    for column in extra_columns:
        if column not in schema.names:
            raise UserError(f"input has no column {column!r}; its columns are: {', '.join(schema.names)}")
    for path in files[1:]:  # every footer: a corrupt file is an error on the driver, not on a worker
        check_same_schema(schema, first_path, parquet_schema(path), path, embedding_column, label_column,
                          extra_columns)
    dimension = resolve_dimension(schema, embedding_column, dimension)
    return ParquetInput(pattern, tuple(files), schema, dimension, schema.field(label_column).type)
