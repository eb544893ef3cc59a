"""The privacy-utility sweep: dpsynth against its anchors on the same embeddings.

    python -m benchmarks.privacy_utility [--datasets a,b] [--epsilons 0.25,...] [--reps 3]
                                         [--methods dpsynth,class_means,dpsgd_linear,dpsgd_mlp,nonprivate]

Reads the cached embeddings (benchmarks/embed_cache.py), applies one public
projection fitted on the public rows (dpsynth/evaluation/projection.py; its
dimension and whitening were chosen on public rows only, see
benchmarks/choose_on_public.py), then for every (epsilon, repetition) runs:

- dpsynth: dpsynth.local.synthesize_arrays with its defaults (labels public),
  then the fixed MLP on the synthetic rows;
- class_means: DP class means (one spherical component per class), sampled
  to as many rows as the private set, then the fixed MLP;
- dpsgd_linear / dpsgd_mlp: DP-SGD on the real private rows (fixed
  hyper-parameters, dpsynth/evaluation/dpsgd.py);
- nonprivate: the fixed MLP on the real private rows (the ceiling; once per
  repetition, it does not depend on epsilon).

Accuracy is on the evaluation rows (the half of the test set not declared
public). One JSON line per run is appended to benchmarks/results/raw.jsonl;
runs already there are skipped, so an interrupted sweep resumes and a sweep
at new epsilons reuses the old ones. benchmarks/summarize.py makes the table
and the plot.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.embed_cache import load_cached
from dpsynth.evaluation import baselines, dpsgd
from dpsynth.evaluation.mlp import Standardizer, train_mlp
from dpsynth.evaluation.projection import PublicProjection

RESULTS = Path(__file__).parent / "results"
DELTA = 1e-5
EPSILONS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0)
DATASETS = ("fmnist-scatternet", "fmnist-effnet", "spam-minilm")
METHODS = ("dpsynth", "dpsynth_spherical", "class_means", "dpsgd_linear", "dpsgd_mlp", "nonprivate")
# dpsynth_spherical: the ablation of the full-covariance default (the default before it).
# Chosen on public rows only (benchmarks/choose_on_public.py, results/public_choice.jsonl).
PROJECTIONS = {"fmnist-scatternet": {"dim": 64, "whiten": True},
               "fmnist-effnet": {"dim": 64, "whiten": True},
               "spam-minilm": {"dim": 32, "whiten": True}}  # its own public rows (BENCHMARKS.md)


def _done(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        r = json.loads(line)
        keys.add((r["dataset"], r["method"], r["epsilon"], r["rep"]))
    return keys


def prepare(name: str) -> dict[str, np.ndarray]:
    """Cached embeddings, projected by the public projection (every method sees these rows)."""
    data = load_cached(name)
    projection = PROJECTIONS[name]
    proj = PublicProjection.fit(data["public_x"], min(projection["dim"], data["public_x"].shape[1]),
                                whiten=projection["whiten"])
    return {"train_x": proj(data["train_x"]), "train_y": data["train_y"], "public_x": proj(data["public_x"]),
            "public_y": data["public_y"], "eval_x": proj(data["eval_x"]), "eval_y": data["eval_y"]}


def run_method(method: str, data: dict[str, np.ndarray], epsilon: float, rep: int) -> dict:
    """One run; returns accuracy on the evaluation rows and what the run released or spent."""
    x, y = data["train_x"], data["train_y"]
    classes = np.unique(np.concatenate([data["public_y"], data["eval_y"]]))  # public label set
    extra: dict = {}
    if method in ("dpsynth", "dpsynth_spherical"):
        from dpsynth.local import synthesize_arrays
        from dpsynth.params import SynthesisConfig

        config = SynthesisConfig(epsilon=epsilon, delta=DELTA, labels=tuple(int(c) for c in classes))
        if method == "dpsynth_spherical":
            config = config.replace(covariance="spherical")
        result = synthesize_arrays(x, y, config)
        sx, sy = result.synthetic_embeddings, np.asarray(result.synthetic_labels).astype(np.int64)
        extra = {"spent_epsilon": float(result.ledger.spent_epsilon), "num_synthetic": int(len(sx)),
                 "components": int(len(np.unique(result.synthetic_components)))}
        clf = train_mlp(sx, sy, classes=classes, seed=rep)
    elif method == "class_means":
        model = baselines.fit_class_means(x, y, classes, epsilon, DELTA)
        sx, sy = model.sample(len(x), np.random.default_rng())
        extra = {"spent_epsilon": model.ledger.spent_epsilon, "noise_multiplier": model.ledger.noise_multiplier}
        clf = train_mlp(sx, sy, classes=classes, seed=rep)
    elif method in ("dpsgd_linear", "dpsgd_mlp"):
        clf, plan = dpsgd.train_dpsgd(x, y, epsilon, DELTA, standardizer=Standardizer.fit(data["public_x"]),
                                      classes=classes, linear=method == "dpsgd_linear")
        extra = plan.to_json()
    elif method == "nonprivate":
        clf = train_mlp(x, y, classes=classes, seed=rep)
    else:
        raise ValueError(f"unknown method {method!r}")
    return {"accuracy": clf.accuracy(data["eval_x"], data["eval_y"]), **extra}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--epsilons", default=",".join(str(e) for e in EPSILONS))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--first-rep", type=int, default=0, help="start at this repetition (parallel runs)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--output", default=str(RESULTS / "raw.jsonl"))
    args = p.parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)  # RDP's per-order convergence notes
    torch.set_num_threads(1)  # shared 2-core machine: one thread wastes least under load
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _done(out)
    epsilons = [float(e) for e in args.epsilons.split(",")]
    for name in args.datasets.split(","):
        data = prepare(name)
        print(f"{name}: train {data['train_x'].shape}, public {len(data['public_y'])}, "
              f"eval {len(data['eval_y'])}", flush=True)
        for rep in range(args.first_rep, args.reps):
            for method in args.methods.split(","):
                for epsilon in ([None] if method == "nonprivate" else epsilons):
                    key = (name, method, epsilon, rep)
                    if key in done or key in _done(out):  # re-read: another process may share the file
                        continue
                    t0 = time.time()
                    row = run_method(method, data, epsilon, rep)
                    row = {"dataset": name, "method": method, "epsilon": epsilon, "rep": rep, "delta": DELTA,
                           "projection": PROJECTIONS[name], "seconds": round(time.time() - t0, 2), **row}
                    with out.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(f"{name} {method:<12} eps={epsilon} rep={rep}: {100 * row['accuracy']:.2f}% "
                          f"({row['seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
