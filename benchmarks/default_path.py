"""The default-path sweep: what a user gets from `dpsynth synthesize` with no knob, on full encoder outputs.

    python -m benchmarks.default_path [--datasets a,b] [--epsilons 1,3] [--reps 3]
        [--methods dpsynth,dpsgd_linear,dpsgd_mlp,tramer_boneh,nonprivate] [--public-rows]

Unlike benchmarks/privacy_utility.py (every method on a 64-d projection fitted
on in-distribution public rows), every method here sees the encoder's full
output (3,969-d ScatterNet, 1,280-d EfficientNet-Lite0, 384-d MiniLM):

- dpsynth: the private train rows are written to Parquet as `dpsynth embed`
  writes them (label int64, embedding list<float32>, the embed schema's
  metadata), then the CLI runs in-process with nothing but
  `--input --output --epsilon --delta 1e-5 --labels 0,..,9 --runner local`;
  the synthetic Parquet is read back and the fixed MLP
  (dpsynth/evaluation/mlp.py) is trained on it;
- dpsynth_public_rows (only with --public-rows, and only if the CLI has the
  flag): the same plus `--public-rows FILE`, FILE holding the public half of
  the test set. A separate, labelled row: most users have no such rows;
- dpsgd_linear / dpsgd_mlp: DP-SGD on the real rows
  (dpsynth/evaluation/dpsgd.py: its fixed hyper-parameters, inputs
  standardised with public-row statistics);
- tramer_boneh (ScatterNet rows only): Tramer & Boneh's Fashion-MNIST
  ScatterNet + linear recipe (ICLR 2021; ftramer/Handcrafted-DP README):
  GroupNorm without affine over the 81 channels x 7 x 7 layout with 27
  groups (a per-row map, no privacy cost), a linear model, DP-SGD with batch
  8192, learning rate 16, momentum 0.9, clip norm 0.1, 40 epochs. Their
  noise multiplier 4.05 reached epsilon 3 under their accountant; here sigma
  is recalibrated to each target epsilon with dp-accounting's RDP
  accountant (tighter, so slightly less noise at epsilon 3), with Poisson
  sampling as that accountant assumes;
- nonprivate: the fixed MLP on the real rows (the ceiling).

Datasets: the three caches of benchmarks/embed_cache.py and
fmnist-scatternet-10pct, a fixed stratified 10% subset (seed 0, 10% of each
class) of the Fashion-MNIST ScatterNet train rows. Accuracy is on the
held-out evaluation rows. One JSON line per run goes to
benchmarks/results/raw_default_path.jsonl; runs already there are skipped,
so an interrupted sweep resumes. benchmarks/summarize_default_path.py makes
the table, the plot and the goal checks.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from benchmarks.embed_cache import load_cached
from dpsynth.evaluation import dpsgd
from dpsynth.evaluation.mlp import Standardizer, train_mlp

RESULTS = Path(__file__).parent / "results"
DELTA = 1e-5
EPSILONS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0)
DATASETS = ("fmnist-scatternet", "fmnist-effnet", "spam-minilm", "fmnist-scatternet-10pct")
METHODS = ("dpsynth", "dpsgd_linear", "dpsgd_mlp", "tramer_boneh", "nonprivate")
SUBSET_FRACTION, SUBSET_SEED = 0.10, 0
# The encoder each cache came from and its declared output size, as `dpsynth embed` writes them in
# the Parquet metadata (synthesize takes d from there, a public fact).
ENCODERS = {"fmnist-scatternet": ("scatternet", 3969), "fmnist-effnet": ("efficientnet-lite0", 1280),
            "spam-minilm": ("minilm", 384)}
# Tramer & Boneh, Fashion-MNIST ScatterNet + linear (their README's command line; 40 epochs:
# sigma 4.05 reaches epsilon 3 after 40 epochs of 7 steps under their RDP-to-DP conversion).
TB_GROUPS, TB_BATCH, TB_LR, TB_EPOCHS = 27, 8192, 16.0, 40
SCATTER_LAYOUT = (81, 7, 7)


def base_name(dataset: str) -> str:
    return dataset.removesuffix("-10pct")


def load_dataset(dataset: str) -> dict[str, np.ndarray]:
    data = load_cached(base_name(dataset))
    if dataset.endswith("-10pct"):
        rng = np.random.default_rng(SUBSET_SEED)
        y = data["train_y"]
        keep = np.concatenate([rng.choice(np.flatnonzero(y == c), int(round(SUBSET_FRACTION * np.sum(y == c))),
                                          replace=False) for c in np.unique(y)])
        keep.sort()
        data["train_x"], data["train_y"] = data["train_x"][keep], y[keep]
    return data


def write_embed_parquet(x: np.ndarray, y: np.ndarray, path: Path, encoder: tuple[str, int]) -> None:
    """Rows in the schema and metadata of `dpsynth embed`'s output (transforms/embedding.py)."""
    from transforms.embedding import embedding_schema, to_table

    name, dim = encoder
    if x.shape[1] != dim:
        raise ValueError(f"{name} declares {dim}-d, the cache holds {x.shape[1]}-d")
    meta = types.SimpleNamespace(name=name, output_dim=dim, preprocessing=f"benchmarks/embed_cache.py ({name})")
    schema = embedding_schema("int64", False, meta)
    writer = pq.ParquetWriter(path, schema)
    try:
        for start in range(0, len(x), 8192):
            writer.write_table(to_table(x[start:start + 8192], y[start:start + 8192].astype(np.int64), None, schema))
    finally:
        writer.close()


