"""`dpsynth evaluate` end to end on tiny Parquet files, and its one-line errors."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_pipeline import evaluate
from beam_pipeline.cli import main
from dpsynth.errors import UserError
from dpsynth.gmm import ReleasedMixture


def _rows(n, seed, dim=6):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = np.eye(dim)[y] * 3 + rng.normal(size=(n, dim)) * 0.5
    return x.astype(np.float32), y


def _table(x, y, labels_as=str):
    return pa.table({"label": pa.array([labels_as(v) for v in y]),
                     "embedding": pa.array(list(x), type=pa.list_(pa.float32()))})


@pytest.fixture
def files(tmp_path):
    synth = tmp_path / "synth"
    synth.mkdir()
    x, y = _rows(400, 0)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    pq.write_table(_table(x[:200], y[:200], int), synth / "synthetic-00000-of-00002.parquet")
    pq.write_table(_table(x[200:], y[200:], int), synth / "synthetic-00001-of-00002.parquet")
    (synth / "privacy.json").write_text(json.dumps({"target": {"epsilon": 1.0, "delta": 1e-5},
                                                    "spent": {"epsilon": 0.99, "delta": 1e-5}}))
    (synth / "gmm.json").write_text(json.dumps(ReleasedMixture([], 6, 1.0, "normalize", "spherical", True).to_json()))
    xt, yt = _rows(300, 1)
    pq.write_table(_table(xt, yt, int), tmp_path / "test.parquet")
    xr, yr = _rows(300, 2)
    pq.write_table(_table(xr, yr, int), tmp_path / "train.parquet")
    return tmp_path


def test_evaluate_writes_json_and_markdown(files, capsys):
    out = files / "res" / "eval.json"
    assert evaluate.run(["--synthetic", str(files / "synth"), "--test", str(files / "test.parquet"),
                         "--train", str(files / "train.parquet"), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["num_synthetic"] == 400 and result["num_test"] == 300 and result["classes"] == [0, 1]
    # Seeded and well separated (3 sd): deterministic.
    assert result["accuracy_synthetic"] > 0.95 and result["accuracy_real"] > 0.95
    assert result["privacy"]["target"]["epsilon"] == 1.0 and result["privacy"]["private"] is True
    md = out.with_suffix(".md").read_text()
    assert "non-private ceiling" in md and "DP synthetic rows" in md
    assert "epsilon 1.0, delta 1e-05, spent epsilon 0.99" in md and "NOT differentially private" not in md
    assert "synthetic-trained MLP" in capsys.readouterr().out


def test_a_test_only_synthesis_is_flagged_not_private(files):
    (files / "synth" / "gmm.json").write_text(
        json.dumps(ReleasedMixture([], 6, 1.0, "normalize", "spherical", False).to_json()))
    out = files / "e.json"
    evaluate.run(["--synthetic", str(files / "synth"), "--test", str(files / "test.parquet"), "--output", str(out)])
    assert "NOT differentially private" in out.with_suffix(".md").read_text()


def test_the_bound_comes_from_the_released_mixture(files, monkeypatch):
    seen = []
    monkeypatch.setattr(evaluate, "bound_rows", lambda x, clip_mode, radius: seen.append((clip_mode, radius)) or x)
    (files / "synth" / "gmm.json").write_text(json.dumps(ReleasedMixture([], 6, 2.5, "clip", "spherical", True).to_json()))
    base = ["--synthetic", str(files / "synth"), "--test", str(files / "test.parquet"), "--overwrite"]
    evaluate.run(base + ["--output", str(files / "a.json")])
    evaluate.run(base + ["--output", str(files / "b.json"), "--clip-mode", "normalize", "--radius", "1.0"])
    assert seen == [("clip", 2.5), ("normalize", 1.0)]
    (files / "synth" / "gmm.json").write_text(json.dumps({"private": True, "radius": 1.0}))
    with pytest.raises(UserError, match="not a dpsynth mixture"):
        evaluate.run(base + ["--output", str(files / "c.json")])


def test_bound_rows_modes():
    x = np.array([[3.0, 4.0], [0.3, 0.4]], np.float32)
    np.testing.assert_allclose(evaluate.bound_rows(x, "normalize", 1.0), [[0.6, 0.8], [0.6, 0.8]], rtol=1e-6)
    np.testing.assert_allclose(evaluate.bound_rows(x, "clip", 1.0), [[0.6, 0.8], [0.3, 0.4]], rtol=1e-6)


def test_user_errors(files, capsys):
    base = ["--synthetic", str(files / "synth"), "--test", str(files / "test.parquet")]
    with pytest.raises(UserError, match="not a directory"):
        evaluate.run(["--synthetic", str(files / "nope"), "--test", str(files / "test.parquet")])
    with pytest.raises(UserError, match="no such file"):
        evaluate.run(base[:2] + ["--test", str(files / "missing.parquet")])
    x, y = _rows(10, 3, dim=4)
    pq.write_table(_table(x, y), files / "narrow.parquet")
    with pytest.raises(UserError, match="4 dimensions"):
        evaluate.run(base[:2] + ["--test", str(files / "narrow.parquet")])
    with pytest.raises(UserError, match="cannot read columns"):
        evaluate.run(base + ["--embedding-column", "vec"])
    ragged = pa.table({"label": ["a", "b"], "embedding": pa.array([[1.0], [1.0, 2.0]], type=pa.list_(pa.float32()))})
    pq.write_table(ragged, files / "ragged.parquet")
    with pytest.raises(UserError, match="different lengths"):
        evaluate.run(base[:2] + ["--test", str(files / "ragged.parquet")])
    # Through the dispatcher: one line on stderr, exit code 2.
    assert main(["evaluate", "--synthetic", str(files / "nope"), "--test", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dpsynth: error:")


def test_several_releases_draw_the_privacy_utility_curve(files, capsys):
    import shutil
    for eps in (0.5, 8.0):
        directory = files / f"synth-{eps}"
        shutil.copytree(files / "synth", directory)
        privacy = json.loads((directory / "privacy.json").read_text())
        privacy["target"]["epsilon"] = eps
        privacy["spent"]["epsilon"] = 0.97 * eps  # the curve is drawn against what the ledger spent
        (directory / "privacy.json").write_text(json.dumps(privacy))
    out = files / "curve" / "pu.json"
    assert evaluate.run(["--synthetic", str(files / "synth-8.0"), str(files / "synth-0.5"), "--test",
                         str(files / "test.parquet"), "--train", str(files / "train.parquet"),
                         "--output", str(out)]) == 0
    points = json.loads(out.read_text())["points"]
    assert [p["epsilon"] for p in points] == pytest.approx([0.485, 7.76]) and all(p["ceiling"] > 0.9 for p in points)
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert "| 0.485 |" in out.with_suffix(".md").read_text()
    with pytest.raises(UserError, match="--output"):
        evaluate.run(["--synthetic", str(files / "synth-8.0"), str(files / "synth-0.5"), "--test",
                      str(files / "test.parquet")])


def test_the_evaluation_stays_outside_the_release_and_is_marked_private(tmp_path):
    # The evaluation holds exact facts of real rows: never written into the release directory.
    from beam_pipeline.evaluate import evaluation_path
    from dpsynth.errors import UserError

    release = tmp_path / "release"
    release.mkdir()
    assert evaluation_path(release, None) == tmp_path / "release-evaluation.private.json"
    with pytest.raises(UserError, match="lies inside the release directory"):
        evaluation_path(release, str(release / "evaluation.json"))
    with pytest.raises(UserError, match="lies inside the release directory"):
        evaluation_path(release, str(release / "sub" / "e.json"))
    assert evaluation_path(release, str(tmp_path / "e.json")) == tmp_path / "e.json"
    from dpsynth.evaluation.report import EvaluationResult, to_markdown

    result = EvaluationResult("r", "t", 1, 1, [0], 0.5)
    assert result.to_json()["note"].startswith("PRIVATE") and "PRIVATE" in to_markdown(result)
