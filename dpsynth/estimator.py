"""A scikit-learn-style front end: fit on private arrays, sample synthetic ones.

The estimator only wraps the local reference (dpsynth.local): fit releases a
DP mixture exactly as `dpsynth synthesize --runner local` would, and sample
is post-processing of that release (fresh randomness, no privacy cost).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, check_X_y

from dpsynth.params import SynthesisConfig


class DPMixtureSynthesizer(BaseEstimator):
    """Differentially private synthetic rows from a DP Gaussian mixture per class.

    Every option is an explicit keyword, so that ``sklearn.base.clone`` and
    ``get_params``/``set_params`` see them all. Options mean what the
    ``dpsynth synthesize`` flags of the same name mean.

    Parameters
    ----------
    epsilon : float, default=1.0
        The whole fit's privacy budget (add/remove one row).
    delta : float, default=1e-5
        The whole fit's delta; should be well below 1 / n_samples.
    labels : sequence or None, default=None
        The public label set. None discovers labels by DP partition selection,
        which spends part of the budget.
    radius : float, default=1.0
        L2 bound R on every row.
    clip_mode : {"normalize", "clip"}, default="normalize"
        Rows onto the R-sphere, or clipped into the R-ball.
    max_clusters : int or None, default=None
        Components per class; None chooses them from the released counts.
    rounds : int, default=1
        DP Lloyd rounds after seeding.
    covariance : {"auto", "full", "lowrank", "spherical", "diagonal"}, default="auto"
        Component covariance model.
    class_balance : {"proportional", "balanced"}, default="proportional"
        How ``sample`` splits rows over classes.
    allow_large_delta : bool, default=False
        Accept delta >= 1 / n_samples.
    public_rows : array of shape (n_public, d) or None, default=None
        PUBLIC rows from the same encoder (never the private ones): the
        mixture is then fitted in their top ``public_dim`` directions plus
        each row's residual length, at no privacy cost (``--public-rows``).
    public_dim : int or None, default=None
        Directions kept from ``public_rows`` (None: 64, fewer when there are
        not 2 public rows per direction).
    noise_seed : int or None, default=None
        TEST ONLY: a fixed noise seed. The release is then NOT PRIVATE.
    disable_noise : bool, default=False
        TEST ONLY: no noise at all. The release is then NOT PRIVATE.

    Attributes
    ----------
    mixture_ : dpsynth.gmm.ReleasedMixture
        The released mixture (shareable, like gmm.json).
    ledger_ : dpsynth.accounting.PrivacyLedger
        Every mechanism applied, with the PLD-accounted spend.
    epsilon_spent_ : float
        ``ledger_.spent_epsilon`` (inf for a test-only fit).
    classes_ : ndarray
        The labels of the released classes.
    n_features_in_ : int
        Embedding dimension seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from dpsynth import DPMixtureSynthesizer
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 4000)
    >>> X = rng.normal(size=(4000, 8)) + 3.0 * np.eye(8)[y]
    >>> synth = DPMixtureSynthesizer(epsilon=1.0, delta=1e-6, labels=(0, 1)).fit(X, y)
    >>> bool(synth.epsilon_spent_ <= 1.0)
    True
    >>> X_syn, y_syn = synth.sample(500)
    >>> X_syn.shape, sorted(set(y_syn.tolist()))
    ((500, 8), [0, 1])
    """

    def __init__(self, epsilon: float = 1.0, delta: float = 1e-5, labels: Optional[Any] = None,
                 radius: float = 1.0, clip_mode: str = "normalize", max_clusters: Optional[int] = None,
                 rounds: int = 1, covariance: str = "auto", class_balance: str = "proportional",
                 allow_large_delta: bool = False, public_rows: Optional[Any] = None,
                 public_dim: Optional[int] = None, noise_seed: Optional[int] = None,
                 disable_noise: bool = False) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.labels = labels
        self.radius = radius
        self.clip_mode = clip_mode
        self.max_clusters = max_clusters
        self.rounds = rounds
        self.covariance = covariance
        self.class_balance = class_balance
        self.allow_large_delta = allow_large_delta
        self.public_rows = public_rows
        self.public_dim = public_dim
        self.noise_seed = noise_seed
        self.disable_noise = disable_noise

    def _config(self, num_samples: Optional[int] = None) -> SynthesisConfig:
        labels = None if self.labels is None else tuple(np.asarray(self.labels).tolist())
        return SynthesisConfig(epsilon=self.epsilon, delta=self.delta, labels=labels, radius=self.radius,
                               clip_mode=self.clip_mode, max_clusters=self.max_clusters, rounds=self.rounds,
                               covariance=self.covariance, num_samples=num_samples,
                               class_balance=self.class_balance, allow_large_delta=self.allow_large_delta,
                               noise_seed=self.noise_seed, disable_noise=self.disable_noise)

    def fit(self, X, y) -> "DPMixtureSynthesizer":
        """Release a DP mixture of (X, y) with the local reference; X [n, d], y [n]."""
        from dpsynth.local import synthesize_arrays
        from dpsynth.errors import UserError

        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=False)
        if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)  # integral float labels (common from numpy) as the integers they are
        config = self._config(num_samples=0)
        if self.public_rows is not None:
            from dpsynth.subspace import check_dimension, fit_public_subspace

            try:
                subspace = fit_public_subspace(np.asarray(self.public_rows, dtype=np.float64), self.public_dim,
                                               radius=self.radius, clip_mode=self.clip_mode,
                                               source="public_rows array")
                check_dimension(subspace, X.shape[1])
            except UserError as exc:
                raise ValueError(str(exc)) from None
            config = config.replace(subspace=subspace)
        if config.delta >= 1.0 / len(X) and not config.allow_large_delta:  # as `synthesize` refuses it
            raise UserError(f"delta {config.delta:g} is at or above 1/n for n = {len(X)} rows; choose a "
                            "smaller delta or pass allow_large_delta=True")
        try:
            result = synthesize_arrays(X, y, config)
        except UserError as exc:  # scikit-learn callers expect ValueError for bad input
            raise ValueError(str(exc)) from None
        self.mixture_ = result.mixture
        self.ledger_ = result.ledger
        self.epsilon_spent_ = float(result.ledger.spent_epsilon)
        self.classes_ = np.asarray([c.label for c in result.mixture.classes])
        self.n_features_in_ = X.shape[1]
        return self

    def sample(self, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """n_samples fresh synthetic rows: (X_syn float32 [n, d], y_syn [n]). No privacy cost."""
        check_is_fitted(self, "mixture_")
        X, y, _ = self.mixture_.sample(int(n_samples), self.class_balance, self.noise_seed)
        return X, y
