"""`dpsynth generate`: embed private records and synthesize, in one Beam pipeline.

    dpsynth generate --input PATH --encoder NAME --output DIR --epsilon E --delta D
                     [--labels a,b,c] [input, encoder and synthesis flags] [beam options]

No intermediate file: the embedding stage's Tables feed the DP synthesis
directly, so the per-record embeddings never leave the pipeline. DIR holds
only the DP release (synthetic rows, gmm.json, privacy.json, report.md).

With --rejected-output DIR2 (PRIVATE), DIR2/records/ lists records the reader
or encoder rejected (unreadable image, empty text, missing label) and
DIR2/embeddings/ the rows the synthesis step rejected (e.g. a label outside
--labels), both Parquet with a reject_reason column.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Sequence

import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipeline import diagnostics as private, options
from beam_pipeline.embed import EmbeddingStage, add_input_arguments, write_rejections
from beam_pipeline.outputs import StagedOutput, exists, join
from beam_pipeline.public_rows import with_public_subspace
from beam_pipeline.synthesize import print_telemetry, released_delta_warning, run_synthesis_job
from dpsynth.errors import UserError

LOG = logging.getLogger("dpsynth.generate")


def build_parser():
    parser = options.make_parser("dpsynth generate", "Embed private records with a public encoder and "
                                                     "synthesize DP embeddings, in one pipeline.")
    add_input_arguments(parser, label_flag=False)  # --label-column comes with the synthesis flags
    options.add_synthesis_arguments(parser)
    return parser


def _rejected_dirs(path: str | None, overwrite: bool) -> tuple[StagedOutput | None, str | None]:
    """(our staged records/ dir, the core's embeddings/ path) under --rejected-output."""
    if not path:
        return None, None
    if "://" not in path:
        if os.path.exists(path) and not os.path.isdir(path):
            raise UserError(f"--rejected-output {path} exists and is not a directory")
        os.makedirs(path, exist_ok=True)
    embeddings_dir = join(path, "embeddings")
    if exists(embeddings_dir) and not overwrite:
        raise UserError(f"rejected output {embeddings_dir} already exists; pass --overwrite to replace it")
    return StagedOutput(join(path, "records"), overwrite), embeddings_dir


@options.settings_as_flags()  # the library's errors name settings; the user typed flags
def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, beam_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    local, beam_args = options.split_runner(options.forward_job_labels(args, beam_args))
    options.check_output_paths(args)
    if local:
        raise UserError("generate runs on Beam; for the one-process reference, run `dpsynth embed` "
                        "then `dpsynth synthesize --runner local`")
    if args.privacy_unit_column:
        raise UserError("generate does not carry a privacy-unit column through the encoder yet; "
                        "--privacy-unit-column works with `dpsynth synthesize` on a Parquet input")
    pipeline_options = PipelineOptions(beam_args)
    stage = EmbeddingStage(args, embedding_column="embedding", label_column=args.label_column)
    integer_labels = stage.info.label_type == "int64"
    config = options.config_from_args(args, integer_labels)
    # The same public rule as synthesize, for every input format: --min-rows or the absolute cap.
    options.check_delta(config, args.min_rows)
    dimension = stage.encoder.output_dim or stage.info.vector_dim  # both public: declared, never a row's
    if not dimension:
        raise UserError("the embedding size is not a public fact of this input; pass --dimension d")
    config = with_public_subspace(config, args, int(dimension), "embedding")
    if args.diagnostics_output:
        private.check_location(args.diagnostics_output, args.output, (args.input,), args.overwrite)
    records_rejected, embeddings_rejected = _rejected_dirs(args.rejected_output, args.overwrite)
    LOG.info("encoder %s (%d-d); reading %s as %s", stage.encoder.name, dimension, args.input, stage.info.format)

    def read_tables(pipeline):
        # element: pa.Table ([id,] label, embedding list<float32>), straight from RunInference
        tables, rejected = stage.apply(pipeline)
        if records_rejected is not None:
            write_rejections(rejected, records_rejected.path("rejected"))
        return tables

    try:
        summary = run_synthesis_job(
            read_tables, config, args.output, pipeline_options, dimension=int(dimension),
            label_type=pa.int64() if integer_labels else pa.string(), embedding_column="embedding",
            label_column=args.label_column, input_schema=stage.schema, rejected_output=embeddings_rejected,
            overwrite=args.overwrite, diagnostics_output=args.diagnostics_output)
        if records_rejected is not None:
            records_rejected.publish()
    finally:
        if records_rejected is not None:
            records_rejected.abort()
    print(summary.describe())
    print_telemetry(summary, args.diagnostics_output, embeddings_rejected)
    warning = released_delta_warning(summary, config)
    if warning:
        print(warning, file=sys.stderr)
    if records_rejected is not None:
        print(f"dpsynth: ({private.TELEMETRY}) {_count_rejections(records_rejected.final_dir)}; "
              f"rejected records (PRIVATE) are listed under {args.rejected_output}")
    else:
        print("dpsynth: records the reader or encoder rejected are counted in the job's metrics "
              "(dpsynth.read/rejected_*); pass --rejected-output DIR to list them")
    return 0


def _count_rejections(directory: str) -> str:
    """'N records rejected before synthesis (reason: n, ...)' from the published dead-letter files."""
    import collections

    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    from dpsynth.validation import REJECT_REASON_COLUMN

    reasons: collections.Counter = collections.Counter()
    for meta in FileSystems.match([join(directory, "rejected-*.parquet")])[0].metadata_list:
        with FileSystems.open(meta.path) as handle:
            column = pq.read_table(handle, columns=[REJECT_REASON_COLUMN]).column(0).to_pylist()
        reasons.update(r.split(":", 1)[0] for r in column)
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
    return f"{sum(reasons.values())} records rejected before synthesis" + (f" ({detail})" if detail else "")


if __name__ == "__main__":
    from beam_pipeline.cli import run_guarded

    logging.basicConfig(level=logging.WARNING)
    sys.exit(run_guarded(run, sys.argv[1:]))
