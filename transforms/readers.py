"""Beam sources for private records: image folders, Parquet, JSONL, CSV and IDX.

Every reader emits `RecordBatch` elements (a few dozen records each, never one
record per element: Beam costs about 50 us per element per stage here) and,
on a second tagged output, one dict per rejected record with the reason. A
record is rejected, never dropped and never a crash, when its image does not
decode, its text is empty, its label is missing, or its line does not parse.
Each rejection also bumps a Beam counter `dpsynth.read/rejected_<reason>`.

Paths may be local, globs, or gs:// (anything Beam's FileSystems reads).
What the reader can check before the job starts (the path matches something,
the Parquet/CSV columns exist, the IDX headers agree) it checks up front and
reports as a one-line UserError.
"""
from __future__ import annotations

import bz2
import contextlib
import csv
import dataclasses
import gzip
import io
import json
import math
import posixpath
import struct
from typing import Any, Iterator, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from dpsynth.encoders.imaging import ImageDecodeError, as_uint8_image, decode_image
from dpsynth.errors import UserError
from dpsynth.validation import declared_dimension, resolve_dimension

REJECTED = "rejected"
FORMATS = ("images", "parquet", "jsonl", "csv", "idx")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
DEFAULT_BATCH_SIZE = 32
COUNTER_NAMESPACE = "dpsynth.read"


@dataclasses.dataclass
class RecordBatch:
    """A batch of raw records of one modality, in reading order.

    items: decoded images (uint8 HxW / HxWx3), strings, or float vectors;
    labels: one label per item (int for IDX, else as read, str by default);
    ids: one id per item, or None when the input has no ids.
    """

    source: str
    items: list
    labels: list
    ids: list | None = None

    def __len__(self) -> int:
        return len(self.items)


@dataclasses.dataclass(frozen=True)
class Columns:
    """Input column names (flags rename them)."""

    text: str = "text"
    image: str = "image"
    label: str = "label"
    id: str = "id"
    embedding: str = "embedding"

    def content(self, modality: str) -> str:
        return {"image": self.image, "text": self.text, "vector": self.embedding}[modality]


def rejection(source: str, position: Any, reason: str, record_id: Any = None, label: Any = None) -> dict:
    """One dead-letter row. It names the record; it never carries its content."""
    return {"source": source, "position": str(position), "id": None if record_id is None else str(record_id),
            "label": None if label is None else str(label), "reason": reason}


def _count_rejection(reason: str) -> None:
    kind = reason.split(":", 1)[0].strip().replace(" ", "_")
    Metrics.counter(COUNTER_NAMESPACE, "rejected").inc()
    Metrics.counter(COUNTER_NAMESPACE, f"rejected_{kind}").inc()


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


class _BatchBuilder:
    """Collects accepted records and rejections; flushes full batches."""

    def __init__(self, source: str, batch_size: int, with_ids: bool, label_kind: str):
        self.source, self.batch_size, self.with_ids, self.label_kind = source, batch_size, with_ids, label_kind
        self.items: list = []
        self.labels: list = []
        self.ids: list = []

    def add(self, item: Any, label: Any, record_id: Any = None) -> Iterator[Any]:
        self.items.append(item)
        self.labels.append(int(label) if self.label_kind == "int64" else str(label))
        self.ids.append(None if record_id is None else str(record_id))
        if len(self.items) >= self.batch_size:
            yield self.flush()

    def reject(self, position: Any, reason: str, record_id: Any = None, label: Any = None) -> Any:
        _count_rejection(reason)
        return beam.pvalue.TaggedOutput(REJECTED, rejection(self.source, position, reason, record_id, label))

    def flush(self) -> RecordBatch:
        Metrics.counter(COUNTER_NAMESPACE, "records").inc(len(self.items))
        batch = RecordBatch(self.source, self.items, self.labels, self.ids if self.with_ids else None)
        self.items, self.labels, self.ids = [], [], []
        return batch

    def finish(self) -> Iterator[RecordBatch]:
        if self.items:
            yield self.flush()


def _check_label(label: Any, label_kind: str) -> str | None:
    """None when the label is usable, else the rejection reason."""
    if _is_missing(label):
        return "missing label"
    if label_kind == "int64":
        try:
            if isinstance(label, bool) or int(label) != float(label):
                raise ValueError
        except (TypeError, ValueError):
            return f"bad label: {label!r} is not an integer"
    return None


