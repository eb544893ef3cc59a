"""report.md: a human summary of what a run released and where it is."""
from __future__ import annotations

from typing import Optional

from dpsynth.accounting import PrivacyLedger
from dpsynth.gmm import ReleasedMixture


def render_report(mixture: ReleasedMixture, ledger: PrivacyLedger, rows_per_class: list[int],
                  files: dict[str, str], *, unit_level: bool, diagnostics_output: Optional[str] = None,
                  rejected_output: Optional[str] = None,
                  figures: Optional[dict[str, str]] = None) -> str:
    """report.md: public facts and DP releases only (it is shared with the release)."""
    lines = ["# dpsynth run report", ""]
    if not mixture.private:
        lines += ["> **NOT PRIVATE.** This output was made with a test-only switch (fixed noise seed or",
                  "> noise disabled). It carries no differential privacy guarantee. Do not share it.", ""]
    spent = "not private" if ledger.spent_epsilon == float("inf") else f"{ledger.spent_epsilon:.4f}"
    lines += ["## Privacy", "",
              f"- target: epsilon = {ledger.target_epsilon:g}, delta = {ledger.target_delta:g} "
              + ("(add/remove one privacy unit: each unit kept one record)" if unit_level
                 else "(add/remove one record)"),
              f"- spent (PLD accounting over {len(ledger.mechanisms)} mechanisms): epsilon = {spent}",
              "- every released number below is a post-processing of noisy aggregates; "
              "the mechanisms are listed in privacy.json", "",
              "## Released mixture", "",
              f"dimension {mixture.dimension}; rows "
              f"{'normalised onto the sphere' if mixture.clip_mode == 'normalize' else 'clipped into the ball'}"
              f" of radius {mixture.radius:g}; {mixture.covariance} covariances", ""]
    if mixture.norms is not None:
        lines += [f"Row norms: every synthetic row is the mixture's direction at norm {mixture.norms.norm:.4g}, the "
                  "median of the released", "histograms of row norms (half-octave bins, all classes pooled, "
                  "bins kept above 3 noise sigmas).", ""]
    if mixture.subspace is not None:
        sub = mixture.subspace
        lines += [f"Public subspace: the mixture was fitted in {sub.model_dimension} coordinates, the "
                  f"{sub.num_directions} top directions of {sub.num_public_rows} public rows",
                  f"({sub.source}; no privacy cost) and each row's residual length; synthetic rows are drawn "
                  f"back in all {sub.input_dimension}", "coordinates, the residual in a random direction "
                  "orthogonal to them (gmm.json: subspace, with the directions).", ""]
    if mixture.low_rank is not None:
        low = mixture.low_rank
        lines += [f"Low rank: every component shares the {len(low.variances)} directions of the released pooled "
                  "within-component scatter", f"whose eigenvalues clear its noise edge {low.noise_edge:.3g} "
                  f"(rows centred on their centre, clipped at {low.scale:.3g});",
                  "each component keeps its released per-coordinate variances in total (gmm.json: low_rank).", ""]
    full = mixture.covariance == "full"
    if full:
        lines += ["Shrinkage: how far each class's released covariance shape was pulled towards the pooled",
                  "within-class shape of all classes by its noise (0: the class's own estimate as is,",
                  "1: the pooled shape).", ""]
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
    lines += ["", "## What this directory does not hold", "",
              "Every number in this directory is a differentially private release or a post-processing",
              "of one. Exact facts of the private input (how many rows were read, used, clipped or",
              "rejected) are not DP and are never written here"
              + (": the data owner asked for them in a separate PRIVATE file (--diagnostics-output)."
                 if diagnostics_output else "; pass --diagnostics-output PATH to get them in a PRIVATE file.")]
    if rejected_output:
        lines += ["", "Malformed rows (private data) were written to a separate PRIVATE directory "
                      "(--rejected-output)."]
    return "\n".join(lines) + "\n"


