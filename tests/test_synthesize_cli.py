"""`dpsynth synthesize` as a user meets it: exit codes, one-line errors, atomic output."""
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_pipeline import synthesize
from beam_pipeline.cli import main

BASE = ["--epsilon", "1", "--delta", "1e-5"]


def _run(capsys, *args):
    code = main(["synthesize", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_local_runner_end_to_end(parquet_input, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = _run(capsys, "--input", parquet_input["pattern"], "--output", str(out), *BASE,
                           "--labels", "ant,bee,cat,dog", "--runner", "local")
    assert code == 0 and "synthetic rows" in stdout
    assert json.loads((out / "privacy.json").read_text())["spent"]["epsilon"] <= 1.0
    assert pq.read_table(out / "synthetic-00000-of-00001.parquet").num_rows > 1500


@pytest.mark.parametrize("args,message", [
    (["--epsilon", "0", "--delta", "1e-5"], "--epsilon"),
    (["--epsilon", "1", "--delta", "1"], "--delta"),
    (["--epsilon", "1", "--delta", "1e-5", "--label-column", "nope"], "no column 'nope'"),
    (["--epsilon", "1", "--delta", "0.01"], "--min-rows"),
    (["--epsilon", "1", "--delta", "0.01", "--min-rows", "100"], "1/n for the declared --min-rows 100"),
    (["--epsilon", "1"], "required"),
])
def test_user_errors_are_one_line_and_exit_2(parquet_input, tmp_path, capsys, args, message):
    code, _, err = _run(capsys, "--input", parquet_input["pattern"], "--output", str(tmp_path / "o"), *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("dpsynth: error:") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_missing_inputs_are_user_errors_and_an_empty_one_is_not(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    code, _, err = _run(capsys, "--input", str(tmp_path / "in" / "none-*.parquet"), "--output", str(tmp_path / "o"),
                        *BASE)
    assert code == 2 and "no input file" in err
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"embedding": pa.array([], pa.list_(pa.float32())), "label": pa.array([], pa.int64())}),
                   empty)
    # No file is a fact about paths; an empty file is a fact about rows: it gives a noise-only release.
    code, _, err = _run(capsys, "--input", str(empty), "--output", str(tmp_path / "o"), *BASE, "--dimension", "2",
                        "--labels", "1,2", "--runner", "local")
    assert code == 0 and "no input row was usable" in err and (tmp_path / "o" / "gmm.json").exists()
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(b"PAR1 not really parquet")
    code, _, err = _run(capsys, "--input", str(truncated), "--output", str(tmp_path / "o"), *BASE)
    assert code == 2 and "cannot read Parquet" in err


def test_existing_output_is_refused_unless_overwrite(parquet_input, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["--input", parquet_input["pattern"], "--output", str(out), *BASE, "--labels", "ant,bee,cat,dog",
            "--runner", "local"]
    code, _, err = _run(capsys, *args)
    assert code == 2 and "already exists" in err and (out / "keep.txt").exists()
    code, _, err = _run(capsys, *args, "--overwrite")  # not a dpsynth output: --overwrite leaves it alone
    assert code == 2 and "holds no _DPSYNTH_OUTPUT marker" in err and (out / "keep.txt").exists()
    (out / "keep.txt").unlink()
    out.rmdir()
    assert _run(capsys, *args)[0] == 0
    (out / "stale.txt").write_text("old")
    code, _, _ = _run(capsys, *args, "--overwrite")  # a previous dpsynth output is replaced as a whole
    assert code == 0 and not (out / "stale.txt").exists() and (out / "gmm.json").exists()


def test_a_failed_run_leaves_no_output_and_no_debris(parquet_input, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(synthesize, "_finalize", explode)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        synthesize.run(["--input", parquet_input["pattern"], "--output", str(out), *BASE,
                        "--labels", "ant,bee,cat,dog", "--runner", "FnApiRunner"])
    assert not out.exists()
    assert not list(tmp_path.glob("out.staging-*"))


def test_rejected_rows_are_counted_and_written_only_on_request(tmp_path, capsys):
    table = pa.table({"embedding": pa.array([[1.0, 0.0], [0.0, 1.0], [1.0], None, [float("nan"), 1.0]] * 40,
                                            pa.list_(pa.float32())),
                      "label": pa.array([1, 2, 1, 2, 9] * 40)})
    path = tmp_path / "in.parquet"
    pq.write_table(table, path)
    out, rejected = tmp_path / "out", tmp_path / "rejected"
    code, _, _ = _run(capsys, "--input", str(path), "--output", str(out), "--epsilon", "1", "--delta", "1e-4",
                      "--min-rows", "80", "--dimension", "2", "--labels", "1,2", "--rejected-output", str(rejected),
                      "--diagnostics-output", str(tmp_path / "d.json"), "--runner", "FnApiRunner")
    assert code == 0
    counts = json.loads((tmp_path / "d.json").read_text())["counts"]
    assert counts["rejected_wrong_dimension"] == 40 and counts["rejected_missing_embedding"] == 40
    assert counts["rejected_non_finite"] == 40 and counts["rows_valid"] == 80
    assert "wrong_dimension" not in (out / "report.md").read_text()
    written = pq.read_table(list(rejected.glob("*.parquet")))
    assert written.num_rows == 120
    assert sorted(set(written.column("reject_reason").to_pylist())) == ["missing_embedding", "non_finite",
                                                                         "wrong_dimension"]


def test_beam_job_labels_go_to_beam_and_class_labels_stay_ours():
    from beam_pipeline import options, synthesize as _  # noqa: F401  (the real parser's flags)

    parser = options.make_parser("t", "t")
    options.add_synthesis_arguments(parser)
    args, rest = parser.parse_known_args(["--output", "o", "--epsilon", "1", "--delta", "1e-5",
                                          "--labels", '{"airflow-version": "v3"}', "--class-labels", "a,b"])
    rest = options.forward_job_labels(args, rest)
    assert rest == ['--labels={"airflow-version": "v3"}']
    assert options.config_from_args(args).labels == ("a", "b")
    args, _ = parser.parse_known_args(["--output", "o", "--epsilon", "1", "--delta", "1e-5",
                                       "--labels", "a,b", "--class-labels", "c"])
    with pytest.raises(Exception, match="once"):
        options.forward_job_labels(args, [])


def test_auto_above_d_1024_releases_the_pooled_scatter_and_says_so(tmp_path, capsys):
    # Three classes sharing two strong directions at d = 1,100: auto resolves to lowrank from d alone.
    # At epsilon 8 the directions' fitted variances sat at 5.4-8.4 noise edges (3 seeds); keeping none
    # needs the top eigenvalue to fall below 1.1 edges, while noise moves an eigenvalue this far above
    # the edge by about one edge / sqrt(d): far below 1e-6.
    rng = np.random.default_rng(0)
    d, n = 1100, 3000
    directions = np.linalg.qr(rng.standard_normal((d, 2)))[0].T
    y = np.repeat(np.arange(3), n // 3)
    X = np.eye(d)[y] * 3.0 + (rng.standard_normal((n, 2)) * 1.0) @ directions + rng.standard_normal((n, d)) * 0.02
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"embedding": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel(), pa.float32()), d),
                             "label": y}), path)
    out = tmp_path / "out"
    code, stdout, _ = _run(capsys, "--input", str(path), "--output", str(out), "--epsilon", "8", "--delta", "1e-5",
                           "--labels", "0,1,2", "--runner", "local")
    assert code == 0, stdout
    mixture = json.loads((out / "gmm.json").read_text())
    assert mixture["covariance"] == "lowrank" and mixture["low_rank"]["rank"] >= 1
    names = [m["name"] for m in json.loads((out / "privacy.json").read_text())["mechanisms"]]
    assert "final_within_scatter" in names
    assert "Low rank: every component shares the" in (out / "report.md").read_text()


