"""The bad-input catalogue (docs/trust.md has the table).

Each bad input is either a user error (exit code 2, one line on stderr, no
traceback, no output written) or a counted dead-letter row (in report.md's
diagnostics and, when asked, in --rejected-output). Nothing crashes a worker
and nothing is dropped without a count.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_pipeline.cli import main
from tests.conftest import two_class_table

DIM = 4


def _good(rows: int = 400, seed: int = 0) -> pa.Table:
    return two_class_table(rows, seed, separation=2.0, dimension=DIM)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("inputs")
    paths = {}

    def write(name: str, table: pa.Table) -> None:
        paths[name] = str(root / f"{name}.parquet")
        pq.write_table(table, paths[name])

    write("good", _good())
    write("empty", _good().slice(0, 0))
    data = Path(paths["good"]).read_bytes()
    paths["truncated"] = str(root / "truncated.parquet")
    Path(paths["truncated"]).write_bytes(data[: len(data) // 2])
    paths["garbage"] = str(root / "garbage.parquet")
    Path(paths["garbage"]).write_bytes(b"not a parquet file at all")
    os.makedirs(root / "glob")
    pq.write_table(_good(), root / "glob" / "a.parquet")
    Path(root / "glob" / "b.parquet").write_bytes(data[:-20])  # footer cut off
    paths["glob_with_truncated"] = str(root / "glob" / "*.parquet")
    good = _good()
    write("string_values", pa.table({"embedding": pa.array([["a", "b", "c", "d"]] * 10), "label": [0] * 10}))
    write("scalar_embedding", pa.table({"embedding": pa.array([1.5] * 10), "label": [0] * 10}))
    write("float_labels", good.set_column(1, "label", good.column("label").cast(pa.float64())))
    write("bool_labels", good.set_column(1, "label", good.column("label").cast(pa.bool_())))
    write("all_null_embeddings", pa.table({"embedding": pa.nulls(10, pa.list_(pa.float64())), "label": [0] * 10}))
    wide = np.random.default_rng(0).standard_normal((40, 1100)).astype(np.float32)
    write("wide", pa.table({"embedding": pa.array(list(wide), pa.list_(pa.float32(), 1100)), "label": [0, 1] * 20}))
    # a variable-length list whose first row is short: d must not be read from it
    ragged = good.to_pylist()
    ragged[0]["embedding"] = ragged[0]["embedding"][:2]
    write("ragged_first_short", pa.Table.from_pylist(ragged, schema=pa.schema(
        [("embedding", pa.list_(pa.float64())), ("label", pa.int64())])))
    units = good.append_column("person", pa.array(np.arange(good.num_rows) % 100))
    write("units", units)
    for name, later in (("drift_values", pa.table({"embedding": pa.array([["x", "y", "z", "w"]] * 7),
                                                   "label": pa.array([0] * 7)})),
                        ("drift_labels", pa.table({"embedding": pa.array([[1.0, 0.0, 0.0, 0.0]] * 7),
                                                   "label": pa.array(["0"] * 7)})),
                        ("drift_column", pa.table({"vec": pa.array([[1.0, 0.0, 0.0, 0.0]] * 7),
                                                   "label": pa.array([0] * 7)}))):
        os.makedirs(root / name)
        pq.write_table(_good(), root / name / "a.parquet")
        pq.write_table(later, root / name / "b.parquet")
        paths[name] = str(root / name / "*.parquet")
    return paths


def _run(args: list[str], tmp_path: Path, capsys, runner: str = "local") -> tuple[int, str, str]:
    code = main(["synthesize", *args, "--output", str(tmp_path / "out"), "--runner", runner])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


BASE = ["--epsilon", "1", "--delta", "1e-6", "--labels", "0,1"]

USER_ERRORS = {
    # name: (input file, extra args without the BASE ones replaced, expected words in the message)
    "epsilon zero": ("good", ["--epsilon", "0", "--delta", "1e-6"], "--epsilon must be a positive"),
    "epsilon negative": ("good", ["--epsilon", "-1", "--delta", "1e-6"], "--epsilon must be a positive"),
    "epsilon nan": ("good", ["--epsilon", "nan", "--delta", "1e-6"], "--epsilon must be a positive"),
    "epsilon inf": ("good", ["--epsilon", "inf", "--delta", "1e-6"], "--epsilon must be a positive"),
    "epsilon not a number": ("good", ["--epsilon", "abc", "--delta", "1e-6"], "invalid float value"),
    "delta zero": ("good", ["--epsilon", "1", "--delta", "0"], "--delta must lie strictly between 0 and 1"),
    "delta one": ("good", ["--epsilon", "1", "--delta", "1"], "--delta must lie strictly between 0 and 1"),
    "delta above one": ("good", ["--epsilon", "1", "--delta", "1.5"], "--delta must lie strictly between"),
    "delta nan": ("good", ["--epsilon", "1", "--delta", "nan"], "--delta must lie strictly between"),
    # The delta guard uses public facts only: the declared --min-rows, else an absolute cap.
    "delta at 1/min-rows": ("good", ["--epsilon", "1", "--delta", "0.0025", "--min-rows", "400"],
                            "at or above 1/n for the declared --min-rows 400"),
    "delta above 1/min-rows": ("good", ["--epsilon", "1", "--delta", "0.01", "--min-rows", "400"],
                               "pass --allow-large-delta"),
    "delta above the cap without --min-rows": ("good", ["--epsilon", "1", "--delta", "0.0025"],
                                               "declare a public lower bound on the number of rows with --min-rows"),
    "delta guard in privacy units": ("units", ["--epsilon", "1", "--delta", "0.05", "--min-rows", "50",
                                               "--privacy-unit-column", "person"], "(privacy units)"),
    "min-rows zero": ("good", BASE + ["--min-rows", "0"], "--min-rows must be a positive integer"),
    "min-rows above max-rows": ("good", BASE + ["--min-rows", "1000", "--max-rows", "500"],
                                "--min-rows 1000 is above --max-rows 500"),
    "diagnostics inside the release": ("good", BASE + ["--diagnostics-output", "{out}/d.json"],
                                       "lies inside the release directory"),
    "diagnostics onto the input": ("good", BASE + ["--diagnostics-output", "{input}"], "is or lies inside the input"),
    "variable-length list without a declared size": ("ragged_first_short", BASE, "pass --dimension d"),
    "dimension differs from the schema's": ("good", BASE + ["--dimension", "5"],
                                            "--dimension 5 differs from the 4"),
    "missing epsilon": ("good", ["--delta", "1e-6"], "--epsilon"),
    "truncated parquet": ("truncated", BASE, "cannot read Parquet file"),
    "not parquet": ("garbage", BASE, "cannot read Parquet file"),
    "truncated file in a glob": ("glob_with_truncated", BASE, "b.parquet"),
    "no such file": ("nope", BASE, "no input file matches"),
    "non-numeric values": ("string_values", BASE, "must be a list of numbers"),
    "embedding not a list": ("scalar_embedding", BASE, "must be a list of numbers"),
    "float labels": ("float_labels", BASE, "must hold integers or strings"),
    "bool labels": ("bool_labels", BASE, "must hold integers or strings"),
    "no embedding at all": ("all_null_embeddings", BASE + ["--allow-large-delta"], "pass --dimension"),
    "labels of the wrong type": ("good", ["--epsilon", "1", "--delta", "1e-6", "--labels", "a,b"],
                                 "non-integer"),
    "duplicate labels": ("good", ["--epsilon", "1", "--delta", "1e-6", "--labels", "0,0"], "duplicate label"),
    "unknown embedding column": ("good", BASE + ["--embedding-column", "emb"], "no column 'emb'"),
    "unknown label column": ("good", BASE + ["--label-column", "y"], "no column 'y'"),
    "unknown unit column": ("good", BASE + ["--privacy-unit-column", "who"], "no column 'who'"),
    "dimension zero": ("good", BASE + ["--dimension", "0"], "--dimension must be a positive integer"),
    "radius negative": ("good", BASE + ["--radius", "-1"], "--radius must be a positive"),
    "radius inf": ("good", BASE + ["--radius", "inf"], "--radius must be a positive"),
    "rounds zero": ("good", BASE + ["--rounds", "0"], "--rounds must be an integer in [1, 50]"),
    "clusters zero": ("good", BASE + ["--max-clusters", "0"], "--max-clusters must be an integer"),
    "samples negative": ("good", BASE + ["--num-samples", "-3"], "--num-samples must be a non-negative"),
    "bad clip mode": ("good", BASE + ["--clip-mode", "squash"], "invalid choice"),
    # extreme numeric parameters: bounded by public constants, refused before any work
    "delta denormal": ("good", ["--epsilon", "1", "--delta", "1e-320"], "--delta 9.99989e-321 is below 1e-12"),
    "epsilon huge": ("good", ["--epsilon", "1e6", "--delta", "1e-6"], "is above 100"),
    "radius tiny": ("good", BASE + ["--radius", "1e-300"], "is outside [2^-40, 2^40]"),
    "radius huge": ("good", BASE + ["--radius", "1e300"], "is outside [2^-40, 2^40]"),
    "label beyond int64": ("good", ["--epsilon", "1", "--delta", "1e-6", "--labels", "0,99999999999999999999"],
                           "does not fit a 64-bit integer"),
    "rounds huge": ("good", BASE + ["--rounds", "1000000"], "--rounds must be an integer in [1, 50]"),
    "clusters huge": ("good", BASE + ["--max-clusters", "100000000"], "--max-clusters must be an integer"),
    # sizes that could exhaust memory
    "dimension huge": ("good", BASE + ["--dimension", "1000000000"], "is above 65536"),
    "samples huge": ("good", BASE + ["--num-samples", "100000000000"], "is above 1,000,000,000"),
    # later files of a glob whose schema differs from the first: one line from the footers
    "later file with non-numeric embeddings": ("drift_values", BASE, "b.parquet differs from"),
    "later file with string labels": ("drift_labels", BASE, "its labels ('label') are string"),
    "later file without the embedding column": ("drift_column", BASE, "b.parquet differs from"),
    "full covariance above its dimension cap": ("wide", BASE + ["--covariance", "full", "--allow-large-delta"],
                                                "needs d <= 1024, got d = 1100"),
}


@pytest.mark.parametrize("case", sorted(USER_ERRORS))
def test_user_errors_are_one_line_and_exit_code_2(case, files, tmp_path, capsys):
    name, args, words = USER_ERRORS[case]
    path = files.get(name, str(tmp_path / f"{name}.parquet"))
    args = [a.format(out=tmp_path / "out", input=path) for a in args]
    code, _, err = _run(["--input", path, *args], tmp_path, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpsynth: error: "), err
    assert words in lines[0], lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith("out.")]  # no staging debris


def test_errors_on_the_driver_also_stop_a_beam_run(files, tmp_path, capsys):
    code, _, err = _run(["--input", files["glob_with_truncated"], *BASE], tmp_path, capsys, runner="FnApiRunner")
    assert code == 2 and err.count("\n") == 1 and "cannot read Parquet file" in err and "b.parquet" in err


def test_an_existing_output_is_not_replaced_without_overwrite(files, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    code, _, err = _run(["--input", files["good"], *BASE], tmp_path, capsys)
    assert code == 2 and "already exists; pass --overwrite" in err and err.count("\n") == 1
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_delta_above_1_over_n_is_accepted_when_asked(files, tmp_path, capsys):
    code, _, err = _run(["--input", files["good"], "--epsilon", "1", "--delta", "0.01", "--labels", "0,1",
                         "--allow-large-delta"], tmp_path, capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "privacy.json").read_text())["target"]["delta"] == 0.01


def test_epsilon_above_10_warns_but_runs(files, tmp_path, capsys):
    code, out, err = _run(["--input", files["good"], "--epsilon", "12", "--delta", "1e-6", "--labels", "0,1"],
                          tmp_path, capsys)
    assert code == 0, err
    assert "dpsynth: warning: epsilon=12 is above 10; the privacy guarantee is weak" in err
    assert "Traceback" not in err and "wrote" in out


def _messy() -> tuple[pa.Table, dict[str, int]]:
    """Good rows plus one or more rows of every malformed kind, and the expected reject counts."""
    good = _good(300, seed=3)
    rows = good.to_pylist()
    nan_row, inf_row = [1.0, math.nan, 0.0, 0.0], [math.inf, 0.0, 0.0, 0.0]
    bad = [
        ({"embedding": nan_row, "label": 0}, "non_finite"),
        ({"embedding": inf_row, "label": 1}, "non_finite"),
        ({"embedding": [1.0, 2.0, 3.0], "label": 0}, "wrong_dimension"),  # ragged: short
        ({"embedding": [1.0, 2.0, 3.0, 4.0, 5.0], "label": 1}, "wrong_dimension"),  # ragged: long
        ({"embedding": [], "label": 1}, "wrong_dimension"),
        ({"embedding": None, "label": 0}, "missing_embedding"),
        ({"embedding": [0.0, 0.0, 0.0, 0.0], "label": 0}, "zero_norm"),
        ({"embedding": [1.0, 0.0, 0.0, 0.0], "label": None}, "missing_label"),
        ({"embedding": [1.0, 0.0, 0.0, 0.0], "label": 9}, "unknown_label"),
        ({"embedding": [math.nan, 0.0, 0.0, 0.0], "label": None}, "non_finite"),  # first reason wins
    ]
    huge = [{"embedding": [1e300, -1e300, 1e300, 0.0], "label": 0}, {"embedding": [3e38, 0.0, 0.0, 0.0], "label": 1}]
    duplicates = rows[:20]  # exact copies: each is a record of its own, counted as such
    all_rows = rows + [r for r, _ in bad] + huge + duplicates
    order = np.random.default_rng(4).permutation(len(all_rows))
    table = pa.Table.from_pylist([all_rows[i] for i in order],
                                 schema=pa.schema([("embedding", pa.list_(pa.float64())), ("label", pa.int64())]))
    expected: dict[str, int] = {}
    for _, reason in bad:
        expected[reason] = expected.get(reason, 0) + 1
    return table, expected


@pytest.mark.parametrize("runner", ["local", "FnApiRunner"])
def test_malformed_rows_are_counted_dead_letters(runner, tmp_path, capsys):
    table, expected = _messy()
    path = tmp_path / "messy.parquet"
    pq.write_table(table, path, row_group_size=64)  # several batches
    private = tmp_path / "run.private.json"
    code, out, err = _run(["--input", str(path), "--epsilon", "2", "--delta", "1e-6", "--labels", "0,1,2",
                           "--dimension", "4", "--rejected-output", str(tmp_path / "rejected"),
                           "--diagnostics-output", str(private)], tmp_path, capsys, runner)
    assert code == 0, err
    assert "Traceback" not in err
    rejected_total = sum(expected.values())
    assert (f"dpsynth: warning (private operator telemetry, exact, not DP): {rejected_total} input rows were "
            "rejected as malformed") in err
    diagnostics = json.loads(private.read_text())
    assert diagnostics["privacy"].startswith("PRIVATE")
    counts = diagnostics["counts"]
    for reason, count in expected.items():
        assert counts[f"rejected_{reason}"] == count, reason
    assert counts["rows_read"] == table.num_rows
    # huge-norm rows and duplicates are used; nothing else is lost
    assert counts["rows_valid"] == table.num_rows - rejected_total
    report = (tmp_path / "out" / "report.md").read_text()
    assert "rows read" not in report and "rejected for" not in report
    rejected = pq.read_table(str(tmp_path / "rejected"))
    reasons = rejected.column("reject_reason").to_pylist()
    assert {r: reasons.count(r) for r in set(reasons)} == expected
    # The dead-letter rows are the original rows (the NaN row keeps its NaN).
    nan_rows = [r["embedding"] for r in rejected.to_pylist() if r["reject_reason"] == "non_finite"]
    assert any(e is not None and math.isnan(e[1]) for e in nan_rows)
    # The class with no rows still got its (noisy) release and is reported, not dropped.
    gmm = json.loads((tmp_path / "out" / "gmm.json").read_text())
    assert [c["label"] for c in gmm["classes"]] == [0, 1, 2]
    # Its noisy counts clear the keep threshold now and then (DP gives an empty class no guarantee of
    # zero rows), so the report must say what gmm.json holds, either way.
    row = next(line for line in report.splitlines() if line.startswith("| 2 |"))
    assert ("no synthetic rows" in row) == (gmm["classes"][2]["num_components"] == 0), row


def test_schema_drift_also_stops_a_beam_run_on_the_driver(files, tmp_path, capsys):
    code, _, err = _run(["--input", files["drift_values"], *BASE], tmp_path, capsys, runner="FnApiRunner")
    assert code == 2 and err.count("\n") == 1 and "b.parquet differs from" in err


def test_a_labels_file_holds_one_label_per_line_commas_included(tmp_path, capsys):
    table = pa.table({"embedding": pa.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]] * 150,
                                            pa.list_(pa.float32(), 4)),
                      "label": ["red, dark", "blue"] * 150})
    pq.write_table(table, tmp_path / "in.parquet")
    (tmp_path / "labels.txt").write_text("\ufeffred, dark\nblue\n\n")  # a BOM, a comma, a blank line
    code, _, err = _run(["--input", str(tmp_path / "in.parquet"), "--epsilon", "2", "--delta", "1e-6",
                         "--labels-file", str(tmp_path / "labels.txt")], tmp_path, capsys)
    assert code == 0, err
    gmm = json.loads((tmp_path / "out" / "gmm.json").read_text())
    assert [c["label"] for c in gmm["classes"]] == ["red, dark", "blue"]


def test_gs_without_credentials_fails_on_the_driver_in_one_line(tmp_path, capsys, monkeypatch):
    # A credentials file that does not exist: google.auth fails at once, before any network use.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    monkeypatch.delenv("DPSYNTH_SKIP_GCS_CHECK", raising=False)
    for runner in ("local", "FnApiRunner"):
        code, _, err = _run(["--input", "gs://dpsynth-no-such-bucket/in/*.parquet", *BASE], tmp_path, capsys,
                            runner=runner)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "gs://dpsynth-no-such-bucket" in err and "credentials" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_stderr_holds_no_third_party_warning_before_an_error(tmp_path):
    # A fresh interpreter, as a user runs it: Beam's import warning ("apitools not found") must not
    # precede dpsynth's one line.
    import subprocess
    import sys

    for command in ([sys.executable, "-m", "beam_pipeline.cli", "synthesize"],
                    [sys.executable, "-m", "beam_pipeline.synthesize"]):
        done = subprocess.run([*command, "--input", str(tmp_path / "nope.parquet"), "--output",
                               str(tmp_path / "out"), *BASE], capture_output=True, text=True, timeout=120,
                              env={k: v for k, v in os.environ.items() if k != "DPSYNTH_VERBOSE"})
        assert done.returncode == 2
        assert done.stderr.splitlines() == [f"dpsynth: error: no input file matches "
                                            f"'{tmp_path / 'nope.parquet'}'"], done.stderr


# The release directory holds DP values only.

def _release_text(directory: Path) -> str:
    """Every byte of every file of a release, as text where it decodes (JSON, markdown, Parquet metadata)."""
    return "\n".join(p.read_bytes().decode("latin-1") for p in sorted(directory.rglob("*")) if p.is_file())


@pytest.mark.parametrize("runner", ["local", "FnApiRunner"])
def test_the_release_directory_holds_no_exact_count(runner, tmp_path, capsys):
    # 487 rows, 13 of them rejected: neither number, nor 474 used, may appear anywhere in the release,
    # in the staging debris, or in report.md; they appear only in the PRIVATE diagnostics file.
    table = _good(474, seed=7).to_pylist() + [{"embedding": [math.nan] * DIM, "label": 0}] * 13
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(table, schema=pa.schema([("embedding", pa.list_(pa.float64(), DIM)),
                                                                   ("label", pa.int64())])), path)
    code, _, err = _run(["--input", str(path), *BASE, "--num-samples", "200",
                         "--diagnostics-output", str(tmp_path / "d.private.json")], tmp_path, capsys, runner)
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert not [f for f in files if "diagnostics" in f]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "exact" in report.lower() and "--diagnostics-output" in report
    for number in ("487", "474", "13"):  # as whole numbers: a noisy count such as 113 is no leak
        assert not re.search(rf"(?<![\d.]){number}(?![\d.])", report), number
    release = _release_text(tmp_path / "out")
    assert "rows_read" not in release and "rejected_" not in release and "rows_valid" not in release
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.private.json", "in.parquet", "out"]  # no debris
    counts = json.loads((tmp_path / "d.private.json").read_text())["counts"]
    assert counts["rows_read"] == 487 and counts["rejected_non_finite"] == 13
    assert "private operator telemetry" in err


def test_without_diagnostics_output_exact_counts_are_written_nowhere(files, tmp_path, capsys):
    before = set(os.listdir(tmp_path))
    code, _, err = _run(["--input", files["good"], *BASE], tmp_path, capsys)
    assert code == 0, err
    assert set(os.listdir(tmp_path)) - before == {"out"}
    assert "rows_read" not in _release_text(tmp_path / "out")


def test_an_existing_diagnostics_file_is_not_replaced(files, tmp_path, capsys):
    target = tmp_path / "d.json"
    target.write_text("mine")
    code, _, err = _run(["--input", files["good"], *BASE, "--diagnostics-output", str(target)], tmp_path, capsys)
    assert code == 2 and "already exists; pass --overwrite" in err and target.read_text() == "mine"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("runner", ["local", "FnApiRunner"])
def test_an_empty_input_gives_a_noise_only_release_and_a_private_warning(runner, files, tmp_path, capsys):
    code, out, err = _run(["--input", files["empty"], *BASE, "--num-samples", "50"], tmp_path, capsys, runner)
    assert code == 0, err
    assert "private operator telemetry" in err and "no input row was usable" in err
    gmm = json.loads((tmp_path / "out" / "gmm.json").read_text())
    assert [c["label"] for c in gmm["classes"]] == [0, 1]
    assert (tmp_path / "out" / "privacy.json").exists() and (tmp_path / "out" / "report.md").exists()


@pytest.mark.parametrize("runner", ["local", "FnApiRunner"])
def test_a_short_first_row_does_not_change_the_dimension(runner, files, tmp_path, capsys):
    # With d declared (--dimension), the short first row is one counted rejection and every other row is used.
    private = tmp_path / "d.json"
    code, _, err = _run(["--input", files["ragged_first_short"], *BASE, "--dimension", "4",
                         "--diagnostics-output", str(private)], tmp_path, capsys, runner)
    assert code == 0, err
    counts = json.loads(private.read_text())["counts"]
    assert counts["rejected_wrong_dimension"] == 1 and counts["rows_valid"] == 399
    assert json.loads((tmp_path / "out" / "gmm.json").read_text())["dimension"] == 4


def test_the_dimension_is_read_from_dpsynth_metadata(tmp_path, capsys):
    table = _good(300)
    field = pa.field("embedding", pa.list_(pa.float64()), metadata={"dpsynth.dimension": "4"})
    table = pa.table({"embedding": table.column("embedding").cast(pa.list_(pa.float64())),
                      "label": table.column("label")}, schema=pa.schema([field, ("label", pa.int64())]))
    pq.write_table(table, tmp_path / "meta.parquet")
    code, _, err = _run(["--input", str(tmp_path / "meta.parquet"), *BASE], tmp_path, capsys)
    assert code == 0, err


def test_delta_below_1_over_min_rows_runs(files, tmp_path, capsys):
    code, _, err = _run(["--input", files["good"], "--epsilon", "1", "--delta", "0.001", "--labels", "0,1",
                         "--min-rows", "400"], tmp_path, capsys)
    assert code == 0, err


def test_a_declared_min_rows_far_below_n_is_flagged_from_the_released_count(files, tmp_path, capsys):
    # 400 rows, --min-rows 10, delta 0.01: the public guard passes; the released (noisy) count, a DP
    # value, shows delta >= 1/n, so a warning follows the release (post-processing, no privacy cost).
    code, _, err = _run(["--input", files["good"], "--epsilon", "1", "--delta", "0.01", "--labels", "0,1",
                         "--min-rows", "10"], tmp_path, capsys)
    assert code == 0, err
    assert "at or above 1/n for the released noisy count" in err
    code, _, err = _run(["--input", files["good"], *BASE, "--overwrite"], tmp_path, capsys)
    assert code == 0 and "released noisy count" not in err


@pytest.mark.parametrize("runner", ["local", "FnApiRunner"])
def test_a_staging_directory_never_holds_exact_counts(runner, files, tmp_path, capsys, monkeypatch):
    # What a killed run would leave behind: the staging directory just before publication.
    from beam_pipeline import outputs

    seen: dict[str, str] = {}

    def publish_then_die(self):
        for path in Path(self.staging_dir).rglob("*"):
            if path.is_file():
                seen[path.name] = path.read_bytes().decode("latin-1")
        raise KeyboardInterrupt  # as a signal would, before the rename

    monkeypatch.setattr(outputs.StagedOutput, "publish", publish_then_die)
    # ... and wherever the job writes its exact counts while it runs: never under the release's path.
    from beam_pipeline import synthesize

    written: list[str] = []
    real_write, real_build = synthesize.write_json, synthesize.build_synthesis
    monkeypatch.setattr(synthesize, "write_json", lambda obj, path: (written.append(path), real_write(obj, path)))
    monkeypatch.setattr(synthesize, "build_synthesis", lambda *a, **k: (
        written.append(k["paths"].diagnostics_json), real_build(*a, **k))[1])
    code, _, err = _run(["--input", files["ragged_first_short"], *BASE, "--dimension", "4"], tmp_path, capsys, runner)
    assert code == 130 and "gmm.json" in seen and "report.md" in seen
    assert not any("rows_read" in text or "rejected_" in text for text in seen.values())
    scratch = [p for p in written if not p.endswith(("gmm.json", "privacy.json"))]
    assert scratch and not any(p.startswith(str(tmp_path / "out")) for p in scratch), written
    assert not list(tmp_path.glob("out*"))  # the aborted run left no debris
