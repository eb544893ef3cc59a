"""What the line-oriented formats (JSONL, CSV) share: streaming a file into rows, and the driver's peek.

A format supplies two things: how a decoded text stream becomes
(line, row, error) triples, and which keys the first file's head names.
Each file is read in one streaming pass on a worker; its malformed lines
are counted rejections.
"""
from __future__ import annotations

import abc
import io
import json
from typing import Any, Iterator

import apache_beam as beam
from apache_beam.io import fileio

from transforms.readers.base import REJECTED, STRING, BatchBuilder, Columns, InputInfo, Reader
from transforms.readers.files import match_paths, open_decompressed

Row = tuple[int, "dict | None", "str | None"]  # (line number, row, None) or (line number, None, reason)


def _text(raw: io.BufferedIOBase) -> io.TextIOWrapper:
    # utf-8-sig: a leading byte-order mark is not part of the first column's name or the first line
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


class _ReadTextRowsFn(beam.DoFn):
    """A JSONL or CSV file path -> RecordBatches + rejections, one pass, streaming."""

    def __init__(self, reader: "TextReader", info: InputInfo, batch_size: int):
        self.reader, self.info, self.batch_size = reader, info, batch_size

    def process(self, path: str) -> Iterator[Any]:
        info = self.info
        builder = BatchBuilder(path, self.batch_size, info.has_ids, STRING)
        content_col = info.columns.content(info.modality)
        with open_decompressed(path) as raw:
            for line_no, row, error in self.reader.rows(_text(raw)):
                position = f"line {line_no}"
                if error is not None:
                    yield builder.reject(position, error)
                    continue
                record_id = row.get(info.columns.id) if info.has_ids else None
                item = row.get(content_col)
                if info.modality == "vector" and isinstance(item, str):
                    try:
                        item = json.loads(item)
                    except json.JSONDecodeError:
                        item = None
                yield from builder.check_and_add(position, item, row.get(info.columns.label), record_id,
                                                 info.modality, info.vector_dim)
        yield from builder.finish()


class TextReader(Reader):
    """A line-oriented format of text or vector records; labels are read as strings."""

    modalities = ("text", "vector")

    @abc.abstractmethod
    def rows(self, text: io.TextIOBase) -> Iterator[Row]:
        """(line, row, None) per record, (line, None, reason) per malformed line."""

    @abc.abstractmethod
    def head_keys(self, first: str, text: io.TextIOBase, columns: tuple[str, str]) -> set[str]:
        """The keys the head of the first file names; UserError when a needed column is surely absent."""

    def inspect(self, path: str, modality: str, columns: Columns, vector_dim: int | None,
                idx_labels: str | None) -> InputInfo:
        files = match_paths(path)
        with open_decompressed(files[0]) as raw:
            keys = self.head_keys(files[0], _text(raw), (columns.content(modality), columns.label))
        return InputInfo(path, self.name, modality, columns, tuple(files), STRING,
                         has_ids=columns.id in keys, vector_dim=vector_dim)

    def expand(self, pipeline: beam.Pipeline, info: InputInfo, batch_size: int) -> tuple[Any, Any]:
        tagged = (
            pipeline
            | "FilePattern" >> beam.Create([info.path])
            # element: FileMetadata -> path (str)
            | "MatchFiles" >> fileio.MatchAll()
            | "Paths" >> beam.Map(lambda m: m.path)
            | "SpreadFiles" >> beam.Reshuffle()
            # element: path -> RecordBatch of strings / vectors
            | "ParseRows" >> beam.ParDo(_ReadTextRowsFn(self, info, batch_size)).with_outputs(
                REJECTED, main="records"))
        return tagged.records, tagged[REJECTED]
