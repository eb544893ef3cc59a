"""`dpsynth generate` end to end on a small subset of the digits."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from beam_pipeline.cli import run_guarded
from beam_pipeline.generate import run

BEAM = ["--runner=DirectRunner"]


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """240 real digits of classes 0-3 as PNG folders, plus one corrupt file."""
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("digits")
    idx = np.concatenate([np.flatnonzero(d.target == c)[:60] for c in range(4)])
    for i in idx:
        folder = root / str(d.target[i])
        folder.mkdir(exist_ok=True)
        Image.fromarray(np.rint(d.images[i] * (255 / 16)).astype(np.uint8)).save(folder / f"{i}.png")
    (root / "0" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


def test_generate_end_to_end(digit_folder, tmp_path, capsys):
    out, rejected = tmp_path / "synthetic", tmp_path / "rejected"
    code = run_guarded(run, ["--input", str(digit_folder), "--encoder", "scatternet", "--output", str(out),
                             "--epsilon", "8", "--delta", "1e-5", "--labels", "0,1,2", "--max-clusters", "1",
                             "--rejected-output", str(rejected)] + BEAM)
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "synthetic rows" in printed
    assert "1 records rejected before synthesis (unreadable image: 1)" in printed
    # Only the DP release: no per-record embedding file in the output.
    names = sorted(p.name for p in out.iterdir())
    assert names == ["_DPSYNTH_OUTPUT", "fig-budget.png", "fig-counts.png", "fig-projection.png", "fig-spectrum.png",
                     "gmm.json", "privacy.json", "report.md", "synthetic-00000-of-00001.parquet"]
    ledger = json.loads((out / "privacy.json").read_text())
    assert ledger["spent"]["epsilon"] <= 8.0 + 1e-9
    mixture = json.loads((out / "gmm.json").read_text())
    assert mixture["dimension"] == 3969  # ScatterNet's output size reached the synthesis step
    assert [c["label"] for c in mixture["classes"]] == ["0", "1", "2"]
    table = pq.read_table(out / "synthetic-00000-of-00001.parquet")
    emb = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    assert set(table.column("label").to_pylist()) <= {"0", "1", "2"}
    if len(table):  # whether a class survives the noise is random; the checks below are not
        assert emb.shape[1] == 3969
        norms = np.linalg.norm(emb, axis=1)  # normalize mode: every row at the one released norm
        np.testing.assert_allclose(norms, norms[0], rtol=1e-4)
    # Dead letters: the corrupt image from the reader, the 60 label-3 rows from the synthesis step.
    records = pq.read_table(next((rejected / "records").glob("rejected-*.parquet"))).to_pylist()
    assert [(r["id"], r["reject_reason"].split(":")[0]) for r in records] == [("0/corrupt.png", "unreadable image")]
    by_label = pq.read_table(next((rejected / "embeddings").glob("rejected-*.parquet")))
    assert by_label.num_rows == 60 and set(by_label.column("label").to_pylist()) == {"3"}


def test_generate_user_errors(digit_folder, tmp_path, capsys):
    base = ["--input", str(digit_folder), "--output", str(tmp_path / "o"), "--epsilon", "1", "--delta", "1e-5"]
    assert run_guarded(run, base + ["--encoder", "clip-vit"] + BEAM) == 2
    assert "unknown encoder 'clip-vit'" in capsys.readouterr().err
    assert run_guarded(run, base + ["--encoder", "scatternet", "--runner", "local"]) == 2
    assert "generate runs on Beam" in capsys.readouterr().err
    assert run_guarded(run, base + ["--encoder", "scatternet", "--privacy-unit-column", "user"] + BEAM) == 2
    assert "privacy-unit column" in capsys.readouterr().err
    # The delta guard is the same public rule on every input format (--min-rows or the absolute cap).
    assert run_guarded(run, base[:-2] + ["--delta", "0.01", "--encoder", "scatternet"] + BEAM) == 2
    assert "--min-rows" in capsys.readouterr().err
    assert run_guarded(run, base[:-2] + ["--delta", "0.01", "--min-rows", "200", "--encoder", "scatternet"]
                       + BEAM) == 2
    assert "1/n for the declared --min-rows 200" in capsys.readouterr().err
    assert run_guarded(run, base[:2] + base[4:] + ["--encoder", "scatternet"]) == 2  # no --output
    assert "--output" in capsys.readouterr().err


def test_generate_on_jsonl_vectors_takes_d_and_the_delta_rule_from_public_facts(tmp_path, capsys):
    # JSONL has no schema: the vectors' length must be declared, whatever the first row holds, and the
    # delta guard is the same public rule as for Parquet (it used to be skipped for JSONL/CSV).
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps({"embedding": [1.0] * (2 if i == 0 else 4), "label": i % 2}) + "\n"
                           for i in range(40)))
    base = ["--input", str(src), "--encoder", "none", "--output", str(tmp_path / "o"), "--epsilon", "1",
            "--labels", "0,1"]
    assert run_guarded(run, base + ["--delta", "1e-6"] + BEAM) == 2
    assert "pass --dimension d" in capsys.readouterr().err
    assert run_guarded(run, base + ["--delta", "0.01", "--dimension", "4"] + BEAM) == 2
    assert "--min-rows" in capsys.readouterr().err
    assert run_guarded(run, base + ["--delta", "1e-6", "--dimension", "4", "--diagnostics-output",
                                    str(tmp_path / "d.json")] + BEAM) == 0
    captured = capsys.readouterr()
    counts = json.loads((tmp_path / "d.json").read_text())["counts"]
    assert counts["rows_valid"] == 39  # the short first row is one counted rejection, not the dimension
    assert json.loads((tmp_path / "o" / "gmm.json").read_text())["dimension"] == 4, captured.err


def test_generate_takes_public_rows_like_synthesize(tmp_path, capsys):
    # The same --public-rows as synthesize: the subspace is fitted on the driver before the pipeline
    # runs, the mixture lives in its k + 1 coordinates and the synthetic rows in the encoder's d.
    import pyarrow as pa

    rng = np.random.default_rng(0)
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps({"embedding": (rng.normal(size=4) + [3.0 * (i % 2), 0, 0, 1]).tolist(),
                                       "label": i % 2}) + "\n" for i in range(200)))
    public = tmp_path / "public.parquet"
    pq.write_table(pa.table({"embedding": pa.array(rng.normal(size=(50, 4)).tolist(), pa.list_(pa.float32(), 4))}),
                   public)
    out = tmp_path / "o"
    assert run_guarded(run, ["--input", str(src), "--encoder", "none", "--dimension", "4", "--output", str(out),
                             "--epsilon", "4", "--delta", "1e-6", "--labels", "0,1", "--public-rows", str(public),
                             "--public-dim", "2"] + BEAM) == 0, capsys.readouterr().err
    mixture = json.loads((out / "gmm.json").read_text())
    assert mixture["dimension"] == 3 and mixture["subspace"]["input_dimension"] == 4
    assert json.loads((out / "privacy.json").read_text())["public_inputs"][0]["name"] == "public_subspace"
    table = pq.read_table(out / "synthetic-00000-of-00001.parquet")
    assert table.num_rows == 0 or len(table.column("embedding")[0]) == 4
