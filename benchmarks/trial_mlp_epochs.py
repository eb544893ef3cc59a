"""Public-rows trial: fewer MLP epochs on synthetic rows (EfficientNet public A/B, dpsynth defaults)."""
import json
import sys

import numpy as np
import torch

torch.set_num_threads(1)
from benchmarks.embed_cache import load_cached
from dpsynth.evaluation.mlp import train_mlp
from dpsynth.evaluation.projection import PublicProjection
from dpsynth.local import synthesize_arrays
from dpsynth.params import SynthesisConfig
data = load_cached("fmnist-effnet"); px, py = data["public_x"], data["public_y"]
a, b = np.arange(0, len(py), 2), np.arange(1, len(py), 2)
proj = PublicProjection.fit(px[a], 64, whiten=True); za, zb = proj(px[a]), proj(px[b])
scale = len(data["train_y"]) / len(a)
for eps in (1.0, 4.0):
    res = synthesize_arrays(za, py[a], SynthesisConfig(epsilon=eps*scale, delta=1e-5, labels=tuple(range(10)), num_samples=len(data["train_y"])))
    sx, sy = res.synthetic_embeddings, np.asarray(res.synthetic_labels).astype(np.int64)
    for epochs in [int(e) for e in (sys.argv[1:] or ["2", "5", "10"])]:
        acc = train_mlp(sx, sy, seed=0, epochs=epochs).accuracy(zb, py[b])
        row = {"dataset": "fmnist-effnet", "trial": "mlp_epochs_on_synthetic", "epochs": epochs, "epsilon_equivalent": eps, "accuracy_b": acc}
        print(json.dumps(row), flush=True)
        open("benchmarks/results/public_choice.jsonl", "a").write(json.dumps(row) + "\n")
