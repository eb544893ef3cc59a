"""Command-line options of the synthesis job.

dpsynth's own flags are parsed here; everything else is handed to Beam's
PipelineOptions untouched (--runner, --direct_running_mode, --project, ...),
so the same command runs on DirectRunner, Dataflow, Flink or Dask.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Iterator, Optional, Sequence

from beam_pipeline.outputs import OVERWRITE_HELP, check_disjoint
from beam_pipeline.public_rows import add_public_rows_arguments
from dpsynth.errors import OptionError, UserError
from dpsynth.params import (CLASS_BALANCES, CLIP_MODES, COVARIANCES, LARGE_EPSILON, ROW_NORMS, SynthesisConfig,
                             parse_label_list, typed_labels)

LOCAL_RUNNER = "local"


class _UserErrorParser(argparse.ArgumentParser):
    """argparse that raises UserError (one line, exit 2) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(message)


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return _UserErrorParser(prog=prog, description=description,
                            epilog="Other options are passed to Apache Beam (e.g. --runner, "
                                   "--direct_running_mode, --direct_num_workers). --runner local runs the "
                                   "same algorithm in one process with plain numpy.")


def as_flag(option: str, flags: Optional[dict[str, str]] = None) -> str:
    """A library setting's command-line spelling: flags[option], else "--" + the option with hyphens."""
    return (flags or {}).get(option, "--" + option.replace("_", "-"))


@contextlib.contextmanager
def settings_as_flags(**flags: str) -> Iterator[None]:
    """Library OptionErrors raised inside name their settings as this command's flags.

    The library words a setting as its parameter (image_size, epsilon) because
    it does not know how it was called; the user typed --image-size. flags gives
    the spellings that are not "--" + the parameter with hyphens (stretch="--no-stretch").
    Also a decorator: each command's run() renders the library's errors this way.
    """
    try:
        yield
    except OptionError as exc:
        raise UserError(exc.render(lambda option: as_flag(option, flags))) from exc


def add_synthesis_arguments(parser: argparse.ArgumentParser) -> None:
    """The DP synthesis flags shared by `synthesize` and `generate`."""
    parser.add_argument("--output", required=True,
                        help="output directory (local or gs://); must not exist, and must not be, contain or "
                             "lie inside an input")
    parser.add_argument("--epsilon", type=float, required=True, help="total privacy budget epsilon (> 0)")
    parser.add_argument("--delta", type=float, required=True, help="total delta, in (0, 1); typically < 1/n")
    parser.add_argument("--labels",
                        help="public label set, comma-separated; omitted: DP label discovery. A value that "
                             "is a Beam/Dataflow job-labels value (a JSON object, or key=value) is passed to "
                             "Beam instead; schedulers that always set job labels should use --class-labels")
    parser.add_argument("--class-labels", help="the same as --labels, never taken for Beam's job labels")
    parser.add_argument("--labels-file", help="file with the public label set, one label per line")
    parser.add_argument("--label-column", default="label", help="label column (int or string)")
    parser.add_argument("--num-samples", type=int, help="synthetic rows in all (default: about as many as "
                                                       "the private rows, from the noisy counts)")
    parser.add_argument("--class-balance", choices=CLASS_BALANCES, default="proportional",
                        help="split synthetic rows by noisy class counts, or evenly")
    parser.add_argument("--max-clusters", type=int, help="components per class (default: chosen per class "
                                                        "from its noisy count and the noise scale, at most 10)")
    parser.add_argument("--rounds", type=int, default=1, help="DP Lloyd rounds after seeding (default 1)")
    parser.add_argument("--radius", type=float, default=1.0, help="L2 bound R on every embedding (default 1)")
    parser.add_argument("--max-rows", type=int, default=2**31,
                        help="public upper bound on the number of input rows (default 2^31); it sets the grid "
                             "rows are rounded to so that sums are exact. Never derived from the data")
    parser.add_argument("--clip-mode", choices=CLIP_MODES, default="normalize",
                        help="normalize rows onto the R-sphere (default) or clip them into the R-ball")
    parser.add_argument("--covariance", choices=COVARIANCES, default="auto",
                        help="covariance model of each component: full (one released d x d shape per class, "
                             "from its rows' centred, clipped scatter, shrunk towards the pooled within-class "
                             "shape by its noise; d <= 1024), lowrank "
                             "(diagonal plus the directions of one pooled within-component scatter matrix that clear "
                             "its noise), spherical or diagonal; auto (default): full up to d = 1024 (d = 128 with "
                             "discovered labels) while all classes' matrices fit 2^25 values, else lowrank while its "
                             "one matrix does, else diagonal")
    parser.add_argument("--row-norms", choices=ROW_NORMS, default="released",
                        help="released (default, with --clip-mode normalize): also release a histogram of each "
                             "class's row norms and give synthetic rows norms drawn from it, so they sit at the "
                             "real rows' scale; radius: every synthetic row has norm R")
    parser.add_argument("--privacy-unit-column",
                        help="column identifying a person: each keeps one record (user-level DP)")
    parser.add_argument("--allow-large-delta", action="store_true",
                        help="accept delta >= 1/n (refused by default)")
    parser.add_argument("--rejected-output", help="write malformed rows (PRIVATE data) to this directory")
    # Exact diagnostics, and the public lower bound on n that the delta guard uses.
    parser.add_argument("--diagnostics-output",
                        help="write exact counts (rows read, used, rejected by reason) to this PRIVATE JSON file, "
                             "outside the release directory and the inputs; not DP (e.g. run.private.json)")
    parser.add_argument("--min-rows", type=int,
                        help="public lower bound on the number of input rows (privacy units with "
                             "--privacy-unit-column); delta >= 1/min-rows is refused. Without it delta must be "
                             f"below {ABSOLUTE_DELTA_CAP:g}")
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    add_public_rows_arguments(parser)


