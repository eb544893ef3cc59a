"""Evaluation results as JSON (for machines) and markdown (for people).

A result says what was trained on what, so that a synthetic-data accuracy
is never read without the non-private ceiling beside it, and says when the
synthetic rows were made without noise (a test-only setting: not private).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dpsynth.evaluation import mlp


PRIVATE_NOTE = ("PRIVATE: accuracies on real rows and exact row counts (not differentially private); "
                "for the data owner, never part of the release")


@dataclass
class EvaluationResult:
    synthetic_dir: str
    test_file: str
    num_synthetic: int
    num_test: int
    classes: list
    accuracy_synthetic: float
    train_file: str | None = None
    num_train: int | None = None
    accuracy_real: float | None = None
    privacy: dict | None = None
    note: str = PRIVATE_NOTE  # an evaluation scores real rows exactly: it never joins the release
    classifier: dict = field(default_factory=lambda: {
        "model": f"two-layer MLP, {mlp.WIDTH} ReLU units", "optimizer": "Adam",
        "learning_rate": mlp.LEARNING_RATE, "weight_decay": mlp.WEIGHT_DECAY,
        "batch_size": mlp.BATCH_SIZE, "epochs": mlp.EPOCHS,
        "standardisation": "per-feature mean/std of its own training rows"})

    def to_json(self) -> dict:
        return asdict(self)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def to_markdown(result: EvaluationResult) -> str:
    c = result.classifier
    lines = [
        "# dpsynth evaluation",
        "",
        f"> **{result.note}**",
        "",
        "| classifier trained on | rows | accuracy on the real test rows |",
        "|---|---|---|",
        f"| DP synthetic rows (`{result.synthetic_dir}`) | {result.num_synthetic} | {_pct(result.accuracy_synthetic)} |",
    ]
    if result.accuracy_real is not None:
        lines.append(f"| real rows, non-private (`{result.train_file}`) | {result.num_train} "
                     f"| {_pct(result.accuracy_real)} |")
    lines += ["", f"Test rows: {result.num_test} from `{result.test_file}`; classes: "
              f"{', '.join(str(v) for v in result.classes)}.", "",
              f"Classifier (fixed in advance): {c['model']}, {c['optimizer']} lr {c['learning_rate']}, "
              f"weight decay {c['weight_decay']}, batch {c['batch_size']}, {c['epochs']} epochs, "
              f"inputs standardised by {c['standardisation']}."]
    if result.privacy:
        p = result.privacy
        # The core writes {"target": {epsilon, delta}, "spent": {...}}; flat keys are accepted too.
        target = p.get("target") or p
        spent = (p.get("spent") or {}).get("epsilon", p.get("spent_epsilon"))
        lines += ["", f"Privacy of the synthetic rows (from their privacy.json): epsilon "
                  f"{target.get('epsilon', 'n/a')}, delta {target.get('delta', 'n/a')}"
                  + (f", spent epsilon {spent:.4g}" if isinstance(spent, (int, float)) else "") + "."]
        if p.get("private") is False or p.get("disable_noise"):
            lines += ["", "**WARNING: these synthetic rows were made without privacy noise (test setting); "
                      "they are NOT differentially private.**"]
    if result.accuracy_real is not None:
        lines += ["", "The real-rows accuracy is the non-private ceiling: that classifier saw private "
                  "rows without any privacy protection and must not be released."]
    return "\n".join(lines) + "\n"


def write_report(result: EvaluationResult, json_path: Path, markdown_path: Path | None = None) -> None:
    """Write JSON and markdown, each atomically (temp file, then rename)."""
    json_path = Path(json_path)
    markdown_path = Path(markdown_path) if markdown_path else json_path.with_suffix(".md")
    for path, text in ((json_path, json.dumps(result.to_json(), indent=2, default=str) + "\n"),
                       (markdown_path, to_markdown(result))):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
