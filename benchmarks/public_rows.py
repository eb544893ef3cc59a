"""Public rows for choosing settings: never private train rows, never evaluation rows.

The public half of a benchmark's test set is split again: rows A stand in for
the private set, rows B score a choice. A is much smaller than the real
private set, so each epsilon is scaled by n_private / n_A: Gaussian noise on a
sum, relative to the sum's size, then matches what the real run will see.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from benchmarks.embed_cache import load_cached
from dpsynth.evaluation.mlp import train_mlp
from dpsynth.evaluation.projection import PublicProjection


@dataclasses.dataclass(frozen=True)
class PublicSplit:
    """Projected public rows A (stand-in private set) and B (scoring), with the epsilon scale."""

    za: np.ndarray
    ya: np.ndarray
    zb: np.ndarray
    yb: np.ndarray
    epsilon_scale: float  # n_private / n_A
    num_private: int
    classes: tuple[int, ...]


def public_split(name: str, dim: int, whiten: bool) -> PublicSplit:
    """The projection is fitted on A only, so B stays unseen by every step but the score."""
    data = load_cached(name)
    px, py = data["public_x"], data["public_y"]
    a, b = np.arange(0, len(py), 2), np.arange(1, len(py), 2)
    proj = PublicProjection.fit(px[a], min(dim, px.shape[1]), whiten=whiten)
    return PublicSplit(proj(px[a]), py[a], proj(px[b]), py[b], len(data["train_y"]) / len(a),
                       len(data["train_y"]), tuple(int(c) for c in np.unique(py)))


def score_dpsynth(split: PublicSplit, epsilon_equivalent: float, **settings) -> tuple[float, object]:
    """dpsynth on A at the scaled epsilon, the fixed MLP on its rows, accuracy on B (and the result)."""
    from dpsynth.local import synthesize_arrays
    from dpsynth.params import SynthesisConfig

    settings.setdefault("num_samples", split.num_private)
    result = synthesize_arrays(split.za, split.ya, SynthesisConfig(
        epsilon=epsilon_equivalent * split.epsilon_scale, delta=1e-5, labels=split.classes, **settings))
    clf = train_mlp(result.synthetic_embeddings, np.asarray(result.synthetic_labels).astype(np.int64), seed=0)
    return clf.accuracy(split.zb, split.yb), result


def record(path: Path, row: dict) -> None:
    """Append one JSON row to a results file and echo it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
