"""`dpsynth decode` end to end: synthesize -> decode, the files it writes, and its one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from beam_pipeline.cli import main
from dpsynth.decoders.images import read_png
from tests.decoder_models import LinearImageDecoder

FAST = ["--runner", "FnApiRunner"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _decoder8() -> LinearImageDecoder:
    """8-d embedding -> 1x6x5 image: a stand-in for a user's generator."""
    return LinearImageDecoder(6, 5)


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "decoder.pt"
    torch.jit.script(_decoder8()).save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    """A real `dpsynth synthesize --runner local` output on 8-d embeddings with labels 'cat dog' and 'owl'."""
    root = tmp_path_factory.mktemp("synth")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 8)).astype(np.float32) + np.repeat(np.eye(8)[:3] * 4, 100, axis=0)
    labels = np.repeat(["cat dog", "owl", "emu"], 100)
    pq.write_table(pa.table({"embedding": pa.array(list(x), pa.list_(pa.float32(), 8)), "label": labels}),
                   root / "private.parquet")
    code = main(["synthesize", "--input", str(root / "private.parquet"), "--output", str(root / "synth"),
                 "--epsilon", "8", "--delta", "1e-5", "--labels", "cat dog,owl,emu", "--runner", "local"])
    assert code == 0
    return root / "synth"


def _one_line_error(capsys, code):
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("dpsynth: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_decode_writes_pngs_parquet_sheets_and_privacy(synthetic_dir, decoder_file, tmp_path, capsys):
    out = tmp_path / "images"
    code = main(["decode", "--synthetic", str(synthetic_dir), "--decoder", f"torchscript:{decoder_file}",
                 "--output", str(out), "--batch-size", "7", "--sheet-size", "4", *FAST])
    assert code == 0, capsys.readouterr().err
    assert "decoded" in capsys.readouterr().out
    synthetic = pa.concat_tables(pq.read_table(p) for p in sorted(synthetic_dir.glob("synthetic-*.parquet")))
    table = pq.read_table(out / "images.parquet").sort_by("id")
    assert table.num_rows == synthetic.num_rows  # every synthetic row once, none lost or doubled
    assert sorted(table.column("label").to_pylist()) == sorted(synthetic.column("label").to_pylist())
    # each PNG file equals its Parquet bytes and the decoder applied to its own row
    model = _decoder8()
    files = sorted(out.glob("*/*.png"))
    assert len(files) == table.num_rows
    first = table.slice(0, 1).to_pylist()[0]
    folder = first["label"].replace(" ", "_")
    assert (out / folder / f"{first['id']}.png").read_bytes() == first["image"]
    file_index, row = map(int, first["id"].split("-"))
    embedding = torch.tensor(synthetic.column("embedding")[row].as_py())[None]
    expected = np.rint(model(embedding).detach().numpy()[0, 0] * 255)
    assert np.abs(read_png(first["image"]) - expected).max() <= 1
    assert {p.name for p in out.glob("contact-*.png")} == {"contact-cat_dog.png", "contact-owl.png",
                                                           "contact-emu.png"}
    sheet = read_png((out / "contact-owl.png").read_bytes())
    assert sheet.shape == (2 * (12 + 2) + 2, 2 * (10 + 2) + 2)  # 4 images of 6x5, zoomed 2x, 2x2 grid
    assert json.loads((out / "privacy.json").read_text()) == json.loads((synthetic_dir / "privacy.json").read_text())
    assert json.loads((out / "decode.json").read_text())["images"] == table.num_rows
    assert not list(tmp_path.glob("images.staging-*"))


def test_per_class_limit_and_scatternet(tmp_path, capsys):
    """The scatternet decoder through the CLI, on hand-written 3969-d rows, at most 1 per label."""
    source = tmp_path / "synth"
    source.mkdir()
    rows = np.abs(np.random.default_rng(4).normal(size=(3, 3969))).astype(np.float32)
    pq.write_table(pa.table({"label": pa.array([5, 7, 5], pa.int64()),
                             "embedding": pa.array(list(rows), pa.list_(pa.float32())),
                             "component": pa.array([0, 0, 0], pa.int32())}),
                   source / "synthetic-00000-of-00001.parquet")
    (source / "privacy.json").write_text(json.dumps({"spent": {"epsilon": None, "delta": 1e-5}}))
    code = main(["decode", "--synthetic", str(source), "--decoder", "scatternet", "--output",
                 str(tmp_path / "out"), "--per-class", "1", "--steps", "1", *FAST])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "NOT PRIVATE" in captured.out  # the images say what their embeddings said
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").glob("*/*.png")) == \
        ["5/00000-0000000.png", "7/00000-0000001.png"]
    assert read_png((tmp_path / "out" / "5" / "00000-0000000.png").read_bytes()).shape == (28, 28)


def test_user_errors_are_one_line(synthetic_dir, decoder_file, tmp_path, capsys):
    base = ["decode", "--synthetic", str(synthetic_dir), "--output", str(tmp_path / "o"), *FAST]
    assert "encoder 'minilm' has no decoder" in _one_line_error(capsys, main(base + ["--decoder", "minilm"]))
    assert "unknown decoder" in _one_line_error(capsys, main(base + ["--decoder", "vae"]))
    assert "3969-d" in _one_line_error(capsys, main(base + ["--decoder", "scatternet"]))
    assert "--per-class must be > 0" in _one_line_error(
        capsys, main(base + ["--decoder", "scatternet", "--per-class", "0"]))
    private = tmp_path / "private"
    private.mkdir()
    pq.write_table(pa.table({"label": [1], "embedding": pa.array([[0.5] * 8], pa.list_(pa.float32()))}),
                   private / "synthetic-00000-of-00001.parquet")
    err = _one_line_error(capsys, main(["decode", "--synthetic", str(private), "--decoder",
                                        f"torchscript:{decoder_file}", "--output", str(tmp_path / "p")]))
    assert "no privacy.json" in err
    (private / "privacy.json").write_text("{}")
    pq.write_table(pa.table({"label": [1, 2], "embedding": pa.array([[0.5] * 8, [0.5] * 7],
                                                                    pa.list_(pa.float32()))}),
                   private / "synthetic-00000-of-00001.parquet")
    err = _one_line_error(capsys, main(["decode", "--synthetic", str(private), "--decoder",
                                        f"torchscript:{decoder_file}", "--output", str(tmp_path / "p")]))
    assert "row 1: embedding has 7 values, expected 8" in err
    (tmp_path / "exists").mkdir()
    err = _one_line_error(capsys, main(["decode", "--synthetic", str(synthetic_dir), "--decoder",
                                        f"torchscript:{decoder_file}", "--output", str(tmp_path / "exists")]))
    assert "already exists" in err
