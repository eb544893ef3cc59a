"""A torch Dataset over a release directory's synthetic rows (never private data)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.utils.data import Dataset

from dpsynth.errors import UserError
from dpsynth.release import load_release
from dpsynth.validation import read_embedding_files


class ReleaseDataset(Dataset):
    """(embedding float32 tensor [d], label index int64) per synthetic row of a release.

    Labels become indices into ``classes`` (the release's label order), as
    torch losses expect. The release is checked first (gmm.json and
    privacy.json valid, private unless allow_not_private, a TEST-ONLY switch).
    The rows are read into memory once: synthetic sets that need more are
    drawn in parts with `dpsynth sample`.
    """

    def __init__(self, directory: str | Path, transform: Optional[Callable[[torch.Tensor], Any]] = None,
                 allow_not_private: bool = False) -> None:
        release = load_release(directory, allow_not_private)
        self.classes = [c.label for c in release.mixture.classes]
        shards = sorted(Path(directory).glob("synthetic-*.parquet"))
        if not shards:
            raise UserError(f"{directory}: no synthetic-*.parquet files")
        embeddings, labels = read_embedding_files(shards, dimension=release.mixture.embedding_dimension)
        index = {label: i for i, label in enumerate(self.classes)}
        self.embeddings = torch.from_numpy(embeddings)
        self.targets = torch.tensor([index[v] for v in labels], dtype=torch.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor]:
        x = self.embeddings[i]
        return (self.transform(x) if self.transform else x), self.targets[i]