def _public_file(tmp_path, rows: int = 600, dimension: int = 8, seed: int = 9, name: str = "public.parquet") -> Path:
    from tests.conftest import embedding_table, make_mixture_data

    X, y = make_mixture_data(rows=rows, seed=seed, dimension=dimension)
    path = tmp_path / name
    pq.write_table(embedding_table(X, y), path)
    return path


def test_public_rows_fit_the_mixture_in_their_subspace_and_every_file_says_so(parquet_input, tmp_path, capsys):
    public = _public_file(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "--input", parquet_input["pattern"], "--output", str(out), *BASE,
                             "--labels", "ant,bee,cat,dog", "--runner", "local", "--public-rows", str(public),
                             "--public-dim", "3")
    assert code == 0, err
    mixture = json.loads((out / "gmm.json").read_text())
    assert mixture["dimension"] == 4 and len(mixture["classes"][0]["means"][0]) == 4  # 3 directions + residual
    assert mixture["subspace"]["num_directions"] == 3 and mixture["subspace"]["input_dimension"] == 8
    assert np.asarray(mixture["subspace"]["basis"]).shape == (3, 8)
    privacy = json.loads((out / "privacy.json").read_text())
    assert privacy["public_inputs"][0]["name"] == "public_subspace" and privacy["spent"]["epsilon"] <= 1.0
    assert privacy["public_inputs"][0]["sha256"] == mixture["subspace"]["sha256"]
    assert "Public subspace: the mixture was fitted in 4 coordinates" in (out / "report.md").read_text()
    synthetic = pq.read_table(out / "synthetic-00000-of-00001.parquet")
    assert synthetic.num_rows > 1500 and len(synthetic.column("embedding")[0]) == 8  # the encoder's own d
    from dpsynth.release import load_release

    X, _, _ = load_release(str(out)).mixture.sample(100)  # anyone can draw again from gmm.json alone
    assert X.shape == (100, 8)