def check_output_paths(args: argparse.Namespace) -> None:
    """Refuse, before any work, outputs that are, contain or lie inside an input or each other."""
    # --diagnostics-output has its own check (diagnostics.check_location: never inside the release).
    check_disjoint([("--output", args.output), ("--rejected-output", args.rejected_output)],
                   [("--input", args.input), ("--labels-file", args.labels_file),
                    ("--public-rows", getattr(args, "public_rows", None)),
                    ("--idx-labels", getattr(args, "idx_labels", None))])


def forward_job_labels(args: argparse.Namespace, beam_args: list[str]) -> list[str]:
    """Hand Beam's own --labels (Dataflow job labels) back to Beam.

    Beam's Google Cloud options also define --labels, as JSON ({"team": "x"})
    or key=value; Airflow's Beam operator always sets it. Such a value is never
    a comma-separated class label set, so it goes to Beam untouched.
    """
    value = args.labels
    if value is not None and (value.lstrip().startswith("{") or "=" in value):
        args.labels = None
        beam_args = [*beam_args, f"--labels={value}"]
    given = [flag for flag, v in (("--labels", args.labels), ("--class-labels", args.class_labels),
                                  ("--labels-file", args.labels_file)) if v is not None]
    if len(given) > 1:
        raise UserError(f"give the label set once, not with {' and '.join(given)}")
    if args.class_labels is not None:
        args.labels = args.class_labels
    return beam_args


def read_labels(args: argparse.Namespace, labels_are_integers: bool) -> Optional[tuple]:
    """The public label set from --labels (or --class-labels) or --labels-file; errors name the flag given."""
    if args.labels is not None:
        with settings_as_flags(labels="--class-labels" if args.class_labels is not None else "--labels"):
            return parse_label_list(args.labels, labels_are_integers)
    if args.labels_file is not None:
        try:
            text = Path(args.labels_file).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"--labels-file {args.labels_file} is not UTF-8 text") from None
        except OSError as exc:
            raise UserError(f"cannot read --labels-file: {exc.strerror}: {args.labels_file}") from None
        # One label per line, as the help says: a label may hold commas. A BOM is not part of a label.
        items = [line.strip() for line in text.lstrip("\ufeff").splitlines() if line.strip()]
        with settings_as_flags():
            return typed_labels(items, labels_are_integers, "labels_file")
    return None


