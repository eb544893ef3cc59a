"""beam_pipeline.outputs: an output never is, contains or lies inside an input; --overwrite replaces only
dpsynth's own outputs; the "exists?" check holds at publish time."""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_pipeline.cli import main
from beam_pipeline.outputs import (MARKER, OutputRaceError, StagedFile, StagedOutput, check_disjoint,
                                   check_not_input)
from dpsynth.errors import UserError
from tests.conftest import two_class_table


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "data" / "sub").mkdir(parents=True)
    pq.write_table(two_class_table(300, 0, separation=2.0, dimension=4), tmp_path / "data" / "in.parquet")
    (tmp_path / "data" / "notes.txt").write_text("the user's own file")
    os.symlink(tmp_path / "data", tmp_path / "link")
    return tmp_path


@pytest.mark.parametrize("output, words", [
    ("data/in.parquet", "is the same path as"),
    ("data", "contains"),
    (".", "contains"),
    ("link/in.parquet", "is the same path as"),  # through a symlink
    ("link", "contains"),
    ("data/../data/in.parquet", "is the same path as"),
])
def test_an_output_that_is_or_contains_an_input_file_is_refused(tree, monkeypatch, output, words):
    monkeypatch.chdir(tree)
    with pytest.raises(UserError, match=words):
        check_not_input(output, [("--input", "data/in.parquet")])


@pytest.mark.parametrize("pattern", ["data/*.parquet", "data", "data/"])
def test_an_output_inside_an_input_directory_or_a_globs_directory_is_refused(tree, monkeypatch, pattern):
    monkeypatch.chdir(tree)
    with pytest.raises(UserError, match="lies inside"):
        check_not_input("data/sub/out", [("--input", pattern)])
    check_not_input("elsewhere/out", [("--input", pattern)])  # beside the inputs: fine


def test_gs_paths_are_compared_by_prefix():
    with pytest.raises(UserError, match="lies inside"):
        check_not_input("gs://b/in/out", [("--input", "gs://b/in/*.parquet")])
    with pytest.raises(UserError, match="contains"):
        check_not_input("gs://b", [("--input", "gs://b/in/x.parquet")])
    check_not_input("gs://b/out", [("--input", "gs://b/in/*.parquet")])
    check_not_input("gs://b/in2", [("--input", "gs://b/in/x.parquet")])  # a prefix of the name is not a parent


def test_outputs_must_not_overlap_each_other(tmp_path):
    with pytest.raises(UserError, match="--rejected-output .* lies inside|--output .* contains"):
        check_disjoint([("--output", str(tmp_path / "out")), ("--rejected-output", str(tmp_path / "out" / "r"))],
                       [])


