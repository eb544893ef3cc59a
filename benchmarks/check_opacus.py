"""Cross-check the benchmark's DP-SGD against Opacus training the same MLP.

    python -m benchmarks.check_opacus [--dataset fmnist-scatternet] [--epsilons 1,3]

The sweep's DP-SGD (dpsynth.evaluation.dpsgd) computes per-sample gradients
in closed form because Opacus was several times slower on two cores. This
script trains the same two-layer MLP with Opacus's PrivacyEngine under the
same plan (Poisson sampling at the same rate, the same noise multiplier, clip
norm, momentum, learning rate and number of steps), on the same projected
rows, and prints both accuracies and Opacus's own spent epsilon, so that any
difference between the two implementations shows. Rows go to
benchmarks/results/opacus_check.jsonl.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.privacy_utility import DELTA, prepare
from benchmarks.public_rows import record
from dpsynth.evaluation import dpsgd
from dpsynth.evaluation.mlp import WIDTH, Standardizer, TrainedClassifier, build_mlp, encode_labels

RESULTS = Path(__file__).parent / "results"


def train_with_opacus(x: np.ndarray, labels: np.ndarray, classes: np.ndarray, plan: dpsgd.DpSgdPlan,
                      standardizer: Standardizer) -> tuple[TrainedClassifier, float]:
    """Opacus DP-SGD with the sweep's plan; returns the model and Opacus's spent epsilon."""
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    y_idx, classes = encode_labels(labels, classes)
    xs = torch.from_numpy(standardizer(np.asarray(x, dtype=np.float32)))
    loader = DataLoader(TensorDataset(xs, torch.from_numpy(y_idx)),
                        batch_size=int(round(plan.sampling_rate * len(x))))
    model = build_mlp(xs.shape[1], len(classes), WIDTH)
    optimizer = torch.optim.SGD(model.parameters(), lr=dpsgd.LR_MLP, momentum=dpsgd.MOMENTUM)
    engine = PrivacyEngine(accountant="rdp")
    model, optimizer, loader = engine.make_private(
        module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.clip_norm, poisson_sampling=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    steps = 0
    while steps < plan.steps:
        for xb, yb in loader:
            if steps == plan.steps:
                break
            optimizer.zero_grad()
            if len(xb):
                loss_fn(model(xb), yb).backward()
            optimizer.step()
            steps += 1
    plain = build_mlp(xs.shape[1], len(classes), WIDTH)
    plain.load_state_dict(model._module.state_dict())
    plain.eval()
    return TrainedClassifier(plain, standardizer, classes), float(engine.get_epsilon(plan.delta))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fmnist-scatternet")
    p.add_argument("--epsilons", default="1,3")
    args = p.parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    data = prepare(args.dataset)
    classes = np.unique(np.concatenate([data["public_y"], data["eval_y"]]))
    standardizer = Standardizer.fit(data["public_x"])
    out = RESULTS / "opacus_check.jsonl"
    for epsilon in (float(e) for e in args.epsilons.split(",")):
        plan = dpsgd.plan_dpsgd(epsilon, DELTA, len(data["train_y"]))
        t0 = time.time()
        ours, _ = dpsgd.train_dpsgd(data["train_x"], data["train_y"], epsilon, DELTA, standardizer=standardizer,
                                    classes=classes)
        t1 = time.time()
        theirs, opacus_spent = train_with_opacus(data["train_x"], data["train_y"], classes, plan, standardizer)
        t2 = time.time()
        row = {"dataset": args.dataset, "epsilon": epsilon, "delta": DELTA, "steps": plan.steps,
               "noise_multiplier": plan.noise_multiplier, "sampling_rate": plan.sampling_rate,
               "ours_accuracy": ours.accuracy(data["eval_x"], data["eval_y"]),
               "opacus_accuracy": theirs.accuracy(data["eval_x"], data["eval_y"]),
               "ours_spent_epsilon": dpsgd.dpsgd_epsilon(plan.noise_multiplier, plan.sampling_rate, plan.steps,
                                                         DELTA),
               "opacus_spent_epsilon": opacus_spent, "ours_seconds": round(t1 - t0, 1),
               "opacus_seconds": round(t2 - t1, 1)}
        record(out, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
