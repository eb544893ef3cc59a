"""Trial: the full covariance matrix's budget weight, on PUBLIC rows only.

    PYTHONPATH=. python benchmarks/trial_matrix_weight.py fmnist-scatternet,fmnist-effnet,spam-minilm

Public rows A stand in for the private set, rows B score the fixed MLP
(benchmarks/public_rows.py). The weight of the full covariance's class
matrices (BudgetWeights.within_scatter; until the fourth round the class
pass's uncentred second-moment matrices, BudgetWeights.class_covariance, when
the kept results were made) is swapped in for each run; every other setting
is the default. One JSON line per run (kept in
benchmarks/results/public_matrix_weight.jsonl).
"""
import dataclasses
import sys
from pathlib import Path

import torch

from benchmarks.privacy_utility import PROJECTIONS
from benchmarks.public_rows import public_split, record, score_dpsynth
from dpsynth import calibration

OUT = Path(__file__).parent / "results" / "public_matrix_weight.jsonl"

if __name__ == "__main__":
    torch.set_num_threads(1)
    default_weights = calibration.BudgetWeights
    for name in sys.argv[1].split(","):
        split = public_split(name, **PROJECTIONS[name])
        for rep in range(2):
            for eps in (0.25, 0.5, 1.0, 4.0):
                for weight in (0.25, 0.5, 1.0):
                    calibration.BudgetWeights = dataclasses.make_dataclass(
                        "TrialWeights", [("within_scatter", float, weight)], bases=(default_weights,), frozen=True)
                    try:
                        accuracy, _ = score_dpsynth(split, eps)
                    finally:
                        calibration.BudgetWeights = default_weights
                    record(OUT, {"dataset": name, "eps": eps, "w": weight, "rep": rep,
                                 "acc": round(100 * accuracy, 1)})
