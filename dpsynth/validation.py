"""Row validation and bounding of pyarrow batches, vectorised.

A malformed row is never a crash and never a silent drop: it leaves here with
a reason, is counted, and (only when the data owner asks) written to a
dead-letter file, since it is private data.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dpsynth.errors import OptionError, UserError
from dpsynth.grid import DEFAULT_MAX_ROWS, row_grid, snap_rows
from dpsynth.norms import norm_bins
from dpsynth.private_stats import bound_rows, safe_norms
from dpsynth.subspace import PublicSubspace

REJECT_REASON_COLUMN = "reject_reason"
# Checked in this order; a row gets the first reason that applies.
REJECT_REASONS = ("missing_embedding", "non_numeric", "wrong_dimension", "non_finite", "zero_norm",
                  "missing_label", "unknown_label",
                  # set before validation, by privacy-unit bounding (dpsynth.privacy_units)
                  "missing_privacy_unit")
# Keys of the exact diagnostics (PRIVATE, for the data owner only: beam_pipeline.diagnostics).
ROWS_READ = "rows_read"
ROWS_VALID = "rows_valid"
ROWS_CLIPPED = "rows_clipped"
REJECTED_PREFIX = "rejected_"


def rejected_key(reason: str) -> str:
    return REJECTED_PREFIX + reason


def validation_counts(reason_counts: dict[str, int], rows_read: int, rows_valid: int,
                      rows_clipped: int) -> dict[str, int]:
    """The diagnostics of validated rows: rejections by reason, rows read, valid and clipped."""
    counts = {rejected_key(reason): n for reason, n in reason_counts.items()}
    counts.update({ROWS_READ: rows_read, ROWS_VALID: rows_valid, ROWS_CLIPPED: rows_clipped})
    return counts


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """Public facts about the input: columns, dimension, the label set."""

    embedding_column: str
    label_column: str
    dimension: int
    labels: tuple[Any, ...]
    radius: float
    clip_mode: str
    max_rows: int = DEFAULT_MAX_ROWS  # public bound on rows: fixes the row grid (dpsynth.grid)
    subspace: Optional[PublicSubspace] = None  # bounded rows are then mapped to its k + 1 coordinates

    @property
    def grid(self) -> float:
        return row_grid(self.radius, self.max_rows)

    @property
    def label_array(self) -> pa.Array:
        return pa.array(list(self.labels))


@dataclasses.dataclass
class ValidBatch:
    """Rows that passed: class index per row and bounded embeddings (float32)."""

    class_ids: np.ndarray  # [n] int32, index into InputSpec.labels
    embeddings: np.ndarray  # [n, d] float32 on the row grid (dpsynth.grid), norm <= R exactly
    norm_bins: Optional[np.ndarray] = None  # [n] int16: each row's norm before bounding, binned (dpsynth.norms)

    def __len__(self) -> int:
        return len(self.class_ids)


@dataclasses.dataclass
class ValidationResult:
    valid: ValidBatch
    rejected: Optional[pa.Table]  # the original rows plus REJECT_REASON_COLUMN
    reason_counts: dict[str, int]
    clipped: int


def _numeric_values(list_type: pa.DataType) -> bool:
    value_type = list_type.value_type
    return pa.types.is_floating(value_type) or pa.types.is_integer(value_type)


def is_list_type(data_type: pa.DataType) -> bool:
    return (pa.types.is_list(data_type) or pa.types.is_large_list(data_type)
            or pa.types.is_fixed_size_list(data_type))


def embedding_matrix(column: pa.Array | pa.ChunkedArray, dimension: Optional[int] = None) -> np.ndarray:
    """A list<number> column as float32 [rows, d].

    d is `dimension` when given, else the fixed list size, else the values per
    row; a column whose lists are not all of that length does not reshape
    (ValueError): callers that read untrusted rows check lengths first.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    if dimension is None:
        fixed = pa.types.is_fixed_size_list(column.type)
        dimension = column.type.list_size if fixed else (values.size // len(column) if len(column) else 0)
    return values.reshape(len(column), dimension)


def label_counts(table: pa.Table, label_column: str) -> dict[Any, int]:
    """{label: exact count} over the table's non-null labels, in order of first appearance.

    Exact private counts: only DP label selection (algorithm.select_labels) may look at them.
    """
    counts = pc.value_counts(table.column(label_column).combine_chunks().drop_null())
    return {item["values"]: item["counts"] for item in counts.to_pylist()}


def read_embedding_files(paths: Sequence[str | Path], embedding_column: str = "embedding",
                         label_column: str = "label", dimension: Optional[int] = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of local Parquet files as (float32 [n, d], labels [n]), every bad file a one-line UserError.

    These are whole files read into memory for evaluation and training, not
    the pipeline's input: a malformed row refuses its file instead of being
    rejected. d is `dimension` when given, else the files' own, which must
    agree; files without rows add none (no rows at all: shape (0, d or 0)).
    """
    xs, ys = [], []
    for path in paths:
        try:
            table = pq.read_table(path, columns=[embedding_column, label_column])
        except (OSError, pa.ArrowInvalid, KeyError) as exc:
            raise UserError(f"{path}: cannot read columns {embedding_column!r}, {label_column!r}: "
                            f"{str(exc).splitlines()[0]}") from None
        col = table.column(embedding_column).combine_chunks()
        if not is_list_type(col.type):
            raise UserError(f"{path}: column {embedding_column!r} is {col.type}, expected a list of floats")
        if not table.num_rows:
            continue
        if col.null_count or table.column(label_column).null_count:
            raise UserError(f"{path}: null embeddings or labels")
        lengths = np.asarray(col.value_lengths()) if hasattr(col, "value_lengths") else None
        if lengths is not None and (lengths.min() != lengths.max()):
            raise UserError(f"{path}: embeddings of different lengths ({lengths.min()}..{lengths.max()})")
        width = int(lengths[0]) if lengths is not None else col.type.list_size
        if dimension is not None and width != dimension:
            raise UserError(f"{path}: embeddings have {width} dimensions, expected {dimension}")
        x = embedding_matrix(col, width)
        if not np.isfinite(x).all():
            raise UserError(f"{path}: non-finite values in {embedding_column!r}")
        xs.append(x)
        ys.append(np.asarray(table.column(label_column).to_numpy(zero_copy_only=False)))
    dims = {x.shape[1] for x in xs}
    if len(dims) > 1:
        raise UserError(f"embedding dimensions differ between files: {sorted(dims)}")
    if not xs:
        return np.zeros((0, dimension or 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def check_schema(schema: pa.Schema, embedding_column: str, label_column: str) -> None:
    """One-line errors for columns that are missing or of the wrong kind."""
    names = schema.names
    for setting, column in (("embedding_column", embedding_column), ("label_column", label_column)):
        if column not in names:
            raise OptionError("input has no column {column!r} ({options}); its columns are: {columns}", [setting],
                              column=column, columns=", ".join(names))
    embedding_type = schema.field(embedding_column).type
    if not is_list_type(embedding_type) or not _numeric_values(embedding_type):
        raise UserError(f"column {embedding_column!r} must be a list of numbers, found {embedding_type}")
    label_type = schema.field(label_column).type
    if not (pa.types.is_integer(label_type) or pa.types.is_string(label_type)
            or pa.types.is_large_string(label_type)):
        # Any other type (float, bool, dictionary) could never match the label
        # set, so every row would be rejected as unknown_label.
        raise OptionError("column {column!r} ({options}) must hold integers or strings, found {kind}",
                          ["label_column"], column=label_column, kind=label_type)


def validate_table(table: pa.Table, spec: InputSpec) -> ValidationResult:
    """Split a batch into valid, bounded rows and rejected rows with reasons."""
    n = table.num_rows
    reason = np.full(n, -1, dtype=np.int16)

    def reject(mask: np.ndarray, name: str) -> None:
        reason[(reason < 0) & mask] = REJECT_REASONS.index(name)

    embeddings = table.column(spec.embedding_column).combine_chunks() if n else None
    labels = table.column(spec.label_column).combine_chunks() if n else None
    X = np.zeros((0, spec.dimension))
    if n:
        reject(np.asarray(embeddings.is_null()), "missing_embedding")
        if not is_list_type(embeddings.type) or not _numeric_values(embeddings.type):
            reject(np.ones(n, dtype=bool), "non_numeric")
        else:
            lengths = pc.fill_null(pc.list_value_length(embeddings), -1).to_numpy(zero_copy_only=False)
            reject(lengths != spec.dimension, "wrong_dimension")
            shaped = reason < 0
            if shaped.any():
                flat = pc.list_flatten(embeddings.filter(pa.array(shaped)))
                X = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(-1, spec.dimension)
                finite = np.zeros(n, dtype=bool)
                finite[shaped] = np.isfinite(X).all(axis=1)
                reject(~finite, "non_finite")
        reject(np.asarray(labels.is_null()), "missing_label")
        value_set = spec.label_array
        class_index = (pc.index_in(labels.cast(value_set.type), value_set=value_set)
                       if _comparable(labels.type, spec) else pa.nulls(n, pa.int32()))
        reject(np.asarray(class_index.is_null()), "unknown_label")
    # X holds the rows that had the right shape; keep those that passed everything.
    shaped_rows = np.flatnonzero(_shaped_mask(reason))
    passing = reason[shaped_rows] < 0
    bounded, boundable, clipped = bound_rows(X[passing], spec.radius, spec.clip_mode, spec.grid)
    if spec.subspace is not None:
        # [rows, k + 1]: the same norms, on the row grid again (dpsynth.subspace)
        bounded = snap_rows(spec.subspace.encode(bounded), spec.radius, spec.grid)
    keep_rows = shaped_rows[passing]
    reason[keep_rows[~boundable]] = REJECT_REASONS.index("zero_norm")
    keep_rows = keep_rows[boundable]
    class_ids = (np.asarray(class_index.to_numpy(zero_copy_only=False))[keep_rows].astype(np.int32)
                 if n else np.zeros(0, np.int32))
    valid = ValidBatch(class_ids, bounded[boundable], norm_bins(safe_norms(X[passing][boundable])))
    rejected_mask = reason >= 0
    counts = {REJECT_REASONS[i]: int(c) for i, c in enumerate(np.bincount(reason[rejected_mask],
                                                                          minlength=len(REJECT_REASONS))) if c}
    rejected = None
    if rejected_mask.any():
        rows = table.filter(pa.array(rejected_mask))
        rows = rows.append_column(REJECT_REASON_COLUMN,
                                  pa.array([REJECT_REASONS[i] for i in reason[rejected_mask]], pa.string()))
        rejected = rows
    return ValidationResult(valid, rejected, counts, clipped)


def _shaped_mask(reason: np.ndarray) -> np.ndarray:
    """Rows whose embedding made it into X: not missing, numeric, right length."""
    early = {REJECT_REASONS.index(r) for r in ("missing_embedding", "non_numeric", "wrong_dimension")}
    return ~np.isin(reason, list(early))


def _comparable(label_type: pa.DataType, spec: InputSpec) -> bool:
    value_type = spec.label_array.type
    if pa.types.is_integer(label_type) and pa.types.is_integer(value_type):
        return True
    return (pa.types.is_string(label_type) or pa.types.is_large_string(label_type)) and \
        pa.types.is_string(value_type)


DIMENSION_METADATA = b"dpsynth.dimension"  # written by `dpsynth embed`: the encoder's declared output size


def declared_dimension(schema: pa.Schema, embedding_column: str) -> Optional[int]:
    """d from public facts of the schema: a fixed-size list, or dpsynth's own metadata; else None.

    Never from a row: a variable-length first row is a private record, and a
    short one would make every other row "wrong dimension" (an
    infinite-epsilon distinguisher).
    """
    field = schema.field(embedding_column)
    if pa.types.is_fixed_size_list(field.type):
        return field.type.list_size
    for metadata in (field.metadata, schema.metadata):
        value = (metadata or {}).get(DIMENSION_METADATA)
        if value is not None:
            try:
                d = int(value)
            except ValueError:
                return None
            return d if d > 0 else None
    return None


def resolve_dimension(schema: pa.Schema, embedding_column: str, given: Optional[int]) -> int:
    """The one dimension of a run: `given`, checked against the schema's declared size, or that size.

    Errors call `given` the setting dimension (an OptionError: a command line
    renders it as its flag).
    """
    if given is not None and given < 1:
        raise OptionError("{options} must be a positive integer, got {given}", ["dimension"], given=given)
    declared = declared_dimension(schema, embedding_column)
    if given is not None and declared is not None and given != declared:
        raise OptionError("{options} {given} differs from the {declared} that the schema of {column!r} declares",
                          ["dimension"], given=given, declared=declared, column=embedding_column)
    dimension = given or declared
    if not dimension:
        raise OptionError("the embedding size is not a public fact of this input ({column!r} is a variable-length "
                          "list without dpsynth.dimension metadata); pass {options} d", ["dimension"],
                          column=embedding_column)
    return int(dimension)
