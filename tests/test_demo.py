"""`dpsynth demo` in CI size (--quick: 300 digits, 32 px input)."""
from __future__ import annotations

import json

from beam_pipeline.cli import main


def test_demo_quick(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--output", str(out), "--runner=DirectRunner"]) == 0
    printed = capsys.readouterr().out
    assert "[demo 5/5" in printed  # progress lines
    assert "trained on DP synthetic embeddings (epsilon=1" in printed
    assert "trained on the real train embeddings (NOT private)" in printed
    results = json.loads((out / "demo-results.json").read_text())
    assert results["train_rows"] + results["test_rows"] == 300
    assert results["test_rows"] == 90  # 30% of each class held out
    assert 0.0 <= results["dp_accuracy"] <= 1.0
    # Deterministic (fixed split, weights and MLP seed): far above the 0.1 of chance.
    assert results["non_private_accuracy"] > 0.5
    release = sorted(p.name for p in (out / "synthetic").iterdir())
    assert release == ["_DPSYNTH_OUTPUT", "gmm.json", "privacy.json", "report.md", "synthetic-00000-of-00001.parquet"]  # the marker: --overwrite may replace it
    assert json.loads((out / "synthetic" / "privacy.json").read_text())["spent"]["epsilon"] <= 1.0 + 1e-9
