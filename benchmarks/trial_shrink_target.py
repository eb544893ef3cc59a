"""Trial: the full covariance's shrinkage target (pooled within-class shape vs spherical), on PUBLIC rows only.

    PYTHONPATH=. python benchmarks/trial_shrink_target.py fmnist-scatternet[,fmnist-effnet,spam-minilm] [--raw]

Public rows A stand in for the private set, rows B score the fixed MLP
(benchmarks/public_rows.py). Two sizes of private set are mimicked through
the epsilon scale: the dataset's own (n_private / n_A) and a tenth of it
(the small-data row). The "spherical" arm disables the pooled target
(gmm.pooled_within_shape returns None), every other setting is the default.
One JSON line per run (benchmarks/results/public_shrink_target.jsonl).
"""
import dataclasses
import sys
from pathlib import Path

import torch

from benchmarks.privacy_utility import PROJECTIONS
from benchmarks.public_rows import public_split, record, score_dpsynth
from dpsynth import gmm

OUT = Path(__file__).parent / "results" / "public_shrink_target.jsonl"
# Whitened projections make the pooled covariance the identity by construction: --raw keeps the
# projection unwhitened, where the pooled and spherical targets differ.
WHITEN = "--raw" not in sys.argv

if __name__ == "__main__":
    torch.set_num_threads(1)
    pooled = gmm.pooled_within_shape
    for name in sys.argv[1].split(","):
        full_split = public_split(name, PROJECTIONS[name]["dim"], whiten=WHITEN)
        for size, split in (("full", full_split),
                            ("tenth", dataclasses.replace(full_split, epsilon_scale=full_split.epsilon_scale / 10,
                                                          num_private=full_split.num_private // 10))):
            for rep in range(2):
                for eps in (0.5, 1.0, 3.0):
                    for target in ("pooled", "spherical"):
                        gmm.pooled_within_shape = pooled if target == "pooled" else (lambda *a, **k: None)
                        try:
                            accuracy, _ = score_dpsynth(split, eps)
                        finally:
                            gmm.pooled_within_shape = pooled
                        record(OUT, {"dataset": name, "whiten": WHITEN, "size": size, "eps": eps, "target": target,
                                     "rep": rep,
                                     "acc": round(100 * accuracy, 1)})
