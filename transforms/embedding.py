"""Step 1 of the method on Beam: RecordBatch -> embeddings, with RunInference.

Readers already batch records (about 32 per element), so RunInference is told
not to re-batch (min = max = 1 element per call): each call runs the encoder
once on one reader batch. The model is loaded once per worker process by
RunInference's shared handle, with torch's thread count set first so that
concurrent workers do not oversubscribe the cores (docs/encoders.md, "Speed").

Output elements are pyarrow Tables: id (string, when the input has ids),
label (int64 or string), embedding (list<float32>), the layout the synthesis
job reads.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
from typing import Any, Iterable, Iterator, Optional, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, RunInference

from dpsynth.encoders import Encoder, configure_torch_threads
from transforms.readers import REJECTED, RecordBatch, rejection

COUNTER_NAMESPACE = "dpsynth.embed"
PROGRESS_SECONDS = 10.0
LOG = logging.getLogger("dpsynth.embed")
PRIVATE_NOTE = ("PRIVATE: embeddings of private records, one per record; NOT differentially private. "
                "Release only the output of `dpsynth synthesize`/`generate`.")


def embedding_schema(label_type: str, has_ids: bool, encoder: Encoder | None = None,
                     embedding_column: str = "embedding", label_column: str = "label",
                     id_column: str = "id") -> pa.Schema:
    """The Parquet/Table schema of embed's output; metadata marks it private."""
    fields = []
    if has_ids:
        fields.append(pa.field(id_column, pa.string()))
    fields.append(pa.field(label_column, pa.int64() if label_type == "int64" else pa.string()))
    fields.append(pa.field(embedding_column, pa.list_(pa.float32())))
    metadata = {"dpsynth.privacy": PRIVATE_NOTE}
    if encoder is not None:
        metadata["dpsynth.encoder"] = encoder.name
        metadata["dpsynth.preprocessing"] = encoder.preprocessing
        if encoder.output_dim:
            # d, the encoder's declared output size: `dpsynth synthesize` takes it from here (a public
            # fact), never from a row.
            metadata["dpsynth.dimension"] = str(encoder.output_dim)
            fields[-1] = fields[-1].with_metadata({"dpsynth.dimension": str(encoder.output_dim)})
    return pa.schema(fields, metadata=metadata)


@dataclasses.dataclass
class PreparedBatch:
    """A reader batch after the encoder's preprocessing: model inputs plus keys."""

    source: str
    inputs: Any
    labels: list
    ids: list | None

    def __len__(self) -> int:
        return len(self.labels)


def to_table(embeddings: np.ndarray, labels: Sequence[Any], ids: Sequence[Any] | None,
             schema: pa.Schema) -> pa.Table:
    """float32 [b, d] + keys -> Table in `schema`, without a Python loop over rows."""
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    b, d = emb.shape
    offsets = pa.array(np.arange(0, (b + 1) * d, d, dtype=np.int32))
    # schema is [id,] label, embedding (embedding_schema's order)
    columns = [pa.array(list(labels), type=schema.field(len(schema) - 2).type),
               pa.ListArray.from_arrays(offsets, pa.array(emb.reshape(-1)))]
    if len(schema) == 3:
        columns.insert(0, pa.array(list(ids) if ids is not None else [None] * b, type=pa.string()))
    return pa.Table.from_arrays(columns, schema=schema)


class _PreprocessFn(beam.DoFn):
    """RecordBatch -> PreparedBatch (resize/normalise or tokenize: CPU work outside the model)."""

    def __init__(self, encoder: Encoder, torch_threads: int | None):
        self.encoder, self.torch_threads = encoder, torch_threads

    def setup(self) -> None:
        if self.encoder.modality != "vector":
            configure_torch_threads(self.torch_threads)

    def process(self, batch: RecordBatch) -> Iterator[PreparedBatch]:
        if len(batch) == 0:
            return
        yield PreparedBatch(batch.source, self.encoder.preprocess(batch.items), batch.labels, batch.ids)