def cli_has_flag(flag: str) -> bool:
    """Whether the `synthesize` on PYTHONPATH offers a flag (its --help, in a fresh process)."""
    out = subprocess.run([sys.executable, "-m", "beam_pipeline.synthesize", "--help"], capture_output=True,
                         text=True, timeout=300)
    return flag in out.stdout


def _find_key(obj, words: tuple[str, ...]) -> dict:
    """Every scalar under a key containing one of `words` (e.g. the pass count, if the release says)."""
    found = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if any(w in k.lower() for w in words) and isinstance(v, (int, float, str)):
                found[k] = v
            else:
                found.update(_find_key(v, words))
    elif isinstance(obj, list):
        for v in obj:
            found.update(_find_key(v, words))
    return found


def run_dpsynth(input_path: Path, classes: np.ndarray, epsilon: float, rep: int, work: Path,
                public_rows: Path | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The CLI with its defaults; returns the synthetic rows and what the release says."""
    from beam_pipeline.synthesize import run

    out_dir = work / f"release-{epsilon:g}-{rep}"
    argv = ["--input", str(input_path), "--output", str(out_dir), "--epsilon", f"{epsilon:g}",
            "--delta", f"{DELTA:g}", "--labels", ",".join(str(int(c)) for c in classes), "--runner", "local"]
    if public_rows is not None:
        argv += ["--public-rows", str(public_rows)]
    console = io.StringIO()
    t0 = time.time()
    with contextlib.redirect_stdout(console):
        rc = run(argv)
    wall = time.time() - t0
    if rc:
        raise RuntimeError(f"synthesize returned {rc}: {console.getvalue()[-500:]}")
    try:
        table = pa.concat_tables([pq.read_table(f, columns=["label", "embedding"])
                                  for f in sorted(out_dir.glob("synthetic-*.parquet"))])
        emb = table.column("embedding").combine_chunks()
        sx = emb.flatten().to_numpy(zero_copy_only=False).reshape(len(emb), -1).astype(np.float32)
        sy = table.column("label").to_numpy().astype(np.int64)
        privacy = json.loads((out_dir / "privacy.json").read_text())
        gmm = json.loads((out_dir / "gmm.json").read_text())
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    spent = privacy.get("spent", {}).get("epsilon")
    extra = {"spent_epsilon": spent, "cli_seconds": round(wall, 2), "num_synthetic": int(len(sx)),
             "synthetic_dim": int(sx.shape[1]), "console": console.getvalue().strip()[-300:],
             "passes": _find_key([privacy, gmm], ("pass",)) or None,
             "reduction": _find_key(gmm, ("reduction", "projection", "subspace")) or None}
    return sx, sy, extra


def group_norm(x: np.ndarray, groups: int = TB_GROUPS, layout: tuple[int, int, int] = SCATTER_LAYOUT,
               eps: float = 1e-5) -> np.ndarray:
    """GroupNorm without affine parameters, row by row: a public per-row map of ScatterNet features."""
    c, h, w = layout
    g = np.asarray(x, dtype=np.float32).reshape(len(x), groups, (c // groups) * h * w)
    mean = g.mean(axis=2, keepdims=True)
    var = g.var(axis=2, keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(len(x), c * h * w).astype(np.float32)


def run_method(method: str, dataset: str, data: dict[str, np.ndarray], epsilon: float | None, rep: int,
               work: Path, files: dict[str, Path]) -> dict:
    x, y = data["train_x"], data["train_y"]
    classes = np.unique(np.concatenate([data["public_y"], data["eval_y"]]))  # the public label set
    extra: dict = {}
    if method in ("dpsynth", "dpsynth_public_rows"):
        sx, sy, extra = run_dpsynth(files["private"], classes, epsilon, rep, work,
                                    files.get("public") if method == "dpsynth_public_rows" else None)
        clf = train_mlp(sx, sy, classes=classes, seed=rep)
    elif method in ("dpsgd_linear", "dpsgd_mlp"):
        clf, plan = dpsgd.train_dpsgd(x, y, epsilon, DELTA, standardizer=Standardizer.fit(data["public_x"]),
                                      classes=classes, linear=method == "dpsgd_linear")
        extra = {**plan.to_json(), "standardizer": "public rows"}
    elif method == "tramer_boneh":
        clf, plan = dpsgd.train_dpsgd(group_norm(x), y, epsilon, DELTA, standardizer=Standardizer.identity(x.shape[1]),
                                      classes=classes, linear=True, expected_batch=TB_BATCH, epochs=TB_EPOCHS,
                                      lr=TB_LR)
        extra = {**plan.to_json(), "groups": TB_GROUPS, "batch": TB_BATCH, "lr": TB_LR, "epochs": TB_EPOCHS}
        return {"accuracy": clf.accuracy(group_norm(data["eval_x"]), data["eval_y"]), **extra}
    elif method == "nonprivate":
        clf = train_mlp(x, y, classes=classes, seed=rep)
    else:
        raise ValueError(f"unknown method {method!r}")
    return {"accuracy": clf.accuracy(data["eval_x"], data["eval_y"]), **extra}


def _done(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    return {(r["dataset"], r["method"], r["epsilon"], r["rep"])
            for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--epsilons", default=",".join(str(e) for e in EPSILONS))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--first-rep", type=int, default=0)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--public-rows", action="store_true",
                   help="also run dpsynth with --public-rows (if the CLI has that flag)")
    p.add_argument("--output", default=str(RESULTS / "raw_default_path.jsonl"))
    p.add_argument("--workdir", default=None, help="scratch folder for the Parquet files (default: a temp dir)")
    args = p.parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("dpsynth").setLevel(logging.ERROR)
    torch.set_num_threads(1)  # shared 2-core machine
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    if args.public_rows:
        if cli_has_flag("--public-rows"):
            methods.append("dpsynth_public_rows")
        else:
            print("synthesize has no --public-rows here: that row is skipped", flush=True)
    epsilons = [float(e) for e in args.epsilons.split(",")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="dpsynth-default-path-", dir=args.workdir) as tmp:
        work = Path(tmp)
        for dataset in args.datasets.split(","):
            data = load_dataset(dataset)
            todo = [(m, e, r) for r in range(args.first_rep, args.reps) for m in methods
                    for e in ([None] if m == "nonprivate" else epsilons)
                    if not (m == "tramer_boneh" and not dataset.startswith("fmnist-scatternet"))]
            todo = [t for t in todo if (dataset, *t[:2], t[2]) not in _done(out)]
            if not todo:
                continue
            print(f"{dataset}: train {data['train_x'].shape}, eval {len(data['eval_y'])}", flush=True)
            files: dict[str, Path] = {}
            if any(m.startswith("dpsynth") for m, _, _ in todo):
                files["private"] = work / f"{dataset}-private.parquet"
                write_embed_parquet(data["train_x"], data["train_y"], files["private"],
                                    ENCODERS[base_name(dataset)])
                if "dpsynth_public_rows" in methods:
                    files["public"] = work / f"{dataset}-public.parquet"
                    write_embed_parquet(data["public_x"], data["public_y"], files["public"],
                                        ENCODERS[base_name(dataset)])
            for method, epsilon, rep in todo:
                if (dataset, method, epsilon, rep) in _done(out):  # another process may share the file
                    continue
                t0 = time.time()
                row = run_method(method, dataset, data, epsilon, rep, work, files)
                row = {"dataset": dataset, "method": method, "epsilon": epsilon, "rep": rep, "delta": DELTA,
                       "num_train": int(len(data["train_y"])), "dim": int(data["train_x"].shape[1]),
                       "code_commit": commit, "seconds": round(time.time() - t0, 2), **row}
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"{dataset} {method:<14} eps={epsilon} rep={rep}: {100 * row['accuracy']:.2f}% "
                      f"({row['seconds']:.0f} s)", flush=True)
            for f in files.values():
                f.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
