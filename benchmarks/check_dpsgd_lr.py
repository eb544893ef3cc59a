"""Check DP-SGD's fixed learning rates on PUBLIC rows only (optimisation stability, not privacy).

    python -m benchmarks.check_dpsgd_lr [--dataset fmnist-scatternet]

Public rows A train, public rows B score. The sampling rate and the number of
steps match the real run (q = 4096 / n_private, 40 epochs' worth of steps), and
epsilon is scaled by n_private / n_A, so the noise relative to a batch is of
the order the real run sees. Results: benchmarks/results/public_dpsgd_lr.jsonl.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.privacy_utility import PROJECTIONS
from benchmarks.embed_cache import load_cached
from dpsynth.evaluation import dpsgd
from dpsynth.evaluation.mlp import Standardizer
from dpsynth.evaluation.projection import PublicProjection

RESULTS = Path(__file__).parent / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="fmnist-scatternet")
    p.add_argument("--lrs", default="0.5,2,4")
    p.add_argument("--epsilon", type=float, default=1.0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_cached(args.dataset)
    px, py = data["public_x"], data["public_y"]
    a, b = np.arange(0, len(py), 2), np.arange(1, len(py), 2)
    projection = PROJECTIONS[args.dataset]
    proj = PublicProjection.fit(px[a], min(projection["dim"], px.shape[1]), whiten=projection["whiten"])
    za, zb = proj(px[a]), proj(px[b])
    n_private = len(data["train_y"])
    scale = n_private / len(a)
    batch = dpsgd.EXPECTED_BATCH * len(a) / n_private
    for linear in (True, False):
        for lr in (float(v) for v in args.lrs.split(",")):
            clf, plan = dpsgd.train_dpsgd(za, py[a], args.epsilon * scale, 1e-5, standardizer=Standardizer.fit(za),
                                          linear=linear, lr=lr, expected_batch=int(round(batch)))
            row = {"dataset": args.dataset, "model": "linear" if linear else "mlp", "lr": lr,
                   "epsilon_equivalent": args.epsilon, "epsilon_run": args.epsilon * scale, "steps": plan.steps,
                   "accuracy_b": clf.accuracy(zb, py[b])}
            RESULTS.mkdir(exist_ok=True)
            with (RESULTS / "public_dpsgd_lr.jsonl").open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
