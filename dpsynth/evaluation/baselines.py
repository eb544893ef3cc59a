"""DP class means: the one-component-per-class mixture that dpsynth must beat.

Rows are L2-normalised onto the unit sphere (a public, per-row map), then
per class two aggregates are released once with Gaussian noise: the count
(sensitivity 1) and the vector sum (L2 sensitivity 1). Classes partition the
rows, so each release is one Gaussian mechanism whatever the number of
classes (parallel composition); the two compose sequentially. Both use the
same noise multiplier, calibrated with dp-accounting's PLD accountant so that
the pair meets the target (epsilon, delta).

On the unit sphere the mean squared distance to the class mean is
1 - |mu|^2, so a spherical variance follows from the released mean alone,
with the noise's contribution d * sigma^2 to |sum|^2 removed: no third
release. Synthetic rows are drawn from N(mu_c, v_c I), put back on the
sphere, and fed to the same fixed MLP as every other method.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import dp_accounting
from dp_accounting.pld import pld_privacy_accountant

from dpsynth.geometry import into_ball, onto_sphere

VARIANCE_FLOOR = 1e-4


@dataclass(frozen=True)
class Ledger:
    """Every release of the baseline, with its accounting."""

    epsilon: float
    delta: float
    noise_multiplier: float
    entries: tuple[dict, ...]

    @property
    def spent_epsilon(self) -> float:
        return class_means_epsilon(self.noise_multiplier, self.delta)

    def to_json(self) -> dict:
        return {"target_epsilon": self.epsilon, "delta": self.delta,
                "accountant": "dp_accounting.pld.PLDAccountant", "noise_multiplier": self.noise_multiplier,
                "spent_epsilon": self.spent_epsilon, "mechanisms": list(self.entries)}


def _event(noise_multiplier: float) -> dp_accounting.DpEvent:
    # Two Gaussian releases of sensitivity 1 with the same noise compose
    # exactly into one of sensitivity sqrt(2): one PLD instead of two.
    return dp_accounting.GaussianDpEvent(noise_multiplier / np.sqrt(2.0))


def _accountant() -> pld_privacy_accountant.PLDAccountant:
    # Coarser than the default 1e-4, for speed: PLD discretisation stays
    # pessimistic, so the reported epsilon is still an upper bound.
    return pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-3)


def class_means_epsilon(noise_multiplier: float, delta: float) -> float:
    acc = _accountant()
    acc.compose(_event(noise_multiplier))
    return float(acc.get_epsilon(delta))


def calibrate_class_means(epsilon: float, delta: float) -> float:
    sigma = float(dp_accounting.calibrate_dp_mechanism(
        _accountant, _event, epsilon, delta,
        bracket_interval=dp_accounting.ExplicitBracketInterval(0.3, 300.0), tol=1e-4))
    if class_means_epsilon(sigma, delta) > epsilon * (1 + 1e-6):
        raise RuntimeError("noise calibration missed the target epsilon")
    return sigma


@dataclass(frozen=True)
class ClassMeans:
    """The released model: classes, noisy counts, means in the unit ball, spherical variances."""

    classes: np.ndarray
    counts: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    ledger: Ledger

    def sample(self, num_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Synthetic unit-norm rows, classes in proportion to the noisy counts."""
        weights = np.maximum(self.counts, 0.0)
        weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(self.classes), 1 / len(self.classes))
        per_class = rng.multinomial(num_samples, weights)
        dim = self.means.shape[1]
        xs, ys = [], []
        for c, m in enumerate(per_class):
            x = self.means[c] + rng.standard_normal((m, dim)) * np.sqrt(self.variances[c])
            xs.append(onto_sphere(x))
            ys.append(np.full(m, c))
        return np.concatenate(xs).astype(np.float32), self.classes[np.concatenate(ys)]


def fit_class_means(x: np.ndarray, labels: np.ndarray, classes: np.ndarray, epsilon: float, delta: float,
                    rng: np.random.Generator | None = None) -> ClassMeans:
    """Release DP class means of private rows. `classes` is the public label set.

    A label outside `classes` is an error, not a silent drop. `rng` is for
    tests; None uses OS entropy.
    """
    rng = rng if rng is not None else np.random.default_rng()
    classes = np.asarray(classes)
    x = np.asarray(x, dtype=np.float64)
    x = onto_sphere(x)  # [n, d] on the unit sphere
    labels = np.asarray(labels)
    if not np.isin(labels, classes).all():
        raise ValueError("labels outside the public label set")
    sigma = calibrate_class_means(epsilon, delta)
    dim = x.shape[1]
    counts = np.zeros(len(classes))
    sums = np.zeros((len(classes), dim))
    for c, value in enumerate(classes):
        rows = x[labels == value]
        counts[c], sums[c] = len(rows), rows.sum(axis=0)
    # Noise once per released aggregate, for every class, also empty ones.
    noisy_counts = counts + rng.normal(0.0, sigma, size=counts.shape)
    noisy_sums = sums + rng.normal(0.0, sigma, size=sums.shape)
    n_eff = np.maximum(noisy_counts, 1.0)[:, None]
    means = noisy_sums / n_eff
    means = into_ball(means)
    # |mu|^2 without the noise's share d*sigma^2 of |noisy sum|^2.
    mu_sq = np.clip(((noisy_sums ** 2).sum(1) - dim * sigma ** 2) / n_eff[:, 0] ** 2, 0.0, 1.0)
    variances = np.maximum((1.0 - mu_sq) / dim, VARIANCE_FLOOR / dim)
    ledger = Ledger(epsilon, delta, sigma, (
        {"name": "class counts", "mechanism": "gaussian", "l2_sensitivity": 1.0, "noise_std": sigma, "times": 1},
        {"name": "class sums", "mechanism": "gaussian", "l2_sensitivity": 1.0, "noise_std": sigma, "times": 1},
    ))
    return ClassMeans(classes, noisy_counts, means, variances, ledger)
