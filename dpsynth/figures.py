"""Figures of a release, drawn from released values only (gmm.json, privacy.json).

No private row is ever read here: the 2-D view shows fresh draws from the
released mixture (post-processing), and every other figure plots numbers that
are in gmm.json or privacy.json. Fields are read defensively (gmm.json's
content grows); a figure that cannot be drawn is skipped with a warning by
the caller, never a failed run.
"""
from __future__ import annotations

import io
import math
from typing import Any, Callable, Optional

import numpy as np

from dpsynth.gmm import ReleasedMixture

# Rows per class in the 2-D view: enough to see the shape, cheap to draw.
VIEW_ROWS_PER_CLASS = 300
FIGURE_DPI = 90
STATEMENT = ("No real row is shown: every figure is drawn from gmm.json and privacy.json only "
             "(the 2-D view shows fresh draws from the released mixture).")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _classes(gmm: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in gmm.get("classes") or [] if isinstance(c, dict)]


def counts_figure(gmm: dict[str, Any], rows_per_class: Optional[list[int]]) -> bytes:
    """Noisy class counts against the synthetic rows per class."""
    plt = _pyplot()
    classes = _classes(gmm)
    labels = [str(c.get("label")) for c in classes]
    noisy = [float(c.get("noisy_count") or 0.0) for c in classes]
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(classes) + 2), 3.5))
    width = 0.4 if rows_per_class is not None else 0.8
    ax.bar(x - (width / 2 if rows_per_class is not None else 0), noisy, width, label="noisy count (released)")
    if rows_per_class is not None:
        ax.bar(x + width / 2, rows_per_class, width, label="synthetic rows")
    ax.set_xticks(x, labels, rotation=45 if len(labels) > 12 else 0)
    ax.set_xlabel("class")
    ax.set_ylabel("rows")
    ax.set_title("Noisy class counts and synthetic rows per class")
    top = max(noisy + list(rows_per_class or []) + [1.0])
    ax.set_ylim(0, 1.3 * top)
    ax.legend(loc="upper left", ncol=2)
    return _png(fig)


