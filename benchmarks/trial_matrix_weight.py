"""Trial: the full covariance matrix's budget weight, on PUBLIC rows only.

    PYTHONPATH=. python benchmarks/trial_matrix_weight.py fmnist-scatternet,fmnist-effnet,spam-minilm

As benchmarks/choose_on_public.py: public rows A stand in for the private set
(epsilon scaled by n_private / n_A), rows B score the fixed MLP. The weight of
the class second-moment matrix (BudgetWeights.class_covariance) is swapped in
for each run; every other setting is the default. One JSON line per run on
stdout (kept in benchmarks/results/public_matrix_weight.jsonl).
"""
import dataclasses, json, sys
import numpy as np, torch
from benchmarks.embed_cache import load_cached
from benchmarks.privacy_utility import PROJECTIONS
from dpsynth import calibration
from dpsynth.evaluation.mlp import train_mlp
from dpsynth.evaluation.projection import PublicProjection
from dpsynth.local import synthesize_arrays
from dpsynth.params import SynthesisConfig
torch.set_num_threads(1)
for name in sys.argv[1].split(","):
    data = load_cached(name)
    px, py = data["public_x"], data["public_y"]
    a, b = np.arange(0, len(py), 2), np.arange(1, len(py), 2)
    scale = len(data["train_y"]) / len(a)
    classes = tuple(int(c) for c in np.unique(py))
    cand = PROJECTIONS[name]
    proj = PublicProjection.fit(px[a], cand["dim"], whiten=cand["whiten"])
    za, zb = proj(px[a]), proj(px[b])
    for rep in range(2):
        for eps in (0.25, 0.5, 1.0, 4.0):
            for w in (0.25, 0.5, 1.0):
                orig = calibration.BudgetWeights
                calibration.BudgetWeights = dataclasses.make_dataclass("BW", [("class_covariance", float, w)],
                                                                       bases=(orig,), frozen=True)
                try:
                    res = synthesize_arrays(za, py[a], SynthesisConfig(epsilon=eps * scale, delta=1e-5, labels=classes,
                                                                       num_samples=len(data["train_y"])))
                finally:
                    calibration.BudgetWeights = orig
                clf = train_mlp(res.synthetic_embeddings, np.asarray(res.synthetic_labels).astype(np.int64), seed=0)
                print(json.dumps({"dataset": name, "eps": eps, "w": w, "rep": rep,
                                  "acc": round(100 * clf.accuracy(zb, py[b]), 1)}), flush=True)
