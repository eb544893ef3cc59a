"""Trial: the k rule's signal-to-noise bar with a full covariance, on PUBLIC rows only.

    PYTHONPATH=. python benchmarks/trial_k_rule.py fmnist-scatternet,fmnist-effnet,spam-minilm

As benchmarks/choose_on_public.py: public rows A stand in for the private set
(epsilon scaled by n_private / n_A), rows B score the fixed MLP. Each run sets
the bar (clustering.FULL_COVARIANCE_MEAN_SIGNAL_TO_NOISE) to 4, 8 or 16; every
other setting is the default (covariance auto = full here). One JSON line per
run on stdout (kept in benchmarks/results/public_k_rule.jsonl).
"""
import json, sys
import numpy as np, torch
from benchmarks.embed_cache import load_cached
from benchmarks.privacy_utility import PROJECTIONS
from dpsynth import clustering
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
            for snr in (4.0, 8.0, 16.0):
                clustering.FULL_COVARIANCE_MEAN_SIGNAL_TO_NOISE = snr
                res = synthesize_arrays(za, py[a], SynthesisConfig(epsilon=eps * scale, delta=1e-5, labels=classes,
                                                                   num_samples=len(data["train_y"])))
                ks = [c.num_components for c in res.mixture.classes]
                clf = train_mlp(res.synthetic_embeddings, np.asarray(res.synthetic_labels).astype(np.int64), seed=0)
                print(json.dumps({"dataset": name, "eps": eps, "snr": snr, "rep": rep, "k": ks,
                                  "acc": round(100 * clf.accuracy(zb, py[b]), 1)}), flush=True)
