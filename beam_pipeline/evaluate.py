"""`dpsynth evaluate`: how good are the synthetic rows for training a classifier?

    dpsynth evaluate --synthetic DIR --test FILE.parquet [--train FILE.parquet] [--output FILE.json]

Trains the fixed two-layer MLP (dpsynth.evaluation.mlp) on DIR/synthetic-*.parquet
and reports its accuracy on the real test rows; with --train, also the same MLP
on real rows (the non-private ceiling). Writes JSON and markdown (same name,
.md), both PRIVATE (exact row counts, accuracy on real rows), never inside DIR:
by default DIR-evaluation.private.json beside DIR. This is a local, single-process step: the inputs are a synthetic set and
a test set that fit in memory, so it needs no Beam pipeline.

Test and train rows are bounded as the synthesis bounded its input (L2-normalised
onto the sphere of radius R by default): as --clip-mode/--radius say, else as
DIR's gmm.json records: a classifier trained on unit-norm rows must be tested on
unit-norm rows.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from dpsynth.errors import UserError
from dpsynth.geometry import into_ball, onto_sphere
from dpsynth.gmm import ReleasedMixture
from dpsynth.release import MIXTURE_FILE, PRIVACY_FILE
from dpsynth.validation import read_embedding_files


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dpsynth evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--synthetic", required=True, nargs="+",
                   help="directory written by `dpsynth synthesize`; several (e.g. one per epsilon) draw the "
                        "privacy-utility curve (then --output is required)")
    p.add_argument("--test", required=True, help="Parquet file of real held-out rows")
    p.add_argument("--train", help="Parquet file of real train rows: also report the non-private MLP")
    p.add_argument("--output", help="PRIVATE JSON result path, outside DIR (default: DIR-evaluation.private.json "
                                    "beside DIR; markdown beside it); never an existing file without --overwrite, "
                                    "never an input")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing result, but only one `dpsynth evaluate` wrote (a JSON result "
                        "and its markdown); never an input or another file")
    p.add_argument("--embedding-column", default="embedding")
    p.add_argument("--label-column", default="label")
    p.add_argument("--clip-mode", choices=("normalize", "clip", "none"),
                   help="how to bound test/train rows (default: as recorded in DIR, else normalize)")
    p.add_argument("--radius", type=float, help="bound radius R (default: as recorded in DIR, else 1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the classifier's initialisation and batches")
    return p


def read_embeddings(paths: list[Path], embedding_column: str, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one or more Parquet files as (float32 [n, d], labels [n]); no rows at all is an error."""
    x, y = read_embedding_files(paths, embedding_column, label_column)
    if len(x) == 0:
        raise UserError(f"no rows in {', '.join(str(p) for p in paths)}")
    return x, y


def _find_key(obj: Any, key: str) -> Any:
    """First value of `key` anywhere in nested JSON (the core's files may nest their config)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for value in obj.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for value in obj:
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def _read_json(path: Path) -> Optional[dict]:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{path}: not valid JSON") from None


def _recorded(directory: Path) -> tuple[Optional[dict], Optional[ReleasedMixture]]:
    """DIR's privacy.json as published and its mixture, each None when DIR has none."""
    privacy, mixture = _read_json(directory / PRIVACY_FILE), _read_json(directory / MIXTURE_FILE)
    if mixture is None:
        return privacy, None
    try:
        return privacy, ReleasedMixture.from_json(mixture)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"{directory / MIXTURE_FILE}: not a dpsynth mixture ({type(exc).__name__}: {exc})") from None


def bound_rows(x: np.ndarray, clip_mode: str, radius: float) -> np.ndarray:
    if clip_mode == "normalize":
        return onto_sphere(x, radius).astype(np.float32)
    if clip_mode == "clip":
        return into_ball(x, radius).astype(np.float32)
    return x


