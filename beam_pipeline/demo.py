"""`dpsynth demo`: the main job end to end on scikit-learn's bundled digits.

    dpsynth demo [--output demo-output] [--quick | --limit N] [--encoder ...] [beam options]

1. split the 1,797 digits (8x8 grey, 10 classes) into train (70%) and a
   held-out test set (30%) that no DP step ever sees; write both as IDX files;
2. `embed` both with EfficientNet-Lite0 (ImageNet weights, 96 px input) or
   another registered image encoder (demo_encoders()), followed by the
   public random projection to 64-d, on Beam + RunInference;
3. `synthesize` DP synthetic embeddings from the train embeddings only, at
   epsilon=1, delta=1e-5, labels 0..9 public;
4. train the same two-layer MLP (dpsynth.evaluation.mlp) on the synthetic rows
   and, for comparison, on the real train rows; test both on the held-out
   real rows, and print the two accuracies and where every output is.

The 96 px input (not the 224 px the weights were trained at) keeps the demo
short on a small machine: the digits are 8x8, so larger inputs only
interpolate further and cost time.

The projection to 64-d (public, data-independent, so free of privacy cost)
is there because the demo's private set is small, about 126 rows per class:
the DP noise on a class's count and mean grows with the dimension, and in the
full 1280-d several classes' noisy counts are too uncertain to fit (README.md,
"The method and its privacy"; the measured effect is in BENCHMARKS.md, "Notes
moved from code"). `--project-dim 0` runs without it.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import math
import os
import struct
import sys
import time
from typing import Sequence

import numpy as np

from beam_pipeline.options import make_parser, settings_as_flags
from beam_pipeline.outputs import OVERWRITE_HELP, StagedOutput
from dpsynth.encoders import ENCODERS, EncoderSpec, get_encoder
from dpsynth.errors import UserError, join_words

DEFAULT_IMAGE_SIZE = 96
DEFAULT_PROJECT_DIM = 64
QUICK_LIMIT = 300
QUICK_IMAGE_SIZE = 32
TEST_FRACTION = 0.3
SPLIT_SEED = 0  # public: which digits are held out is not private


def demo_encoders() -> tuple[EncoderSpec, ...]:
    """The registered encoders the demo can run: it feeds them images and has no model file to offer."""
    return tuple(spec for spec in ENCODERS if spec.modality == "image" and not spec.takes_path)


class _Progress:
    def __init__(self, steps: int):
        self.steps, self.step, self.start = steps, 0, time.time()

    def __call__(self, message: str) -> None:
        self.step += 1
        print(f"[demo {self.step}/{self.steps} +{time.time() - self.start:5.1f}s] {message}", flush=True)

    def note(self, message: str) -> None:
        print(f"[demo     +{time.time() - self.start:5.1f}s] {message}", flush=True)


def write_idx(path: str, array: np.ndarray) -> None:
    """IDX (MNIST format): magic 0,0,0x08 (uint8), ndim; big-endian uint32 dims; data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def split_digits(limit: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/test split of the digits as uint8 images (0..16 scaled to 0..255)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    rng = np.random.default_rng(SPLIT_SEED)
    order = rng.permutation(len(labels))
    if limit is not None:
        order = order[:limit]
    train, test = [], []
    for c in np.unique(labels[order]):
        members = order[labels[order] == c]
        n_test = int(round(len(members) * TEST_FRACTION))
        test.extend(members[:n_test])
        train.extend(members[n_test:])
    train, test = np.sort(train), np.sort(test)
    return images[train], labels[train], images[test], labels[test]


def _read_embeddings(pattern: str) -> tuple[np.ndarray, np.ndarray]:
    from dpsynth.validation import read_embedding_files

    return read_embedding_files(sorted(glob.glob(pattern)))


# Optimiser steps of the demo's MLP (the digits are too few for the fixed 10 epochs).
MIN_TRAIN_STEPS = 600

def _accuracy(train_X, train_y, test_X, test_y) -> tuple[float, str]:
    """MLP accuracy; when fewer than two classes were released, the constant predictor's."""
    from dpsynth.evaluation.mlp import BATCH_SIZE, EPOCHS, train_mlp
    from dpsynth.geometry import onto_sphere

    classes = np.unique(train_y)
    if len(classes) >= 2:
        # The digits are few: enough epochs for MIN_TRAIN_STEPS optimiser steps. Rows go
        # onto the unit sphere, where the synthesis put the synthetic ones.
        epochs = max(EPOCHS, math.ceil(MIN_TRAIN_STEPS * BATCH_SIZE / len(train_X)))
        model = train_mlp(onto_sphere(np.asarray(train_X, dtype=np.float64)), train_y, epochs=epochs)
        return model.accuracy(onto_sphere(np.asarray(test_X, dtype=np.float64)), test_y), "two-layer MLP"
    if len(classes) == 1:
        return float(np.mean(test_y == classes[0])), "constant (one class released)"
    return 0.0, "none (no class released)"


SWEEP_EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0)