def _check_item(item: Any, modality: str, vector_dim: int | None = None) -> tuple[Any, str | None]:
    """(parsed item, None) or (None, rejection reason), per modality."""
    if item is None:
        return None, f"missing {modality}"
    if modality == "text":
        if not isinstance(item, str):
            return None, f"bad text: not a string ({type(item).__name__})"
        if not item.strip():
            return None, "empty text"
        return item, None
    if modality == "image":
        try:
            if isinstance(item, dict):  # Hugging Face datasets style {"bytes": ..., "path": ...}
                item = item.get("bytes")
            if isinstance(item, (bytes, bytearray, memoryview)):
                return decode_image(bytes(item)), None
            return as_uint8_image(np.asarray(item)), None
        except ImageDecodeError as exc:
            return None, str(exc)
        except ValueError as exc:
            return None, f"unreadable image: {exc}"
    # vector
    try:
        vec = np.asarray(item, dtype=np.float32)
    except (TypeError, ValueError):
        return None, "bad vector: not numeric"
    if vec.ndim != 1 or vec.size == 0:
        return None, "bad vector: empty or not 1-d"
    if not np.all(np.isfinite(vec)):
        return None, "bad vector: non-finite value"
    if vector_dim is not None and vec.size != vector_dim:
        return None, f"bad vector: length {vec.size}, expected {vector_dim}"
    return vec, None


# --------------------------------------------------------------------------
# Up-front checks (graph construction time)
# --------------------------------------------------------------------------

def detect_format(path: str) -> str:
    """Format from the path: a directory is an image folder, else the extension."""
    lower = path.lower().rstrip("/")
    for suffix in (".gz", ".bz2"):
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
    if lower.endswith(".parquet") or lower.endswith(".pq"):
        return "parquet"
    if lower.endswith(".jsonl") or lower.endswith(".json") or lower.endswith(".ndjson"):
        return "jsonl"
    if lower.endswith(".csv"):
        return "csv"
    if "idx3-ubyte" in lower or lower.endswith(".idx") or "idx3" in posixpath.basename(lower):
        return "idx"
    if path.endswith("/") or _is_directory(path):
        return "images"
    raise UserError(f"cannot tell the format of {path!r} from its name; pass --input-format "
                    f"({', '.join(FORMATS)})")


def _is_directory(path: str) -> bool:
    if "://" not in path:
        import os

        return os.path.isdir(path)
    try:  # object stores: a "directory" is a prefix with something under it
        return bool(FileSystems.match([path.rstrip("/") + "/*"], limits=[1])[0].metadata_list)
    except Exception:  # noqa: BLE001 - any listing failure means "not a directory we can read"
        return False


def match_paths(pattern: str, limit: int | None = None) -> list[str]:
    """Paths matching a file or glob; UserError when nothing matches."""
    try:
        result = FileSystems.match([pattern], limits=[limit] if limit else None)[0]
    except Exception as exc:  # noqa: BLE001 - Beam raises BeamIOError, IOError, ...
        raise UserError(f"cannot list {pattern!r}: {str(exc).splitlines()[0] if str(exc) else exc}") from exc
    paths = sorted(m.path for m in result.metadata_list)
    if not paths:
        raise UserError(f"no input files match {pattern!r}")
    return paths


