"""`dpsynth sample`: more synthetic rows from a release, at no privacy cost.

Usage:
  dpsynth sample --release DIR --num-samples N --output OUT [--class-balance balanced] [beam options]
  dpsynth sample ... --runner local        (one process, plain numpy)

Sampling is post-processing of the released mixture: it reads only DIR's
gmm.json and privacy.json (never private data) and spends no epsilon. Every
draw uses fresh randomness. OUT gets the synthetic rows, a copy of DIR's
gmm.json, DIR's privacy.json with a line saying the rows were drawn from DIR,
and a short report.md.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from typing import Optional, Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from dpsynth import gmm
from dpsynth.errors import UserError
from dpsynth.params import CLASS_BALANCES
from dpsynth.release import MIXTURE_FILE, PRIVACY_FILE, Release, parse_release, sampled_privacy
from beam_pipeline import options
from beam_pipeline.outputs import StagedOutput, join
from beam_pipeline.pipeline import SHARD_TEMPLATE, SYNTHETIC_PREFIX
from transforms.sample import SampleFromMixture, draw_chunk, synthetic_schema, write_json

LOG = logging.getLogger("dpsynth")


@dataclasses.dataclass
class SampleSummary:
    output_dir: str
    release: Release
    rows_per_class: list[int]
    private: bool

    def describe(self) -> str:
        note = "no privacy budget spent" if self.private else "NOT PRIVATE (test-only switch)"
        return (f"dpsynth: drew {sum(self.rows_per_class)} synthetic rows from {self.release.directory} "
                f"into {self.output_dir} ({note})")


def read_release(directory: str, allow_not_private: bool = False) -> Release:
    """A release directory, local or gs://, through Beam's filesystems."""
    directory = directory.rstrip("/") or directory
    if "://" not in directory and not os.path.isdir(directory):
        raise UserError(f"--release {directory}: not a directory")

    def read_text(name: str) -> Optional[str]:
        path = join(directory, name)
        if not FileSystems.exists(path):
            return None
        with FileSystems.open(path) as handle:
            try:
                return handle.read().decode()
            except UnicodeDecodeError:
                return "\0"  # not JSON: parse_release refuses it

    return parse_release(directory, read_text, allow_not_private)


def release_label_type(release: Release) -> pa.DataType:
    """The label type of the release's own synthetic rows, else one that holds its labels."""
    shards = FileSystems.match([join(release.directory, f"{SYNTHETIC_PREFIX}-*.parquet")])[0].metadata_list
    if shards:
        try:
            with FileSystems.open(sorted(m.path for m in shards)[0]) as handle:
                return pq.read_schema(handle).field("label").type
        except (OSError, KeyError, pa.ArrowInvalid):
            pass
    labels = [c.label for c in release.mixture.classes]
    if labels and all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return pa.int64()
    return pa.string()


def _check_paths(release_dir: str, output_dir: str) -> None:
    """No write inside the release, and no --overwrite that could remove it."""
    if "://" in release_dir or "://" in output_dir:
        if release_dir.rstrip("/") == output_dir.rstrip("/"):
            raise UserError("--output must not be the --release directory")
        return
    release, out = os.path.realpath(release_dir), os.path.realpath(output_dir)
    if out == release or out.startswith(release + os.sep) or release.startswith(out + os.sep):
        raise UserError(f"--output {output_dir} must lie outside --release {release_dir} (and not contain it)")


def _finish(staging: StagedOutput, release: Release, rows_per_class: list[int], private: bool) -> None:
    mixture_json = dict(release.gmm)
    if not private:
        mixture_json.update(private=False, warning="NOT PRIVATE: drawn with a test-only switch (fixed seed)"
                            if release.private else mixture_json.get("warning"))
    write_json(mixture_json, staging.path(MIXTURE_FILE))
    write_json(sampled_privacy(release, private), staging.path(PRIVACY_FILE))
    lines = ["# dpsynth sample", ""]
    if not private:
        lines += ["> **NOT PRIVATE.** Made with a test-only switch. Do not share it.", ""]
    lines += [f"Drawn from the release in `{release.directory}`: post-processing of its released mixture",
              "(gmm.json), so no further privacy budget was spent. privacy.json is that release's ledger.",
              "No real row was read.", "", "| label | synthetic rows |", "|---|---|"]
    lines += [f"| {c.label} | {n} |" for c, n in zip(release.mixture.classes, rows_per_class)]
    lines += ["", f"Synthetic rows in all: {sum(rows_per_class)}"]
    with FileSystems.create(staging.path("report.md")) as handle:
        handle.write(("\n".join(lines) + "\n").encode())
    staging.publish()


