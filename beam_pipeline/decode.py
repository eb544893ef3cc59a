"""`dpsynth decode`: synthetic embeddings -> images, with a public decoder.

Usage:
  dpsynth decode --synthetic DIR --decoder NAME --output IMAGES_DIR [--per-class N] [beam options]
  python -m beam_pipeline.decode ...   (the same program)

Reads DIR/synthetic-*.parquet (the output of `dpsynth synthesize`) and writes
IMAGES_DIR/<label>/<id>.png, IMAGES_DIR/images.parquet (id, label, PNG bytes),
IMAGES_DIR/contact-<label>.png (a grid per class), IMAGES_DIR/privacy.json
(copied from DIR: the images are post-processing of the same DP release) and
IMAGES_DIR/decode.json (the decoder's public settings). The decoder sees
synthetic embeddings only, never private data.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Optional, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from dpsynth.decoders import DECODERS, get_decoder
from dpsynth.decoders.images import label_folder
from dpsynth.errors import UserError
from beam_pipeline import options
from beam_pipeline.outputs import OVERWRITE_HELP, StagedOutput, check_disjoint
from transforms.decode import DecodeImages, WorkItem
from transforms.sample import write_json

SYNTHETIC_GLOB = "synthetic-*.parquet"


class SyntheticInput:
    """The driver's view of DIR: files, label type, dimension and each file's labels."""

    def __init__(self, directory: str) -> None:
        if not FileSystems.exists(FileSystems.join(directory, "privacy.json")):
            raise UserError(f"{directory} has no privacy.json: decode reads only the output of "
                            "`dpsynth synthesize` (never private embeddings)")
        with FileSystems.open(FileSystems.join(directory, "privacy.json")) as handle:
            try:
                self.privacy = json.loads(handle.read().decode())
            except ValueError:
                raise UserError(f"{directory}/privacy.json is not valid JSON") from None
        matched = FileSystems.match([FileSystems.join(directory, SYNTHETIC_GLOB)])[0].metadata_list
        self.files = sorted(m.path for m in matched)
        if not self.files:
            raise UserError(f"no {SYNTHETIC_GLOB} in {directory}")
        self.labels: list[np.ndarray] = []
        self.dimension: Optional[int] = None
        self.label_type: Optional[pa.DataType] = None
        for path in self.files:
            self._inspect(path)
        if self.dimension is None:
            raise UserError(f"the synthetic files in {directory} hold no rows")

    def _inspect(self, path: str) -> None:
        """Check the schema and every row's embedding length (streamed); keep the labels."""
        try:
            with FileSystems.open(path) as handle:
                parquet = pq.ParquetFile(handle)
                schema = parquet.schema_arrow
                for column in ("label", "embedding"):
                    if column not in schema.names:
                        raise UserError(f"{path} has no {column!r} column; is it a dpsynth synthetic file?")
                if not (pa.types.is_list(schema.field("embedding").type)
                        or pa.types.is_fixed_size_list(schema.field("embedding").type)):
                    raise UserError(f"{path}: column 'embedding' is {schema.field('embedding').type}, "
                                    "expected a list of floats")
                if self.label_type is None:
                    self.label_type = schema.field("label").type
                elif schema.field("label").type != self.label_type:
                    raise UserError(f"{path}: label type {schema.field('label').type} differs from "
                                    f"{self.label_type} in the other files")
                labels, offset = [], 0
                for batch in parquet.iter_batches(columns=["label", "embedding"], batch_size=4096):
                    lengths = pc.fill_null(pc.list_value_length(batch.column("embedding")), -1)
                    lengths = lengths.to_numpy(zero_copy_only=False)
                    if self.dimension is None and len(lengths):
                        self.dimension = int(lengths[0])
                    bad = np.flatnonzero(lengths != self.dimension)
                    if len(bad):
                        got = "a null" if lengths[bad[0]] < 0 else f"{lengths[bad[0]]} values"
                        raise UserError(f"{path} row {offset + int(bad[0])}: embedding has {got}, "
                                        f"expected {self.dimension}")
                    if batch.column("label").null_count:
                        raise UserError(f"{path}: null labels; is it a dpsynth synthetic file?")
                    labels.append(batch.column("label").to_numpy(zero_copy_only=False))
                    offset += batch.num_rows
        except (OSError, pa.ArrowInvalid) as exc:
            raise UserError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
        self.labels.append(np.concatenate(labels) if labels else np.array([], dtype=object))

    def plan(self, per_class: Optional[int]) -> tuple[list[WorkItem], dict[str, int]]:
        """Work items (file index, path, rows) keeping at most per_class rows per label, in file order."""
        folders: dict[str, object] = {}
        for labels in self.labels:
            for label in np.unique(labels):
                folder = label_folder(label)
                if folders.setdefault(folder, label) != label:
                    raise UserError(f"labels {folders[folder]!r} and {label!r} map to one folder {folder!r}")
        taken: dict[str, int] = {}
        items: list[WorkItem] = []
        for index, (path, labels) in enumerate(zip(self.files, self.labels)):
            keep = np.zeros(len(labels), bool)
            for label in np.unique(labels):
                rows = np.flatnonzero(labels == label)
                folder = label_folder(label)
                room = len(rows) if per_class is None else max(0, per_class - taken.get(folder, 0))
                keep[rows[:room]] = True
                taken[folder] = taken.get(folder, 0) + min(room, len(rows))
            items.append((index, path, np.flatnonzero(keep)))
        return items, taken


