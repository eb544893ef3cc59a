"""`dpsynth synthesize`: DP synthetic embeddings from a Parquet file of embeddings.

Usage:
  dpsynth synthesize --input PATH --output DIR --epsilon E --delta D [--labels a,b,c] [beam options]
  python -m beam_pipeline.synthesize ...   (the same program)
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
from typing import Callable, Iterator, Optional, Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from dpsynth import privacy_units
from dpsynth.accounting import PrivacyLedger
from dpsynth.calibration import plan_releases
from dpsynth.gmm import ReleasedMixture
from dpsynth.local import synthesize_tables, table_chunks
from dpsynth.params import SynthesisConfig
from dpsynth.report import render_report
from dpsynth.validation import rejected_key, validation_counts
from beam_pipeline import diagnostics as private, inputs, options
from beam_pipeline.outputs import StagedOutput
from beam_pipeline.pipeline import SYNTHETIC_PREFIX, JobPaths, build_synthesis, conform, rejected_schema
from beam_pipeline.public_rows import with_public_subspace
from transforms.sample import draw_chunk, synthetic_schema, write_json

LOG = logging.getLogger("dpsynth")

@dataclasses.dataclass
class JobSummary:
    output_dir: str
    files: dict[str, str]
    ledger: PrivacyLedger
    mixture: ReleasedMixture
    rows_per_class: list[int]
    diagnostics: dict[str, int]  # exact, PRIVATE: for the console's labelled telemetry and --diagnostics-output

    def describe(self) -> str:
        spent = self.ledger.to_json()["spent"]["epsilon"]
        spent_text = "NOT PRIVATE (test-only switch)" if spent is None else f"epsilon {spent:.4f}"
        return (f"dpsynth: wrote {sum(self.rows_per_class)} synthetic rows for "
                f"{sum(1 for c in self.mixture.classes if c.num_components)} of {len(self.mixture.classes)} "
                f"classes to {self.output_dir} ({spent_text}, delta {self.ledger.target_delta:g})")


def _read_json(path: str, default=None):
    if not FileSystems.exists(path):
        return default
    with FileSystems.open(path) as handle:
        return json.loads(handle.read().decode())


def _finalize(staging: StagedOutput, rejected: Optional[StagedOutput], ledger: PrivacyLedger,
              config: SynthesisConfig, scratch: private.PrivateScratch,
              diagnostics_output: Optional[str]) -> JobSummary:
    """Write privacy.json and report.md beside the pipeline's files, then publish atomically.

    The exact counts come from the private scratch file, never from the
    release's staging directory; they go to --diagnostics-output only.
    """
    mixture_json = _read_json(staging.path("gmm.json"))
    mixture = ReleasedMixture.from_json(mixture_json)
    diagnostics = scratch.read()
    if privacy_units.ROWS_BEFORE in diagnostics and privacy_units.ROWS_DROPPED not in diagnostics:
        # Beam counts rows before and after unit bounding; the local reference counts the drop itself.
        diagnostics[privacy_units.ROWS_DROPPED] = (
            diagnostics[privacy_units.ROWS_BEFORE] - diagnostics.get(privacy_units.ROWS_KEPT, 0)
            - diagnostics.get(rejected_key(privacy_units.MISSING_UNIT_REASON), 0))
    rows_per_class = mixture.samples_per_class(config.num_samples, config.class_balance)
    write_json(ledger.to_json(), staging.path("privacy.json"))
    synthetic = sorted(m.path for m in FileSystems.match([staging.path(SYNTHETIC_PREFIX + "-*.parquet")])[0]
                       .metadata_list)
    final = staging.final_dir
    files = {"synthetic rows": FileSystems.join(final, f"{SYNTHETIC_PREFIX}-*.parquet")
             + f" ({len(synthetic)} file{'s' if len(synthetic) != 1 else ''})",
             "released mixture": FileSystems.join(final, "gmm.json"),
             "privacy ledger": FileSystems.join(final, "privacy.json"),
             "this report": FileSystems.join(final, "report.md")}
    figures = _write_figures(staging, mixture_json, ledger, rows_per_class)
    report = render_report(mixture, ledger, rows_per_class, files, unit_level=bool(config.privacy_unit_column),
                           diagnostics_output=diagnostics_output,
                           rejected_output=rejected.final_dir if rejected else None, figures=figures)
    with FileSystems.create(staging.path("report.md")) as handle:
        handle.write(report.encode())
    if rejected is not None:
        rejected.publish()
    staging.publish()
    if diagnostics_output:
        private.write_private(diagnostics, diagnostics_output)
    return JobSummary(final, files, ledger, mixture, rows_per_class, diagnostics)


def _write_figures(staging: StagedOutput, mixture_json: dict, ledger: PrivacyLedger,
                   rows_per_class: list[int]) -> dict[str, str]:
    """PNG figures beside report.md, from released values only; {file name: title}. Never fails the run."""
    from dpsynth.figures import release_figures

    def warn(message: str) -> None:
        print(f"dpsynth: warning: {message}", file=sys.stderr)

    written = {}
    try:
        drawn = release_figures(mixture_json, ledger.to_json(), rows_per_class, warn)
    except Exception as exc:  # e.g. matplotlib missing: the release stands without figures
        warn(f"no figures were drawn: {type(exc).__name__}: {exc}")
        return written
    for name, (title, png) in drawn.items():
        with FileSystems.create(staging.path(name)) as handle:
            handle.write(png)
        written[name] = title
    return written


def run_synthesis_job(read_tables: Callable[[beam.Pipeline], beam.PCollection], config: SynthesisConfig,
                      output_dir: str, pipeline_options: PipelineOptions, *, dimension: int,
                      label_type: pa.DataType, embedding_column: str = "embedding", label_column: str = "label",
                      input_schema: Optional[pa.Schema] = None, rejected_output: Optional[str] = None,
                      overwrite: bool = False,
                      reread_input: Optional[Callable[[beam.Pipeline, str], beam.PCollection]] = None,
                      diagnostics_output: Optional[str] = None) -> JobSummary:
    """Build, run and publish the DP synthesis pipeline.

    read_tables(pipeline) must return a PCollection of pyarrow Tables with the
    embedding column (list of numbers, `dimension` long) and the label column
    (of `label_type`). dimension and label_type are public facts (the
    encoder's output size, the label column's type) needed before any row is
    read. Raises UserError (e.g. a budget that cannot be met) before any work.
    reread_input(pipeline, pass_name), when given, reads the same input again
    for each pass (see build_synthesis): bounded worker memory for big inputs.
    Exact counts go to a private scratch file outside the release (and to
    diagnostics_output, PRIVATE, when given), never into the release.
    """
    plan = plan_releases(config, dimension, discover_labels=config.labels is None)
    if diagnostics_output:
        private.check_location(diagnostics_output, output_dir, (), overwrite)
    with _job_outputs(output_dir, rejected_output, overwrite, diagnostics_output) as (staging, rejected, scratch):
        paths = JobPaths(synthetic_prefix=staging.path(SYNTHETIC_PREFIX), gmm_json=staging.path("gmm.json"),
                         diagnostics_json=scratch.path,
                         rejected_prefix=rejected.path("rejected") if rejected else None)
        if input_schema is None:
            input_schema = pa.schema([(embedding_column, pa.list_(pa.float32())), (label_column, label_type)])
        pipeline = beam.Pipeline(options=pipeline_options)
        tables = read_tables(pipeline)
        build_synthesis(tables, config, plan, embedding_column=embedding_column, label_column=label_column,
                        label_type=label_type, input_schema=input_schema, paths=paths,
                        reread_input=None if reread_input is None else (lambda name: reread_input(pipeline, name)))
        result = pipeline.run()
        result.wait_until_finish()
        return _finalize(staging, rejected, plan.ledger, config, scratch, diagnostics_output)


def run_local_job(input_info: inputs.ParquetInput, config: SynthesisConfig, output_dir: str, *,
                  embedding_column: str, label_column: str, rejected_output: Optional[str] = None,
                  overwrite: bool = False, diagnostics_output: Optional[str] = None) -> JobSummary:
    """The same job in one process with plain numpy (`--runner local`): the reference."""
    columns = [embedding_column, label_column]
    if config.privacy_unit_column:  # user-level privacy: the reference bounds units itself
        columns.append(config.privacy_unit_column)
    with _job_outputs(output_dir, rejected_output, overwrite, diagnostics_output) as (staging, rejected, scratch):
        tables = []
        for path in input_info.files:
            with FileSystems.open(path) as handle:
                tables.append(pq.read_table(handle, columns=columns))
        # Sampling is streamed below, chunk by chunk: memory stays bounded whatever --num-samples is.
        result = synthesize_tables(tables, config.replace(num_samples=0), embedding_column, label_column,
                                   input_info.dimension, progress=True)
        write_json(result.mixture.to_json(), staging.path("gmm.json"))
        label_type = input_info.label_type
        _write_local_synthetic(result.mixture, config, label_type,
                               staging.path(f"{SYNTHETIC_PREFIX}-00000-of-00001.parquet"))
        used = result.bounded_tables if result.bounded_tables is not None else tables
        rows_read = sum(t.num_rows for t in used)
        rows_valid = rows_read - sum(n for reason, n in result.reject_counts.items()
                                     if reason != privacy_units.MISSING_UNIT_REASON)
        diagnostics = validation_counts(result.reject_counts, rows_read, rows_valid, result.clipped_rows)
        diagnostics.update(result.unit_counts)
        write_json(diagnostics, scratch.path)
        if rejected is not None:
            # Re-validation gives the rejected rows themselves (the reference keeps only counts).
            _write_local_rejected(used, result, config, input_info, embedding_column, label_column,
                                  rejected.path("rejected-00000-of-00001.parquet"))
        return _finalize(staging, rejected, result.ledger, config, scratch, diagnostics_output)


@contextlib.contextmanager
def _job_outputs(output_dir: str, rejected_output: Optional[str], overwrite: bool,
                 diagnostics_output: Optional[str]
                 ) -> Iterator[tuple[StagedOutput, Optional[StagedOutput], private.PrivateScratch]]:
    """The release, the rejected rows and the private scratch, all staged; on the way out whatever
    was not published is removed, so a failure or a signal leaves no debris.

    The release's staging comes first: an existing output stops the run before any work.
    """
    staging = StagedOutput(output_dir, overwrite)
    rejected = None
    scratch = private.PrivateScratch(diagnostics_output, output_dir)
    try:
        rejected = StagedOutput(rejected_output, overwrite) if rejected_output else None
        yield staging, rejected, scratch
    finally:
        scratch.close()
        staging.abort()
        if rejected is not None:
            rejected.abort()


def _write_local_synthetic(mixture: ReleasedMixture, config: SynthesisConfig, label_type: pa.DataType,
                           path: str) -> None:
    """The reference's synthetic rows, one sampling chunk (gmm.SAMPLE_CHUNK_ROWS rows) per row group.

    The same chunks and seeds as dpsynth.local.sample_local and the Beam
    sampler, written as they are drawn instead of held in memory.
    """
    from dpsynth import gmm

    schema = synthetic_schema(label_type)
    rows_per_class = mixture.samples_per_class(config.num_samples, config.class_balance)
    with FileSystems.create(path) as handle, pq.ParquetWriter(handle, schema) as writer:
        for chunk in gmm.sampling_chunks(rows_per_class):
            writer.write_table(draw_chunk(chunk, mixture, label_type, config.noise_seed))
        if not any(rows_per_class):
            writer.write_table(schema.empty_table())


def _write_local_rejected(tables, result, config, input_info, embedding_column, label_column, path) -> None:
    from dpsynth.validation import InputSpec, validate_table
    labels = tuple(c.label for c in result.mixture.classes)
    spec = InputSpec(embedding_column, label_column, input_info.dimension, labels, config.radius, config.clip_mode)
    columns = [embedding_column, label_column] + ([config.privacy_unit_column] if config.privacy_unit_column else [])
    schema = rejected_schema(pa.schema([input_info.schema.field(c) for c in columns]))
    results = (validate_table(piece, spec) for t in tables for piece in table_chunks(t))
    parts = [conform(r.rejected, schema) for r in results if r.rejected is not None]
    if result.unit_rejected is not None:
        parts.append(conform(result.unit_rejected, schema))
    with FileSystems.create(path) as handle:
        pq.write_table(pa.concat_tables(parts) if parts else schema.empty_table(), handle)


@options.settings_as_flags()  # the library's errors name settings; the user typed flags
def run(argv: Sequence[str] | None = None) -> int:
    parser = options.make_parser("dpsynth synthesize", __doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="Parquet file, glob or gs:// path")
    parser.add_argument("--embedding-column", default="embedding", help="embedding column (list of floats)")
    parser.add_argument("--dimension", type=int,
                        help="embedding size d, a public fact (default: the fixed-size-list schema or the "
                             "dpsynth.dimension metadata `dpsynth embed` writes; never read from a row)")
    options.add_synthesis_arguments(parser)
    args, beam_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    local, beam_args = options.split_runner(options.forward_job_labels(args, beam_args))
    extra = (args.privacy_unit_column,) if args.privacy_unit_column else ()
    options.check_output_paths(args)
    info = inputs.inspect_parquet(args.input, args.embedding_column, args.label_column, extra, args.dimension)
    config = with_public_subspace(options.config_from_args(args, info.labels_are_integers), args, info.dimension,
                                  args.embedding_column)
    options.check_delta(config, args.min_rows)
    if args.diagnostics_output:
        private.check_location(args.diagnostics_output, args.output, (args.input, *info.files), args.overwrite)
    if local:
        summary = run_local_job(info, config, args.output, embedding_column=args.embedding_column,
                                label_column=args.label_column, rejected_output=args.rejected_output,
                                overwrite=args.overwrite, diagnostics_output=args.diagnostics_output)
    else:
        # One log line per finished pass (transforms.release), not Beam's own INFO chatter.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s dpsynth: %(message)s", stream=sys.stderr)
        logging.getLogger("dpsynth").setLevel(logging.INFO)
        columns = [args.embedding_column, args.label_column, *extra]
        schema = pa.schema([info.schema.field(c) for c in columns])
        def read(pipeline: beam.Pipeline, name: str = "") -> beam.PCollection:
            label = f"ReadParquet[{name}]" if name else "ReadParquet"
            return pipeline | label >> beam.io.ReadFromParquetBatched(args.input, columns=columns)

        summary = run_synthesis_job(
            read,
            config, args.output, PipelineOptions(beam_args), dimension=info.dimension,
            label_type=info.label_type, embedding_column=args.embedding_column, label_column=args.label_column,
            input_schema=schema, rejected_output=args.rejected_output, overwrite=args.overwrite,
            reread_input=read, diagnostics_output=args.diagnostics_output)
    print(summary.describe())
    print_telemetry(summary, args.diagnostics_output, args.rejected_output)
    warning = released_delta_warning(summary, config)
    if warning:
        print(warning, file=sys.stderr)
    return 0


def released_delta_warning(summary: JobSummary, config: SynthesisConfig) -> Optional[str]:
    """A warning when delta >= 1/n for the released (noisy) total count: post-processing of DP values only."""
    noisy_n = sum(max(c.noisy_count, 0.0) for c in summary.mixture.classes)
    if config.allow_large_delta or noisy_n < 1 or config.delta < 1.0 / noisy_n:
        return None
    return (f"dpsynth: warning: delta {config.delta:g} is at or above 1/n for the released noisy count "
            f"n ~ {noisy_n:.0f}; the guarantee is weak: rerun with a smaller delta (and --min-rows)")


def print_telemetry(summary: JobSummary, diagnostics_output: Optional[str], rejected_output: Optional[str]) -> None:
    """Exact facts on stderr, labelled as private operator telemetry (never a silent drop)."""
    for line in (private.empty_warning(summary.diagnostics),
                 private.rejected_warning(summary.diagnostics, diagnostics_output, rejected_output)):
        if line:
            print(line, file=sys.stderr)


if __name__ == "__main__":
    from beam_pipeline.cli import run_guarded

    logging.basicConfig(level=logging.WARNING)
    sys.exit(run_guarded(run, sys.argv[1:]))
