"""report.md: a human summary of what a run released and where it is."""
from __future__ import annotations

from typing import Optional

from dpsynth.accounting import PrivacyLedger
from dpsynth.gmm import ReleasedMixture
from dpsynth.validation import REJECT_REASONS


def render_report(mixture: ReleasedMixture, ledger: PrivacyLedger, rows_per_class: list[int],
                  files: dict[str, str], diagnostics: dict[str, int], rejected_output: Optional[str],
                  figures: Optional[dict[str, str]] = None) -> str:
    lines = ["# dpsynth run report", ""]
    if not mixture.private:
        lines += ["> **NOT PRIVATE.** This output was made with a test-only switch (fixed noise seed or",
                  "> noise disabled). It carries no differential privacy guarantee. Do not share it.", ""]
    spent = "not private" if ledger.spent_epsilon == float("inf") else f"{ledger.spent_epsilon:.4f}"
    lines += ["## Privacy", "",
              f"- target: epsilon = {ledger.target_epsilon:g}, delta = {ledger.target_delta:g} "
              + ("(add/remove one privacy unit: each unit kept one record)" if "unit_rows_read" in diagnostics
                 else "(add/remove one record)"),
              f"- spent (PLD accounting over {len(ledger.mechanisms)} mechanisms): epsilon = {spent}",
              "- every released number below is a post-processing of noisy aggregates; "
              "the mechanisms are listed in privacy.json", "",
              "## Released mixture", "",
              f"dimension {mixture.dimension}; rows "
              f"{'normalised onto the sphere' if mixture.clip_mode == 'normalize' else 'clipped into the ball'}"
              f" of radius {mixture.radius:g}; {mixture.covariance} covariances", ""]
    full = mixture.covariance == "full"
    if full:
        lines += ["Shrinkage: how far each class's released covariance shape was pulled towards spherical",
                  "by its noise (0: the estimated covariance as is, 1: spherical).", ""]
    lines += ["| label | noisy count | components | synthetic rows |" + (" shrinkage |" if full else "") + " note |",
              "|---|---|---|---|" + ("---|" if full else "") + "---|"]
    for cls, rows in zip(mixture.classes, rows_per_class):
        note = cls.note or ""
        if cls.num_components == 0:
            note = f"no synthetic rows: {note}" if note else "no synthetic rows"
        shrinkage = ""
        if full:
            shrinkage = " - |" if cls.shrinkage is None else f" {cls.shrinkage:.2f} |"
        lines.append(f"| {cls.label} | {cls.noisy_count:.0f} | {cls.num_components} | {rows} |{shrinkage} {note} |")
    lines += ["", f"Synthetic rows in all: {sum(rows_per_class)}", ""]
    if figures:  # {file name beside report.md: title}
        from dpsynth.figures import STATEMENT
        lines += ["## Figures", "", STATEMENT, ""]
        lines += [f"![{title}]({name})" for name, title in figures.items()]
        lines += [""]
    lines += ["## Files", ""]
    lines += [f"- {name}: `{path}`" for name, path in files.items()]
    lines += ["", "## Data-owner diagnostics (exact counts, NOT differentially private)", "",
              "These counts describe the private input itself. They are for the data owner and",
              "must be removed before this report is shared.", "",
              f"- rows read: {diagnostics.get('rows_read', 0)}",
              f"- rows used: {diagnostics.get('rows_valid', 0)}",
              f"- rows whose norm exceeded the radius (scaled down): {diagnostics.get('rows_clipped', 0)}"]
    if "unit_rows_read" in diagnostics:
        # User-level privacy: rows read from the input, then one per privacy unit.
        dropped = diagnostics.get("unit_extra_rows_dropped", diagnostics["unit_rows_read"]
                                  - diagnostics.get("unit_rows_kept", 0)
                                  - diagnostics.get("rejected_missing_privacy_unit", 0))
        lines += [f"- rows in the input before privacy-unit bounding: {diagnostics['unit_rows_read']}",
                  f"- extra rows of a privacy unit, not used (one row per unit is kept): {dropped}"]
    lines += ["",
              "| rejected for | rows |", "|---|---|"]
    for reason in REJECT_REASONS:
        lines.append(f"| {reason} | {diagnostics.get('rejected_' + reason, 0)} |")
    if rejected_output:
        lines += ["", f"Rejected rows (private data) were written to `{rejected_output}`."]
    return "\n".join(lines) + "\n"