class EncoderModelHandler(ModelHandler[PreparedBatch, pa.Table, Any]):
    """RunInference handler: one PreparedBatch per call -> one Table of embeddings."""

    def __init__(self, encoder: Encoder, schema: pa.Schema, torch_threads: int | None = None):
        super().__init__(min_batch_size=1, max_batch_size=1)
        self.encoder, self.schema, self.torch_threads = encoder, schema, torch_threads

    def load_model(self) -> Any:
        if self.encoder.modality != "vector":
            configure_torch_threads(self.torch_threads)
        if hasattr(self.encoder, "threads"):  # ONNX Runtime keeps its own pool
            self.encoder.threads = self.torch_threads
        return self.encoder.load_model()

    def run_inference(self, batch: Sequence[PreparedBatch], model: Any,
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[pa.Table]:
        tables = [to_table(self.encoder.forward(model, prepared.inputs), prepared.labels, prepared.ids,
                           self.schema) for prepared in batch]
        self._progress(sum(t.num_rows for t in tables))
        return tables

    def _progress(self, rows: int) -> None:
        """A log line every PROGRESS_SECONDS per worker: long embeddings show they are alive."""
        now = time.monotonic()
        if not hasattr(self, "_rows_done"):
            self._rows_done, self._started, self._last_log = 0, now, now
            # On a terminal, a bar updated per batch (tqdm); elsewhere (workers' logs) the lines below.
            from tqdm.auto import tqdm
            self._bar = tqdm(desc=f"embed ({self.encoder.name}; private telemetry)", unit="records", leave=False,
                             disable=not sys.stderr.isatty())
        self._rows_done += rows
        self._bar.update(rows)
        if now - self._last_log >= PROGRESS_SECONDS:
            self._last_log = now
            LOG.info("embedded %d records with %s in this worker (%.1f/s)", self._rows_done,
                     self.encoder.name, self._rows_done / max(now - self._started, 1e-9))

    def get_num_bytes(self, batch: Sequence[PreparedBatch]) -> int:
        total = 0
        for prepared in batch:
            inputs = prepared.inputs.values() if isinstance(prepared.inputs, dict) else [prepared.inputs]
            total += sum(int(getattr(x, "nbytes", 0) or x.element_size() * x.nelement()) for x in inputs)
        return total

    def get_metrics_namespace(self) -> str:
        return COUNTER_NAMESPACE


class _CheckEmbeddingsFn(beam.DoFn):
    """Table -> Table of finite embeddings; rows with NaN/inf go to the dead letter."""

    def __init__(self, id_column: str, label_column: str, embedding_column: str):
        self.id_column, self.label_column, self.embedding_column = id_column, label_column, embedding_column
        self.embedded = Metrics.counter(COUNTER_NAMESPACE, "embedded")
        self.bad = Metrics.counter(COUNTER_NAMESPACE, "rejected_non_finite_embedding")

    def process(self, table: pa.Table) -> Iterator[Any]:
        col = table.column(self.embedding_column).combine_chunks()
        flat = col.values.to_numpy(zero_copy_only=False)
        rows = flat.reshape(len(table), -1) if len(table) else flat.reshape(0, 0)
        ok = np.isfinite(rows).all(axis=1)
        if not ok.all():
            labels = table.column(self.label_column).to_pylist()
            ids = table.column(self.id_column).to_pylist() if self.id_column in table.column_names else None
            for i in np.flatnonzero(~ok):
                self.bad.inc()
                yield beam.pvalue.TaggedOutput(REJECTED, rejection(
                    "encoder", ids[i] if ids else f"batch row {i}", "non-finite embedding",
                    ids[i] if ids else None, labels[i]))
            table = table.filter(pa.array(ok))
        self.embedded.inc(len(table))
        if len(table):
            yield table


class EmbedRecords(beam.PTransform):
    """PCollection[RecordBatch] -> {"embeddings": PCollection[pa.Table], "rejected": PCollection[dict]}."""

    def __init__(self, encoder: Encoder, schema: pa.Schema, torch_threads: int | None = None,
                 id_column: str = "id", label_column: str = "label", embedding_column: str = "embedding"):
        super().__init__()
        self.encoder, self.schema, self.torch_threads = encoder, schema, torch_threads
        self.columns = (id_column, label_column, embedding_column)

    def expand(self, records):
        checked = (
            records
            # element: RecordBatch -> PreparedBatch (model-ready tensor + keys)
            | "Preprocess" >> beam.ParDo(_PreprocessFn(self.encoder, self.torch_threads))
            # element: PreparedBatch -> pa.Table (b rows: [id,] label, embedding)
            | "RunInference" >> RunInference(EncoderModelHandler(self.encoder, self.schema, self.torch_threads))
            # element: pa.Table -> pa.Table of finite rows; bad rows -> dead letter
            | "CheckFinite" >> beam.ParDo(_CheckEmbeddingsFn(*self.columns)).with_outputs(
                REJECTED, main="embeddings"))
        return {"embeddings": checked.embeddings, "rejected": checked[REJECTED]}
