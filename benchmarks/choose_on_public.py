"""Choose the public projection on PUBLIC rows only, never on private train or evaluation rows.

    python -m benchmarks.choose_on_public [--dataset fmnist-scatternet]

The public half of the test set is split again: rows A stand in for the
private set, rows B score the choice. A is much smaller than the real private
set, so each epsilon is scaled by n_private / n_A: Gaussian noise on a sum
relative to the sum's size then matches what the real run will see. For each
candidate projection (dimension, whitening), dpsynth runs on A with its
defaults and the fixed MLP trained on its synthetic rows is scored on B.
Results go to benchmarks/results/public_choice.jsonl.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.embed_cache import load_cached
from dpsynth.evaluation.mlp import train_mlp
from dpsynth.evaluation.projection import PublicProjection

RESULTS = Path(__file__).parent / "results"
# dpsynth settings tried against its defaults (max_clusters=None: k from released counts,
# rounds=1, spherical covariance, proportional classes).
METHOD_OPTIONS = ({}, {"covariance": "diagonal"}, {"max_clusters": 1}, {"max_clusters": 5},
                  {"max_clusters": 20}, {"rounds": 2}, {"class_balance": "balanced"})
CANDIDATES = ({"dim": 32, "whiten": True}, {"dim": 64, "whiten": True}, {"dim": 128, "whiten": True},
              {"dim": 64, "whiten": False}, {"dim": 128, "whiten": False})


def main(argv: list[str] | None = None) -> int:
    from dpsynth.local import synthesize_arrays
    from dpsynth.params import SynthesisConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fmnist-scatternet")
    p.add_argument("--epsilons", default="1,4")
    p.add_argument("--what", choices=("projection", "method"), default="projection",
                   help="projection: compare public projections with dpsynth's defaults; method: compare "
                        "dpsynth settings under the benchmark's projection")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_cached(args.dataset)
    px, py = data["public_x"], data["public_y"]
    a, b = np.arange(0, len(py), 2), np.arange(1, len(py), 2)
    scale = len(data["train_y"]) / len(a)
    classes = tuple(int(c) for c in np.unique(py))
    out = RESULTS / "public_choice.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.what == "projection":
        runs = [(cand, {}) for cand in CANDIDATES]
    else:
        from benchmarks.privacy_utility import PROJECTIONS

        runs = [(PROJECTIONS[args.dataset], opts) for opts in METHOD_OPTIONS]
    for cand, opts in runs:
        # The projection is fitted on A only, so B stays unseen by every step but the score.
        proj = PublicProjection.fit(px[a], min(cand["dim"], px.shape[1]), whiten=cand["whiten"])
        za, zb = proj(px[a]), proj(px[b])
        for eps in (float(e) for e in args.epsilons.split(",")):
            t0 = time.time()
            res = synthesize_arrays(za, py[a], SynthesisConfig(epsilon=eps * scale, delta=1e-5, labels=classes,
                                                               num_samples=len(data["train_y"]), **opts))
            clf = train_mlp(res.synthetic_embeddings, np.asarray(res.synthetic_labels).astype(np.int64), seed=0)
            row = {"dataset": args.dataset, **cand, "options": opts, "epsilon_equivalent": eps, "epsilon_run": eps * scale,
                   "n_a": len(a), "n_b": len(b), "accuracy_b": clf.accuracy(zb, py[b]),
                   "seconds": round(time.time() - t0, 1)}
            with out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
