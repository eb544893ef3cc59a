"""The demo's downstream model: a small two-layer MLP, fixed hyper-parameters.

Hyper-parameters are fixed in advance (never tuned on private or test rows):
rows L2-normalised (the synthetic rows lie on the unit sphere, so real test
rows must be put there too); hidden layer 256 ReLU units; Adam, learning rate
1e-3, weight decay 1e-4; 60 epochs of mini-batches of 128; cross-entropy;
torch seed fixed so a run is repeatable. Training on DP synthetic rows is
post-processing: it costs no privacy.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

HIDDEN = 256
EPOCHS = 60
BATCH = 128
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4


@dataclasses.dataclass
class MLP:
    """A trained classifier: torch module plus the label values in output order."""

    module: Any
    classes: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = self.module(torch.from_numpy(_unit_rows(X)))
        return self.classes[logits.argmax(dim=1).numpy()]

    def accuracy(self, X: np.ndarray, y: Sequence[Any]) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y)))


def _unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def train_mlp(X: np.ndarray, y: Sequence[Any], *, seed: int = 0, epochs: int = EPOCHS) -> MLP:
    """Fit the two-layer MLP on rows X [n, d] with labels y [n]."""
    import torch

    X = _unit_rows(X)
    classes, y_index = np.unique(np.asarray(y), return_inverse=True)
    if len(X) == 0 or len(classes) < 2:
        raise ValueError(f"need rows of at least two classes to train, got {len(X)} rows, {len(classes)} classes")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Linear(X.shape[1], HIDDEN), torch.nn.ReLU(),
                                 torch.nn.Linear(HIDDEN, len(classes)))
    opt = torch.optim.Adam(module.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y_index.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()
    module.train()
    for _ in range(epochs):
        order = torch.randperm(len(X_t), generator=gen)
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            opt.zero_grad()
            loss_fn(module(X_t[idx]), y_t[idx]).backward()
            opt.step()
    module.eval()
    return MLP(module, classes)