@contextlib.contextmanager
def _open(path: str) -> Iterator[io.BufferedIOBase]:
    """A binary stream, decompressed by extension (.gz, .bz2); io-compatible,
    unlike Beam's CompressedFile, so TextIOWrapper and csv can sit on it."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        lower = path.lower()
        if lower.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="rb") as handle:
                yield handle
        elif lower.endswith(".bz2"):
            with bz2.BZ2File(raw, mode="rb") as handle:
                yield handle
        else:
            yield raw


def _image_pattern(folder: str) -> str:
    return FileSystems.join(folder.rstrip("/"), "*", "*")


def _is_image_path(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _keep_image_file(meta: Any) -> bool:
    """Files without an image extension are not records: skipped, but counted."""
    if _is_image_path(meta.path):
        return True
    Metrics.counter(COUNTER_NAMESPACE, "skipped_non_image_files").inc()
    return False


# --------------------------------------------------------------------------
# DoFns
# --------------------------------------------------------------------------

class _ReadImageFilesFn(beam.DoFn):
    """[FileMetadata] (a batch of paths) -> RecordBatch of decoded images + rejections."""

    def __init__(self, folder: str):
        self.folder = folder.rstrip("/")

    def process(self, metas: Sequence[Any]) -> Iterator[Any]:
        builder = _BatchBuilder(self.folder, max(1, len(metas)), with_ids=True, label_kind="string")
        for meta in metas:
            path = meta.path
            label = posixpath.basename(posixpath.dirname(path.replace("\\", "/")))
            record_id = f"{label}/{posixpath.basename(path)}"
            try:
                with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                    data = handle.read()
                image = decode_image(data)
            except ImageDecodeError as exc:
                yield builder.reject(record_id, str(exc), record_id, label)
                continue
            except OSError as exc:
                yield builder.reject(record_id, f"unreadable image: {type(exc).__name__}", record_id, label)
                continue
            yield from builder.add(image, label, record_id)
        yield from builder.finish()


class _TableToBatchesFn(beam.DoFn):
    """pyarrow.Table (a Parquet row group) -> RecordBatches + rejections."""

    def __init__(self, source: str, modality: str, columns: Columns, with_ids: bool, label_kind: str,
                 batch_size: int, vector_dim: int | None = None):
        self.source, self.modality, self.columns, self.vector_dim = source, modality, columns, vector_dim
        self.with_ids, self.label_kind, self.batch_size = with_ids, label_kind, batch_size

    def process(self, table: pa.Table) -> Iterator[Any]:
        builder = _BatchBuilder(self.source, self.batch_size, self.with_ids, self.label_kind)
        content = table.column(self.columns.content(self.modality)).to_pylist()
        labels = table.column(self.columns.label).to_pylist()
        ids = table.column(self.columns.id).to_pylist() if self.with_ids else [None] * len(labels)
        for row, (item, label, record_id) in enumerate(zip(content, labels, ids)):
            position = record_id if record_id is not None else f"row-group-row {row}"
            yield from _check_and_add(builder, position, item, label, record_id, self.label_kind, self.modality,
                                      self.vector_dim)
        yield from builder.finish()


def _check_and_add(builder: "_BatchBuilder", position: Any, item: Any, label: Any, record_id: Any,
                   label_kind: str, modality: str, vector_dim: int | None) -> Iterator[Any]:
    """One record: a dead-letter row with its reason, or into the current batch."""
    reason = _check_label(label, label_kind)
    parsed = None
    if reason is None:
        parsed, reason = _check_item(item, modality, vector_dim)
    if reason is not None:
        yield builder.reject(position, reason, record_id, None if _is_missing(label) else label)
        return
    yield from builder.add(parsed, label, record_id)


def _csv_rows(text: io.TextIOBase) -> Iterator[tuple[int, dict | None, str | None]]:
    """(last physical line, row, None) per record, or (line, None, reason) per line of a malformed record.

    Strict parsing: a stray or unterminated quote is an error, not a field
    that silently swallows the following records. Each physical line such a
    record spans is counted as one rejection, so merged records are never
    lost without a count.
    """
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return
    last = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            reason = "bad csv: unterminated quote" if "end of data" in str(exc) else f"bad csv: {exc}"
            for line_no in range(last + 1, max(reader.line_num, last + 1) + 1):
                yield line_no, None, reason
            last = reader.line_num
            continue
        if not fields:  # blank line
            last = reader.line_num
            continue
        if len(fields) > len(header):
            yield reader.line_num, None, f"bad csv: {len(fields)} fields, the header has {len(header)}"
        else:
            yield reader.line_num, dict(zip(header, fields)), None
        last = reader.line_num


class _ReadTextRowsFn(beam.DoFn):
    """A JSONL or CSV file path -> RecordBatches + rejections, one pass, streaming."""

    def __init__(self, fmt: str, modality: str, columns: Columns, with_ids: bool, batch_size: int,
                 vector_dim: int | None = None):
        self.fmt, self.modality, self.columns, self.vector_dim = fmt, modality, columns, vector_dim
        self.with_ids, self.batch_size = with_ids, batch_size

    def _rows(self, path: str) -> Iterator[tuple[int, dict | None, str | None]]:
        with _open(path) as raw:
            # utf-8-sig: a leading byte-order mark is not part of the first column's name or the first line
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
            if self.fmt == "csv":
                yield from _csv_rows(text)
                return
            for line_no, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield line_no, None, f"bad json: {exc.msg}"
                    continue
                if not isinstance(row, dict):
                    yield line_no, None, "bad json: line is not an object"
                    continue
                yield line_no, row, None

    def process(self, path: str) -> Iterator[Any]:
        builder = _BatchBuilder(path, self.batch_size, self.with_ids, "string")
        content_col = self.columns.content(self.modality)
        for line_no, row, error in self._rows(path):
            position = f"line {line_no}"
            if error is not None:
                yield builder.reject(position, error)
                continue
            record_id = row.get(self.columns.id) if self.with_ids else None
            label = row.get(self.columns.label)
            item = row.get(content_col)
            if self.modality == "vector" and isinstance(item, str):
                try:
                    item = json.loads(item)
                except json.JSONDecodeError:
                    item = None
            yield from _check_and_add(builder, position, item, label, record_id, "string", self.modality,
                                      self.vector_dim)
        yield from builder.finish()


def _read_idx(path: str) -> np.ndarray:
    """Parse an IDX file (gzip or plain): magic 0,0,dtype,ndim; big-endian dims; data."""
    with _open(path) as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise UserError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise UserError(f"{path}: unknown IDX data type 0x{data[2]:02x}")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4: 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtypes[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise UserError(f"{path}: IDX header says {dims} but holds {arr.size} values")
    return arr.reshape(dims)


def _idx_header(path: str) -> tuple[int, tuple[int, ...]]:
    with _open(path) as handle:
        head = handle.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0:
            raise UserError(f"{path} is not an IDX file (bad magic number)")
        ndim = head[3]
        dims = struct.unpack(f">{ndim}I", handle.read(4 * ndim))
    return head[2], dims


def idx_labels_path(images_path: str) -> str:
    """The conventional labels file beside an images file (MNIST naming)."""
    directory, name = posixpath.split(images_path)
    for old, new in (("images-idx3-ubyte", "labels-idx1-ubyte"), ("images.idx3", "labels.idx1"),
                     ("images", "labels")):
        if old in name:
            return posixpath.join(directory, name.replace(old, new)) if directory else name.replace(old, new)
    raise UserError(f"cannot derive the labels file of {images_path!r}; pass --idx-labels")


class _ReadIdxFn(beam.DoFn):
    """(images path, labels path) -> RecordBatches of uint8 images with int labels."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size

    def process(self, paths: tuple[str, str]) -> Iterator[RecordBatch]:
        images_path, labels_path = paths
        images = _read_idx(images_path)
        labels = _read_idx(labels_path).astype(np.int64).reshape(-1)
        base = posixpath.basename(images_path)
        for start in range(0, len(images), self.batch_size):
            stop = min(start + self.batch_size, len(images))
            Metrics.counter(COUNTER_NAMESPACE, "records").inc(stop - start)
            yield RecordBatch(images_path, [images[i] for i in range(start, stop)],
                              labels[start:stop].tolist(), [f"{base}:{i}" for i in range(start, stop)])


