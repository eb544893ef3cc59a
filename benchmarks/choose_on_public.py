"""Choose the public projection on PUBLIC rows only, never on private train or evaluation rows.

    python -m benchmarks.choose_on_public [--dataset fmnist-scatternet]

Rows A of the public half stand in for the private set and rows B score the
choice, with each epsilon scaled to A's size (benchmarks/public_rows.py). For
each candidate projection (dimension, whitening), dpsynth runs on A with its
defaults and the fixed MLP trained on its synthetic rows is scored on B.
Results go to benchmarks/results/public_choice.jsonl.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.public_rows import public_split, record, score_dpsynth

RESULTS = Path(__file__).parent / "results"
# dpsynth settings tried against its defaults (max_clusters=None: k from released counts,
# rounds=1, covariance auto, proportional classes).
METHOD_OPTIONS = ({}, {"covariance": "diagonal"}, {"max_clusters": 1}, {"max_clusters": 5},
                  {"max_clusters": 20}, {"rounds": 2}, {"class_balance": "balanced"},
                  {"num_samples_factor": 5})
CANDIDATES = ({"dim": 32, "whiten": True}, {"dim": 64, "whiten": True}, {"dim": 128, "whiten": True},
              {"dim": 64, "whiten": False}, {"dim": 128, "whiten": False})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fmnist-scatternet")
    p.add_argument("--epsilons", default="1,4")
    p.add_argument("--only", help="a JSON list of method option dicts to run instead of METHOD_OPTIONS")
    p.add_argument("--what", choices=("projection", "method"), default="projection",
                   help="projection: compare public projections with dpsynth's defaults; method: compare "
                        "dpsynth settings under the benchmark's projection")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = RESULTS / "public_choice.jsonl"
    if args.what == "projection":
        runs = [(cand, {}) for cand in CANDIDATES]
    else:
        from benchmarks.privacy_utility import PROJECTIONS

        options = json.loads(args.only) if args.only else METHOD_OPTIONS
        runs = [(PROJECTIONS[args.dataset], opts) for opts in options]
    for cand, opts in runs:
        split = public_split(args.dataset, cand["dim"], cand["whiten"])
        for eps in (float(e) for e in args.epsilons.split(",")):
            t0 = time.time()
            settings = {k: v for k, v in opts.items() if k != "num_samples_factor"}
            settings["num_samples"] = int(opts.get("num_samples_factor", 1) * split.num_private)
            accuracy, _ = score_dpsynth(split, eps, **settings)
            record(out, {"dataset": args.dataset, **cand, "options": opts, "epsilon_equivalent": eps,
                         "epsilon_run": eps * split.epsilon_scale, "n_a": len(split.ya), "n_b": len(split.yb),
                         "accuracy_b": accuracy, "seconds": round(time.time() - t0, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