def budget_figure(privacy: dict[str, Any]) -> bytes:
    """Each mechanism's share of the privacy loss: count / z^2 (z = sigma / sensitivity).

    For Gaussian mechanisms the composed loss adds up in count / z^2 (the
    zCDP rho, times 2), so the shares say where the budget went.
    """
    plt = _pyplot()
    names, shares = [], []
    for m in privacy.get("mechanisms") or []:
        sigma, sens = float(m.get("sigma") or 0.0), float(m.get("l2_sensitivity") or 0.0)
        if sigma > 0 and sens > 0:
            names.append(str(m.get("name")))
            shares.append(int(m.get("count") or 1) * (sens / sigma) ** 2)
    total = sum(shares) or 1.0
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 1.5))
    ax.barh(np.arange(len(names)), [100 * s / total for s in shares])
    ax.set_yticks(np.arange(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("share of the privacy loss (%; count / z^2)")
    spent = (privacy.get("spent") or {}).get("epsilon")
    target = privacy.get("target") or {}
    ax.set_title(f"Budget split by mechanism (spent epsilon "
                 f"{'n/a' if spent is None else format(spent, '.3g')}, delta {target.get('delta', 'n/a')})")
    return _png(fig)


def _matrix_noise_floor(privacy: dict[str, Any], dimension: int, noisy_count: float,
                        scale: Optional[float]) -> Optional[float]:
    """Spectral norm of the noise on a class's covariance: about 2 sqrt(d) sigma scale^2 / n."""
    if not scale:
        return None
    for m in privacy.get("mechanisms") or []:
        if m.get("name") == "final_within_scatter" and m.get("sigma"):
            return 2.0 * math.sqrt(dimension) * float(m["sigma"]) * float(scale) ** 2 / max(noisy_count, 1.0)
    return None


def spectrum_figure(gmm: dict[str, Any], privacy: dict[str, Any]) -> bytes:
    """Per class, the released covariance spectrum against its noise floor (full covariance),
    or the per-component variances (spherical, diagonal)."""
    plt = _pyplot()
    classes = [c for c in _classes(gmm) if int(c.get("num_components") or 0) > 0]
    dimension = int(gmm.get("dimension") or 0)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    full = any(c.get("shape") is not None for c in classes)
    for i, c in enumerate(classes):
        color = f"C{i % 10}"
        variances = np.asarray(c.get("variances") or [], dtype=np.float64)
        weights = np.asarray(c.get("weights") or [], dtype=np.float64)
        if c.get("shape") is not None:
            shape = np.asarray(c["shape"], dtype=np.float64)
            per_component = variances.reshape(len(weights), -1).mean(axis=1)
            spectrum = np.sort(np.linalg.eigvalsh(shape))[::-1] * float(weights @ per_component)
            ax.semilogy(np.arange(1, len(spectrum) + 1), spectrum, color=color, label=f"class {c.get('label')}")
            floor = _matrix_noise_floor(privacy, dimension, float(c.get("noisy_count") or 0.0), c.get("scatter_scale"))
            if floor is not None:
                ax.axhline(floor, color=color, linestyle=":", linewidth=1)
        else:
            values = variances.reshape(len(weights), -1).mean(axis=1)
            ax.semilogy(np.full(len(values), i), values, "o", color=color, label=f"class {c.get('label')}")
    if full:
        ax.set_xlabel("eigenvalue rank")
        ax.set_ylabel("released covariance eigenvalue")
        ax.set_title("Released covariance spectrum per class (dotted: noise floor 2 sqrt(d) sigma / n)")
    else:
        ax.set_xticks(np.arange(len(classes)), [str(c.get("label")) for c in classes])
        ax.set_xlim(-0.5, len(classes) - 0.5)
        ax.set_xlabel("class")
        ax.set_ylabel("per-component variance (per coordinate)")
        ax.set_title("Released per-component variances per class")
    if full and 0 < len(classes) <= 12:
        ax.legend(fontsize=7, ncol=2)
    return _png(fig)


def projection_figure(gmm: dict[str, Any]) -> bytes:
    """Fresh draws from the released mixture on the top-2 principal directions of the released means."""
    plt = _pyplot()
    mixture = ReleasedMixture.from_json(gmm)
    fitted = [i for i, c in enumerate(mixture.classes) if c.num_components > 0]
    means = np.concatenate([mixture.classes[i].means for i in fitted]) if fitted else np.zeros((0, 2))
    if mixture.subspace is not None and fitted:  # the means' place among the drawn rows' d coordinates
        means = means[:, :-1] @ mixture.subspace.basis
    centred = means - means.mean(axis=0) if len(means) else means
    if len(means) >= 2:
        directions = np.linalg.svd(centred, full_matrices=False)[2][:2]
    else:
        directions = np.eye(2, mixture.embedding_dimension)
    if len(directions) < 2:
        directions = np.vstack([directions, np.eye(2, mixture.embedding_dimension)[1:]])
    rng = np.random.default_rng()  # post-processing: any randomness is private
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for n, i in enumerate(fitted):
        X, _ = mixture.sample_class(i, VIEW_ROWS_PER_CLASS, rng)
        P = X.astype(np.float64) @ directions.T
        ax.scatter(P[:, 0], P[:, 1], s=4, alpha=0.5, color=f"C{n % 10}", label=str(mixture.classes[i].label))
    ax.set_xlabel("released principal direction 1")
    ax.set_ylabel("released principal direction 2")
    ax.set_title("Synthetic rows per class (fresh draws), on the top-2\n"
                 "principal directions of the released class means")
    if 0 < len(fitted) <= 12:
        ax.legend(fontsize=7, markerscale=3)
    return _png(fig)


FIGURES: dict[str, tuple[str, Callable[..., bytes]]] = {
    "fig-counts.png": ("noisy class counts and synthetic rows", lambda g, p, r: counts_figure(g, r)),
    "fig-budget.png": ("budget split by mechanism", lambda g, p, r: budget_figure(p)),
    "fig-spectrum.png": ("released covariance spectrum per class", lambda g, p, r: spectrum_figure(g, p)),
    "fig-projection.png": ("2-D view of synthetic rows per class", lambda g, p, r: projection_figure(g)),
}


def release_figures(gmm: dict[str, Any], privacy: dict[str, Any], rows_per_class: Optional[list[int]] = None,
                    warn: Callable[[str], None] = lambda message: None) -> dict[str, tuple[str, bytes]]:
    """{file name: (title, PNG bytes)} of every figure that could be drawn; warn() for the others."""
    out = {}
    for name, (title, draw) in FIGURES.items():
        try:
            out[name] = (title, draw(gmm, privacy, rows_per_class))
        except Exception as exc:  # a figure must never fail a run
            warn(f"figure {name} was not drawn: {type(exc).__name__}: {exc}")
    return out


def privacy_utility_figure(points: list[dict[str, Any]], title: str = "Privacy-utility") -> bytes:
    """Accuracy against epsilon: points [{epsilon, accuracy, [ceiling]}] (evaluate, demo)."""
    plt = _pyplot()
    points = sorted(points, key=lambda p: p["epsilon"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot([p["epsilon"] for p in points], [100 * p["accuracy"] for p in points], "o-",
            label="trained on DP synthetic rows")
    ceilings = [p.get("ceiling") for p in points if p.get("ceiling") is not None]
    if ceilings:
        ax.axhline(100 * ceilings[0], color="grey", linestyle="--", label="trained on real rows (non-private)")
    ax.set_xscale("log")
    ax.minorticks_off()  # only the evaluated epsilons are labelled
    ax.set_xticks([p["epsilon"] for p in points], [f"{p['epsilon']:g}" for p in points])
    ax.set_xlabel("epsilon")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend()
    return _png(fig)
