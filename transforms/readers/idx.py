"""IDX files (MNIST's format): an images file [n, rows, cols(, channels)] of uint8 and a labels file [n].

The headers of both files are read on the driver and must agree; the files
themselves are parsed on a worker. Every record is an image with an integer
label, so this reader never rejects.
"""
from __future__ import annotations

import posixpath
import struct
from typing import Any, Iterator

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from dpsynth.errors import UserError
from transforms.readers.base import INT64, Columns, InputInfo, Reader, RecordBatch, count_records, register
from transforms.readers.files import match_paths, open_decompressed

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: str) -> np.ndarray:
    """Parse an IDX file (gzip or plain): magic 0,0,dtype,ndim; big-endian dims; data."""
    with open_decompressed(path) as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise UserError(f"{path} is not an IDX file (bad magic number)")
    if data[2] not in _DTYPES:
        raise UserError(f"{path}: unknown IDX data type 0x{data[2]:02x}")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4: 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=_DTYPES[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise UserError(f"{path}: IDX header says {dims} but holds {arr.size} values")
    return arr.reshape(dims)


def _idx_header(path: str) -> tuple[int, tuple[int, ...]]:
    """(data type code, dims) from the header alone."""
    with open_decompressed(path) as handle:
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
            count_records(stop - start)
            yield RecordBatch(images_path, [images[i] for i in range(start, stop)],
                              labels[start:stop].tolist(), [f"{base}:{i}" for i in range(start, stop)])


@register
class IdxReader(Reader):
    name = "idx"
    modalities = ("image",)

    def claims(self, name: str) -> bool:
        return "idx3-ubyte" in name or name.endswith(".idx") or "idx3" in posixpath.basename(name)

    def inspect(self, path: str, modality: str, columns: Columns, vector_dim: int | None,
                idx_labels: str | None) -> InputInfo:
        images = match_paths(path)
        if idx_labels and len(images) != 1:
            raise UserError("--idx-labels names one labels file, but the input matches "
                            f"{len(images)} image files")
        label_files = []
        for images_path in images:
            labels = idx_labels or idx_labels_path(images_path)
            if not FileSystems.exists(labels):
                raise UserError(f"labels file {labels} (for {images_path}) does not exist; pass --idx-labels")
            dtype, dims = _idx_header(images_path)
            _, label_dims = _idx_header(labels)
            if dtype != 0x08 or len(dims) not in (3, 4):
                raise UserError(f"{images_path}: expected uint8 images [n, rows, cols(, channels)], got {dims}")
            if len(label_dims) != 1 or label_dims[0] != dims[0]:
                raise UserError(f"{labels} holds {label_dims} labels for {dims[0]} images in {images_path}")
            label_files.append(labels)
        return InputInfo(path, self.name, modality, columns, tuple(images), INT64, has_ids=True,
                         label_files=tuple(label_files))

    def expand(self, pipeline: beam.Pipeline, info: InputInfo, batch_size: int) -> tuple[Any, Any]:
        records = (
            pipeline
            # element: (images path, labels path)
            | "IdxFiles" >> beam.Create(list(zip(info.files, info.label_files)))
            | "ReadIdx" >> beam.ParDo(_ReadIdxFn(batch_size)))
        return records, pipeline | "NoRejections" >> beam.Create([])