def _sweep(train_X, train_y, test_X, test_y, delta: float, ceiling: float, out: str,
           known: dict[float, float]) -> list[dict]:
    """Accuracy of the MLP trained on DP synthetic rows at each epsilon; writes privacy-utility.png.

    known: accuracies already computed (the demo's main release), reused rather than fitted again.
    """
    from dpsynth.figures import privacy_utility_figure
    from dpsynth.local import synthesize_arrays
    from dpsynth.params import SynthesisConfig

    points = []
    for epsilon in SWEEP_EPSILONS:
        if epsilon in known:
            points.append({"epsilon": epsilon, "accuracy": known[epsilon], "ceiling": ceiling})
            continue
        result = synthesize_arrays(train_X, train_y, SynthesisConfig(epsilon=epsilon, delta=delta,
                                                                     labels=tuple(range(10))))
        accuracy, _ = _accuracy(result.synthetic_embeddings, result.synthetic_labels, test_X, test_y)
        points.append({"epsilon": epsilon, "accuracy": accuracy, "ceiling": ceiling,
                       "spent_epsilon": result.ledger.spent_epsilon})
    try:
        with open(os.path.join(out, "privacy-utility.png"), "wb") as f:
            f.write(privacy_utility_figure(points, "dpsynth demo: digits, privacy-utility"))
    except Exception as exc:  # a figure never fails the demo
        print(f"dpsynth: warning: privacy-utility.png was not drawn: {exc}", file=sys.stderr)
    return points


