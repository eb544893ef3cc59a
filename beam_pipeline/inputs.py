"""Driver-side checks of the Parquet input, before any work is launched.

Missing files, unknown columns, unreadable footers and empty input are user
errors: the job should stop on the driver with one line, not fail on a worker
an hour later. Only footers and one small batch are read here.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from dpsynth.errors import UserError
from dpsynth.params import MAX_DIMENSION
from dpsynth.validation import check_schema, infer_dimension


@dataclasses.dataclass(frozen=True)
class ParquetInput:
    pattern: str
    files: tuple[str, ...]
    schema: pa.Schema
    dimension: int
    label_type: pa.DataType
    num_rows: int  # exact, from footers; used only for the delta >= 1/n guard

    @property
    def labels_are_integers(self) -> bool:
        return pa.types.is_integer(self.label_type)


def match_files(pattern: str) -> list[str]:
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception as exc:  # Beam raises BeamIOError for unreachable paths
        raise UserError(f"cannot list input {pattern!r}: {str(exc).splitlines()[0]}") from None
    files = sorted(m.path for m in matched)
    if not files:
        raise UserError(f"no input file matches {pattern!r}")
    return files


def _footer(path: str) -> pq.ParquetFile:
    try:
        handle = FileSystems.open(path)
    except Exception as exc:
        raise UserError(f"cannot read Parquet file {path}: {str(exc).splitlines()[0]}") from None
    try:
        return pq.ParquetFile(handle)
    except Exception as exc:
        handle.close()
        raise UserError(f"cannot read Parquet file {path}: {str(exc).splitlines()[0]}") from None


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
    files = match_files(pattern)
    schema = None
    num_rows = 0
    first_nonempty = None
    for path in files:
        footer = _footer(path)
        if schema is None:
            schema, first_path = footer.schema_arrow, path
            check_schema(schema, embedding_column, label_column)
            for column in extra_columns:
                if column not in schema.names:
                    raise UserError(f"input has no column {column!r}; its columns are: {', '.join(schema.names)}")
        else:
            check_same_schema(schema, first_path, footer.schema_arrow, path, embedding_column, label_column,
                              extra_columns)
        num_rows += footer.metadata.num_rows
        if first_nonempty is None and footer.metadata.num_rows:
            first_nonempty = footer
        else:
            footer.close()
    if num_rows == 0:
        raise UserError(f"the input {pattern!r} holds no rows")
    if dimension is None:
        first_batch = next(first_nonempty.iter_batches(batch_size=1024, columns=[embedding_column]))
        dimension = infer_dimension(pa.Table.from_batches([first_batch]), embedding_column)
        if not dimension:
            raise UserError(f"cannot tell the embedding dimension from {embedding_column!r}; pass --dimension")
    return ParquetInput(pattern, tuple(files), schema, int(dimension), schema.field(label_column).type, num_rows)
