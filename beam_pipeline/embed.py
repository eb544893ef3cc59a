"""`dpsynth embed`: one embedding per private record, written to Parquet.

    dpsynth embed --input PATH --encoder NAME --output FILE.parquet [options] [beam options]

The output holds (id where the input has one, label, embedding) for every
accepted record. It is PRIVATE data: an embedding is a function of one
record, not a DP release. The command prints that, and the Parquet schema
metadata says it too. Rejected records are counted and, with
--rejected-output DIR, listed in DIR/rejected-*.parquet (source, position,
id, label, reject_reason), like the synthesis job's dead letters.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions

from dpsynth.encoders import ENCODERS, Encoder, default_torch_threads, get_encoder
from dpsynth.errors import UserError
from dpsynth.validation import REJECT_REASON_COLUMN
from beam_pipeline.options import make_parser, settings_as_flags
from beam_pipeline.outputs import OVERWRITE_HELP, StagedFile, StagedOutput, check_disjoint
from beam_pipeline.pipeline import SHARD_TEMPLATE
from transforms.embedding import PRIVATE_NOTE, EmbedRecords, embedding_schema
from transforms.readers import DEFAULT_BATCH_SIZE, FORMATS, Columns, ReadRecords, inspect_input
from transforms.readers.files import parquet_schema

LOG = logging.getLogger("dpsynth.embed")


def add_input_arguments(parser: argparse.ArgumentParser, label_flag: bool = True) -> None:
    """Flags shared by embed and generate: the input, its columns, the encoder.

    generate gets --label-column from the synthesis flags (same meaning: the
    label column), so it passes label_flag=False.
    """
    g = parser.add_argument_group("input")
    g.add_argument("--input", required=True,
                   help="image folder (one sub-folder per label), *.parquet, *.jsonl, *.csv or IDX "
                        "images file; local path, glob or gs://")
    g.add_argument("--input-format", choices=FORMATS, default=None,
                   help="override the format guessed from the path")
    g.add_argument("--text-column", default="text")
    g.add_argument("--image-column", default="image", help="Parquet column of encoded image bytes")
    if label_flag:
        g.add_argument("--label-column", default="label", help="label column of the input")
    g.add_argument("--id-column", default="id")
    g.add_argument("--vector-column", default="embedding",
                   help="input column of precomputed vectors (encoder none)")
    g.add_argument("--dimension", type=int, default=None,
                   help="length d of the vectors (encoder none), a public fact; default: the Parquet input's "
                        "fixed-size-list schema or dpsynth.dimension metadata (never read from a row)")
    g.add_argument("--idx-labels", default=None,
                   help="IDX labels file (default: the images file's name with images->labels)")
    e = parser.add_argument_group("encoder")
    e.add_argument("--encoder", required=True, help=ENCODERS.help())
    e.add_argument("--image-size", type=int, default=None,
                   help="input resolution for efficientnet-lite0 (default 224) and user models")
    e.add_argument("--channels", type=int, choices=(1, 3), default=None, help="user models: input channels")
    e.add_argument("--normalize", choices=("none", "imagenet"), default=None,
                   help="user models: pixel normalisation after scaling to [0,1]")
    e.add_argument("--project-dim", type=int, default=None,
                   help="append a public Gaussian random projection to this many dimensions (none)")
    e.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="records per model call")
    e.add_argument("--torch-threads", type=int, default=None,
                   help="torch threads per worker process (default 1: more threads than free "
                        "cores collapses throughput; scale with Beam workers instead)")


def encoder_from_args(args: argparse.Namespace) -> Encoder:
    """The encoder the flags ask for; a setting that does not apply is named by its flag."""
    with settings_as_flags():
        return get_encoder(args.encoder, image_size=args.image_size, channels=args.channels,
                           normalize=args.normalize, project_dim=args.project_dim)


class EmbeddingStage:
    """Read + embed, built once and shared by `embed` and `generate`."""

    def __init__(self, args: argparse.Namespace, embedding_column: str = "embedding",
                 label_column: str = "label"):
        self.encoder = encoder_from_args(args)
        columns = Columns(text=args.text_column, image=args.image_column, label=args.label_column,
                          id=args.id_column, embedding=args.vector_column)
        dimension = getattr(args, "dimension", None)
        if dimension is not None and self.encoder.modality != "vector":
            raise UserError(f"--dimension is the length of precomputed vectors (--encoder none); "
                            f"{self.encoder.name} declares its own output size ({self.encoder.output_dim})")
        self.info = inspect_input(args.input, self.encoder.modality, args.input_format, columns, args.idx_labels,
                                  vector_dim=dimension if self.encoder.modality == "vector" else None)
        self.read = ReadRecords(self.info, args.batch_size)
        if self.encoder.modality == "vector":
            from dpsynth.encoders.vector import Precomputed

            if isinstance(self.encoder, Precomputed):
                self.encoder = Precomputed(self.info.vector_dim)  # the declared length, so embed records it
        self.schema = embedding_schema(self.info.label_type, self.info.has_ids, self.encoder,
                                       embedding_column=embedding_column, label_column=label_column)
        self.torch_threads = args.torch_threads or default_torch_threads()
        self.embedding_column, self.label_column = embedding_column, label_column

    def apply(self, pipeline: beam.Pipeline) -> tuple[Any, Any]:
        """(PCollection[pa.Table] of embeddings, PCollection[dict] of all rejections)."""
        read = pipeline | "Read" >> self.read
        embedded = read["records"] | "Embed" >> EmbedRecords(
            self.encoder, self.schema, self.torch_threads, label_column=self.label_column,
            embedding_column=self.embedding_column)
        rejected = (read["rejected"], embedded["rejected"]) | "AllRejections" >> beam.Flatten()
        return embedded["embeddings"], rejected


REJECTED_SCHEMA = pa.schema([("source", pa.string()), ("position", pa.string()), ("id", pa.string()),
                             ("label", pa.string()), (REJECT_REASON_COLUMN, pa.string())])


def _rejections_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{**{k: r.get(k) for k in ("source", "position", "id", "label")},
                                  REJECT_REASON_COLUMN: r["reason"]} for r in rows], schema=REJECTED_SCHEMA)


class WriteRejectedRecords(beam.PTransform):
    """Dead-letter rows -> PREFIX-SSSSS-of-NNNNN.parquet (source, position, id, label, reject_reason).

    Private: the rows name private records (never their content). Same
    layout and reason column as the synthesis job's --rejected-output.
    """

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def expand(self, rejected):
        return (rejected
                # element: dict -> [dict] of up to 1000 rejections
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=1000)
                # element: pa.Table in REJECTED_SCHEMA
                | "ToTable" >> beam.Map(_rejections_table)
                | "Write" >> beam.io.WriteToParquetBatched(
                    self.prefix, REJECTED_SCHEMA, file_name_suffix=".parquet",
                    shard_name_template=SHARD_TEMPLATE))


def write_rejections(rejected, prefix: str):
    return rejected | "WriteRejectedRecords" >> WriteRejectedRecords(prefix)


def is_embed_output(path: str) -> bool:
    """A Parquet file `dpsynth embed` wrote (its schema metadata marks it): the only file --overwrite replaces."""
    try:
        metadata = parquet_schema(path).metadata or {}
    except UserError:  # unreadable: not ours
        return False
    return b"dpsynth.privacy" in metadata


def counter_totals(result, namespace_prefix: str = "dpsynth.") -> dict[str, int]:
    """Committed counters of our namespaces (attempted where a runner has no committed)."""
    totals: dict[str, int] = {}
    try:
        counters = result.metrics().query()["counters"]
    except Exception:  # noqa: BLE001 - some runners do not support metric queries
        return totals
    for c in counters:
        if c.key.metric.namespace.startswith(namespace_prefix):
            name = f"{c.key.metric.namespace}/{c.key.metric.name}"
            value = c.committed if c.committed is not None else c.attempted
            totals[name] = totals.get(name, 0) + int(value or 0)
    return totals


def rejection_summary(totals: dict[str, int]) -> str:
    parts = [f"{name.split('/rejected_', 1)[1].replace('_', ' ')}: {n}" for name, n in sorted(totals.items())
             if "/rejected_" in name and n]
    return ", ".join(parts) if parts else "none"


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("dpsynth embed", "Embed private records with a public encoder. "
                         "The output is PRIVATE (one embedding per record), not a DP release.")
    add_input_arguments(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--output", required=True, help="FILE.parquet: id (if any), label, embedding")
    out.add_argument("--rejected-output", default=None,
                     help="directory for the list of rejected records (Parquet; PRIVATE)")
    out.add_argument("--overwrite", action="store_true",
                     help="replace an existing --output only if `dpsynth embed` wrote it (its Parquet metadata "
                          "says so), and a --rejected-output directory only if dpsynth wrote it; never an input")
    return parser


@settings_as_flags()  # the library's errors name settings; the user typed flags
def run(argv: list[str]) -> int:
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("dpsynth").setLevel(logging.INFO)  # our progress lines, not Beam's INFO chatter
    from beam_pipeline.options import map_runner_names

    options = PipelineOptions(map_runner_names(beam_args))
    check_disjoint([("--output", args.output), ("--rejected-output", args.rejected_output)],
                   [("--input", args.input), ("--idx-labels", args.idx_labels)])
    stage = EmbeddingStage(args)
    # Embeddings are written inside a staging directory and linked into place only when the run
    # finished: a failed, stopped or full-disk run leaves no partial private embeddings.
    output = StagedFile(args.output, args.overwrite, is_embed_output)
    try:
        rejected_dir = StagedOutput(args.rejected_output, args.overwrite) if args.rejected_output else None
    except BaseException:
        output.abort()
        raise
    LOG.info("encoder %s (%s, %d-d); reading %s as %s; torch threads per worker %d",
             stage.encoder.name, stage.encoder.modality, stage.encoder.output_dim, args.input,
             stage.info.format, stage.torch_threads)
    start = time.time()
    pipeline = beam.Pipeline(options=options)
    tables, rejected = stage.apply(pipeline)
    _ = tables | "WriteParquet" >> beam.io.WriteToParquetBatched(
        output.path, schema=stage.schema, num_shards=1, shard_name_template="")
    if rejected_dir is not None:
        write_rejections(rejected, rejected_dir.path("rejected"))
    try:
        result = pipeline.run()
        result.wait_until_finish()
        output.publish()
        if rejected_dir is not None:
            rejected_dir.publish()
    finally:
        output.abort()
        if rejected_dir is not None:
            rejected_dir.abort()
    totals = counter_totals(result)
    n = totals.get("dpsynth.embed/embedded", 0)
    n_rejected = totals.get("dpsynth.read/rejected", 0) + totals.get(
        "dpsynth.embed/rejected_non_finite_embedding", 0)
    elapsed = time.time() - start
    # Exact counts of private records: private operator telemetry, like the file itself.
    print(f"embedded {n} records in {elapsed:.1f} s -> {args.output} (counts: private operator telemetry)")
    print(f"rejected {n_rejected} records ({rejection_summary(totals)})"
          + (f" -> {args.rejected_output}" if args.rejected_output else
             "; pass --rejected-output DIR to list them"))
    print(f"{PRIVATE_NOTE} ({args.output})")
    return 0


if __name__ == "__main__":
    from beam_pipeline.cli import run_guarded

    sys.exit(run_guarded(run, sys.argv[1:]))
