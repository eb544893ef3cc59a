"""`dpsynth sample`: more rows from a release, on DirectRunner and --runner local.

Statistical assertions state their failure probability (each below 1e-6).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from beam_pipeline import sample
from beam_pipeline.cli import main
from dpsynth.accounting import Mechanism, PrivacyLedger
from dpsynth.errors import UserError
from dpsynth.gmm import ClassMixture, ReleasedMixture
from dpsynth.release import load_release

D = 4
MEANS = {"a": np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0]]), "b": np.array([[0, 0, -2.0, 0], [0, 0, 0, 2.0]])}
VARIANCE = 0.25  # per coordinate, every component
WEIGHTS = np.array([0.5, 0.5])


def _mixture(private: bool = True) -> ReleasedMixture:
    # Clip mode with a radius far above every draw's norm (P(||x|| > 100) is negligible), so the
    # rows follow the mixture exactly and their moments are known in closed form.
    classes = [ClassMixture(label, count, WEIGHTS.copy(), MEANS[label], np.full(2, VARIANCE))
               for label, count in (("a", 3000.0), ("b", 1000.0))]
    return ReleasedMixture(classes, D, 100.0, "clip", "spherical", private)


def write_release(directory: Path, private: bool = True) -> Path:
    directory.mkdir(parents=True)
    (directory / "gmm.json").write_text(json.dumps(_mixture(private).to_json()))
    ledger = PrivacyLedger.compose(1.0, 1e-5, [Mechanism("class_count", "gaussian", 1.0, 5.0, 2)])
    (directory / "privacy.json").write_text(json.dumps(ledger.to_json()))
    return directory


def _read(out: Path):
    tables = [pq.read_table(p) for p in sorted(out.glob("synthetic-*.parquet"))]
    X = np.concatenate([np.asarray(t.column("embedding").combine_chunks().flatten(), np.float64)
                        .reshape(t.num_rows, D) for t in tables])
    y = np.concatenate([np.asarray(t.column("label").to_pylist()) for t in tables])
    c = np.concatenate([t.column("component").to_numpy() for t in tables])
    return X, y, c


def _check_matches_mixture(X, y, n_per_class):
    for label, n in n_per_class.items():
        rows = X[y == label]
        assert len(rows) == n  # largest-remainder split of the noisy counts: exact
        mean = WEIGHTS @ MEANS[label]
        # Per coordinate, the mixture's variance: within (VARIANCE) plus between components.
        var = VARIANCE + WEIGHTS @ (MEANS[label] - mean) ** 2
        # Sample mean within 6 standard errors on each of 4 coordinates: P(fail) < 4 * 2e-9 (CLT).
        np.testing.assert_array_less(np.abs(rows.mean(axis=0) - mean), 6 * np.sqrt(var / n))


def _check_independent(first, second):
    (X1, y1, c1), (X2, y2, c2) = first, second
    assert not np.array_equal(X1, X2)
    for label in ("a", "b"):
        a, b = c1[y1 == label], c2[y2 == label]
        n = min(len(a), len(b))
        # Component agreement of row i in two independent draws is Bernoulli(1/2): within
        # 6 sd of n/2, P(fail) < 2e-9.
        assert abs(np.sum(a[:n] == b[:n]) - n / 2) < 6 * np.sqrt(n) / 2
        # Correlation of one coordinate across the two draws: about N(0, 1/n); |r| < 6/sqrt(n)
        # fails with probability < 2e-9.
        r = np.corrcoef(X1[y1 == label][:n, 0], X2[y2 == label][:n, 0])[0, 1]
        assert abs(r) < 6 / np.sqrt(n)


@pytest.mark.parametrize("runner", ["local", "DirectRunner"])
def test_two_draws_are_independent_and_match_the_mixture(tmp_path, capsys, runner):
    release = write_release(tmp_path / "release")
    draws = []
    for name in ("one", "two"):
        out = tmp_path / name
        assert main(["sample", "--release", str(release), "--num-samples", "20000", "--output", str(out),
                     "--runner", runner]) == 0
        assert "drew 20000 synthetic rows" in capsys.readouterr().out
        draws.append(_read(out))
        privacy = json.loads((out / "privacy.json").read_text())
        original = json.loads((release / "privacy.json").read_text())
        assert {k: v for k, v in privacy.items() if k != "sampled_from"} == original
        assert str(release) in privacy["sampled_from"]["note"]
        assert json.loads((out / "gmm.json").read_text())["private"] is True
        assert "No real row was read" in (out / "report.md").read_text()
    for X, y, _ in draws:
        _check_matches_mixture(X, y, {"a": 15000, "b": 5000})
    _check_independent(*draws)


def test_balanced_and_sharded_on_beam(tmp_path, monkeypatch):
    monkeypatch.setattr("dpsynth.gmm.SAMPLE_CHUNK_ROWS", 1000)
    release = write_release(tmp_path / "release")
    summary = sample.sample_release(str(release), str(tmp_path / "out"), 5001, class_balance="balanced")
    assert summary.rows_per_class == [2501, 2500]
    X, y, _ = _read(tmp_path / "out")
    assert len(X) == 5001 and np.sum(y == "a") == 2501
    assert len(list((tmp_path / "out").glob("synthetic-*.parquet"))) >= 1


def test_library_sample_matches_the_mixture():
    X, y, component = _mixture().sample(20000, "proportional")
    assert X.dtype == np.float32 and component.dtype == np.int32
    _check_matches_mixture(X.astype(np.float64), y, {"a": 15000, "b": 5000})
    _check_independent((X, y, component), _mixture().sample(20000))


def test_a_seeded_draw_repeats_and_is_marked_not_private(tmp_path):
    release = write_release(tmp_path / "release")
    outs = []
    for name in ("s1", "s2"):
        summary = sample.sample_release(str(release), str(tmp_path / name), 100, local=True, noise_seed=3)
        assert not summary.private
        outs.append(_read(tmp_path / name)[0])
        assert json.loads((tmp_path / name / "gmm.json").read_text())["private"] is False
        assert "NOT PRIVATE" in (tmp_path / name / "report.md").read_text()
    np.testing.assert_array_equal(*outs)


def test_refuses_what_is_not_a_dp_release(tmp_path, capsys):
    good = write_release(tmp_path / "good")
    cases = {}
    cases["no gmm.json"] = tmp_path / "a"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "privacy.json").write_text((good / "privacy.json").read_text())
    cases["no privacy.json"] = tmp_path / "b"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "gmm.json").write_text((good / "gmm.json").read_text())
    cases["not valid JSON"] = write_release(tmp_path / "c")
    (tmp_path / "c" / "gmm.json").write_text("{")
    cases["malformed"] = write_release(tmp_path / "d")
    (tmp_path / "d" / "privacy.json").write_text("{}")
    cases["NOT PRIVATE"] = write_release(tmp_path / "e", private=False)
    cases["not a directory"] = tmp_path / "missing"
    for message, directory in cases.items():
        code = main(["sample", "--release", str(directory), "--num-samples", "10", "--output",
                     str(tmp_path / "out"), "--runner", "local"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and message in err, (message, err)
        assert not (tmp_path / "out").exists()
    # The test-only switch accepts a NOT PRIVATE release; what is drawn stays NOT PRIVATE.
    summary = sample.sample_release(str(cases["NOT PRIVATE"]), str(tmp_path / "out"), 10, local=True,
                                    allow_not_private=True)
    assert not summary.private
    assert load_release(cases["NOT PRIVATE"], allow_not_private=True).private is False


def test_output_inside_or_over_the_release_is_refused(tmp_path):
    release = write_release(tmp_path / "release")
    for out in (release, release / "more", tmp_path):
        with pytest.raises(UserError, match="outside --release"):
            sample.sample_release(str(release), str(out), 10, local=True, overwrite=True)
    assert sorted(p.name for p in release.iterdir()) == ["gmm.json", "privacy.json"]
    sample.sample_release(str(release), str(tmp_path / "o"), 10, local=True)
    with pytest.raises(UserError, match="already exists"):
        sample.sample_release(str(release), str(tmp_path / "o"), 10, local=True)


def test_a_real_release_can_be_sampled_again(tmp_path, parquet_input, capsys):
    out = tmp_path / "synth"
    assert main(["synthesize", "--input", parquet_input["pattern"], "--output", str(out), "--epsilon", "1",
                 "--delta", "1e-5", "--labels", "ant,bee,cat,dog", "--runner", "local", "--dimension", "8"]) == 0
    assert main(["sample", "--release", str(out), "--num-samples", "300", "--output", str(tmp_path / "more"),
                 "--class-balance", "balanced", "--runner", "local"]) == 0
    table = pq.read_table(sorted((tmp_path / "more").glob("synthetic-*.parquet"))[0])
    assert table.schema == pq.read_table(out / "synthetic-00000-of-00001.parquet").schema
    # Sampled again from the sample: the output is itself a release.
    assert main(["sample", "--release", str(tmp_path / "more"), "--num-samples", "10", "--output",
                 str(tmp_path / "again"), "--runner", "local"]) == 0
