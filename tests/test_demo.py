"""`dpsynth demo` in CI size (--quick: 300 digits, 32 px input)."""
from __future__ import annotations

import json

from beam_pipeline.cli import main


def test_demo_quick(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--output", str(out), "--runner=DirectRunner"]) == 0
    printed = capsys.readouterr().out
    assert "[demo 6/6" in printed  # progress lines
    assert "Privacy-utility (delta=1e-05" in printed
    results_sweep = json.loads((out / "demo-results.json").read_text())["sweep"]
    assert [p["epsilon"] for p in results_sweep] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert (out / "privacy-utility.png").read_bytes().startswith(b"\x89PNG")
    assert "trained on DP synthetic embeddings (epsilon=1" in printed
    assert "trained on the real train embeddings (NOT private)" in printed
    results = json.loads((out / "demo-results.json").read_text())
    assert results["train_rows"] + results["test_rows"] == 300
    assert results["test_rows"] == 90  # 30% of each class held out
    assert 0.0 <= results["dp_accuracy"] <= 1.0
    # Deterministic (fixed split, weights and MLP seed): far above the 0.1 of chance.
    assert results["non_private_accuracy"] > 0.5
    release = sorted(p.name for p in (out / "synthetic").iterdir())
    assert release == ["_DPSYNTH_OUTPUT", "fig-budget.png", "fig-counts.png", "fig-projection.png", "fig-spectrum.png",
                     "gmm.json", "privacy.json", "report.md", "synthetic-00000-of-00001.parquet"]
    assert json.loads((out / "synthetic" / "privacy.json").read_text())["spent"]["epsilon"] <= 1.0 + 1e-9