def sample_release(release_dir: str, output_dir: str, num_samples: int, *, class_balance: str = "proportional",
                   pipeline_options: Optional[PipelineOptions] = None, local: bool = False,
                   overwrite: bool = False, noise_seed: Optional[int] = None,
                   allow_not_private: bool = False) -> SampleSummary:
    """Draw num_samples rows from a release into output_dir (on Beam, or in one process with local=True).

    noise_seed and allow_not_private are TEST ONLY; either makes the output NOT PRIVATE.
    """
    if not isinstance(num_samples, int) or num_samples < 0:
        raise UserError(f"--num-samples must be a non-negative integer, got {num_samples!r}")
    if class_balance not in CLASS_BALANCES:
        raise UserError(f"--class-balance must be one of {', '.join(CLASS_BALANCES)}, got {class_balance!r}")
    _check_paths(release_dir, output_dir)
    release = read_release(release_dir, allow_not_private)
    private = release.private and noise_seed is None
    mixture = release.mixture
    rows_per_class = mixture.samples_per_class(num_samples, class_balance)
    if num_samples and not sum(rows_per_class):
        raise UserError(f"{release_dir}: no class of the release could be fitted; there is nothing to sample")
    label_type = release_label_type(release)
    staging = StagedOutput(output_dir, overwrite)
    try:
        if local:
            _sample_local(mixture, rows_per_class, label_type, noise_seed, staging)
        else:
            pipeline = beam.Pipeline(options=pipeline_options or PipelineOptions([]))
            _ = (pipeline | "Mixture" >> beam.Create([mixture])
                 | "Sample" >> SampleFromMixture(num_samples, class_balance, label_type, noise_seed)
                 | "WriteSynthetic" >> beam.io.WriteToParquetBatched(
                     staging.path(SYNTHETIC_PREFIX), synthetic_schema(label_type), file_name_suffix=".parquet",
                     shard_name_template=SHARD_TEMPLATE))
            pipeline.run().wait_until_finish()
            if not FileSystems.match([staging.path(f"{SYNTHETIC_PREFIX}-*.parquet")])[0].metadata_list:
                _write_shard(synthetic_schema(label_type).empty_table(), staging, 0, 1)
        _finish(staging, release, rows_per_class, private)
    finally:
        staging.abort()
    return SampleSummary(staging.final_dir, release, rows_per_class, private)


def _write_shard(table: pa.Table, staging: StagedOutput, index: int, total: int) -> None:
    with FileSystems.create(staging.path(f"{SYNTHETIC_PREFIX}-{index:05d}-of-{total:05d}.parquet")) as handle:
        pq.write_table(table, handle)


def _sample_local(mixture: gmm.ReleasedMixture, rows_per_class: list[int], label_type: pa.DataType,
                  noise_seed: Optional[int], staging: StagedOutput) -> None:
    """One shard per sampling chunk: memory stays one chunk, as on Beam."""
    chunks = list(gmm.sampling_chunks(rows_per_class))
    if not chunks:
        _write_shard(synthetic_schema(label_type).empty_table(), staging, 0, 1)
    for index, chunk in enumerate(chunks):
        _write_shard(draw_chunk(chunk, mixture, label_type, noise_seed), staging, index, len(chunks))


def run(argv: Sequence[str] | None = None) -> int:
    parser = options.make_parser("dpsynth sample", __doc__.splitlines()[0])
    parser.add_argument("--release", required=True, help="a directory written by `dpsynth synthesize`")
    parser.add_argument("--num-samples", type=int, required=True, help="synthetic rows to draw in all")
    parser.add_argument("--output", required=True, help="output directory (local or gs://); must not exist")
    parser.add_argument("--class-balance", choices=CLASS_BALANCES, default="proportional",
                        help="split rows by the release's noisy class counts, or evenly")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    args, beam_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    local, beam_args = options.split_runner(beam_args)
    summary = sample_release(args.release, args.output, args.num_samples, class_balance=args.class_balance,
                             pipeline_options=PipelineOptions(beam_args), local=local, overwrite=args.overwrite)
    print(summary.describe())
    return 0


if __name__ == "__main__":
    from beam_pipeline.cli import run_guarded

    logging.basicConfig(level=logging.WARNING)
    sys.exit(run_guarded(run, sys.argv[1:]))