@settings_as_flags()  # the library's errors name settings; the user typed flags
def run(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("dpsynth demo", "End-to-end demo on scikit-learn's bundled digits.")
    parser.add_argument("--output", default="demo-output",
                        help="directory for everything the demo writes; must not exist")
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    choices = join_words([spec.name for spec in demo_encoders()], "or")
    parser.add_argument("--encoder", default="efficientnet-lite0", help=choices)
    parser.add_argument("--image-size", type=int, default=None,
                        help=f"efficientnet input size (default {DEFAULT_IMAGE_SIZE})")
    parser.add_argument("--project-dim", type=int, default=DEFAULT_PROJECT_DIM,
                        help=f"public random projection after the encoder ({DEFAULT_PROJECT_DIM}; 0: none)")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--limit", type=int, default=None, help="use only N digits (CI)")
    parser.add_argument("--quick", action="store_true",
                        help=f"CI size: {QUICK_LIMIT} digits, {QUICK_IMAGE_SIZE} px input")
    args, beam_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if args.encoder not in {spec.name for spec in demo_encoders()}:
        raise UserError(f"the demo's --encoder is {choices}")
    limit = args.limit if args.limit is not None else (QUICK_LIMIT if args.quick else None)
    if limit is not None and limit < 50:
        raise UserError("--limit must be at least 50 digits")
    image_size = args.image_size or (QUICK_IMAGE_SIZE if args.quick else DEFAULT_IMAGE_SIZE)
    logging.getLogger("dpsynth").setLevel(logging.INFO)

    final = os.path.abspath(args.output)
    staging = StagedOutput(final, args.overwrite)  # nothing of a failed or stopped demo is left behind
    try:
        code = _run_demo(args, beam_args, staging.staging_dir, final, limit, image_size)
        if code == 0:
            staging.publish()
        return code
    finally:
        staging.abort()


def _run_demo(args: argparse.Namespace, beam_args: list[str], out: str, final: str, limit: int | None,
              image_size: int) -> int:
    """The demo's steps, written under `out` (the staging directory); messages name `final`."""
    from beam_pipeline import embed, synthesize

    data_dir, emb_dir, synth_dir = (os.path.join(out, d) for d in ("data", "embeddings", "synthetic"))
    shown = {path: os.path.join(final, os.path.basename(path)) for path in (data_dir, emb_dir, synth_dir)}
    for d in (data_dir, emb_dir):
        os.makedirs(d)
    progress = _Progress(6)
    started = time.time()

    train_X, train_y, test_X, test_y = split_digits(limit)
    paths = {}
    for split, X, y in (("train", train_X, train_y), ("test", test_X, test_y)):
        paths[split] = os.path.join(data_dir, f"digits-{split}-images-idx3-ubyte")
        write_idx(paths[split], X)
        write_idx(os.path.join(data_dir, f"digits-{split}-labels-idx1-ubyte"), y)
    progress(f"digits: {len(train_y)} train rows (the private data), {len(test_y)} held-out test rows; "
             f"written as IDX to {shown[data_dir]}")

    sized = "image_size" in ENCODERS[args.encoder].options  # otherwise the encoder fixes its input size
    encoder_args = ["--encoder", args.encoder] + (["--image-size", str(image_size)] if sized else []) + (
        ["--project-dim", str(args.project_dim)] if args.project_dim else [])
    emb_paths = {}
    for split in ("train", "test"):
        progress(f"embedding the {split} digits with {args.encoder}"
                 + (f" at {image_size} px" if sized else "")
                 + (f", projected to {args.project_dim}-d" if args.project_dim else "")
                 + " (Beam + RunInference) ...")
        emb_paths[split] = os.path.join(emb_dir, f"{split}.parquet")
        code = embed.run(["--input", paths[split], "--output", emb_paths[split]]
                         + encoder_args + beam_args)
        if code:
            return code

    progress(f"DP synthesis from the train embeddings at epsilon={args.epsilon:g}, delta={args.delta:g} ...")
    code = synthesize.run(["--input", emb_paths["train"], "--output", synth_dir, "--epsilon", str(args.epsilon),
                           "--delta", str(args.delta), "--labels", ",".join(str(c) for c in range(10))]
                          + beam_args)
    if code:
        return code

    progress("training the two-layer MLP on synthetic rows and, for comparison, on real rows ...")
    real_X, real_y = _read_embeddings(emb_paths["train"])
    held_X, held_y = _read_embeddings(emb_paths["test"])
    syn_X, syn_y = _read_embeddings(os.path.join(synth_dir, "synthetic-*.parquet"))
    dp_acc, dp_model = _accuracy(syn_X, syn_y, held_X, held_y)
    real_acc, _ = _accuracy(real_X, real_y, held_X, held_y)
    results = {"epsilon": args.epsilon, "delta": args.delta, "encoder": args.encoder,
               "image_size": image_size if sized else get_encoder(args.encoder).image_size,
               "project_dim": args.project_dim or None,
               "train_rows": int(len(real_y)), "test_rows": int(len(held_y)),
               "synthetic_rows": int(len(syn_y)), "synthetic_classes": int(len(np.unique(syn_y))),
               "dp_accuracy": dp_acc, "dp_model": dp_model, "non_private_accuracy": real_acc,
               "seconds": round(time.time() - started, 1)}
    progress(f"privacy-utility sweep, epsilon {', '.join(f'{e:g}' for e in SWEEP_EPSILONS)} "
             "(--runner local on the same train embeddings) ...")
    sweep = _sweep(real_X, real_y, held_X, held_y, args.delta, real_acc, out, {args.epsilon: dp_acc})
    results["sweep"] = sweep
    with open(os.path.join(out, "demo-results.json"), "w") as f:
        json.dump(results, f, indent=2)

    print()
    print(f"Accuracy on {len(held_y)} held-out real digits (never seen by the DP step):")
    print(f"  trained on DP synthetic embeddings (epsilon={args.epsilon:g}, delta={args.delta:g}): "
          f"{dp_acc:.3f}  [{len(syn_y)} synthetic rows, {results['synthetic_classes']} classes; {dp_model}]")
    print(f"  trained on the real train embeddings (NOT private):            {real_acc:.3f}  "
          f"[{len(real_y)} rows]")
    print()
    print(f"Privacy-utility (delta={args.delta:g}; accuracy on the same held-out digits):")
    print("  epsilon  " + "  ".join(f"{p['epsilon']:>5g}" for p in sweep))
    print("  accuracy " + "  ".join(f"{p['accuracy']:5.3f}" for p in sweep)
          + f"   (non-private: {real_acc:.3f})")
    print()
    print("Outputs:")
    print(f"  DP release (shareable):    {shown[synth_dir]}/  (synthetic-*.parquet, gmm.json, privacy.json, "
          "report.md)")
    print(f"  PRIVATE, keep or delete:   {shown[data_dir]}/ (the digits as IDX), {shown[emb_dir]}/ (real embeddings)")
    print(f"  results:                   {os.path.join(final, 'demo-results.json')}, "
          f"{os.path.join(final, 'privacy-utility.png')}")
    print(f"Done in {time.time() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    from beam_pipeline.cli import run_guarded

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    sys.exit(run_guarded(run, sys.argv[1:]))
