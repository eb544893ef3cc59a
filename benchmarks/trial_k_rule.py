"""Trial: the k rule's signal-to-noise bar with a full covariance, on PUBLIC rows only.

    PYTHONPATH=. python benchmarks/trial_k_rule.py fmnist-scatternet,fmnist-effnet,spam-minilm

Public rows A stand in for the private set, rows B score the fixed MLP
(benchmarks/public_rows.py). Each run sets the bar
(released.FULL_COVARIANCE_MEAN_SIGNAL_TO_NOISE) to 4, 8 or 16; every other
setting is the default (covariance auto = full here). One JSON line per run
(kept in benchmarks/results/public_k_rule.jsonl).
"""
import sys
from pathlib import Path

import torch

from benchmarks.privacy_utility import PROJECTIONS
from benchmarks.public_rows import public_split, record, score_dpsynth
from dpsynth import released

OUT = Path(__file__).parent / "results" / "public_k_rule.jsonl"

if __name__ == "__main__":
    torch.set_num_threads(1)
    for name in sys.argv[1].split(","):
        split = public_split(name, **PROJECTIONS[name])
        for rep in range(2):
            for eps in (0.25, 0.5, 1.0, 4.0):
                for snr in (4.0, 8.0, 16.0):
                    released.FULL_COVARIANCE_MEAN_SIGNAL_TO_NOISE = snr
                    accuracy, result = score_dpsynth(split, eps)
                    record(OUT, {"dataset": name, "eps": eps, "snr": snr, "rep": rep,
                                 "k": [c.num_components for c in result.mixture.classes],
                                 "acc": round(100 * accuracy, 1)})
