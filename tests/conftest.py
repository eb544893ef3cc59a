"""Shared fixtures: small synthetic embedding datasets written as Parquet."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def make_mixture_data(num_classes: int = 4, dimension: int = 8, rows: int = 2000, seed: int = 0,
                      components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Rows from `components` well-separated Gaussians per class."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_classes, components, dimension))
    labels = rng.integers(0, num_classes, rows)
    component = rng.integers(0, components, rows)
    X = centres[labels, component] + 0.3 * rng.standard_normal((rows, dimension))
    return X.astype(np.float32), labels


def two_class_table(rows: int, seed: int, separation: float, dimension: int) -> pa.Table:
    """Labels 0/1 at random; class c is N(separation * e_c, I). float64 fixed-size-list embeddings.

    The fixed-size list declares d in the schema: the public fact dpsynth takes d from.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, rows)
    X = rng.normal(size=(rows, dimension)) + separation * np.eye(dimension)[labels]
    return pa.table({"embedding": pa.array(X.tolist(), pa.list_(pa.float64(), dimension)),
                     "label": pa.array(labels)})


def embedding_table(X: np.ndarray, labels) -> pa.Table:
    """Rows as a fixed-size list<float32> (d declared by the schema) and a label column."""
    X = np.asarray(X, dtype=np.float32)
    return pa.table({"embedding": pa.array(list(X), pa.list_(pa.float32(), X.shape[1])),
                     "label": pa.array(list(labels))})


@pytest.fixture(scope="module")
def one_torch_thread():
    """Two torch threads on the shared 2-core machine ran several times slower than one."""
    import torch  # here, not at the top: most tests never need torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def parquet_input(tmp_path: Path) -> dict:
    """Two Parquet shards of a 4-class string-labelled dataset."""
    X, y = make_mixture_data()
    names = np.array(["ant", "bee", "cat", "dog"])[y]
    table = embedding_table(X, names)
    directory = tmp_path / "input"
    directory.mkdir()
    pq.write_table(table.slice(0, 1000), directory / "part-0.parquet")
    pq.write_table(table.slice(1000), directory / "part-1.parquet")
    return {"pattern": str(directory / "part-*.parquet"), "X": X, "labels": names,
            "label_set": ("ant", "bee", "cat", "dog")}
