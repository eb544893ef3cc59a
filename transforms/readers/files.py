"""Paths and Parquet footers, read on the driver by every input check.

Matching a pattern (a file, a glob, gs://...), opening a possibly
compressed file, and reading a Parquet footer are written once here, so a
path that cannot be listed and a file that is not Parquet give the same
one-line UserError whichever command reads them. Only names and footers are
read: nothing a row holds decides anything here.
"""
from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import os
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from dpsynth.errors import UserError


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def list_files(pattern: str) -> list[str]:
    """Sorted paths matching a file or glob, possibly none; UserError when the pattern cannot be listed."""
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception as exc:  # noqa: BLE001 - Beam raises BeamIOError, IOError, ... for unreachable paths
        raise UserError(f"cannot list input {pattern!r}: {_first_line(exc)}") from None
    return sorted(m.path for m in matched)


def match_paths(pattern: str) -> list[str]:
    """Paths matching a file or glob; UserError when nothing matches."""
    paths = list_files(pattern)
    if not paths:
        raise UserError(f"no input files match {pattern!r}")
    return paths


def is_directory(path: str) -> bool:
    """A local directory, or an object-store prefix with something under it."""
    if "://" not in path:
        return os.path.isdir(path)
    try:
        return bool(FileSystems.match([path.rstrip("/") + "/*"], limits=[1])[0].metadata_list)
    except Exception:  # noqa: BLE001 - any listing failure means "not a directory we can read"
        return False


@contextlib.contextmanager
def open_decompressed(path: str) -> Iterator[io.BufferedIOBase]:
    """A binary stream, decompressed by extension (.gz, .bz2).

    io-compatible, unlike Beam's CompressedFile, so TextIOWrapper and csv can
    sit on it.
    """
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


def parquet_schema(path: str) -> pa.Schema:
    """The Arrow schema (with its metadata) from a Parquet file's footer; no row is read.

    A missing, truncated or non-Parquet file is a UserError on the driver,
    not a failure on a worker hours into the job.
    """
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            return pq.ParquetFile(handle).schema_arrow
    except Exception as exc:  # noqa: BLE001 - Beam and Arrow raise many kinds for unreadable files
        raise UserError(f"cannot read Parquet file {path}: {_first_line(exc)}") from None
