"""Downstream test of decoded synthetic images on Fashion-MNIST.

For each epsilon: DP synthetic ScatterNet embeddings of the 60,000 training
images (dpsynth.local.synthesize_arrays, delta 1e-5, balanced classes), N per
class decoded into images by `dpsynth decode --decoder scatternet` (the Beam
stage, FnApiRunner), a small CNN trained ONLY on those images, tested on the
10,000 real test images. References (not private): the CNN on N real training
images per class, and on N decoded REAL embeddings per class (the decoder's
ceiling). Prints measured figures; writes benchmarks/results/decode_fmnist.json
and one contact sheet per setting (a row per class) beside it.

  PYTHONPATH=. python benchmarks/decode_fmnist.py --per-class 100 [--cache NPZ]

--cache: an .npz with train_x (60000 x 3969 raw scattering features, the
scatternet encoder's exact output) and train_y, to skip encoding (about 9
minutes on 2 shared cores).
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FMNIST = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
RESULTS = Path(__file__).resolve().parent / "results"


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.open(path, "rb").read()
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fmnist():
    if not FMNIST.exists():
        sys.exit("Fashion-MNIST missing: apt-get install -y dataset-fashion-mnist")
    return {split: (read_idx(FMNIST / f"{prefix}-images-idx3-ubyte.gz"),
                    read_idx(FMNIST / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64))
            for split, prefix in (("train", "train"), ("test", "t10k"))}


def encode(images: np.ndarray) -> np.ndarray:
    import torch

    from dpsynth.decoders.scatternet import scattering

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), 1000):
            x = torch.from_numpy(images[start:start + 1000].astype(np.float32) / 255.0)
            out.append(scattering()(x).reshape(len(x), -1).numpy())
    return np.concatenate(out)


def decode_dir(embeddings: np.ndarray, labels: np.ndarray, privacy: dict, work: Path, name: str,
               steps: int, batch: int) -> tuple[np.ndarray, np.ndarray, float, Path]:
    """Write a synthetic DIR, run `dpsynth decode` on it, read the images back."""
    from beam_pipeline.cli import run_guarded
    from beam_pipeline.decode import run
    from dpsynth.decoders.images import read_png

    source = work / f"{name}-synthetic"
    source.mkdir()
    pq.write_table(pa.table({"label": pa.array(labels, pa.int64()),
                             "embedding": pa.array(list(embeddings.astype(np.float32)), pa.list_(pa.float32())),
                             "component": pa.array(np.zeros(len(labels), np.int32))}),
                   source / "synthetic-00000-of-00001.parquet")
    (source / "privacy.json").write_text(json.dumps(privacy))
    out = work / f"{name}-images"
    started = time.time()
    code = run_guarded(run, ["--synthetic", str(source), "--decoder", "scatternet", "--output", str(out),
                             "--steps", str(steps), "--batch-size", str(batch), "--runner", "FnApiRunner"])
    seconds = time.time() - started
    if code:
        sys.exit(f"decode failed with exit code {code}")
    table = pq.read_table(out / "images.parquet").sort_by("id")
    images = np.stack([read_png(b) for b in table.column("image").to_pylist()])
    return images, np.asarray(table.column("label").to_pylist()), seconds, out


def train_cnn(images: np.ndarray, labels: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
              seed: int) -> float:
    """A small CNN, settings fixed in advance (no tuning): accuracy on the real test images."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(128, 10))
    x = torch.from_numpy(images.astype(np.float32)[:, None] / 255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    epochs = 30
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(64):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    correct = 0
    with torch.inference_mode():
        tx = torch.from_numpy(test_x.astype(np.float32)[:, None] / 255.0)
        for start in range(0, len(tx), 2000):
            correct += int((model(tx[start:start + 2000]).argmax(1).numpy() == test_y[start:start + 2000]).sum())
    return correct / len(test_x)


def sheet(images: np.ndarray, labels: np.ndarray, path: Path, per_row: int = 12) -> None:
    from dpsynth.decoders.images import contact_sheet, png_bytes

    tiles = []
    for c in range(10):
        row = list(images[labels == c][:per_row])
        tiles += row + [np.zeros_like(images[0])] * (per_row - len(row))
    path.write_bytes(png_bytes(contact_sheet(tiles, columns=per_row)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--epsilons", default="3,1,8")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3, help="CNN training seeds per image set")
    parser.add_argument("--cache", help="npz with train_x (raw scattering features) and train_y")
    parser.add_argument("--no-reference", action="store_true", help="skip decoding real embeddings")
    parser.add_argument("--no-real-images", action="store_true", help="skip the CNN on real training images")
    parser.add_argument("--json", default=str(RESULTS / "decode_fmnist.json"), help="results file")
    parser.add_argument("--tag", default="", help="suffix of the contact sheets' names")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from dpsynth.local import synthesize_arrays
    from dpsynth.params import SynthesisConfig

    RESULTS.mkdir(exist_ok=True)
    out_json = Path(args.json)
    data = load_fmnist()
    train_images, train_y = data["train"]
    test_x, test_y = data["test"]
    started = time.time()
    if args.cache:
        cache = np.load(args.cache)
        train_x = cache["train_x"]
        if train_x.shape != (60000, 3969) or not np.array_equal(cache["train_y"], train_y):
            sys.exit("the cache does not hold the 60,000 training rows in file order")
        print(f"train embeddings from {args.cache}", flush=True)
    else:
        train_x = encode(train_images)
        print(f"encoded 60,000 training images in {time.time() - started:.0f} s", flush=True)
    results = {"per_class": args.per_class, "steps": args.steps, "delta": 1e-5, "cnn_seeds": args.seeds,
               "test_rows": int(len(test_y)), "runs": []}

    def record(name: str, epsilon, images, labels, decode_seconds=None, extra=None) -> None:
        accuracies = [train_cnn(images, labels, test_x, test_y, seed) for seed in range(args.seeds)]
        entry = {"setting": name, "epsilon": epsilon, "images": int(len(labels)),
                 "accuracy_mean": float(np.mean(accuracies)), "accuracy_std": float(np.std(accuracies)),
                 "accuracies": accuracies, "decode_seconds": decode_seconds,
                 "images_per_second": None if decode_seconds is None else len(labels) / decode_seconds,
                 **(extra or {})}
        results["runs"].append(entry)
        sheet(images, labels, RESULTS / f"decode_fmnist_{name}{args.tag}.png")
        out_json.write_text(json.dumps(results, indent=2))
        rate = "" if decode_seconds is None else f", decoded at {entry['images_per_second']:.2f} images/s"
        print(f"{name}: CNN accuracy {100 * entry['accuracy_mean']:.1f} +- {100 * entry['accuracy_std']:.1f} "
              f"on {len(test_y)} real test images ({len(labels)} training images{rate})", flush=True)

    rng = np.random.default_rng(0)
    real_rows = np.concatenate([rng.choice(np.flatnonzero(train_y == c), args.per_class, replace=False)
                                for c in range(10)])
    if not args.no_real_images:
        record("real-images", None, train_images[real_rows], train_y[real_rows])
    with tempfile.TemporaryDirectory(prefix="decode-fmnist-") as tmp:
        work = Path(tmp)
        for epsilon in [float(e) for e in args.epsilons.split(",") if e.strip()]:
            t0 = time.time()
            config = SynthesisConfig(epsilon=epsilon, delta=1e-5, labels=tuple(range(10)),
                                     num_samples=10 * args.per_class, class_balance="balanced")
            result = synthesize_arrays(train_x, train_y, config)
            synth_seconds = time.time() - t0
            name = f"eps{epsilon:g}"
            images, labels, seconds, _ = decode_dir(result.synthetic_embeddings, result.synthetic_labels,
                                                    result.ledger.to_json(), work, name, args.steps,
                                                    args.batch_size)
            record(name, epsilon, images, labels, seconds,
                   {"synthesis_seconds": synth_seconds, "spent_epsilon": result.ledger.spent_epsilon})
        if not args.no_reference:
            norms = np.linalg.norm(train_x[real_rows], axis=1, keepdims=True)
            images, labels, seconds, _ = decode_dir(train_x[real_rows] / norms, train_y[real_rows],
                                                    {"spent": {"epsilon": None}, "note": "real rows"}, work,
                                                    "decoded-real", args.steps, args.batch_size)
            record("decoded-real", None, images, labels, seconds)
    print(f"total {time.time() - started:.0f} s; wrote {out_json}", flush=True)


if __name__ == "__main__":
    main()
