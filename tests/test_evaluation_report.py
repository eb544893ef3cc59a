"""Reports: JSON round trip, markdown with the ceiling, the not-private warning."""
import json

from dpsynth.evaluation.report import EvaluationResult, to_markdown, write_report


def test_markdown_and_json(tmp_path):
    r = EvaluationResult("d", "t.parquet", 10, 5, [0, 1], 0.8, train_file="tr.parquet", num_train=9,
                         accuracy_real=0.9, privacy={"epsilon": 1, "delta": 1e-5})
    write_report(r, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["accuracy_real"] == 0.9
    md = (tmp_path / "r.md").read_text()
    assert "80.00%" in md and "90.00%" in md and "NOT differentially private" not in md
    r.privacy = {"epsilon": 1, "delta": 1e-5, "private": False}
    assert "NOT differentially private" in to_markdown(r)
