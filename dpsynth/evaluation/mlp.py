"""The fixed two-layer MLP every method is judged with.

Users compare DP methods by the accuracy of one downstream classifier, so its
architecture and training schedule are fixed in advance, never tuned on the
private train rows or the test rows:

- input standardisation: per-feature mean and std of the rows it is trained
  on (synthetic rows are public; for the non-private ceiling this is
  non-private anyway). DP-SGD cannot do this and uses `Standardizer.fit` on
  public rows instead (see dpsgd.py);
- hidden layer: WIDTH = 256 ReLU units, then a linear layer to the classes;
- optimiser: Adam, learning rate 1e-3, weight decay 1e-4, batch 512;
- EPOCHS = 10 over at most MAX_STEPS_ROWS rows per epoch (so a very large
  synthetic set costs no more than 60,000 rows an epoch);
- the weights of the last epoch are kept (no early stopping: that would
  need a validation set drawn from the private or test rows).

torch runs with few threads: more threads than free cores collapses throughput
(see dpsynth.encoders.base.default_torch_threads).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

WIDTH = 256
EPOCHS = 10
BATCH_SIZE = 512
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
MAX_STEPS_ROWS = 60_000


@dataclass(frozen=True)
class Standardizer:
    """Per-feature affine map x -> (x - mean) / scale."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardizer":
        x = np.asarray(x, dtype=np.float64)
        std = x.std(axis=0)
        # A constant feature keeps scale 1: dividing by ~0 would blow it up.
        return cls(x.mean(axis=0).astype(np.float32),
                   np.where(std > 1e-8, std, 1.0).astype(np.float32))

    @classmethod
    def identity(cls, dim: int) -> "Standardizer":
        return cls(np.zeros(dim, np.float32), np.ones(dim, np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.scale).astype(np.float32)


def build_mlp(dim: int, num_classes: int, width: int = WIDTH) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, num_classes))


def encode_labels(labels: np.ndarray, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Map label values (ints or strings) to indices into `classes` (sorted unique values by default)."""
    labels = np.asarray(labels)
    if classes is None:
        classes = np.unique(labels)
    classes = np.asarray(classes)
    order = np.argsort(classes, kind="stable")
    pos = np.searchsorted(classes[order], labels)
    pos = np.clip(pos, 0, len(classes) - 1)
    idx = order[pos]
    if not np.all(classes[idx] == labels):
        unknown = sorted({str(v) for v in labels[classes[idx] != labels]})[:5]
        raise ValueError(f"labels not among the classes: {unknown}")
    return idx.astype(np.int64), classes


@dataclass
class TrainedClassifier:
    """A trained network with its input map and class values: `predict` returns label values."""

    model: nn.Module
    standardizer: Standardizer
    classes: np.ndarray

    def logits(self, x: np.ndarray, batch: int = 8192) -> np.ndarray:
        self.model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), batch):
                xb = torch.from_numpy(self.standardizer(x[start:start + batch]))
                out.append(self.model(xb).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes[self.logits(x).argmax(axis=1)]

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(x) == np.asarray(labels)))


def _set_threads() -> None:
    if torch.get_num_threads() > 2:
        torch.set_num_threads(2)


def train_mlp(x: np.ndarray, labels: np.ndarray, *, classes: np.ndarray | None = None,
              seed: int = 0, epochs: int = EPOCHS, standardizer: Standardizer | None = None,
              linear: bool = False) -> TrainedClassifier:
    """Train the fixed MLP (or, with linear=True, a linear probe with the same schedule)."""
    _set_threads()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"need a non-empty [n, d] array of rows, got shape {x.shape}")
    y, classes = encode_labels(labels, classes)
    std = standardizer if standardizer is not None else Standardizer.fit(x)
    xs = torch.from_numpy(std(x))
    yt = torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Linear(x.shape[1], len(classes)) if linear else build_mlp(x.shape[1], len(classes))
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    loss_fn = nn.CrossEntropyLoss()
    rows_per_epoch = min(len(x), MAX_STEPS_ROWS)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)[:rows_per_epoch]
        for start in range(0, rows_per_epoch, BATCH_SIZE):
            idx = perm[start:start + BATCH_SIZE]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xs[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    return TrainedClassifier(model, std, classes)
