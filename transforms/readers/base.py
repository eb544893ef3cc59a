"""What every reader shares: the batch and rejection types, the record checks, and the registry.

A reader is one input format. On the driver, `inspect` checks what can be
checked before the job starts (files match, columns exist, headers agree)
and returns an InputInfo; in the graph, `expand` turns that InputInfo into
RecordBatches plus rejections. Readers register themselves by format name in
READERS, the one place the format names live.

A record is rejected, never dropped and never a crash, when its content does
not parse or its label is missing: it leaves on the REJECTED output with a
reason and bumps a Beam counter `dpsynth.read/rejected_<reason>`.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, ClassVar, Iterator

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from dpsynth.encoders.imaging import ImageDecodeError, as_uint8_image, decode_image

REJECTED = "rejected"
MODALITIES = ("image", "text", "vector")
DEFAULT_BATCH_SIZE = 32
COUNTER_NAMESPACE = "dpsynth.read"
INT64, STRING = "int64", "string"  # the label types a reader reports


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


@dataclasses.dataclass(frozen=True)
class InputInfo:
    """What the driver's input check learnt: public facts of paths, schemas and headers, never of a row.

    vector_dim is the length of precomputed vectors (modality "vector"): from
    --dimension, a fixed-size-list schema or dpsynth's metadata, so rows of
    another length are counted rejections. label_files pairs each IDX images
    file of `files` with its labels file; other formats leave it empty.
    """

    path: str
    format: str
    modality: str
    columns: Columns
    files: tuple[str, ...]
    label_type: str = STRING
    has_ids: bool = False
    vector_dim: int | None = None
    label_files: tuple[str, ...] = ()


class Reader(abc.ABC):
    """One input format: its driver-side check and its part of the graph."""

    name: ClassVar[str]
    modalities: ClassVar[tuple[str, ...]]  # the record kinds this format can hold
    holds_directories: ClassVar[bool] = False  # a directory path is of this format

    def claims(self, name: str) -> bool:
        """Whether a lower-cased path, without .gz/.bz2, names a file of this format."""
        return False

    @abc.abstractmethod
    def inspect(self, path: str, modality: str, columns: Columns, vector_dim: int | None,
                idx_labels: str | None) -> InputInfo:
        """Check the input on the driver (names, footers, headers only); UserError when it cannot be read."""

    @abc.abstractmethod
    def expand(self, pipeline: beam.Pipeline, info: InputInfo, batch_size: int) -> tuple[Any, Any]:
        """(PCollection[RecordBatch], PCollection[dict] of rejections) for the input `info` describes."""


READERS: dict[str, Reader] = {}


def register(cls: type[Reader]) -> type[Reader]:
    """Class decorator: make a reader available under its format name."""
    READERS[cls.name] = cls()
    return cls


def rejection(source: str, position: Any, reason: str, record_id: Any = None, label: Any = None) -> dict:
    """One dead-letter row. It names the record; it never carries its content."""
    return {"source": source, "position": str(position), "id": None if record_id is None else str(record_id),
            "label": None if label is None else str(label), "reason": reason}


def count_records(n: int) -> None:
    Metrics.counter(COUNTER_NAMESPACE, "records").inc(n)


def _count_rejection(reason: str) -> None:
    kind = reason.split(":", 1)[0].strip().replace(" ", "_")
    Metrics.counter(COUNTER_NAMESPACE, "rejected").inc()
    Metrics.counter(COUNTER_NAMESPACE, f"rejected_{kind}").inc()


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


class BatchBuilder:
    """Collects accepted records and rejections; flushes full batches."""

    def __init__(self, source: str, batch_size: int, with_ids: bool, label_kind: str):
        self.source, self.batch_size, self.with_ids, self.label_kind = source, batch_size, with_ids, label_kind
        self.items: list = []
        self.labels: list = []
        self.ids: list = []

    def add(self, item: Any, label: Any, record_id: Any = None) -> Iterator[Any]:
        self.items.append(item)
        self.labels.append(int(label) if self.label_kind == INT64 else str(label))
        self.ids.append(None if record_id is None else str(record_id))
        if len(self.items) >= self.batch_size:
            yield self.flush()

    def reject(self, position: Any, reason: str, record_id: Any = None, label: Any = None) -> Any:
        _count_rejection(reason)
        return beam.pvalue.TaggedOutput(REJECTED, rejection(self.source, position, reason, record_id, label))

    def flush(self) -> RecordBatch:
        count_records(len(self.items))
        batch = RecordBatch(self.source, self.items, self.labels, self.ids if self.with_ids else None)
        self.items, self.labels, self.ids = [], [], []
        return batch

    def finish(self) -> Iterator[RecordBatch]:
        if self.items:
            yield self.flush()

    def check_and_add(self, position: Any, item: Any, label: Any, record_id: Any, modality: str,
                      vector_dim: int | None) -> Iterator[Any]:
        """One record: a dead-letter row with its reason, or into the current batch."""
        reason = _check_label(label, self.label_kind)
        parsed = None
        if reason is None:
            parsed, reason = _check_item(item, modality, vector_dim)
        if reason is not None:
            yield self.reject(position, reason, record_id, None if is_missing(label) else label)
            return
        yield from self.add(parsed, label, record_id)


def _check_label(label: Any, label_kind: str) -> str | None:
    """None when the label is usable, else the rejection reason."""
    if is_missing(label):
        return "missing label"
    if label_kind == INT64:
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