# --------------------------------------------------------------------------
# The composite
# --------------------------------------------------------------------------

def _check_same_columns(first: str, schema: pa.Schema, path: str, other: pa.Schema, columns: Sequence[str]) -> None:
    """Every file of a Parquet glob holds the read columns, of the first file's kinds (checked on the driver)."""
    for column in columns:
        if column not in other.names:
            raise UserError(f"{path} differs from {first}: it has no column {column!r}")
        a, b = schema.field(column).type, other.field(column).type
        kind = (pa.types.is_integer, pa.types.is_floating, lambda t: pa.types.is_string(t) or
                pa.types.is_large_string(t), lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t),
                lambda t: pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t),
                pa.types.is_struct)
        if [k(a) for k in kind] != [k(b) for k in kind]:
            raise UserError(f"{path} differs from {first}: its column {column!r} is {b}, the first file's {a}")


class ReadRecords(beam.PTransform):
    """Read private records from `input_path` as RecordBatches.

    expand() returns {"records": PCollection[RecordBatch],
    "rejected": PCollection[dict]}. After construction, `label_type`
    ("int64" or "string") and `has_ids` tell the writer its schema.
    """

    def __init__(self, input_path: str, modality: str, input_format: str | None = None,
                 columns: Columns = Columns(), batch_size: int = DEFAULT_BATCH_SIZE,
                 idx_labels: str | None = None, vector_dim: int | None = None):
        super().__init__()
        if modality not in ("image", "text", "vector"):
            raise UserError(f"unknown modality {modality!r}")
        self.input_path, self.modality, self.columns = input_path, modality, columns
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")
        self.format = input_format or detect_format(input_path)
        if self.format not in FORMATS:
            raise UserError(f"unknown input format {self.format!r}; choose one of {', '.join(FORMATS)}")
        self.idx_labels = idx_labels
        self.label_type = "string"
        self.has_ids = False
        self.num_rows: int | None = None  # records in the input when cheap to know; decides nothing
        # For precomputed vectors: their length, a public fact (--dimension, a fixed-size-list schema or
        # dpsynth's metadata), never a row's: rows of another length are counted rejections.
        if vector_dim is not None and vector_dim < 1:
            raise UserError(f"--dimension must be a positive integer, got {vector_dim}")
        self.vector_dim: int | None = vector_dim
        getattr(self, f"_check_{self.format}")()
        if self.modality == "vector" and not self.vector_dim:
            raise UserError("the vector length is not a public fact of this input (no fixed-size-list schema "
                            "or dpsynth.dimension metadata); pass --dimension d")

    # ---- up-front checks: each sets label_type / has_ids and validates inputs

    def _need(self, *modalities: str) -> None:
        if self.modality not in modalities:
            raise UserError(f"{self.format} input holds {'/'.join(modalities)} records, but the encoder "
                            f"expects {self.modality}")

    def _check_images(self) -> None:
        self._need("image")
        pattern = _image_pattern(self.input_path)
        try:
            found = FileSystems.match([pattern])[0].metadata_list
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"cannot list image folder {self.input_path!r}: {exc}") from exc
        self.num_rows = sum(1 for m in found if _is_image_path(m.path))
        if not self.num_rows:
            raise UserError(f"image folder {self.input_path!r} has no images "
                            f"(expected {self.input_path.rstrip('/')}/<label>/*.png|jpg)")
        self.has_ids = True

    def _check_parquet(self) -> None:
        import pyarrow.parquet as pq

        files = match_paths(self.input_path)
        first = files[0]
        self.num_rows = 0
        for path in files:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                footer = pq.ParquetFile(handle)
                self.num_rows += footer.metadata.num_rows
                if path != first:
                    _check_same_columns(first, schema, path, footer.schema_arrow,
                                        (self.columns.content(self.modality), self.columns.label))
                if path == first:
                    schema = footer.schema_arrow
                    column = self.columns.content(self.modality)
                    if self.modality == "vector" and column in schema.names:
                        declared = declared_dimension(schema, column)
                        if declared is not None or self.vector_dim is not None:
                            self.vector_dim = resolve_dimension(schema, column, self.vector_dim)
        content = self.columns.content(self.modality)
        for col in (content, self.columns.label):
            if col not in schema.names:
                raise UserError(f"{first} has no column {col!r} (columns: {', '.join(schema.names)})")
        self.has_ids = self.columns.id in schema.names
        label_type = schema.field(self.columns.label).type
        self.label_type = "int64" if pa.types.is_integer(label_type) else "string"

    def _check_text_file(self) -> None:
        first = match_paths(self.input_path)[0]
        content = self.columns.content(self.modality)
        with _open(first) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
            if self.format == "csv":
                header = next(csv.reader(text), None)
                if not header:
                    raise UserError(f"{first} is empty (a CSV needs a header row)")
                keys = set(header)
                for col in (content, self.columns.label):
                    if col not in keys:
                        raise UserError(f"{first} has no column {col!r} (header: {', '.join(header)})")
            else:
                keys = set()
                for line in text:
                    if line.strip():
                        try:
                            row = json.loads(line)
                            keys = set(row) if isinstance(row, dict) else set()
                        except json.JSONDecodeError:
                            continue
                        break
        self.has_ids = self.columns.id in keys

    def _check_jsonl(self) -> None:
        self._need("text", "vector")
        self._check_text_file()

    def _check_csv(self) -> None:
        self._need("text", "vector")
        self._check_text_file()

    def _check_idx(self) -> None:
        self._need("image")
        self.idx_pairs = []
        images = match_paths(self.input_path)
        if self.idx_labels and len(images) != 1:
            raise UserError("--idx-labels names one labels file, but the input matches "
                            f"{len(images)} image files")
        for path in images:
            labels = self.idx_labels or idx_labels_path(path)
            if not FileSystems.exists(labels):
                raise UserError(f"labels file {labels} (for {path}) does not exist; pass --idx-labels")
            dtype, dims = _idx_header(path)
            ldtype, ldims = _idx_header(labels)
            if dtype != 0x08 or len(dims) not in (3, 4):
                raise UserError(f"{path}: expected uint8 images [n, rows, cols(, channels)], got {dims}")
            if len(ldims) != 1 or ldims[0] != dims[0]:
                raise UserError(f"{labels} holds {ldims} labels for {dims[0]} images in {path}")
            self.idx_pairs.append((path, labels))
            self.num_rows = (self.num_rows or 0) + dims[0]
        self.has_ids = True
        self.label_type = "int64"

    # ---- graph

    def expand(self, pbegin):
        p = pbegin.pipeline if hasattr(pbegin, "pipeline") else pbegin
        fmt = self.format
        if fmt == "images":
            tagged = (
                p
                | "ImagePattern" >> beam.Create([_image_pattern(self.input_path)])
                # element: file pattern -> FileMetadata per matching file
                | "MatchFiles" >> fileio.MatchAll()
                | "KeepImages" >> beam.Filter(_keep_image_file)
                | "SpreadFiles" >> beam.Reshuffle()
                # element: [FileMetadata] of up to batch_size files
                | "BatchPaths" >> beam.BatchElements(min_batch_size=self.batch_size,
                                                     max_batch_size=self.batch_size)
                | "DecodeImages" >> beam.ParDo(_ReadImageFilesFn(self.input_path)).with_outputs(
                    REJECTED, main="records"))
        elif fmt == "parquet":
            with_ids, label_kind = self.has_ids, self.label_type
            cols = [self.columns.content(self.modality), self.columns.label] + ([self.columns.id] if with_ids else [])
            tagged = (
                p
                # element: pyarrow.Table, one Parquet row group
                | "ReadParquet" >> beam.io.ReadFromParquetBatched(self.input_path, columns=cols)
                | "TableToBatches" >> beam.ParDo(_TableToBatchesFn(
                    self.input_path, self.modality, self.columns, with_ids, label_kind,
                    self.batch_size, self.vector_dim)).with_outputs(REJECTED, main="records"))
        elif fmt in ("jsonl", "csv"):
            tagged = (
                p
                | "FilePattern" >> beam.Create([self.input_path])
                # element: FileMetadata -> path (str)
                | "MatchFiles" >> fileio.MatchAll()
                | "Paths" >> beam.Map(lambda m: m.path)
                | "SpreadFiles" >> beam.Reshuffle()
                # element: path -> RecordBatch of strings / vectors
                | "ParseRows" >> beam.ParDo(_ReadTextRowsFn(
                    fmt, self.modality, self.columns, self.has_ids, self.batch_size,
                    self.vector_dim)).with_outputs(REJECTED, main="records"))
        else:  # idx
            records = (
                p
                # element: (images path, labels path)
                | "IdxFiles" >> beam.Create(self.idx_pairs)
                | "ReadIdx" >> beam.ParDo(_ReadIdxFn(self.batch_size)))
            rejected = p | "NoRejections" >> beam.Create([])
            return {"records": records | "Spread" >> beam.Reshuffle(), "rejected": rejected}
        return {"records": tagged.records | "Spread" >> beam.Reshuffle(), "rejected": tagged[REJECTED]}