def config_from_args(args: argparse.Namespace, labels_are_integers: bool = False) -> SynthesisConfig:
    """The run's SynthesisConfig; its checks' errors name this command's flags."""
    labels = read_labels(args, labels_are_integers)
    given = ("--labels-file" if args.labels_file is not None
             else "--class-labels" if args.class_labels is not None else "--labels")
    with settings_as_flags(labels=given):
        config = SynthesisConfig(
            epsilon=args.epsilon, delta=args.delta, labels=labels,
            radius=args.radius, max_rows=args.max_rows, clip_mode=args.clip_mode, max_clusters=args.max_clusters,
            rounds=args.rounds,
            covariance=args.covariance, num_samples=args.num_samples, class_balance=args.class_balance,
            row_norms=args.row_norms, privacy_unit_column=args.privacy_unit_column,
            allow_large_delta=args.allow_large_delta)
    if config.epsilon > LARGE_EPSILON:
        print(f"dpsynth: warning: epsilon={config.epsilon:g} is above {LARGE_EPSILON:g}; "
              "the privacy guarantee is weak", file=sys.stderr)
    return config


# The delta guard decides on public facts only.
ABSOLUTE_DELTA_CAP = 1e-4  # without --min-rows: as if n were at least 10^4


def check_delta(config: SynthesisConfig, min_rows: Optional[int]) -> None:
    """Refuse delta >= 1/n_min, n_min a public lower bound on n, before any work.

    delta >= 1/n allows publishing one record in the clear. The exact n is a
    private fact: refusing on it would make the refusal itself a release (an
    empty or tiny input is told apart by whether anything comes out). So the
    rule uses only what the user declares: --min-rows N (counted in privacy
    units when a unit column is given), else the absolute cap 1e-4.
    """
    if min_rows is not None and min_rows < 1:
        raise UserError(f"--min-rows must be a positive integer, got {min_rows}")
    max_rows = getattr(config, "max_rows", None)
    if min_rows is not None and max_rows is not None and min_rows > max_rows:
        raise UserError(f"--min-rows {min_rows} is above --max-rows {max_rows}")
    if config.allow_large_delta:
        return
    unit = "privacy units" if config.privacy_unit_column else "rows"
    if min_rows is not None:
        if config.delta >= 1.0 / min_rows:
            raise UserError(f"--delta {config.delta:g} is at or above 1/n for the declared --min-rows {min_rows} "
                            f"({unit}); choose a smaller delta or pass --allow-large-delta")
    elif config.delta >= ABSOLUTE_DELTA_CAP:
        raise UserError(f"--delta {config.delta:g} is at or above {ABSOLUTE_DELTA_CAP:g}; declare a public lower "
                        f"bound on the number of {unit} with --min-rows N (delta must be below 1/N), choose a "
                        "smaller delta, or pass --allow-large-delta")


# Beam's own Dask runner name means the corrected runner.
DASK_RUNNER = "beam_pipeline.dask_runner.DaskRunner"
_BEAM_DASK_NAMES = ("daskrunner", "dask", "apache_beam.runners.dask.dask_runner.daskrunner")


def map_runner_names(beam_args: Sequence[str]) -> list[str]:
    """`--runner DaskRunner` (Beam's name) -> dpsynth's corrected Dask runner.

    Beam's own DaskRunner silently skips sinks and redraws noise on
    recomputation (beam_pipeline/dask_runner.py): a user who writes Beam's
    name must get the runner that is correct for this pipeline.
    """
    args = list(beam_args)
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--runner" and i + 1 < len(args) and args[i + 1].lower() in _BEAM_DASK_NAMES:
            out += ["--runner", DASK_RUNNER]
            i += 2
            continue
        if args[i].startswith("--runner=") and args[i].split("=", 1)[1].lower() in _BEAM_DASK_NAMES:
            out.append(f"--runner={DASK_RUNNER}")
        else:
            out.append(args[i])
        i += 1
    return out


def split_runner(beam_args: Sequence[str]) -> tuple[bool, list[str]]:
    """(True, rest) when the user asked for the one-process local reference."""
    rest, local = [], False
    args = map_runner_names(beam_args)
    i = 0
    while i < len(args):
        if args[i] == "--runner" and i + 1 < len(args) and args[i + 1].lower() == LOCAL_RUNNER:
            local, i = True, i + 2
            continue
        if args[i].lower() == f"--runner={LOCAL_RUNNER}":
            local, i = True, i + 1
            continue
        rest.append(args[i])
        i += 1
    return local, rest