def _run_several(args: argparse.Namespace) -> int:
    """One evaluation per release, then the privacy-utility table and curve beside --output."""
    from dpsynth.figures import privacy_utility_figure

    if not args.output:
        raise UserError("--output FILE.json is required with several --synthetic directories")
    output = Path(args.output)
    for directory in args.synthetic:  # PRIVATE results (accuracy on real rows): never inside a release
        evaluation_path(Path(directory), str(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    points = []
    for index, directory in enumerate(args.synthetic):
        one = output.with_name(f"{output.stem}-{index}.json")
        argv = ["--synthetic", directory, "--test", args.test, "--output", str(one), "--seed", str(args.seed),
                "--embedding-column", args.embedding_column, "--label-column", args.label_column]
        argv += ["--train", args.train] if args.train and index == 0 else []
        argv += ["--clip-mode", args.clip_mode] if args.clip_mode else []
        argv += ["--radius", str(args.radius)] if args.radius is not None else []
        run(argv)
        result = json.loads(one.read_text())
        privacy = result.get("privacy") or {}
        # the ledger's spent epsilon (privacy.json's "spent"), the target only where a file has no spent one
        spent = privacy.get("spent")
        epsilon = spent.get("epsilon") if isinstance(spent, dict) else None
        epsilon = _find_key(privacy, "epsilon") if epsilon is None else epsilon
        if epsilon is None:
            raise UserError(f"{directory}: its privacy.json gives no epsilon to plot against")
        points.append({"release": directory, "epsilon": float(epsilon), "accuracy": result["accuracy_synthetic"],
                       "ceiling": result.get("accuracy_real") if index == 0 else None})
    ceiling = points[0]["ceiling"]
    for point in points:
        point["ceiling"] = ceiling
    points.sort(key=lambda p: p["epsilon"])
    output.write_text(json.dumps({"points": points}, indent=2) + "\n")
    lines = ["# dpsynth privacy-utility", "",
             "PRIVATE: accuracies measured on real test rows (and a ceiling trained on real rows); "
             "keep this beside the data, not in a release.", "", "| epsilon | accuracy (trained on DP synthetic rows) | release |",
             "|---|---|---|"]
    lines += [f"| {p['epsilon']:g} | {100 * p['accuracy']:.2f}% | `{p['release']}` |" for p in points]
    if ceiling is not None:
        lines += ["", f"Non-private ceiling (trained on real rows): {100 * ceiling:.2f}%."]
    lines += ["", f"![privacy-utility curve]({output.with_suffix('.png').name})"]
    output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    output.with_suffix(".png").write_bytes(privacy_utility_figure(points, "Privacy-utility (dpsynth evaluate)"))
    print(f"wrote {output}, {output.with_suffix('.md')} and {output.with_suffix('.png')}")
    return 0


def evaluation_path(directory: Path, output: str | None) -> Path:
    """Where the PRIVATE evaluation goes: never inside the release directory DIR.

    The evaluation holds exact facts of real rows (test and train counts, the
    accuracy of a classifier trained on private rows); DIR is what users share.
    """
    path = Path(output) if output else directory.parent / f"{directory.resolve().name}-evaluation.private.json"
    release = directory.resolve()
    for candidate in (path, path.with_suffix(".md")):
        resolved = candidate.resolve()
        if resolved == release or release in resolved.parents:
            raise UserError(f"--output {candidate} lies inside the release directory {directory}; the evaluation "
                            "is PRIVATE (exact counts, accuracy on real rows): write it elsewhere")
    return path


def _is_evaluation_json(path: Path) -> bool:
    try:
        return "accuracy_synthetic" in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return False


def _check_output(output: Path, args: argparse.Namespace, shards: list[Path]) -> None:
    """The JSON and its markdown: never an input, never a directory, an existing one only with --overwrite."""
    from beam_pipeline.outputs import check_disjoint

    markdown = output.with_suffix(".md")
    inputs = [("--test", args.test), ("--train", args.train)] + [("--synthetic", str(p)) for p in shards]
    check_disjoint([("--output", str(output))], inputs)
    check_disjoint([("--output's markdown", str(markdown))], inputs)
    for path in (output, markdown):
        if path.is_dir():
            raise UserError(f"--output {path} is a directory; give a file name such as {path}/evaluation.json")
        if not path.exists():
            continue
        if not args.overwrite:
            raise UserError(f"{path} already exists; pass --overwrite to replace it")
        if not _is_evaluation_json(output):
            raise UserError(f"--overwrite replaces only a result `dpsynth evaluate` wrote, and {output} is not "
                            "one; remove it yourself or choose another --output")


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if len(args.synthetic) > 1:
        return _run_several(args)
    args.synthetic = args.synthetic[0]
    from dpsynth.evaluation.mlp import train_mlp
    from dpsynth.evaluation.report import EvaluationResult, write_report

    directory = Path(args.synthetic)
    if not directory.is_dir():
        raise UserError(f"--synthetic {directory}: not a directory")
    shards = sorted(directory.glob("synthetic-*.parquet"))
    if not shards:
        raise UserError(f"--synthetic {directory}: no synthetic-*.parquet files")
    for flag, value in (("--test", args.test), ("--train", args.train)):
        if value is not None and not Path(value).is_file():
            raise UserError(f"{flag} {value}: no such file")
    recorded_privacy, mixture = _recorded(directory)
    if args.clip_mode:
        clip_mode = args.clip_mode
    elif mixture is None:
        clip_mode = "normalize"
    else:  # synthetic rows that carry released norms are at the real rows' scale: real rows are used as given
        clip_mode = "none" if mixture.norms is not None else mixture.clip_mode
    radius = args.radius if args.radius is not None else (1.0 if mixture is None else mixture.radius)
    if radius <= 0:
        raise UserError("--radius must be positive")

    output = evaluation_path(directory, args.output)  # PRIVATE: never inside the release directory
    _check_output(output, args, shards)

    # Synthetic rows are read as the core wrote them: label, embedding list<float32>.
    xs, ys = read_embeddings(shards, "embedding", "label")
    xt, yt = read_embeddings([Path(args.test)], args.embedding_column, args.label_column)
    if xt.shape[1] != xs.shape[1]:
        raise UserError(f"test embeddings have {xt.shape[1]} dimensions, synthetic rows {xs.shape[1]}")
    xt = bound_rows(xt, clip_mode, radius)
    classes = np.unique(ys)
    unseen = np.setdiff1d(np.unique(yt), classes)
    if len(unseen):
        # Not an error: a class the synthesis did not release is scored as a miss.
        print(f"dpsynth evaluate: {len(unseen)} test label(s) absent from the synthetic rows "
              f"(scored as errors): {', '.join(map(str, unseen[:5]))}")
    clf = train_mlp(xs, ys, seed=args.seed)
    privacy = dict(recorded_privacy or {})
    if mixture is not None:  # the mixture marks test-only (seeded/noiseless) outputs
        privacy["private"] = mixture.private
    privacy = privacy or None
    result = EvaluationResult(
        synthetic_dir=str(directory), test_file=str(args.test), num_synthetic=len(xs), num_test=len(xt),
        classes=[c.item() if hasattr(c, "item") else c for c in classes],
        accuracy_synthetic=clf.accuracy(xt, yt), privacy=privacy)
    if args.train:
        xr, yr = read_embeddings([Path(args.train)], args.embedding_column, args.label_column)
        if xr.shape[1] != xs.shape[1]:
            raise UserError(f"train embeddings have {xr.shape[1]} dimensions, synthetic rows {xs.shape[1]}")
        real = train_mlp(bound_rows(xr, clip_mode, radius), yr, seed=args.seed)
        result.train_file, result.num_train, result.accuracy_real = str(args.train), len(xr), real.accuracy(xt, yt)
    _check_output(output, args, shards)  # again: the target must still be free (or ours) when written
    write_report(result, output)
    line = f"synthetic-trained MLP: {100 * result.accuracy_synthetic:.2f}% on {len(xt)} test rows"
    if result.accuracy_real is not None:
        line += f"; real-trained (non-private ceiling): {100 * result.accuracy_real:.2f}%"
    print(f"{line}\nwrote {output} and {output.with_suffix('.md')} (PRIVATE: exact facts of real rows)")
    return 0


if __name__ == "__main__":
    import sys

    from beam_pipeline.cli import run_guarded

    sys.exit(run_guarded(run, sys.argv[1:]))
