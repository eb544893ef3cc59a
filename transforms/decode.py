"""Beam steps of `dpsynth decode`: synthetic embedding batches -> PNG images.

Work items are (file index, path, selected row numbers), planned in the
driver from the synthetic files' label column, so every row has a stable id
"FFFFF-RRRRRRR" (file, row) whatever runner or retry produced it. Decoding is
the expensive step: batches are spread over workers and each worker loads the
decoder once (setup). Only synthetic rows are read; no private data is here.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from dpsynth.decoders.images import contact_sheet, label_folder, png_bytes, read_png
from dpsynth.validation import embedding_matrix

WorkItem = tuple[int, str, np.ndarray]  # (file index, path, sorted row numbers to decode)


def images_schema(label_type: pa.DataType) -> pa.Schema:
    return pa.schema([("id", pa.string()), ("label", label_type), ("image", pa.binary()),
                      ("height", pa.int32()), ("width", pa.int32()), ("channels", pa.int32())])


def read_batches(item: WorkItem, batch_size: int, label_type: pa.DataType) -> Iterator[pa.Table]:
    """One synthetic file's selected rows as tables (id, label, embedding) of at most batch_size rows."""
    file_index, path, rows = item
    if len(rows) == 0:
        return
    with FileSystems.open(path) as handle:
        table = pq.read_table(handle, columns=["label", "embedding"])
    table = table.take(pa.array(rows, pa.int64()))
    ids = pa.array([f"{file_index:05d}-{int(r):07d}" for r in rows], pa.string())
    table = pa.table({"id": ids, "label": table.column("label").cast(label_type),
                      "embedding": table.column("embedding")})
    for start in range(0, table.num_rows, batch_size):
        yield table.slice(start, batch_size)


class DecodeBatchFn(beam.DoFn):
    """pa.Table (id, label, embedding) -> pa.Table (id, label, image PNG bytes, height, width, channels)."""

    def __init__(self, decoder_name: str, decoder_options: dict, label_type: pa.DataType,
                 torch_threads: Optional[int]) -> None:
        self._name = decoder_name
        self._options = dict(decoder_options)
        self._label_type = label_type
        self._threads = torch_threads
        self._decoder = None
        self._decoded = beam.metrics.Metrics.counter("dpsynth", "images_decoded")

    def setup(self) -> None:
        if self._threads:
            import torch

            # Few threads per worker: more threads than free cores collapse throughput
            # (see dpsynth.encoders.base.default_torch_threads).
            torch.set_num_threads(self._threads)
        from dpsynth.decoders import as_image_batch, get_decoder

        self._decoder = get_decoder(self._name, **self._options)
        self._check = as_image_batch

    def process(self, table: pa.Table) -> Iterator[pa.Table]:
        # The driver checked that every row holds d values.
        images = self._check(self._decoder.decode(embedding_matrix(table.column("embedding"))), table.num_rows,
                             self._name)
        self._decoded.inc(table.num_rows)
        n, h, w = images.shape[:3]
        channels = images.shape[3] if images.ndim == 4 else 1
        yield pa.table({"id": table.column("id"), "label": table.column("label"),
                        "image": pa.array([png_bytes(im) for im in images], pa.binary()),
                        "height": pa.array(np.full(n, h, np.int32)), "width": pa.array(np.full(n, w, np.int32)),
                        "channels": pa.array(np.full(n, channels, np.int32))},
                       schema=images_schema(self._label_type))


def write_pngs(table: pa.Table, root: str) -> int:
    """Write ROOT/<label folder>/<id>.png for each row; returns the number written."""
    for row_id, label, data in zip(table.column("id").to_pylist(), table.column("label").to_pylist(),
                                   table.column("image").to_pylist()):
        with FileSystems.create(FileSystems.join(root, label_folder(label), f"{row_id}.png")) as handle:
            handle.write(data)
    return table.num_rows


def sheet_candidates(table: pa.Table, per_label: int) -> Iterator[tuple[str, tuple[str, bytes]]]:
    """(label folder, (id, png)) for the first per_label rows of each label in this batch."""
    seen: dict[str, int] = {}
    for row_id, label, data in zip(table.column("id").to_pylist(), table.column("label").to_pylist(),
                                   table.column("image").to_pylist()):
        folder = label_folder(label)
        if seen.get(folder, 0) < per_label:
            seen[folder] = seen.get(folder, 0) + 1
            yield folder, (row_id, data)


def write_sheet(entry: tuple[str, list[tuple[str, bytes]]], root: str) -> str:
    """ROOT/contact-<label folder>.png: the label's images with the smallest ids, in id order."""
    folder, items = entry
    images = [read_png(data) for _, data in sorted(items)]
    path = FileSystems.join(root, f"contact-{folder}.png")
    with FileSystems.create(path) as handle:
        handle.write(png_bytes(contact_sheet(images)))
    return path


class DecodeImages(beam.PTransform):
    """PCollection[WorkItem] -> PNG files, one Parquet of images, contact sheets; returns the PNG count."""

    def __init__(self, decoder_name: str, decoder_options: dict[str, Any], label_type: pa.DataType,
                 output_root: str, *, batch_size: int, sheet_size: int, torch_threads: Optional[int]) -> None:
        super().__init__()
        self._decoder_name, self._options = decoder_name, decoder_options
        self._label_type, self._root = label_type, output_root
        self._batch_size, self._sheet_size, self._threads = batch_size, sheet_size, torch_threads

    def expand(self, items: beam.PCollection) -> beam.PCollection:
        decoded = (items
                   # pa.Table (id, label, embedding) of <= batch_size synthetic rows
                   | "ReadBatches" >> beam.FlatMap(read_batches, self._batch_size, self._label_type)
                   # the same tables, spread over workers (decoding dominates the cost)
                   | "Spread" >> beam.Reshuffle()
                   # pa.Table (id, label, image PNG bytes, height, width, channels)
                   | "Decode" >> beam.ParDo(DecodeBatchFn(self._decoder_name, self._options, self._label_type,
                                                          self._threads)))
        _ = (decoded
             # the same tables, written as one Parquet file IMAGES_DIR/images.parquet
             | "WriteParquet" >> beam.io.WriteToParquetBatched(
                 FileSystems.join(self._root, "images"), images_schema(self._label_type),
                 file_name_suffix=".parquet", num_shards=1, shard_name_template=""))
        _ = (decoded
             # (label folder, (id, png)) for at most sheet_size rows per label per batch
             | "SheetCandidates" >> beam.FlatMap(sheet_candidates, self._sheet_size)
             # (label folder, [(id, png)]) with the label's sheet_size smallest ids
             | "FirstPerLabel" >> beam.combiners.Top.SmallestPerKey(self._sheet_size)
             # path of IMAGES_DIR/contact-<label>.png
             | "WriteSheets" >> beam.Map(write_sheet, self._root))
        return (decoded
                # rows written as IMAGES_DIR/<label>/<id>.png, per batch
                | "WritePngs" >> beam.Map(write_pngs, self._root)
                # total PNG files written
                | "CountPngs" >> beam.CombineGlobally(sum))
