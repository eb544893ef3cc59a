"""`dpsynth embed` end to end: Beam + RunInference output equals the direct encoder call."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from beam_pipeline.cli import run_guarded
from beam_pipeline.embed import run
from dpsynth.encoders import get_encoder

BEAM = ["--runner=DirectRunner"]


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("digits")
    images = {}
    for i in range(24):
        label = str(d.target[i])
        (root / label).mkdir(exist_ok=True)
        image = np.rint(d.images[i] * (255 / 16)).astype(np.uint8)
        Image.fromarray(image).save(root / label / f"{i}.png")
        images[f"{label}/{i}.png"] = image
    (root / "3" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root, images


def test_embed_image_folder_matches_direct_encoder(digit_folder, tmp_path, capsys):
    root, images = digit_folder
    out, rejected = tmp_path / "emb.parquet", tmp_path / "rejected"
    code = run_guarded(run, ["--input", str(root), "--encoder", "scatternet", "--output", str(out),
                             "--rejected-output", str(rejected), "--batch-size", "5"] + BEAM)
    assert code == 0
    printed = capsys.readouterr().out
    assert "embedded 24 records" in printed and "rejected 1 records" in printed and "PRIVATE" in printed
    table = pq.read_table(out)
    assert table.column_names == ["id", "label", "embedding"]
    assert b"NOT differentially private" in table.schema.metadata[b"dpsynth.privacy"]
    ids = table.column("id").to_pylist()
    assert sorted(ids) == sorted(images)
    assert table.column("label").to_pylist() == [i.split("/")[0] for i in ids]
    emb = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    direct = get_encoder("scatternet").embed([images[i] for i in ids])
    np.testing.assert_allclose(emb, direct, rtol=1e-5, atol=1e-6)
    rows = pq.read_table(next(rejected.glob("rejected-*.parquet"))).to_pylist()
    assert [(r["id"], r["label"], r["reject_reason"].split(":")[0]) for r in rows] == [
        ("3/corrupt.png", "3", "unreadable image")]


def test_embed_jsonl_text(tmp_path, capsys):
    src = tmp_path / "texts.jsonl"
    texts = ["the cat sat on the mat", "dogs chase cats", "", "interest rates rose again"]
    src.write_text("\n".join(json.dumps({"text": t, "label": lab})
                             for t, lab in zip(texts, ["pets", "pets", "pets", "finance"])))
    out = tmp_path / "texts.parquet"
    assert run_guarded(run, ["--input", str(src), "--encoder", "minilm", "--output", str(out)] + BEAM) == 0
    assert "rejected 1 records (empty text: 1)" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.column_names == ["label", "embedding"]  # no id column in the input
    emb = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    direct = get_encoder("minilm").embed([t for t in texts if t])
    order = [int(np.argmax(direct @ e)) for e in emb]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(emb, direct[order], atol=1e-5)


def test_embed_user_errors_exit_2(digit_folder, tmp_path, capsys):
    root, _ = digit_folder
    out = tmp_path / "x.parquet"
    assert run_guarded(run, ["--input", str(root), "--encoder", "vgg", "--output", str(out)] + BEAM) == 2
    err = capsys.readouterr().err
    assert err.startswith("dpsynth: error: unknown encoder 'vgg'") and err.count("\n") == 1
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    assert run_guarded(run, ["--input", str(empty), "--encoder", "scatternet", "--output", str(out)]) == 2
    assert "has no images" in capsys.readouterr().err
    bad_model = tmp_path / "model.pt"
    bad_model.write_bytes(b"nope")
    assert run_guarded(run, ["--input", str(root), "--encoder", f"torchscript:{bad_model}",
                             "--output", str(out)]) == 2
    assert "does not load" in capsys.readouterr().err
    out.write_bytes(b"old")
    assert run_guarded(run, ["--input", str(root), "--encoder", "scatternet", "--output", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert run_guarded(run, ["--input", str(root), "--encoder", "minilm", "--output", str(tmp_path / "y")]) == 2
    assert "expects text" in capsys.readouterr().err


def test_embed_precomputed_vectors_pass_through(tmp_path, capsys):
    import pyarrow as pa

    src = tmp_path / "vectors.parquet"
    vectors = [[1.0, 0.0, 2.0], [0.5, 0.5, 0.5], [float("nan"), 1.0, 1.0], [3.0, 2.0, 1.0], [1.0, 2.0]]
    pq.write_table(pa.table({"id": ["a", "b", "c", "d", "e"], "label": [1, 2, 1, None, 2], "vec": vectors}), src)
    out = tmp_path / "out.parquet"
    # the vectors' length is a public fact the user declares; a variable-length column does not declare it
    assert run_guarded(run, ["--input", str(src), "--encoder", "none", "--vector-column", "vec",
                             "--output", str(out)] + BEAM) == 2
    assert "pass --dimension d" in capsys.readouterr().err
    assert run_guarded(run, ["--input", str(src), "--encoder", "none", "--vector-column", "vec",
                             "--dimension", "3", "--output", str(out)] + BEAM) == 0
    printed = capsys.readouterr().out
    assert "rejected 3 records" in printed and "bad vector: 2" in printed and "missing label: 1" in printed
    table = pq.read_table(out).sort_by("id")
    assert table.column("id").to_pylist() == ["a", "b"]
    assert table.column("label").to_pylist() == [1, 2]
    assert table.schema.field("label").type == pa.int64()
    np.testing.assert_array_equal(np.array(table.column("embedding").to_pylist()), np.array(vectors[:2]))
    # embed records d, so that synthesize then needs no flag
    assert table.schema.field("embedding").metadata[b"dpsynth.dimension"] == b"3"
