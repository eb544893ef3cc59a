"""dpsynth: differentially private synthetic embeddings.

The estimator and the torch Dataset are imported on first use, so that
`import dpsynth.<module>` does not pay for scikit-learn or torch.
"""
from __future__ import annotations

import importlib.metadata
from typing import Any

try:
    __version__ = importlib.metadata.version("dpsynth")
except importlib.metadata.PackageNotFoundError:  # a source checkout without installation
    __version__ = "unknown"

_LAZY = {"DPMixtureSynthesizer": "dpsynth.estimator", "ReleaseDataset": "dpsynth.torch_dataset"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dpsynth' has no attribute {name!r}")


__all__ = ["DPMixtureSynthesizer", "ReleaseDataset", "__version__"]
