"""Release figures: drawn from gmm.json/privacy.json only, linked from report.md, never fatal."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from beam_pipeline.cli import main
from dpsynth import figures
from tests.conftest import embedding_table, make_mixture_data

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fig")
    X, y = make_mixture_data(rows=3000)
    pq.write_table(embedding_table(X, y.astype(np.int64)), tmp / "in.parquet")
    out = tmp / "out"
    assert main(["synthesize", "--input", str(tmp / "in.parquet"), "--output", str(out), "--epsilon", "1",
                 "--delta", "1e-6", "--labels", "0,1,2,3", "--runner", "local", "--dimension", "8"]) == 0
    return out


def test_a_run_writes_figures_linked_from_report(release):
    report = (release / "report.md").read_text()
    assert "No real row is shown" in report
    for name in figures.FIGURES:
        assert (release / name).read_bytes().startswith(PNG) and (release / name).stat().st_size > 2000
        assert f"]({name})" in report


@pytest.mark.parametrize("covariance", ["full", "spherical"])
def test_figures_come_from_the_released_files_alone(release, tmp_path, covariance):
    # Only gmm.json and privacy.json are given: no private row can reach the figures.
    gmm = json.loads((release / "gmm.json").read_text())
    privacy = json.loads((release / "privacy.json").read_text())
    if covariance == "spherical":
        gmm["covariance"] = "spherical"
        for c in gmm["classes"]:
            c.pop("shape", None)
            c.pop("shrinkage", None)
    drawn = figures.release_figures(gmm, privacy, [100] * len(gmm["classes"]))
    assert set(drawn) == set(figures.FIGURES)
    assert all(png.startswith(PNG) and len(png) > 2000 for _, png in drawn.values())


def test_a_failed_figure_is_a_warning_not_a_failure():
    warnings = []
    drawn = figures.release_figures({"classes": "garbage"}, {"mechanisms": []}, None, warnings.append)
    assert "fig-projection.png" not in drawn and any("fig-projection.png" in w for w in warnings)


def test_privacy_utility_figure():
    png = figures.privacy_utility_figure([{"epsilon": e, "accuracy": a, "ceiling": 0.9}
                                          for e, a in ((0.5, 0.6), (1, 0.7), (8, 0.8))])
    assert png.startswith(PNG)