@pytest.mark.parametrize("extra,message", [
    (["--public-dim", "3"], "--public-dim needs --public-rows"),
    (["--public-rows", "{wide}"], "embeddings of 16 values, but the input is 8-d"),
    (["--public-rows", "{bad}"], "non-finite values"),
    (["--public-rows", "{none}"], "no input files match"),
    (["--public-rows", "{public}", "--public-dim", "0"], "--public-dim must be a positive integer"),
])
def test_bad_public_rows_are_one_line_errors_before_any_work(parquet_input, tmp_path, capsys, extra, message):
    paths = {"wide": _public_file(tmp_path, dimension=16, name="wide.parquet"), "public": _public_file(tmp_path),
             "none": tmp_path / "nowhere" / "missing-*.parquet", "bad": tmp_path / "bad.parquet"}
    pq.write_table(pa.table({"embedding": pa.array([[np.nan] * 8] * 4, pa.list_(pa.float32(), 8)),
                             "label": [0, 1, 0, 1]}), paths["bad"])
    extra = [a.format(**{k: str(v) for k, v in paths.items()}) for a in extra]
    code, _, err = _run(capsys, "--input", parquet_input["pattern"], "--output", str(tmp_path / "o"), *BASE,
                        "--labels", "ant,bee,cat,dog", "--runner", "local", *extra)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_the_output_may_not_lie_inside_the_public_rows(parquet_input, tmp_path, capsys):
    public_dir = tmp_path / "public"
    public_dir.mkdir()
    _public_file(public_dir)
    code, _, err = _run(capsys, "--input", parquet_input["pattern"], "--output", str(public_dir / "out"), *BASE,
                        "--labels", "ant,bee,cat,dog", "--runner", "local", "--public-rows", str(public_dir))
    assert code == 2 and "--public-rows" in err
    assert sorted(p.name for p in public_dir.iterdir()) == ["public.parquet"]
