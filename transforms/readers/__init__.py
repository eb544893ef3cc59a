"""Beam sources for private records: image folders, Parquet, JSONL, CSV and IDX, one module each.

Every reader emits `RecordBatch` elements (a few dozen records each, never one
record per element: Beam's cost per element per stage would dominate) and,
on a second tagged output, one dict per rejected record with the reason. A
record is rejected, never dropped and never a crash, when its image does not
decode, its text is empty, its label is missing, or its line does not parse.
Each rejection also bumps a Beam counter `dpsynth.read/rejected_<reason>`.

Paths may be local, globs, or gs:// (anything Beam's FileSystems reads).
Reading takes two steps so that building a transform never does I/O:
`inspect_input` checks on the driver what can be checked before the job
starts (the path matches something, the Parquet/CSV columns exist, the IDX
headers agree), reporting a one-line UserError, and returns an InputInfo;
`ReadRecords(info)` is the transform that reads it.
"""
from __future__ import annotations

import importlib

import apache_beam as beam

from dpsynth.errors import UserError
from transforms.readers.base import (DEFAULT_BATCH_SIZE, MODALITIES, READERS, REJECTED, Columns, InputInfo,
                                     RecordBatch, rejection)
from transforms.readers.files import is_directory, match_paths

# Each module registers its reader on import. This order is --input-format's list of choices and the order
# in which file names are tried: a name is parquet before it is idx ("idx3" may stand in a Parquet file's name).
for _module in ("images", "parquet", "jsonl", "csvfile", "idx"):
    importlib.import_module(f"transforms.readers.{_module}")
FORMATS = tuple(READERS)

from transforms.readers.idx import idx_labels_path  # noqa: E402 - after the registration above

__all__ = ["DEFAULT_BATCH_SIZE", "FORMATS", "REJECTED", "Columns", "InputInfo", "ReadRecords", "RecordBatch",
           "detect_format", "idx_labels_path", "inspect_input", "match_paths", "rejection"]


def detect_format(path: str) -> str:
    """Format from the path: a registered reader's file name, else a directory's reader (an image folder)."""
    lower = path.lower().rstrip("/")
    for suffix in (".gz", ".bz2"):
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
    for name, reader in READERS.items():
        if reader.claims(lower):
            return name
    if path.endswith("/") or is_directory(path):
        return next(name for name, reader in READERS.items() if reader.holds_directories)
    raise UserError(f"cannot tell the format of {path!r} from its name; pass --input-format "
                    f"({', '.join(FORMATS)})")


def inspect_input(input_path: str, modality: str, input_format: str | None = None, columns: Columns = Columns(),
                  idx_labels: str | None = None, vector_dim: int | None = None) -> InputInfo:
    """Check the input on the driver and say what the job will read; UserError for anything wrong.

    For precomputed vectors (modality "vector") the length must be a public
    fact: --dimension (vector_dim), a fixed-size-list schema or dpsynth's
    metadata, never a row's; rows of another length become counted rejections.
    """
    if modality not in MODALITIES:
        raise UserError(f"unknown modality {modality!r}")
    fmt = input_format or detect_format(input_path)
    if fmt not in READERS:
        raise UserError(f"unknown input format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if vector_dim is not None and vector_dim < 1:
        raise UserError(f"--dimension must be a positive integer, got {vector_dim}")
    reader = READERS[fmt]
    if modality not in reader.modalities:
        raise UserError(f"{fmt} input holds {'/'.join(reader.modalities)} records, but the encoder "
                        f"expects {modality}")
    info = reader.inspect(input_path, modality, columns, vector_dim, idx_labels)
    if modality == "vector" and not info.vector_dim:
        raise UserError("the vector length is not a public fact of this input (no fixed-size-list schema "
                        "or dpsynth.dimension metadata); pass --dimension d")
    return info


class ReadRecords(beam.PTransform):
    """Read the records an InputInfo describes, as RecordBatches.

    expand() returns {"records": PCollection[RecordBatch],
    "rejected": PCollection[dict]}.
    """

    def __init__(self, info: InputInfo, batch_size: int = DEFAULT_BATCH_SIZE):
        super().__init__()
        self.info = info
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")

    def expand(self, pbegin):
        pipeline = pbegin.pipeline if hasattr(pbegin, "pipeline") else pbegin
        records, rejected = READERS[self.info.format].expand(pipeline, self.info, self.batch_size)
        return {"records": records | "Spread" >> beam.Reshuffle(), "rejected": rejected}