def add_decode_arguments(parser) -> None:
    parser.add_argument("--synthetic", required=True, help="output directory of `dpsynth synthesize`")
    parser.add_argument("--decoder", required=True, help=DECODERS.help())
    parser.add_argument("--output", required=True, help="images directory (local or gs://); must not exist")
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    parser.add_argument("--per-class", type=int, help="decode at most N rows per label (default: all)")
    parser.add_argument("--batch-size", type=int, default=64, help="embeddings per decoder call (default 64)")
    parser.add_argument("--sheet-size", type=int, default=64, help="images per contact sheet (default 64)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch threads per worker (default 1; 0 keeps torch's default)")
    scatter = parser.add_argument_group("scatternet inversion (public settings, no privacy cost)")
    scatter.add_argument("--steps", type=int, help="Adam steps (default 30)")
    scatter.add_argument("--lr", type=float, help="Adam learning rate on the pixel logits (default 0.3)")
    scatter.add_argument("--tv-weight", type=float, help="total-variation prior weight (default 1e-3)")
    scatter.add_argument("--scale", type=float, help="target scattering norm (default: median over "
                                                     "scikit-learn's digits, 3.0348)")
    scatter.add_argument("--no-stretch", dest="stretch", action="store_const", const=False, default=None,
                         help="keep raw brightness instead of stretching each image's peak to 1")


def _positive(value: Optional[int], flag: str, allow_zero: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise UserError(f"{flag} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def run(argv: Sequence[str] | None = None) -> int:
    parser = options.make_parser("dpsynth decode", __doc__.splitlines()[0])
    add_decode_arguments(parser)
    args, beam_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    for flag, value in (("--per-class", args.per_class), ("--batch-size", args.batch_size),
                        ("--sheet-size", args.sheet_size)):
        _positive(value, flag)
    _positive(args.torch_threads, "--torch-threads", allow_zero=True)
    _positive(args.steps, "--steps", allow_zero=True)
    decoder_options = {"steps": args.steps, "lr": args.lr, "tv_weight": args.tv_weight, "scale": args.scale,
                       "stretch": args.stretch}
    with options.settings_as_flags(stretch="--no-stretch"):
        decoder = get_decoder(args.decoder, **decoder_options)  # one-line UserError for unknown names
    source = SyntheticInput(args.synthetic)
    decoder.check(source.dimension)
    items, counts = source.plan(args.per_class)
    check_disjoint([("--output", args.output)], [("--synthetic", args.synthetic)])
    staging = StagedOutput(args.output, args.overwrite)
    started = time.time()
    try:
        pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
        _ = (pipeline
             # (file index, path, row numbers to decode)
             | "Plan" >> beam.Create(items)
             | "Decode" >> DecodeImages(args.decoder, {k: v for k, v in decoder_options.items() if v is not None},
                                        source.label_type, staging.staging_dir, batch_size=args.batch_size,
                                        sheet_size=args.sheet_size, torch_threads=args.torch_threads or None))
        pipeline.run().wait_until_finish()
        seconds = time.time() - started
        total = sum(counts.values())
        write_json(source.privacy, staging.path("privacy.json"))
        write_json({"source": args.synthetic, "decoder": decoder.describe(), "images_per_label": counts,
                    "images": total, "seconds": round(seconds, 1),
                    "note": "decoded from synthetic embeddings only; the decoder never sees private data"},
                   staging.path("decode.json"))
        staging.publish()
    finally:
        staging.abort()
    spent = (source.privacy.get("spent") or {}).get("epsilon")
    guarantee = "NOT PRIVATE (test-only switch)" if spent is None else f"epsilon {spent:.4g}"
    print(f"dpsynth: decoded {total} images of {len(counts)} labels to {args.output} in {seconds:.0f} s "
          f"({total / max(seconds, 1e-9):.2f} images/s; {guarantee}, as the synthetic embeddings)")
    return 0


if __name__ == "__main__":
    from beam_pipeline.cli import run_guarded

    sys.exit(run_guarded(run, sys.argv[1:]))
