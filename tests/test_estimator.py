"""The scikit-learn estimator and the torch Dataset over a release."""
from __future__ import annotations

import doctest
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as checks

import dpsynth
from beam_pipeline import inputs, synthesize
from dpsynth import estimator
from dpsynth.errors import UserError
from dpsynth.params import SynthesisConfig
from tests.conftest import embedding_table, make_mixture_data

# The checks that apply to a generator (fit(X, y), sample; no predict/transform/score): parameters,
# cloning, fit's input validation, fitted-state and pickling. Classifier, regressor, transformer,
# clustering, sample-weight, sparse and dataframe checks do not apply; check_fit2d_1sample and
# check_fit2d_1feature do not either (one row cannot meet delta < 1/n; a 1-d embedding is legal).
APPLICABLE_CHECKS = [
    checks.check_parameters_default_constructible, checks.check_no_attributes_set_in_init,
    checks.check_get_params_invariance, checks.check_set_params, checks.check_estimator_cloneable,
    checks.check_estimator_repr, checks.check_do_not_raise_errors_in_init_or_set_params,
    checks.check_dont_overwrite_parameters, checks.check_estimators_overwrite_params,
    checks.check_estimators_fit_returns_self, checks.check_fit_check_is_fitted, checks.check_n_features_in,
    checks.check_estimators_nan_inf, checks.check_estimators_empty_data_messages, checks.check_fit1d,
    checks.check_complex_data, checks.check_dtype_object, checks.check_estimators_dtypes,
    checks.check_requires_y_none, checks.check_estimators_pickle, checks.check_dict_unchanged,
    checks.check_valid_tag_types,
]


@pytest.mark.parametrize("check", APPLICABLE_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_estimator_checks(check):
    # Checks fit on ~20-100 rows; allow_large_delta keeps delta < 1/n from refusing them.
    check("DPMixtureSynthesizer", dpsynth.DPMixtureSynthesizer(delta=1e-3, allow_large_delta=True))


def test_docstring_example_runs():
    result = doctest.testmod(estimator, verbose=False)
    assert result.attempted >= 4 and result.failed == 0


def test_params_clone_and_not_fitted():
    synth = dpsynth.DPMixtureSynthesizer(epsilon=2.0, labels=(0, 1), covariance="spherical")
    params = synth.get_params()
    assert params["epsilon"] == 2.0 and params["covariance"] == "spherical" and params["labels"] == (0, 1)
    twin = clone(synth).set_params(epsilon=0.5)
    assert twin.epsilon == 0.5 and synth.epsilon == 2.0 and twin.labels == (0, 1)
    with pytest.raises(NotFittedError):
        synth.sample(10)


def test_fit_sample_and_the_ledger():
    X, y = make_mixture_data(rows=3000)
    synth = dpsynth.DPMixtureSynthesizer(epsilon=1.0, delta=1e-6, labels=(0, 1, 2, 3)).fit(X, y)
    assert 0.9 <= synth.epsilon_spent_ <= 1.0 and synth.ledger_.spent_epsilon == synth.epsilon_spent_
    assert synth.mixture_.private and list(synth.classes_) == [0, 1, 2, 3]
    X_syn, y_syn = synth.sample(1000)
    assert X_syn.shape == (1000, 8) and len(y_syn) == 1000 and set(y_syn.tolist()) <= {0, 1, 2, 3}


def test_same_release_as_synthesize_local_with_noise_off(tmp_path):
    X, y = make_mixture_data(rows=3000)
    pq.write_table(embedding_table(X, y.astype(np.int64)), tmp_path / "in.parquet")
    info = inputs.inspect_parquet(str(tmp_path / "in.parquet"), "embedding", "label", (), 8)
    config = SynthesisConfig(epsilon=1.0, delta=1e-6, labels=(0, 1, 2, 3), disable_noise=True)
    synthesize.run_local_job(info, config, str(tmp_path / "out"), embedding_column="embedding",
                             label_column="label")
    released = json.loads((tmp_path / "out" / "gmm.json").read_text())
    synth = dpsynth.DPMixtureSynthesizer(epsilon=1.0, delta=1e-6, labels=(0, 1, 2, 3), disable_noise=True)
    fitted = json.loads(json.dumps(synth.fit(X, y).mixture_.to_json()))
    # The CLI reads float32 Parquet; the estimator gets the same float32 values.
    assert fitted == released
    assert synth.epsilon_spent_ == float("inf")


def test_torch_dataset_over_a_release(tmp_path):
    import torch
    from torch.utils.data import DataLoader

    X, y = make_mixture_data(rows=2000)
    names = np.array(["ant", "bee", "cat", "dog"])[y]
    pq.write_table(embedding_table(X, names), tmp_path / "in.parquet")
    info = inputs.inspect_parquet(str(tmp_path / "in.parquet"), "embedding", "label", (), 8)
    config = SynthesisConfig(epsilon=1.0, delta=1e-5, labels=("ant", "bee", "cat", "dog"), num_samples=300)
    synthesize.run_local_job(info, config, str(tmp_path / "rel"), embedding_column="embedding",
                             label_column="label")
    data = dpsynth.ReleaseDataset(tmp_path / "rel")
    assert len(data) == 300 and data.classes == ["ant", "bee", "cat", "dog"]
    xb, yb = next(iter(DataLoader(data, batch_size=64, shuffle=True)))
    assert xb.shape == (64, 8) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    table = pq.read_table(next((tmp_path / "rel").glob("synthetic-*.parquet")))
    assert data.classes[int(data.targets[0])] == table.column("label")[0].as_py()
    with pytest.raises(UserError, match="not a directory"):
        dpsynth.ReleaseDataset(tmp_path / "in.parquet")


def test_public_rows_fit_in_their_subspace_and_sample_in_the_full_dimension():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 3000)
    X = rng.normal(size=(3000, 12)) * 0.3 + 3.0 * np.eye(12)[y]
    public = rng.normal(size=(200, 12)) * 0.3 + 3.0 * np.eye(12)[rng.integers(0, 2, 200)]
    synth = estimator.DPMixtureSynthesizer(epsilon=2.0, delta=1e-6, labels=(0, 1), public_rows=public,
                                           public_dim=3).fit(X, y)
    assert synth.mixture_.dimension == 4 and synth.mixture_.subspace.input_dimension == 12
    assert synth.ledger_.public_inputs[0]["name"] == "public_subspace"
    X_syn, _ = synth.sample(100)
    assert X_syn.shape == (100, 12)
    with pytest.raises(ValueError, match="same encoder"):
        estimator.DPMixtureSynthesizer(epsilon=2.0, delta=1e-6, labels=(0, 1), public_rows=public[:, :6]).fit(X, y)
    with pytest.raises(ValueError, match="non-finite"):
        estimator.DPMixtureSynthesizer(epsilon=2.0, delta=1e-6, labels=(0, 1), public_rows=public * np.nan).fit(X, y)