@pytest.mark.parametrize("output", ["data", "data/in.parquet", "data/sub"])
def test_synthesize_refuses_an_output_over_its_input_even_with_overwrite(tree, monkeypatch, capsys, output):
    monkeypatch.chdir(tree)
    before = sorted(str(p) for p in (tree / "data").rglob("*"))
    code = main(["synthesize", "--input", "data/*.parquet", "--output", output, "--epsilon", "1", "--delta", "1e-6",
                 "--labels", "0,1", "--overwrite", "--runner", "local"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "choose" in err, err
    assert sorted(str(p) for p in (tree / "data").rglob("*")) == before
    assert (tree / "data" / "notes.txt").read_text() == "the user's own file"


def test_labels_file_and_rejected_output_are_inputs_and_outputs_too(tree, monkeypatch, capsys):
    monkeypatch.chdir(tree)
    (tree / "labels.txt").write_text("0\n1\n")
    code = main(["synthesize", "--input", "data/in.parquet", "--output", "labels.txt", "--epsilon", "1",
                 "--delta", "1e-6", "--labels-file", "labels.txt", "--runner", "local"])
    assert code == 2 and "--labels-file" in capsys.readouterr().err
    code = main(["synthesize", "--input", "data/in.parquet", "--output", "out", "--rejected-output", "out/rej",
                 "--epsilon", "1", "--delta", "1e-6", "--labels", "0,1", "--runner", "local"])
    assert code == 2 and "--rejected-output" in capsys.readouterr().err


def test_overwrite_replaces_only_a_dpsynth_output(tmp_path, capsys):
    pq.write_table(two_class_table(300, 0, separation=2.0, dimension=4), tmp_path / "in.parquet")
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"precious")
    base = ["synthesize", "--input", str(tmp_path / "in.parquet"), "--epsilon", "1", "--delta", "1e-6",
            "--labels", "0,1", "--runner", "local", "--overwrite"]
    code = main([*base, "--output", str(foreign)])
    err = capsys.readouterr().err
    assert code == 2 and f"holds no {MARKER} marker" in err and len(err.strip().splitlines()) == 1
    assert (foreign / "holiday.jpg").read_bytes() == b"precious"
    out = tmp_path / "out"
    assert main([*base, "--output", str(out)]) == 0 and (out / MARKER).exists()
    (out / "stale.txt").write_text("from the first run")
    assert main([*base, "--output", str(out)]) == 0  # a previous dpsynth output: replaced as a whole
    assert not (out / "stale.txt").exists() and (out / "privacy.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["in.parquet", "out", "photos"]  # no staging, no trash


def test_the_second_of_two_runs_into_one_output_fails_at_publish_and_keeps_the_first(tmp_path):
    final = str(tmp_path / "out")
    first, second = StagedOutput(final), StagedOutput(final)  # both passed the start-time check
    Path(first.path("a.txt")).write_text("first")
    Path(second.path("a.txt")).write_text("second")
    first.publish()
    with pytest.raises(OutputRaceError, match="appeared while this run was working"):
        second.publish()
    second.abort()
    assert (tmp_path / "out" / "a.txt").read_text() == "first"
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_the_race_also_holds_when_the_target_appears_between_the_check_and_the_rename(tmp_path, monkeypatch):
    final = tmp_path / "out"
    staged = StagedOutput(str(final))
    Path(staged.path("a.txt")).write_text("mine")
    real_rename = os.rename

    def rename_after_a_rival(src, dst):  # the rival publishes right after our exists() check
        if str(dst) == str(final) and not final.exists():
            final.mkdir()
            (final / "theirs.txt").write_text("theirs")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename_after_a_rival)
    with pytest.raises(OutputRaceError):
        staged.publish()
    staged.abort()
    assert (final / "theirs.txt").read_text() == "theirs" and sorted(os.listdir(tmp_path)) == ["out"]


def test_a_staged_file_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    final = tmp_path / "emb.parquet"
    first, second = StagedFile(str(final)), StagedFile(str(final))
    Path(first.path).write_text("first")
    Path(second.path).write_text("second")
    first.publish()
    with pytest.raises(OutputRaceError):
        second.publish()
    second.abort()
    assert final.read_text() == "first" and sorted(os.listdir(tmp_path)) == ["emb.parquet"]


def test_a_staged_file_overwrites_only_what_is_ours(tmp_path):
    final = tmp_path / "emb.parquet"
    final.write_text("user data")
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        StagedFile(str(final))
    with pytest.raises(UserError, match="replaces only a file dpsynth wrote"):
        StagedFile(str(final), overwrite=True, is_ours=lambda p: False)
    staged = StagedFile(str(final), overwrite=True, is_ours=lambda p: True)
    Path(staged.path).write_text("new")
    staged.publish()
    assert final.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["emb.parquet"]


def test_embed_never_overwrites_a_file_or_an_input(tmp_path, capsys):
    vectors = tmp_path / "vectors.parquet"
    pq.write_table(pa.table({"embedding": pa.array([[1.0, 2.0]] * 4, pa.list_(pa.float64(), 2)),
                             "label": [0, 1, 0, 1]}), vectors)
    existing = tmp_path / "mine.parquet"
    existing.write_bytes(b"user bytes")
    for output, extra, words in ((existing, [], "already exists; pass --overwrite"),
                                 (existing, ["--overwrite"], "replaces only a file dpsynth wrote"),
                                 (vectors, ["--overwrite"], "is the same path as --input")):
        code = main(["embed", "--input", str(vectors), "--encoder", "none", "--output", str(output), *extra])
        err = capsys.readouterr().err
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert existing.read_bytes() == b"user bytes"
    assert pq.read_table(vectors).num_rows == 4
    assert sorted(os.listdir(tmp_path)) == ["mine.parquet", "vectors.parquet"]


def test_demo_never_writes_into_an_existing_directory(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("mine")
    for extra, words in (([], "already exists; pass --overwrite"), (["--overwrite"], "holds no")):
        code = main(["demo", "--output", str(tmp_path / "mine"), "--quick", *extra])
        err = capsys.readouterr().err
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert os.listdir(tmp_path / "mine") == ["keep.txt"] and os.listdir(tmp_path) == ["mine"]
